"""Training and inference memory: the arithmetic by hand, and saved tensors against PyTorch's own."""

from __future__ import annotations

import pytest

from convaudit.core.analysis import analyze
from convaudit.core.memory import OPTIMIZER_STATES, inference_peak, training_memory
from convaudit.spec.library import load
from convaudit.spec.parser import parse_text

from .conftest import ARCHITECTURES, small_input
from .torch_oracles import saved_activation_bytes


def test_parameters_gradients_and_optimizer_state() -> None:
    report = analyze(load("alexnet"), dtype="fp16")
    trainable = 60_965_224
    for optimizer, buffers in (("sgd", 0), ("momentum", 1), ("adam", 2)):
        memory = training_memory(report, optimizer)
        assert memory.params == memory.gradients == 2 * trainable  # fp16: 2 bytes each
        assert memory.optimizer_state == buffers * 2 * trainable == OPTIMIZER_STATES[optimizer] * 2 * trainable


def test_saved_activations_of_a_small_chain_by_hand() -> None:
    text = """\
name: t
input: [3, 8, 8]
layers:
  - {type: conv, out: 4, kernel: 3, padding: 1}
  - {type: relu}
  - {type: maxpool, kernel: 2}
  - {type: linear, out: 10}
"""
    memory = training_memory(analyze(parse_text(text), batch=2))
    # conv saves the input (2·3·8·8 = 384 values); relu its output (2·4·8·8 = 512), which maxpool also
    # reads and saves (counted once), plus int64 indices for its 2·4·4·4 = 128 outputs; linear saves its
    # input, the pool's 128 outputs.
    assert memory.saved_by_layer == {"conv1": 384 * 4, "relu1": 512 * 4, "pool1": 128 * 8, "fc1": 128 * 4}
    assert memory.saved_activations == (384 + 512 + 128) * 4 + 128 * 8


def test_inference_peak_is_the_widest_step() -> None:
    text = """\
name: t
input: [1, 4, 4]
layers:
  - {type: conv, name: a, out: 8, kernel: 1}
  - {type: conv, name: b, out: 2, kernel: 1, from: input}
  - {type: concat, name: c, from: [a, b]}
"""
    # input 16 values; step a: input + a (128) = 144; step b: input + a + b (32) = 176 (a waits for c);
    # step c: a + b + c (160) = 320, the input freed after b
    peak, at = inference_peak(analyze(parse_text(text)))
    assert (peak, at) == (320 * 4, "c")


@pytest.mark.needs_torch
@pytest.mark.parametrize("path", ARCHITECTURES, ids=lambda p: p.stem)
def test_saved_activations_match_what_pytorch_saves(path) -> None:
    import torch

    from convaudit.pytorch.builder import build_model

    report = small_input(load(str(path)))
    if one_value_per_channel(report):  # PyTorch refuses to train such a batchnorm on one sample
        report = analyze(report.spec, batch=2)
    model = build_model(report).train()
    x = torch.randn((report.batch, *report.input))
    assert training_memory(report).saved_activations == saved_activation_bytes(model, x)


def one_value_per_channel(report) -> bool:
    """A batchnorm over a 1 × 1 map (DeepLabV3's image-level branch): one value per channel at batch 1."""
    return any(layer.type == "batchnorm" and all(size == 1 for size in layer.input_shapes[0][1:])
               for layer in report.layers)


def alive_set_peak(report) -> tuple[int, str]:
    """The oracle: the set of live tensors rebuilt and summed at every step."""
    from convaudit.core.layers import elements
    from convaudit.core.memory import _tensor_of, dtype_size, is_view
    from convaudit.core.model import INPUT

    size = dtype_size(report)
    last_read = {INPUT: -1}
    for index, layer in enumerate(report.layers):
        for source in layer.spec.inputs:
            tensor = _tensor_of(source, report)
            last_read[tensor] = max(last_read.get(tensor, -1), index)
    for output in report.spec.outputs:
        last_read[_tensor_of(output, report)] = len(report.layers)
    nbytes = {INPUT: elements(report.input) * report.batch * size}
    nbytes.update({layer.name: layer.activations * size for layer in report.layers})
    alive, peak, at = {INPUT}, nbytes[INPUT], INPUT
    for index, layer in enumerate(report.layers):
        if not is_view(layer, report):
            alive.add(layer.name)
        current = sum(nbytes[t] for t in alive)
        if current > peak:
            peak, at = current, layer.name
        alive = {t for t in alive if last_read.get(t, -1) > index}
    return peak, at


@pytest.mark.parametrize("path", ARCHITECTURES, ids=lambda p: p.stem)
def test_one_pass_inference_peak_matches_the_alive_set(path) -> None:
    for batch in (1, 3):
        report = analyze(load(str(path)), batch=batch)
        assert inference_peak(report) == alive_set_peak(report)
