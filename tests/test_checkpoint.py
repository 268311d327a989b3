"""Activation checkpointing (--checkpoint): segments, the bytes kept at their boundaries, the largest segment remade
in the backward and its FLOPs run again; against torch.utils.checkpoint(use_reentrant=False)."""

from __future__ import annotations

import pytest

from convaudit.core.analysis import analyze
from convaudit.core.checkpoint import checkpoint_segments, default_segments
from convaudit.core.memory import training_memory
from convaudit.errors import ConvauditError
from convaudit.spec.library import load
from convaudit.spec.parser import parse_text

from .conftest import small_input
from .torch_oracles import checkpointed, saved_activation_bytes

CHAIN = """\
name: t
input: [3, 8, 8]
layers:
  - {type: conv, out: 4, kernel: 3, padding: 1}
  - {type: relu}
  - {type: conv, out: 4, kernel: 3, padding: 1}
  - {type: relu}
  - {type: linear, out: 10}
"""


def test_every_two_layers_by_hand() -> None:
    report = analyze(parse_text(CHAIN), batch=2)
    assert checkpoint_segments(report, "every:2") == (("conv1", "relu1"), ("conv2", "relu2"), ("fc1",))
    memory = training_memory(report, checkpoint="every:2")
    # kept: each segment's input, whole: the input 2·3·8·8 = 384 values, relu1's 2·4·8·8 = 512, relu2's 512
    assert memory.saved_activations == (384 + 512 + 512) * 4
    # remade in the backward, one segment at a time: (conv1, relu1) saves the input (kept already) and relu1's
    # output (kept already) -- nothing new; (conv2, relu2) saves relu1's output (kept) and relu2's (kept); fc1
    # its input (kept): the boundaries hold all of it
    assert memory.recompute_peak == 0
    # every layer is checkpointed: the backward runs the whole forward again
    assert memory.recompute_flops == report.totals.flops


def test_a_segment_remakes_its_own_tensors() -> None:
    report = analyze(parse_text(CHAIN), batch=2)
    memory, plain = training_memory(report, checkpoint="every:3"), training_memory(report)
    # segments (conv1, relu1, conv2) and (relu2, fc1) keep their inputs: the input's 2·3·8·8 = 384 values and
    # conv2's output, 2·4·8·8 = 512
    assert memory.saved_activations == (384 + 512) * 4
    # remade in the backward: relu1's output (512, saved by relu1 and conv2), or relu2's (512, by relu2 and fc1)
    assert (memory.recompute_peak, memory.recompute_segment) == (512 * 4, "conv1")
    # without checkpointing: the input, relu1's and relu2's outputs; the same peak, part of it moved to the backward
    assert plain.saved_activations == (384 + 512 + 512) * 4 == memory.training_total - memory.params \
        - memory.gradients - memory.optimizer_state


def test_segments_by_block_and_by_prefix() -> None:
    report = analyze(load("resnet18"))
    blocks = checkpoint_segments(report, "blocks")
    assert blocks[0][0] == "layer1.0.conv1" and len(blocks) == 8  # 4 stages of 2 basic blocks
    assert checkpoint_segments(report, "layer4") == (tuple(n.name for n in report.layers
                                                           if n.name.startswith("layer4.")),)
    assert default_segments(analyze(load("alexnet"))) == "every:5"  # 23 layers: ⌈√23⌉ = 5


@pytest.mark.parametrize("how, message", [("blocks", "has no blocks"), ("every:0", "N ≥ 1"),
                                          ("nosuch", "no layer or block named nosuch")])
def test_bad_checkpoint_requests(how: str, message: str) -> None:
    with pytest.raises(ConvauditError, match=message):
        training_memory(analyze(load("alexnet")), checkpoint=how)


@pytest.mark.needs_torch
@pytest.mark.parametrize("name, how", [("resnet18", "blocks"), ("googlenet", "inception4a,inception5a"),
                                       ("unet", "every:3")])
def test_fp32_checkpointing_matches_pytorch(name: str, how: str) -> None:
    import torch

    from convaudit.pytorch.builder import build_model

    report = small_input(load(name))
    model = build_model(report).train()
    x = torch.randn((report.batch, *report.input))
    measured = saved_activation_bytes(checkpointed(model, report, checkpoint_segments(report, how)), x)
    memory = training_memory(report, checkpoint=how)
    assert memory.saved_activations == measured < training_memory(report).saved_activations
