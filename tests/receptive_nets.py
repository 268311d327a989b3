"""Random 1-D, 2-D and 3-D networks with every resampling layer, and a brute-force walk of their fields.

`resampling_network` draws a spec layer by layer, keeping a layer only if convaudit's shape analysis accepts it
(the shapes themselves are checked against PyTorch elsewhere; here they only keep the draw valid). `FreeWalk`
follows every tap of every output back to the network input with the borders ignored, written out from each
layer's definition: the oracle of the receptive-field recurrence.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

from hypothesis import assume
from hypothesis import strategies as st

from convaudit.core.analysis import Report, analyze
from convaudit.core.fields import per_axis
from convaudit.core.model import INPUT
from convaudit.spec.parser import parse_text

SIZES = {1: (3, 24), 2: (2, 9), 3: (2, 5)}
LINEAR = {1: "linear", 2: "bilinear", 3: "trilinear"}
SCALES = ["0.5", "1.5", "2", "3", "0.75", "2.5", "1.3"]


def listed(values: list[int]) -> str:
    return f"[{', '.join(map(str, values))}]"


KINDS = ("conv", "avgpool", "convtranspose", "upsample", "pad", "crop", "sigmoid", "shuffle", "unshuffle", "merge")
PAD_MODES = ("zeros", "reflect", "replicate", "circular")


def _layer(draw: st.DrawFn, rank: int, shape: tuple[int, ...], names: list[str], kinds: tuple[str, ...],
           modes: tuple[str, ...] | None) -> str:
    """One candidate layer reading the last layer (its shape `shape`): one of `kinds` (pixel shuffles on 2-D maps
    only), any hyper-parameters; `modes` restricts up-sampling's and padding's modes."""
    kind = draw(st.sampled_from([k for k in kinds if rank == 2 or k not in ("shuffle", "unshuffle")]))
    spatial = shape[1:]

    def per(values: st.SearchStrategy[int]) -> str:
        return listed([draw(values) for _ in range(rank)])

    if kind == "conv":
        return (f"type: conv, out: {draw(st.sampled_from([1, 4]))}, kernel: {per(st.integers(1, 3))}, "
                f"stride: {per(st.integers(1, 3))}, padding: {per(st.integers(0, 2))}, "
                f"dilation: {per(st.integers(1, 2))}")
    if kind == "avgpool":  # average, not max: every window element reaches the gradient
        # (PyTorch's 3-D average pooling refuses an input smaller than its kernel, padding or not)
        kernel = draw(st.integers(1, 3 if rank < 3 else max(1, min(3, *spatial))))
        return (f"type: avgpool, kernel: {kernel}, stride: {draw(st.integers(1, 3))}, "
                f"padding: {draw(st.integers(0, kernel // 2))}, ceil: {str(draw(st.booleans())).lower()}")
    if kind == "convtranspose":
        stride = [draw(st.integers(1, 3)) for _ in range(rank)]
        dilation = [draw(st.integers(1, 2)) for _ in range(rank)]
        extra = [draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation, strict=True)]
        return (f"type: convtranspose, out: {draw(st.sampled_from([1, 4]))}, kernel: {per(st.integers(1, 3))}, "
                f"stride: {listed(stride)}, padding: {per(st.integers(0, 2))}, output_padding: {listed(extra)}, "
                f"dilation: {listed(dilation)}")
    if kind == "upsample":
        allowed = ["nearest", "nearest-exact", LINEAR[rank]] + (["bicubic"] if rank == 2 else [])
        mode = draw(st.sampled_from([m for m in allowed if modes is None or m in modes or
                                     (m == LINEAR[rank] and "linear" in modes)] or ["nearest"]))
        body = f"type: upsample, mode: {mode}"
        if mode not in ("nearest", "nearest-exact") and draw(st.booleans()):
            body += ", align_corners: true"
        if draw(st.booleans()):
            return body + f", size: {listed([draw(st.integers(1, 2 * n + 3)) for n in spatial])}"
        return body + f", scale: [{', '.join(draw(st.sampled_from(SCALES)) for _ in range(rank))}]"
    if kind == "pad":
        mode = draw(st.sampled_from([m for m in PAD_MODES if modes is None or m in modes] or ["zeros"]))
        return (f"type: pad, mode: {mode}, before: {per(st.integers(0, 2))}, after: {per(st.integers(0, 2))}")
    if kind == "crop":  # to the size of an earlier map no larger on any axis (or of a fresh smaller one)
        return f"type: crop, from: [{names[-1]}, {draw(st.sampled_from(names))}]"
    if kind == "shuffle":
        return "type: pixelshuffle, factor: 2"
    if kind == "unshuffle":
        return f"type: pixelunshuffle, factor: {draw(st.sampled_from([1, 2]))}"
    if kind == "merge":
        return f"type: {draw(st.sampled_from(['add', 'concat']))}, from: [{names[-1]}, {draw(st.sampled_from(names))}]"
    return "type: sigmoid"  # element-wise, and never a zero gradient (a relu could hide a dependence)


@st.composite
def resampling_network(draw: st.DrawFn, rank: int | None = None, kinds: tuple[str, ...] = KINDS,
                       modes: tuple[str, ...] | None = None, depth: int = 5) -> str:
    """A network of 1 to `depth` layers over [1, *spatial], of the given kinds (a conv may come first, to give
    pixel shuffle its channels); each layer reads the one before (merges and crops also an earlier one)."""
    rank = rank or draw(st.sampled_from([1, 2, 3]))
    low, high = SIZES[rank]
    spatial = [draw(st.integers(low, high)) for _ in range(rank)]
    head = f"name: net\ninput: [1, {', '.join(map(str, spatial))}]\n"
    names, lines = [INPUT], []
    shape: tuple[int, ...] = (1, *spatial)
    for i in range(draw(st.integers(1, depth))):
        for _ in range(4):  # a few tries for a layer the shapes allow
            body = _layer(draw, rank, shape, names, kinds if lines or "shuffle" not in kinds else ("conv",), modes)
            line = f"  - {{{body}, name: l{i}}}" if "from:" in body else \
                f"  - {{{body}, name: l{i}, from: {names[-1]}}}"
            report = analyze(parse_text(_text(head, names[1:] + [f"l{i}"], lines + [line])))
            if report.halted is None and math.prod(report.layers[-1].output_shape) <= 4096:
                lines.append(line)
                names.append(f"l{i}")
                shape = report.layers[-1].output_shape
                break
    assume(lines)
    return _text(head, names[1:], lines)


def _text(head: str, outputs: list[str], lines: list[str]) -> str:
    return head + f"outputs: [{', '.join(outputs)}]\nlayers:\n" + "\n".join(lines) + "\n"


class FreeWalk:
    """Every output's field with the borders ignored: its taps followed back with no clipping, positions past an
    input's ends standing for themselves, by brute force from each layer's definition (not convaudit's)."""

    def __init__(self, report: Report):
        self.layers = {layer.name: layer for layer in report.layers}
        self.rank = len(report.input) - 1
        self.edges = lru_cache(maxsize=None)(self._edges)

    def _edges(self, name: str, axis: int, p: int) -> tuple[int, int] | None:
        if name == INPUT:
            return p, p
        found = [self.edges(source, axis, i) for source, i in self.taps(name, axis, p)]
        found = [edge for edge in found if edge is not None]
        return (min(e[0] for e in found), max(e[1] for e in found)) if found else None

    def taps(self, name: str, axis: int, p: int) -> list[tuple[str, int]]:
        layer = self.layers[name]
        kind, params, source = layer.type, layer.spec.params, layer.spec.inputs[0]
        n, out = layer.input_shapes[0][1 + axis], layer.output_shape[1 + axis]
        if layer.windows:
            w = layer.windows[axis]
            return [(source, p * w.stride - w.padding + k * w.dilation) for k in range(w.kernel)]
        if kind == "convtranspose":  # input i feeds outputs i·S − P + k·D
            k_, s, pad, d = (per_axis(params[key], self.rank)[axis] for key in ("kernel", "stride", "padding",
                                                                               "dilation"))
            return [(source, (p + pad - k * d) // s) for k in range(k_) if (p + pad - k * d) % s == 0]
        if kind == "upsample":
            copy = layer.input_shapes[0][1:] == layer.output_shape[1:]  # bicubic copies only when no axis changes
            return [(source, i) for i in upsampled(p, n, out, params, axis, self.rank, copy)]
        if kind == "pixelshuffle":
            return [(source, p // params["factor"])]
        if kind == "pixelunshuffle":
            r = params["factor"]
            return [(source, p * r + k) for k in range(r)]
        if kind == "pad":
            return [(source, p - per_axis(params["before"], self.rank)[axis])]
        if kind == "crop":
            return [(source, p + (n - out) // 2)]
        if kind in ("add", "concat"):
            return [(each, p) for each in layer.spec.inputs]
        return [(source, p)]  # element-wise


def upsampled(p: int, n: int, out: int, params: dict, axis: int, rank: int, copy: bool) -> list[int]:
    """F.interpolate's taps in exact arithmetic, from its documented source index (borders ignored): the
    source step is (n − 1)/(out − 1) with align_corners, else 1/scale_factor (as PyTorch passes it) or n/out."""
    mode, align = params["mode"], params["align_corners"]
    scale = None if params.get("scale") is None else per_axis(params["scale"], rank)[axis]
    if align:
        step = Fraction(n - 1, out - 1) if out > 1 else Fraction(0)
    elif mode in ("nearest",) and out in (n, 2 * n):
        step = Fraction(n, out)  # PyTorch copies, or halves the index, whatever the factor
    else:
        step = 1 / scale if scale is not None else Fraction(n, out)
    if mode == "nearest":
        return [math.floor(p * step)]
    if mode == "nearest-exact":
        return [math.floor((p + Fraction(1, 2)) * step)]
    if (mode != "bicubic" and out == n) or (mode == "bicubic" and copy) or step == 1:
        return [p]
    x = p * step if align else (p + Fraction(1, 2)) * step - Fraction(1, 2)
    first = math.floor(x)
    if x == first:
        return [first]
    return [first, first + 1] if mode != "bicubic" else [first - 1, first, first + 1, first + 2]
