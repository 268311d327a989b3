"""Mixed precision (--amp): saved tensors at the dtype autocast gives each op, against what PyTorch saves under
torch.autocast("cpu", dtype=torch.bfloat16); the arithmetic by hand on a small chain."""

from __future__ import annotations

import pytest

from convaudit.core.analysis import analyze
from convaudit.core.checkpoint import checkpoint_segments, default_segments
from convaudit.core.layers import REGISTRY
from convaudit.core.layers.base import Autocast
from convaudit.core.memory import training_memory
from convaudit.errors import ConvauditError
from convaudit.spec.library import load
from convaudit.spec.parser import parse_text

from .conftest import ARCHITECTURES, small_input
from .test_memory import one_value_per_channel
from .torch_oracles import checkpointed, saved_activation_bytes

CHAIN = """\
name: t
input: [3, 8, 8]
layers:
  - {type: conv, out: 4, kernel: 3, padding: 1}
  - {type: batchnorm}
  - {type: relu}
  - {type: maxpool, kernel: 2}
  - {type: linear, out: 10}
"""


def test_a_small_chain_under_autocast_by_hand() -> None:
    memory = training_memory(analyze(parse_text(CHAIN), batch=2), amp="bf16")
    # conv: the fp32 input cast to bf16, 2·3·8·8 = 384 values · 2 B, and its 4·3·3·3 = 108 weights cast to bf16;
    # batchnorm: the conv's bf16 output (2·4·8·8 = 512 values) and a mean and 1/std per channel in fp32 (2·4·4 B);
    # relu: its bf16 output (512); maxpool: that same output, and int64 indices for 2·4·4·4 = 128 outputs;
    # linear: the pool's bf16 output (128 values) and its 64·10 = 640 weights cast to bf16.
    assert memory.saved_by_layer == {"conv1": 384 * 2 + 108 * 2, "bn1": 512 * 2 + 8 * 4, "relu1": 512 * 2,
                                     "pool1": 128 * 8, "fc1": 128 * 2 + 640 * 2}
    # the parameters, their gradients and Adam's two moments stay fp32
    fp32 = training_memory(analyze(parse_text(CHAIN), batch=2))
    assert (memory.params, memory.gradients, memory.optimizer_state) == (fp32.params, fp32.gradients,
                                                                         fp32.optimizer_state)


def test_every_layer_type_declares_its_autocast_rule() -> None:
    for layer_type in REGISTRY.values():
        assert callable(layer_type.autocast) or isinstance(layer_type.autocast, Autocast), layer_type.type_name


def test_amp_needs_fp32_master_weights() -> None:
    with pytest.raises(ConvauditError, match="--dtype at fp32"):
        training_memory(analyze(parse_text(CHAIN), dtype="fp16"), amp="bf16")


@pytest.mark.needs_torch
@pytest.mark.parametrize("path", ARCHITECTURES, ids=lambda p: p.stem)
def test_saved_activations_under_autocast_match_pytorch(path) -> None:
    """Autocast alone, then with checkpointing over the spec's blocks (or every ⌈√L⌉ layers) too: one model each."""
    import torch

    from convaudit.pytorch.builder import build_model

    report = small_input(load(str(path)))
    if one_value_per_channel(report):  # PyTorch refuses to train such a batchnorm on one sample
        report = analyze(report.spec, batch=2)
    model = build_model(report).train()
    x = torch.randn((report.batch, *report.input))
    how = default_segments(report)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        measured = saved_activation_bytes(model, x)
        measured_checkpointed = saved_activation_bytes(checkpointed(model, report, checkpoint_segments(report, how)),
                                                       x)
    assert training_memory(report, amp="bf16").saved_activations == measured
    assert training_memory(report, amp="bf16", checkpoint=how).saved_activations == measured_checkpointed
