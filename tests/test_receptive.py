"""Receptive fields: the recurrence by hand, and against the input pixels PyTorch's gradients reach."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from convaudit.core.analysis import analyze
from convaudit.core.receptive import Supports, receptive_fields
from convaudit.spec.library import load
from convaudit.spec.parser import parse_text


def test_alexnet_pool5_by_hand() -> None:
    fields = receptive_fields(analyze(load("alexnet")))
    # r += (K − 1)·j, j *= S:  conv1 11 (j 4) → pool1 11 + 2·4 = 19 (j 8) → conv2 19 + 4·8 = 51
    # → pool2 51 + 2·8 = 67 (j 16) → conv3–5 67 + 3·2·16 = 163 → pool5 163 + 2·16 = 195 (j 32)
    expected = {"conv1": (11, 4), "pool1": (19, 8), "conv2": (51, 8), "pool2": (67, 16), "conv5": (163, 16),
                "pool5": (195, 32)}
    for name, (rf, jump) in expected.items():
        assert fields[name].rf == (rf, rf) and fields[name].jump == (jump, jump), name
    # centre of the first field: conv1 (11 − 1)/2 = 5; pool1 5 + 1·4 = 9; pool5 33
    assert fields["conv1"].start == (5, 5) and fields["pool1"].start == (9, 9) and fields["pool5"].start == (33, 33)


def test_vgg16_by_hand() -> None:
    fields = receptive_fields(analyze(load("vgg16")))
    # each 3×3 conv adds 2·j, each 2×2 pool adds 1·j then doubles j:
    # stage 1: 1 + 2 + 2 = 5, pool 6 (j 2); stage 2: 6 + 4 + 4 = 14, pool 16 (j 4);
    # stage 3: 16 + 3·8 = 40, pool 44 (j 8); stage 4: 44 + 3·16 = 92, pool 100 (j 16);
    # stage 5: 100 + 3·32 = 196, pool 212 (j 32)
    assert fields["conv5_3"].rf == (196, 196) and fields["pool5"].rf == (212, 212)
    # padding 1 keeps the first centre where (3 − 1)/2 − 1 = 0 moves it; pools move it by j/2
    assert fields["pool1"].start == (Fraction(1, 2), Fraction(1, 2))


def test_floor_rounding_leaves_pixels_unseen() -> None:
    fields = receptive_fields(analyze(load("alexnet").with_input(224, 224)))
    # conv1: 54 windows starting at 0, 4, …, 212 end at 222: pixel 223 is read by nothing.
    assert fields["conv1"].uncovered == (1, 1)
    # pool1: 26 windows over conv1's 54 outputs reach conv1 output 52, whose field ends at 52·4 + 10 = 218:
    # pixels 219–223 are lost, and stay lost downstream.
    assert fields["pool1"].uncovered == (5, 5) and fields["fc6"].uncovered == (5, 5)
    assert any("floored" in note for note in fields["conv1"].notes)
    assert receptive_fields(analyze(load("alexnet")))["fc6"].uncovered == (0, 0)


def test_merge_of_misaligned_grids_is_flagged() -> None:
    text = """\
name: t
input: [1, 8, 8]
layers:
  - {type: conv, name: a, out: 1, kernel: 1, stride: 2}
  - {type: conv, name: b, out: 1, kernel: 2, stride: 2, from: input}
  - {type: concat, name: cat, from: [a, b]}
"""
    fields = receptive_fields(analyze(parse_text(text)))
    # a: centres 0, 2, 4, …; b: centres 0.5, 2.5, …: the same 4×4 size on grids half a pixel apart
    (note,) = fields["cat"].notes
    assert "misaligned" in note and "'a' jump 2 start 0" in note and "'b' jump 2 start 0.5" in note
    assert fields["cat"].rf == (2, 2)  # the larger of the two


def test_adaptive_pool_with_uneven_windows_is_flagged() -> None:
    text = "name: t\ninput: [1, 8, 8]\nlayers:\n  - {type: adaptiveavgpool, output: 6}\n"
    (note,) = receptive_fields(analyze(parse_text(text)))["pool1"].notes[:1]
    # PyTorch's windows for 8 → 6: [0,2) [1,3) [2,4) [4,6) [5,7) [6,8): two wide, steps of 1 and 2
    assert "adaptive pool 8 → 6: windows of 2–2 pixels at varying steps" in note
    assert "jump the average 4/3" in note


# ------------------------------------------------------------------ against PyTorch's gradients

@st.composite
def random_chain(draw: st.DrawFn) -> str:
    size = draw(st.integers(12, 40))
    layers = []
    for _ in range(draw(st.integers(1, 4))):
        kernel = draw(st.integers(1, 4))
        if draw(st.booleans()):
            layers.append(f"{{type: conv, out: 1, kernel: {kernel}, stride: {draw(st.integers(1, 3))}, "
                          f"padding: {draw(st.integers(0, 2))}, dilation: {draw(st.integers(1, 2))}, bias: false}}")
        else:  # average, not max: every window element then reaches the gradient
            layers.append(f"{{type: avgpool, kernel: {kernel}, stride: {draw(st.integers(1, 3))}, "
                          f"padding: {draw(st.integers(0, kernel // 2))}, ceil: {str(draw(st.booleans())).lower()}}}")
    body = "\n".join(f"  - {layer}" for layer in layers)
    return f"name: chain\ninput: [1, {size}, {size}]\nlayers:\n{body}\n"


@pytest.mark.needs_torch
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(random_chain(), st.data())
def test_fields_match_the_pixels_gradients_reach(text: str, data: st.DataObject) -> None:
    import torch

    from convaudit.pytorch.builder import build_model

    report = analyze(parse_text(text))
    assume(report.halted is None)
    model = build_model(report)
    for parameter in model.parameters():
        torch.nn.init.ones_(parameter)  # positive weights: no cancellation hides a pixel
    x = torch.ones((1, *report.input), requires_grad=True)
    out = model(x)
    last = report.layers[-1]
    i = data.draw(st.integers(0, last.output_shape[1] - 1), label="row")
    j = data.draw(st.integers(0, last.output_shape[2] - 1), label="column")
    out[0, 0, i, j].backward()
    rows = x.grad[0, 0].abs().sum(dim=1).nonzero().flatten().tolist()
    cols = x.grad[0, 0].abs().sum(dim=0).nonzero().flatten().tolist()
    supports = Supports(report)
    if not rows:  # the unit reads only padding on some axis
        assert (supports.low(last.name, 0, i) > supports.high(last.name, 0, i)
                or supports.low(last.name, 1, j) > supports.high(last.name, 1, j)), text
        return
    # the exact support: first and last input pixel the unit depends on
    assert (supports.low(last.name, 0, i), supports.high(last.name, 0, i)) == (rows[0], rows[-1]), text
    assert (supports.low(last.name, 1, j), supports.high(last.name, 1, j)) == (cols[0], cols[-1]), text
    # where the field is not clipped by the border, the recurrence gives its size and centre
    field = receptive_fields(report)[last.name]
    rf, jump, start = field.axes[0].rf, field.axes[0].jump, field.axes[0].start
    half = (rf - 1) / 2
    centre = start + i * jump
    if centre - half >= 0 and centre + half <= report.input[1] - 1 and len(rows) > 0:
        assert (rows[0], rows[-1]) == (centre - half, centre + half), text
