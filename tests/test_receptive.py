"""Receptive fields: the recurrence by hand, and against the input pixels PyTorch's gradients reach."""

from __future__ import annotations

import itertools
from fractions import Fraction
from functools import lru_cache

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from convaudit.core.analysis import LayerResult, Report, analyze
from convaudit.core.layers import adaptive_windows
from convaudit.core.model import INPUT
from convaudit.core.receptive import Supports, adaptive_lengths_and_steps, receptive_fields
from convaudit.spec.library import load
from convaudit.spec.parser import parse_text

GLOBAL = ("globalavgpool", "flatten", "linear", "rbf")  # the oracle's own list: one window over a whole map


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


# ------------------------------------------------------------------ the oracle: every output pixel walked back

class PixelWalk:
    """The support of each output unit by brute force: every tap of every window, clipped to the input,
    followed back to the network's input (recursively, memoised). The arithmetic in receptive.Supports must
    agree with it exactly, sentinels included: N when a unit reads only padding, −1 for its last pixel."""

    def __init__(self, report: Report):
        self.layers = {layer.name: layer for layer in report.layers}
        self.network = report.input[1:]
        self.low = lru_cache(maxsize=None)(self._low)
        self.high = lru_cache(maxsize=None)(self._high)

    def size(self, name: str, axis: int) -> int:
        if name == INPUT:
            return self.network[axis]
        shape = self.layers[name].output_shape
        return shape[1 + axis] if len(shape) == 3 else 1

    def _taps(self, layer: LayerResult, axis: int, index: int) -> list[tuple[str, range | list[int]]]:
        taps: list[tuple[str, range | list[int]]] = []
        for source, shape in zip(layer.spec.inputs, layer.input_shapes, strict=True):
            size = self.size(source, axis)
            if layer.windows:
                w = layer.windows[axis]
                first = index * w.stride - w.padding
                taps.append((source, [t for t in range(first, first + w.effective_kernel, w.dilation)
                                      if 0 <= t < size]))
            elif layer.type == "adaptiveavgpool":
                start, end = adaptive_windows(size, layer.output_shape[1 + axis])[index]
                taps.append((source, range(start, end)))
            elif (layer.type in GLOBAL and len(shape) == 3 and layer.spec.params.get("flatten", True)) \
                    or len(layer.output_shape) == 1:
                taps.append((source, range(size)))
            elif axis == 1 and (layer.type == "linear" or layer.spec.params.get("over") == "last"):
                taps.append((source, range(size)))  # mixes the last dimension of [C, H, W]: W
            elif size == 1 and self.size(layer.name, axis) > 1:
                taps.append((source, [0]))  # a broadcast side: the gate of a squeeze-excite mul
            else:
                taps.append((source, [index]))
        return taps

    def _low(self, name: str, axis: int, index: int) -> int:
        if name == INPUT:
            return index
        lows = [self.low(source, axis, t) for source, taps in self._taps(self.layers[name], axis, index)
                for t in taps]
        return min(lows, default=self.network[axis])

    def _high(self, name: str, axis: int, index: int) -> int:
        if name == INPUT:
            return index
        highs = [self.high(source, axis, t) for source, taps in self._taps(self.layers[name], axis, index)
                 for t in taps]
        return max(highs, default=-1)

    def uncovered(self, layer: LayerResult) -> tuple[int, int]:
        """What no output reads: before the smallest first pixel and after the largest last pixel of any output."""
        result = []
        for axis in (0, 1):
            outputs = range(self.size(layer.name, axis))
            first = min(self.low(layer.name, axis, i) for i in outputs)
            last = max(self.high(layer.name, axis, i) for i in outputs)
            result.append(min(first + (self.network[axis] - 1 - last), self.network[axis]))
        if any(unseen == n for unseen, n in zip(result, self.network, strict=True)):
            return self.network  # nothing read along one axis: an element reads its rows × its columns, so nothing
        return result[0], result[1]


