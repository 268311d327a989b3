"""Sharded data parallelism in `split`: fsdp shards each parameter in torch.chunk sizes along dimension 0,
zero1 and zero2 shard the optimizer state (and the gradients); bytes by the ring formulas."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convaudit.core import collectives
from convaudit.core.analysis import analyze
from convaudit.core.layers import REGISTRY
from convaudit.core.plan import chunk_rows, plan
from convaudit.spec.library import bundled_paths, load

FP32 = 4
# torchvision's AlexNet (features.0 … classifier.6): every parameter tensor's shape, as torch holds it
ALEXNET_TV = {"conv1": [(64, 3, 11, 11), (64,)], "conv2": [(192, 64, 5, 5), (192,)],
              "conv3": [(384, 192, 3, 3), (384,)], "conv4": [(256, 384, 3, 3), (256,)],
              "conv5": [(256, 256, 3, 3), (256,)], "fc6": [(4096, 9216), (4096,)],
              "fc7": [(4096, 4096), (4096,)], "fc8": [(1000, 4096), (1000,)]}


def elements(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


def chunks_by_hand(rows: int, devices: int) -> list[int]:
    """torch.chunk's rule as its docs state it: chunks of ⌈rows/N⌉, the last smaller; fully_shard gives the
    devices past the last chunk an empty one."""
    size = -(-rows // devices)
    out = []
    left = rows
    for _ in range(devices):
        out.append(min(size, left))
        left -= out[-1]
    return out


def test_chunk_rows_by_hand() -> None:
    # 5 rows over 4: chunks of ⌈5/4⌉ = 2 → 2, 2, 1 and an empty one (torch.chunk makes only 3)
    assert chunk_rows(5, 4)[0] == 2 and list(chunk_rows(5, 4)[1]) == [2, 2, 1, 0] == chunks_by_hand(5, 4)
    # 4096 over 3: ⌈4096/3⌉ = 1366 → 1366, 1366, 1364 (not the columns split's 1366, 1365, 1365)
    assert list(chunk_rows(4096, 3)[1]) == [1366, 1366, 1364]
    # 1 row over 2: all on device 0
    assert list(chunk_rows(1, 2)[1]) == [1, 0]
    # 64 over 3: 22, 22, 20
    assert list(chunk_rows(64, 3)[1]) == [22, 22, 20]


@pytest.mark.needs_torch
@settings(max_examples=200, deadline=None)
@given(rows=st.integers(1, 300), devices=st.integers(1, 80))
def test_chunk_rows_is_torch_chunk(rows: int, devices: int) -> None:
    import torch

    chunks = [c.shape[0] for c in torch.chunk(torch.empty(rows), devices)]
    chunks += [0] * (devices - len(chunks))  # fully_shard's _chunk_with_empty
    chunk, spread = chunk_rows(rows, devices)
    assert list(spread) == chunks and chunk == chunks[0]


def alexnet_tv(strategy: str, devices: int = 3, batch: int = 6, optimizer: str = "adam"):
    return plan(analyze(load("alexnet-torchvision"), batch), strategy, devices, optimizer)


def test_fsdp_alexnet_torchvision_three_devices_is_torch_chunk_by_hand() -> None:
    p = alexnet_tv("fsdp")
    by_name = {item.name: item for item in p.layers}
    for name, shapes in ALEXNET_TV.items():
        per_device = [sum(rows * elements(shape[1:]) for shape in shapes for rows in [chunks_by_hand(shape[0], 3)[d]])
                      for d in range(3)]
        assert [s.params for s in by_name[name].shares] == per_device, name
    # written out: conv1 64 rows of 3·11·11 = 363 → 22, 22, 20 rows, + the bias's 22, 22, 20
    assert [s.params for s in by_name["conv1"].shares] == [22 * 364, 22 * 364, 20 * 364]
    # fc8 1000 rows of 4096 → 334, 334, 332; the padding fills the last device's shard to 334 rows
    assert [s.params for s in by_name["fc8"].shares] == [334 * 4097, 334 * 4097, 332 * 4097]
    assert [s.padding for s in by_name["fc8"].shares] == [0, 0, 2 * 4097]
    assert sum(t.params for t in p.per_device) == 61_100_840  # torchvision's AlexNet


@pytest.mark.needs_torch
def test_fsdp_alexnet_torchvision_three_devices_is_torch_chunk_of_the_real_model() -> None:
    import torch

    from convaudit.importers.targets import load_torchvision

    model = load_torchvision().models.alexnet()
    modules = {"conv1": model.features[0], "conv2": model.features[3], "conv3": model.features[6],
               "conv4": model.features[8], "conv5": model.features[10], "fc6": model.classifier[1],
               "fc7": model.classifier[4], "fc8": model.classifier[6]}
    p = alexnet_tv("fsdp")
    by_name = {item.name: item for item in p.layers}
    for name, module in modules.items():
        expected = [0, 0, 0]
        for parameter in module.parameters():
            for d, chunk in enumerate(torch.chunk(parameter, 3)):
                expected[d] += chunk.numel()
        assert [s.params for s in by_name[name].shares] == expected, name
        # Adam: exp_avg and exp_avg_sq of the real shard; gradients the real shard too
        assert [s.optimizer_state for s in by_name[name].shares] == [2 * e for e in expected]
        assert [s.gradients for s in by_name[name].shares] == expected
    assert [s.params for s in by_name["relu1"].shares] == [0, 0, 0]


def test_fsdp_collectives_are_three_passes_of_the_padded_parameters() -> None:
    # Every AlexNet row count is even: over 2 devices nothing is padded. Per step each device receives
    # (N − 1)/N of every parameter three times: the forward all-gather, the backward all-gather and the
    # gradients' reduce-scatter: 3 · 1/2 · 61,100,840 · 4 B. ZeRO-3's 3Ψ.
    p = alexnet_tv("fsdp", devices=2)
    size = 61_100_840 * FP32
    assert all(t.received == 3 * Fraction(1, 2) * size for t in p.per_device)
    assert all(t.received_forward == collectives.all_gather(size, 2) for t in p.per_device)
    assert all(t.padding == 0 for t in p.per_device)
    # zero1 and zero2: a reduce-scatter and an all-gather after the step, the bytes of data's all-reduce
    data = alexnet_tv("data", devices=2)
    for strategy in ("zero1", "zero2"):
        z = alexnet_tv(strategy, devices=2)
        assert [t.received for t in z.per_device] == [t.received for t in data.per_device]
        assert all(t.received_step == collectives.all_gather(size, 2) for t in z.per_device)


def test_fsdp_over_three_devices_gathers_the_padding_too() -> None:
    # conv1 over 3: 22 rows per device (the last holds 20 real ones): the all-gather moves 3 · 22 rows of 364
    p = alexnet_tv("fsdp", devices=3)
    conv1 = p.layers[0]
    forward = next(e for e in conv1.exchanges if e.kind == "all-gather" and e.phase == "forward")
    assert forward.received[2] == Fraction(2, 3) * 3 * 22 * 364 * FP32 == 2 * 22 * 364 * FP32
    assert [e.kind for e in conv1.exchanges] == ["all-gather", "all-gather", "reduce-scatter"]
    assert [e.phase for e in conv1.exchanges] == ["forward", "backward", "backward"]


def test_memory_terms_per_strategy() -> None:
    """Per device, Adam, batch 6 over 2: what each strategy keeps, by hand."""
    size, total = FP32, 61_100_840
    fc6 = 4096 * 9216 + 4096  # the largest unit
    data = alexnet_tv("data", devices=2).per_device[0]
    activations = data.activation_bytes  # data, fsdp and zero all run 3 samples per device
    fsdp = alexnet_tv("fsdp", devices=2).per_device[0]
    # half the parameters, half their gradients, Adam's two moments of that half, and the largest unit
    # all-gathered with its whole gradients at peak
    assert (fsdp.params, fsdp.gradients, fsdp.optimizer_state, fsdp.transient) == \
        (total // 2, total // 2, total, 2 * fc6)
    assert fsdp.activation_bytes == activations
    assert fsdp.training_memory == (total // 2 + total // 2 + total + 2 * fc6) * size + activations
    zero2 = alexnet_tv("zero2", devices=2).per_device[0]
    assert zero2.training_memory == (total + total // 2 + total + fc6) * size + activations
    zero1 = alexnet_tv("zero1", devices=2).per_device[0]
    assert zero1.training_memory == (total + total + total) * size + activations
    assert data.training_memory == (total + total + 2 * total) * size + activations


def test_frozen_parameters_are_sharded_but_keep_no_state() -> None:
    # LeNet-5's RBF centres (10 × 84, fixed): sharded 5 and 5 rows, gathered forward and backward (a gradient
    # flows through to F6), never reduce-scattered, no gradient, no optimizer state
    p = plan(analyze(load("lenet5"), 2), "fsdp", 2, "adam")
    rbf = p.layers[-1]
    assert [s.params for s in rbf.shares] == [5 * 84, 5 * 84]
    assert [(s.gradients, s.optimizer_state, s.trainable_params) for s in rbf.shares] == [(0, 0, 0)] * 2
    assert [e.kind for e in rbf.exchanges] == ["all-gather", "all-gather"]


@pytest.mark.parametrize("path", bundled_paths(), ids=lambda p: Path(p).stem)
def test_parameter_shapes_hold_the_analysis_count(path: Path) -> None:
    report = analyze(load(str(path)))
    for layer in report.layers:
        shapes = REGISTRY[layer.type].parameter_shapes(list(layer.input_shapes), layer.spec.params)
        assert sum(elements(shape) for shape in shapes) == layer.params, layer.name


@pytest.mark.needs_torch
@pytest.mark.parametrize("path", bundled_paths(), ids=lambda p: Path(p).stem)
def test_parameter_shapes_are_the_modules(path: Path) -> None:
    """Each type's parameter_shapes is what the PyTorch module holds, in parameters() order (meta: no memory)."""
    import torch

    from convaudit.pytorch.builder import build_model

    report = analyze(load(str(path)))
    with torch.device("meta"):
        model = build_model(report)
    for layer in report.layers:
        held = [tuple(p.shape) for p in model.module_for(layer.name).parameters()]
        assert held == [tuple(s) for s in REGISTRY[layer.type].parameter_shapes(list(layer.input_shapes),
                                                                                  layer.spec.params)], layer.name


def test_collective_formulas() -> None:
    # S = 300 bytes over 3 devices: each shard 100; an all-gather brings the 2 others, a reduce-scatter 2 steps
    # of 100, an all-reduce both: 2·2/3·300 = 400
    assert collectives.all_gather(300, 3) == 200 and collectives.reduce_scatter(300, 3) == 200
    assert collectives.all_reduce(300, 3) == 400
    assert collectives.all_reduce(100, 3) == Fraction(400, 3)  # a third of a byte, exact
    assert collectives.all_reduce(100, 1) == 0 and collectives.gather(12) == 12
