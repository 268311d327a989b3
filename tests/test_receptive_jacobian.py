"""Supports and Unseen px against the input positions PyTorch's gradients reach, for 1-D, 2-D and 3-D networks
with transposed convolutions, up-sampling in every mode, pixel (un)shuffle, pads in every mode and crops.

Which input elements each output depends on comes from autograd on a small real tensor with random weights (a
dependence then vanishes only by structure): per spatial axis and output position, the gradient of the output's
slab there (every channel and every position on the other axes, weighted at random) is non-zero exactly at the
input elements some element of the slab depends on. Their first and last position on the axis must be the
engine's `low` and `high`, and what no output reads its Unseen px. The Jacobian is float64, except for networks
with linear or cubic up-sampling: PyTorch computes their source indices in the tensor's precision, and convaudit's
arithmetic is float's (fp32, fp16 and bf16 share it; core/receptive/interpolation.py).
"""

from __future__ import annotations

import math
import platform
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convaudit.core.analysis import analyze
from convaudit.core.receptive import Supports, receptive_fields
from convaudit.core.receptive.interpolation import cubic_reads, linear_reads, nearest_reads
from convaudit.spec.parser import parse_text
from tests.receptive_nets import PAD_MODES, resampling_network

pytestmark = pytest.mark.needs_torch


def rounding_reproduced() -> bool:
    """Whether PyTorch's CPU kernels here round the linear and cubic source indices as convaudit reproduces them
    (core/receptive/interpolation.py): its AVX2 and AVX-512 builds on x86 fuse σ·(p + 0.5) − 0.5 into one
    multiply-add in the linear kernels, and its bicubic backward kernel, built for any x86, does not. Elsewhere
    (x86 without AVX2, ARM) a tie can round the other way, and those modes are left out of the comparison."""
    import torch

    return platform.machine().lower() in ("x86_64", "amd64") and \
        torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")


def reads_along(output, x) -> list:
    """Per axis, an [output positions, input positions] matrix: which input positions the output's slab at each
    position (every channel, every position on the other axes) depends on, so the union of its elements'
    dependences. One batched backward pass for all slabs, each slab's elements weighted at random so that no
    dependence cancels: a zero gradient then means no dependence, by structure."""
    import torch

    rank = output.dim() - 2
    weights = torch.randn_like(output)
    slabs = []
    for axis in range(rank):
        for q in range(output.shape[2 + axis]):
            mask = torch.zeros_like(output)
            index = [slice(None)] * output.dim()
            index[2 + axis] = q
            mask[tuple(index)] = 1
            slabs.append(weights * mask)
    (gradient,) = torch.autograd.grad(output, x, torch.stack(slabs), retain_graph=True, is_grads_batched=True)
    matrices, at = [], 0
    for axis in range(rank):
        size = output.shape[2 + axis]
        folded = [1, 2] + [3 + b for b in range(rank) if b != axis]  # [slab, 1, C_in, *in]: all but slab and axis
        matrices.append((gradient[at:at + size] != 0).sum(dim=folded) > 0)
        at += size
    return matrices


def check_against_jacobian(text: str) -> None:
    import torch

    from convaudit.pytorch.builder import build_model

    report = analyze(parse_text(text))
    assert report.halted is None, text
    precise = not any(layer.type == "upsample" and layer.spec.params["mode"] in ("linear", "bilinear", "trilinear",
                                                                                  "bicubic")
                      for layer in report.layers)
    dtype = torch.float64 if precise else torch.float32
    torch.manual_seed(0)
    model = build_model(report).to(dtype)
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter)
    model.outputs = tuple(layer.name for layer in report.layers)
    x = torch.randn((1, *report.input), dtype=dtype, requires_grad=True)
    outputs = model(x)
    if not isinstance(outputs, tuple):  # one layer: the model returns its tensor alone
        outputs = (outputs,)
    supports, fields = Supports(report), receptive_fields(report)
    rank, network = len(report.input) - 1, report.input[1:]
    for layer, output in zip(report.layers, outputs, strict=True):
        matrices = reads_along(output, x)
        unseen = []
        for axis, matrix in enumerate(matrices):
            union = matrix.any(dim=0).nonzero().flatten().tolist()
            unseen.append(union[0] + network[axis] - 1 - union[-1] if union else network[axis])
        assert fields[layer.name].uncovered == tuple(unseen), (text, layer.name)
        if not matrices[0].any():
            # nothing read at all: along some axis no position reads anything (the engine follows axes one at
            # a time, and says so on that axis)
            assert any(all(supports.low(layer.name, axis, i) > supports.high(layer.name, axis, i)
                           for i in range(supports.size(layer.name, axis))) for axis in range(rank)), text
            continue
        for axis, matrix in enumerate(matrices):
            for index in range(matrix.shape[0]):
                hit = matrix[index].nonzero().flatten().tolist()
                first, last = (hit[0], hit[-1]) if hit else (network[axis], -1)
                assert (supports.low(layer.name, axis, index), supports.high(layer.name, axis, index)) == \
                    (first, last), (text, layer.name, axis, index)


SLOW = [HealthCheck.filter_too_much, HealthCheck.too_slow]
EXACT_MODES = ("nearest", "nearest-exact")  # modes whose index arithmetic is the same on every build


@settings(max_examples=10, deadline=None, suppress_health_check=SLOW)
@given(st.data())
def test_supports_match_the_jacobian(data: st.DataObject) -> None:
    modes = None if rounding_reproduced() else EXACT_MODES + PAD_MODES
    check_against_jacobian(data.draw(resampling_network(modes=modes)))