def window_layer(draw: st.DrawFn, big: bool) -> str:
    """A conv or pool with the awkward cases: dilation (gaps between taps), stride above the kernel (gaps
    between windows), padding above the kernel (outputs that read only padding), ceil rounding, and H ≠ W."""
    kernel = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 5 if big else 3))
    kind = draw(st.sampled_from(["conv", "conv", "maxpool", "avgpool"]))
    if kind == "conv":
        padding = draw(st.integers(0, 6 if big else 2))
        dilation = draw(st.integers(1, 3))
        if draw(st.booleans()):  # rectangular: each axis its own
            kh, kw = kernel, draw(st.integers(1, 4))
            return (f"{{type: conv, out: 1, kernel: [{kh}, {kw}], stride: [{stride}, {draw(st.integers(1, 3))}], "
                    f"padding: [{padding}, {draw(st.integers(0, 3))}], dilation: [{dilation}, 1]}}")
        return f"{{type: conv, out: 1, kernel: {kernel}, stride: {stride}, padding: {padding}, dilation: {dilation}}}"
    padding = draw(st.integers(0, kernel // 2))
    ceil = str(draw(st.booleans())).lower()
    return f"{{type: {kind}, kernel: {kernel}, stride: {stride}, padding: {padding}, ceil: {ceil}}}"


@st.composite
def random_network(draw: st.DrawFn) -> str:
    """Chains, and graphs where branches of different windows meet in concat or add, with adaptive and
    global layers; layers may read any earlier layer (shapes that do not match halt the analysis)."""
    height, width = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    names: list[str] = ["input"]
    lines = []
    for i in range(draw(st.integers(1, 7))):
        name = f"l{i}"
        choice = draw(st.sampled_from(["window"] * 5 + ["relu", "adaptive", "merge", "global", "gate", "last"]))
        source = draw(st.sampled_from(names[-3:]))
        if choice == "gate":  # squeeze-excite: the map times its own global average, broadcast
            lines.append(f"  - {{type: globalavgpool, name: {name}g, from: {source}}}")
            lines.append(f"  - {{type: mul, name: {name}, from: [{source}, {name}g]}}")
            names.append(name)
            continue
        if choice == "last":  # along the last dimension of [C, H, W]: W
            body = draw(st.sampled_from(["type: layernorm, over: last",
                                         f"type: linear, flatten: false, out: {draw(st.integers(1, 5))}"]))
        elif choice == "window":
            body = window_layer(draw, big=draw(st.booleans()))[1:-1]
        elif choice == "relu":
            body = "type: relu"
        elif choice == "adaptive":
            body = f"type: adaptiveavgpool, output: [{draw(st.integers(1, 9))}, {draw(st.integers(1, 9))}]"
        elif choice == "global":
            body = draw(st.sampled_from(["type: globalavgpool", "type: flatten", "type: linear, out: 3"]))
        else:
            others = draw(st.lists(st.sampled_from(names), min_size=1, max_size=2))
            kind = draw(st.sampled_from(["concat", "add"]))
            lines.append(f"  - {{type: {kind}, name: {name}, from: [{', '.join([source] + others)}]}}")
            names.append(name)
            continue
        lines.append(f"  - {{{body}, name: {name}, from: {source}}}")
        names.append(name)
    return f"name: net\ninput: [1, {height}, {width}]\noutputs: [{', '.join(names[1:])}]\nlayers:\n" + \
        "\n".join(lines) + "\n"


@settings(max_examples=300, deadline=None)
@given(random_network(), st.data())
def test_supports_agree_with_the_pixel_walk(text: str, data: st.DataObject) -> None:
    report = analyze(parse_text(text))
    supports, walk = Supports(report), PixelWalk(report)
    for layer in report.layers:
        assert supports.uncovered(layer) == walk.uncovered(layer), (text, layer.name)
    for layer in report.layers[-3:]:  # any output index, not only the first and the last
        for axis in (0, 1):
            index = data.draw(st.integers(0, walk.size(layer.name, axis) - 1), label="index")
            assert supports.low(layer.name, axis, index) == walk.low(layer.name, axis, index), (text, layer.name)
            assert supports.high(layer.name, axis, index) == walk.high(layer.name, axis, index), (text, layer.name)


def test_supports_of_a_long_chain_with_gaps_and_empty_outputs() -> None:
    # a stride-3 kernel-1 conv padded by 4 makes outputs that read only padding; a deep chain of them
    # must not recurse, and must agree with the walk on a chain short enough for the walk
    layers = "\n".join("  - {type: conv, out: 1, kernel: 2, stride: 3, padding: 4}" if i % 7 == 3 else
                       "  - {type: conv, out: 1, kernel: 3, padding: 1, dilation: 2}" if i % 11 == 5 else
                       "  - {type: conv, out: 1, kernel: 3, padding: 1}" for i in range(120))
    report = analyze(parse_text(f"name: t\ninput: [1, 37, 29]\nlayers:\n{layers}\n"))
    supports, walk = Supports(report), PixelWalk(report)
    assert [supports.uncovered(layer) for layer in report.layers] == [walk.uncovered(layer) for layer in report.layers]


def test_adaptive_lengths_and_steps_match_the_windows() -> None:
    for size in range(1, 40):
        for out in range(1, 45):
            windows = adaptive_windows(size, out)
            lengths = {end - start for start, end in windows}
            steps = {b[0] - a[0] for a, b in zip(windows, windows[1:], strict=False)}
            assert adaptive_lengths_and_steps(size, out) == (lengths, steps), (size, out)


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
    supports = PixelWalk(report)
    arithmetic = Supports(report)
    for axis, index in ((0, i), (1, j)):
        assert arithmetic.low(last.name, axis, index) == supports.low(last.name, axis, index), text
        assert arithmetic.high(last.name, axis, index) == supports.high(last.name, axis, index), text
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


# ------------------------------------------------------------------ token and permuted networks, against PyTorch

VIT_LIKE = """\
name: vit_like
input: [1, 16, 16]
outputs: [first, patch5, head]
layers:
  - {type: conv, name: patches, out: 4, kernel: 4, stride: 4}
  - {type: reshape, name: reshape, shape: [4, 16]}
  - {type: permute, name: tokens, order: [1, 0]}
  - {type: classtoken, name: cls}
  - {type: posembedding, name: pos}
  - {type: layernorm, name: ln}
  - {type: linear, name: mlp, out: 4, flatten: false}
  - {type: attention, name: attn, heads: 2}
  - {type: add, name: residual, from: [attn, mlp]}
  - {type: select, name: first, from: mlp}
  - {type: select, name: patch5, index: 5, from: mlp}
  - {type: select, name: head, from: residual}
"""

CONVNEXT_LIKE = """\
name: convnext_like
input: [1, 12, 10]
outputs: [ln_w, excite]
layers:
  - {type: conv, name: stem, out: 2, kernel: 2, stride: 2}
  - {type: conv, name: dw, out: 2, kernel: 3, padding: 1, groups: 2}
  - {type: permute, name: hwc, order: [1, 2, 0]}
  - {type: layernorm, name: ln}
  - {type: linear, name: up, out: 4, flatten: false}
  - {type: gelu, name: act}
  - {type: linear, name: down, out: 2, flatten: false}
  - {type: permute, name: chw, order: [2, 0, 1]}
  - {type: scale, name: gamma}
  - {type: add, name: residual, from: [gamma, dw]}
  - {type: layernorm, name: ln_w, over: last}
  - {type: globalavgpool, name: squeeze, from: residual}
  - {type: sigmoid, name: gate}
  - {type: mul, name: excite, from: [residual, gate]}
"""


def _position(shape: tuple[int, ...], name: str, element: tuple[int, ...]) -> tuple[int, int] | None:
    """The (row, column) on the grid that output element sits at, written out per layer of the two specs
    above; None for elements with no position (vectors, class tokens)."""
    if name in ("patches", "stem", "dw", "chw", "gamma", "residual", "ln_w", "squeeze", "gate", "excite") \
            and len(shape) == 3:
        return element[1], element[2]  # [C, H, W]
    if name in ("hwc", "ln", "up", "act", "down") and len(shape) == 3:
        return element[0], element[1]  # [H, W, C]
    if name == "reshape":
        return divmod(element[1], 4)  # [D, N]: token n is row n // 4, column n % 4
    if name == "tokens":
        return divmod(element[0], 4)
    if len(shape) == 2 and element[0] > 0:  # [1 + N, D] after the class token
        return divmod(element[0] - 1, 4)
    return None


@pytest.mark.needs_torch
@pytest.mark.parametrize("text", [VIT_LIKE, CONVNEXT_LIKE], ids=["vit_like", "convnext_like"])
def test_token_and_permuted_supports_match_the_jacobian(text: str) -> None:
    """Every output element's dependence on every input pixel, from PyTorch's Jacobian at a random point
    (random weights: a dependence vanishes only by structure), grouped by grid position."""
    import torch

    from convaudit.pytorch.builder import build_model

    report = analyze(parse_text(text))
    assert report.halted is None
    torch.manual_seed(0)
    model = build_model(report)
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter)
    model.outputs = tuple(layer.name for layer in report.layers)
    x = torch.randn((1, *report.input), dtype=torch.float64)
    jacobians = torch.autograd.functional.jacobian(lambda v: model.double()(v), x, vectorize=True)
    supports = Supports(report)
    fields = receptive_fields(report)
    height, width = report.input[1:]
    for layer, jacobian in zip(report.layers, jacobians, strict=True):
        reads = jacobian[0].abs().sum(dim=(-4, -3)) != 0  # [*output, H, W]: batch and channels folded
        shape = layer.output_shape
        by_position: dict[tuple[int, int] | None, torch.Tensor] = {}
        for element in itertools.product(*map(range, shape)):
            key = _position(shape, layer.name, element)
            by_position[key] = by_position.get(key, torch.zeros(height, width, dtype=torch.bool)) | reads[element]
        union = reads.reshape(-1, height, width).any(dim=0)
        rows, cols = union.any(dim=1).nonzero().flatten(), union.any(dim=0).nonzero().flatten()
        expected = (int(rows[0]) + height - 1 - int(rows[-1]), int(cols[0]) + width - 1 - int(cols[-1])) \
            if len(rows) else (height, width)
        assert fields[layer.name].uncovered == expected, layer.name
        for key, mask in by_position.items():
            if key is None:
                continue
            for axis, (index, line) in enumerate(zip(key, (mask.any(dim=1), mask.any(dim=0)), strict=True)):
                hit = line.nonzero().flatten().tolist()
                first, last = (hit[0], hit[-1]) if hit else (report.input[1 + axis], -1)
                assert (supports.low(layer.name, axis, index), supports.high(layer.name, axis, index)) == \
                    (first, last), (layer.name, key, axis)
        if layer.type in ("select", "flatten") or len(shape) == 1:
            mask = by_position[None]
            for axis, line in enumerate((mask.any(dim=1), mask.any(dim=0))):
                hit = line.nonzero().flatten().tolist()
                first, last = (hit[0], hit[-1]) if hit else (report.input[1 + axis], -1)
                assert (supports.low(layer.name, axis, 0), supports.high(layer.name, axis, 0)) == \
                    (first, last), (layer.name, axis)


def test_vit_like_fields_by_hand() -> None:
    fields = receptive_fields(analyze(parse_text(VIT_LIKE)))
    # 4×4 patches at stride 4: field 4, first centre 1.5; the tokens keep them
    assert fields["tokens"].rf == (4, 4) and fields["mlp"].start == (Fraction(3, 2), Fraction(3, 2))
    # attention reads the 4×4 grid: 4 + 3·4 = 16, the whole input, centred at 7.5
    assert fields["attn"].rf == (16, 16) and fields["attn"].start == (Fraction(15, 2), Fraction(15, 2))
    assert fields["residual"].rf == (16, 16) and not fields["residual"].notes  # no misaligned-grid warning
    assert fields["head"].rf == (16, 16)  # the class token after attention
    # token 5 is the patch at row (5 − 1) // 4 = 1, column 0: centre 1.5 + 4 = 5.5 down, 1.5 across;
    # it reads rows 4–7 and columns 0–3, so 4 + 8 = 12 pixels unseen on each axis
    assert fields["patch5"].rf == (4, 4) and fields["patch5"].start == (Fraction(11, 2), Fraction(3, 2))
    assert fields["patch5"].uncovered == (12, 12)
    assert all(field.uncovered == (0, 0) for name, field in fields.items() if name not in ("first", "patch5"))
    assert any("reads no pixel" in note for note in fields["first"].notes)


def test_convnext_like_fields_by_hand() -> None:
    fields = receptive_fields(analyze(parse_text(CONVNEXT_LIKE)))
    # stem 2 (jump 2), depthwise 3×3: 2 + 2·2 = 6; the permuted pointwise layers keep it
    assert fields["down"].rf == (6, 6) and fields["residual"].rf == (6, 6)
    # layernorm over the last dimension of [C, H, W] reads all of W (5 positions): 6 + 4·2 = 14 across
    assert fields["ln_w"].rf == (6, 14)
    # the gate pools the 6×5 map: 6 + 5·2 by 6 + 4·2, and reaches every position of the product
    assert fields["excite"].rf == (16, 14) and not fields["excite"].notes


def test_a_reshape_that_scrambles_positions_makes_no_unseen_claim() -> None:
    text = """\
name: t
input: [2, 8, 6]
outputs: [mix, flat]
layers:
  - {type: conv, out: 3, kernel: 3, stride: 2}
  - {type: reshape, name: scramble, shape: [2, 9]}
  - {type: linear, name: mix, out: 5, flatten: false}
  - {type: flatten, name: flat, from: scramble}
"""
    fields = receptive_fields(analyze(parse_text(text)))
    # conv: ⌊(8 − 3)/2⌋ + 1 = 3 rows reading rows 0–6: row 7 unseen; ⌊(6 − 3)/2⌋ + 1 = 2 columns reading 0–4:
    # column 5 unseen. [3, 3, 2] → [2, 9] keeps neither H nor W as a dimension, nor joins them.
    assert fields["scramble"].uncovered == (1, 1) and "moves H and W" in fields["scramble"].notes[0]
    assert fields["mix"].uncovered is None and "not followed" in fields["mix"].notes[0]
    assert fields["flat"].uncovered == (1, 1)  # every element read: what a reshape moves, it keeps


def test_sources_read_no_pixel_and_element_wise_operators_merge_their_inputs() -> None:
    text = """\
name: t
input: [1, 8, 8]
layers:
  - {type: conv, name: a, out: 2, kernel: 3}
  - {type: conv, name: b, out: 2, kernel: 5, padding: 1, from: input}
  - {type: parameter, name: grid, shape: [2, 6, 6], numel: 0, trainable: false, batch: 0}
  - {type: pointwise, name: scaled, op: mul, from: [a, grid]}
  - {type: pointwise, name: difference, op: sub, from: [scaled, b]}
"""
    fields = receptive_fields(analyze(parse_text(text)))
    # a constant (a source) reads no pixel: no field, and every one of the 8 pixels unseen on each axis
    assert fields["grid"].rf == (0, 0) and fields["grid"].uncovered == (8, 8)
    # multiplied by it, a's 3×3 windows keep their field; a 5×5 window padded by 1 on one grid with a's outputs
    # (both start at pixel 1): a − b reads, at each position, the union of the two, 5 wide
    assert fields["scaled"].rf == (3, 3) and fields["scaled"].uncovered == (0, 0)
    assert fields["difference"].rf == (5, 5) and fields["difference"].start == (1, 1)