@pytest.mark.parametrize("rank", [1, 3])
@settings(max_examples=5, deadline=None, suppress_health_check=SLOW)
@given(data=st.data())
def test_supports_of_1d_and_3d_networks_match_the_jacobian(rank: int, data: st.DataObject) -> None:
    modes = None if rounding_reproduced() else EXACT_MODES + PAD_MODES
    check_against_jacobian(data.draw(resampling_network(rank=rank, modes=modes)))


CASES = {  # each layer kind, each up-sampling and padding mode, among the layers that move its grid
    "transposed": ({"kinds": ("convtranspose", "convtranspose", "conv", "avgpool")}, None),
    "nearest": ({"kinds": ("upsample", "conv", "avgpool"), "modes": ("nearest",)}, None),
    "nearest-exact": ({"kinds": ("upsample", "convtranspose"), "modes": ("nearest-exact",)}, None),
    "linear": ({"kinds": ("upsample", "conv", "upsample"), "modes": ("linear",)}, "rounding"),
    "bicubic": ({"kinds": ("upsample", "conv"), "modes": ("bicubic",), "rank": 2}, "rounding"),
    "pixel shuffle": ({"kinds": ("shuffle", "unshuffle", "conv", "convtranspose"), "rank": 2}, None),
    **{f"pad {mode}": ({"kinds": ("pad", "pad", "conv", "convtranspose"), "modes": (mode,)}, None)
       for mode in PAD_MODES},
    "crop": ({"kinds": ("crop", "crop", "conv", "avgpool", "convtranspose")}, None),
    "merge": ({"kinds": ("merge", "conv", "upsample", "crop", "convtranspose")}, None),
}


@pytest.mark.parametrize("case", list(CASES))
@settings(max_examples=3, deadline=None, suppress_health_check=SLOW)
@given(data=st.data())
def test_each_resampling_rule_matches_the_jacobian(case: str, data: st.DataObject) -> None:
    options, needs = CASES[case]
    if needs == "rounding" and not rounding_reproduced():
        pytest.skip("this build of PyTorch rounds the linear and cubic source indices otherwise (see above)")
    check_against_jacobian(data.draw(resampling_network(**options)))


def test_the_unet_crops_and_up_convolutions_match_the_jacobian() -> None:
    # a small valid U-Net: 44 → conv 42, 40 → pool 20 → conv 18, 16 → up 32 → crop 40 to 32, concat → conv 30
    text = """\
name: small_unet
input: [1, 44]
layers:
  - {type: conv, out: 2, kernel: 3}
  - {type: conv, name: enc, out: 2, kernel: 3}
  - {type: maxpool, kernel: 2}
  - {type: conv, out: 2, kernel: 3}
  - {type: conv, out: 2, kernel: 3}
  - {type: convtranspose, name: up, out: 2, kernel: 2, stride: 2}
  - {type: crop, name: crop, from: [enc, up]}
  - {type: concat, name: cat, from: [crop, up]}
  - {type: conv, name: dec, out: 1, kernel: 3}
"""
    check_against_jacobian(text.replace("maxpool", "avgpool"))  # avg: every pooled element reaches the gradient


# ------------------------------------------------------------------ up-sampling's source indices, one axis

@settings(max_examples=150, deadline=None)
@given(st.integers(1, 40), st.sampled_from(["nearest", "nearest-exact", "linear", "bicubic"]), st.booleans(),
       st.one_of(st.integers(1, 90), st.sampled_from(["0.5", "1.5", "2", "3", "0.57", "2.5", "1.3", "0.3", "1.75"])))
def test_interpolation_indices_match_pytorch(size: int, mode: str, align: bool, target: int | str) -> None:
    """Which input positions F.interpolate's output p reads (float32, its gradient's non-zeros), against the
    emulated arithmetic, for every p."""
    import torch
    import torch.nn.functional as functional

    if mode in ("linear", "bicubic") and not rounding_reproduced():
        pytest.skip("this build of PyTorch rounds the linear and cubic source indices otherwise")
    align = align and mode in ("linear", "bicubic")
    scale = Fraction(target) if isinstance(target, str) else None
    out = math.floor(float(size) * float(scale)) if scale is not None else target
    if out < 1:
        return
    options: dict = {"size": out} if scale is None else {"scale_factor": float(scale)}
    shape = (1, 1, -1)
    if mode == "bicubic":  # bicubic is 2-D only: one row (its H copies: in = out = 1)
        shape = (1, 1, 1, -1)
        options = {"size": (1, out)} if scale is None else {"scale_factor": (1.0, float(scale))}

    def interpolate(v: torch.Tensor) -> torch.Tensor:
        return functional.interpolate(v.view(*shape), mode=mode, align_corners=align if mode in ("linear", "bicubic")
                                      else None, **options).flatten()

    jacobian = torch.autograd.functional.jacobian(interpolate, torch.randn(size))
    for p in range(out):
        hit = jacobian[p].nonzero().flatten().tolist()
        if mode.startswith("nearest"):
            first = last = nearest_reads(p, size, out, scale, mode == "nearest-exact")
        elif mode == "linear":
            first, last = linear_reads(p, size, out, align, scale)
        else:
            first, last = cubic_reads(p, size, out, align, scale, copy=size == out)
        assert hit == list(range(first, last + 1)), (size, out, scale, mode, align, p)
