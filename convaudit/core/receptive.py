"""Receptive fields: for each layer and axis, the field size, the jump and the first field's centre.

Coordinates are network-input pixel indices, pixel i centred at i. Through a
window layer with dilated kernel K' = D·(K − 1) + 1, stride S and padding P:

    jump_out  = jump_in · S                             pixels between neighbouring outputs
    rf_out    = rf_in + (K' − 1) · jump_in              field size
    start_out = start_in + ((K' − 1)/2 − P) · jump_in   centre of the first output's field

(Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural
Networks", Distill 2019). Element-wise layers pass the field through; a fully
connected layer on a map, flatten and global pooling see the whole map (a window
as large as their input). Merges take the largest field of their inputs, and
inputs on different grids (jump or start) are flagged. Adaptive pooling whose
windows vary is flagged, with the largest window and the average step.

The recurrence ignores borders. The *support* of an output unit is the input
range its value really depends on: its windows clipped to the input, followed
back layer by layer. Floor rounding drops the last windows, so some input pixels
reach no output at all; `uncovered` counts them from the supports of the first
and last outputs, and a pixel lost at one layer stays lost downstream.

Tokens and permuted maps. A `Layout` records, per tensor, which sample dimensions
hold H and W (they follow a permute's order), or that a dimension lists tokens
over an H × W grid (a reshape that joins H and W in order). Positions keep
their fields through anything that acts on one position (activations, scale,
position embeddings, a layer norm or `flatten: false` linear over features);
an operation that reads every entry along a spatial dimension (attention over
tokens, a layer norm or linear along W, flatten, global pooling, a broadcast
[C, 1, 1] gate) is one window as large as the axis, once: after it every
position reads the same pixels, and reading them all again adds nothing. A
reshape that keeps neither H and W nor a token grid keeps Unseen px (it reads
nothing new) but not per-position fields, and what mixes its elements after it
is not followed (Unseen px None, with a note) rather than guessed.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cached_property
from typing import NamedTuple

from convaudit.core.analysis import LayerResult, Report
from convaudit.core.layers import REGISTRY
from convaudit.core.layers.base import trait_of
from convaudit.core.model import INPUT
from convaudit.core.windows import WindowAxis, merged_axes


@dataclass(frozen=True)
class AxisField:
    rf: Fraction
    jump: Fraction
    start: Fraction

    def window(self, kernel: int, stride: int, padding: int, dilation: int = 1) -> AxisField:
        span = dilation * (kernel - 1) + 1
        return AxisField(self.rf + (span - 1) * self.jump, self.jump * stride,
                         self.start + (Fraction(span - 1, 2) - padding) * self.jump)


@dataclass(frozen=True)
class LayerField:
    name: str
    axes: tuple[AxisField, AxisField]  # H, W
    uncovered: tuple[int, int] | None  # network-input pixels per axis no output depends on (None: not followed)
    notes: tuple[str, ...] = ()

    @property
    def rf(self) -> tuple[Fraction, Fraction]:
        return self.axes[0].rf, self.axes[1].rf

    @property
    def jump(self) -> tuple[Fraction, Fraction]:
        return self.axes[0].jump, self.axes[1].jump

    @property
    def start(self) -> tuple[Fraction, Fraction]:
        return self.axes[0].start, self.axes[1].start


IDENTITY = AxisField(Fraction(1), Fraction(1), Fraction(0))


# ------------------------------------------------------------------ where H and W live in each tensor

class Layout(NamedTuple):
    """Which sample dimensions of a tensor are spatial, so that fields follow permutes, reshapes and tokens.

    map:     `dims` are the dimensions holding H and W ([C, H, W]: (1, 2); after permute [1, 2, 0]: (0, 1));
             None for an axis every entry of the tensor shares (a vector, a mixed-away axis): its size is 1
    tokens:  dimension `token` lists `extra` leading tokens (class tokens; True: reads the whole input, False:
             reads nothing) and then an H × W grid, row by row
    lost:    a reshape moved H and W into other dimensions: its elements are those of a tensor of `sizes`, so
             what no element reads (Unseen px) is still exact, but per-position fields are not
    unknown: an operation mixed elements of a lost tensor in a way this model does not follow
    """

    kind: str
    sizes: tuple[int, int]  # per axis: the positions that have their own support
    dims: tuple[int | None, int | None] = (None, None)
    token: int = 0
    extra: tuple[bool, ...] = ()


class _AxisOp(NamedTuple):
    """How one input is read along one axis: window, adaptive, whole (every position), point (the same
    position), pick (position `index` alone) or empty (nothing: a class token before any attention)."""

    kind: str
    n: int  # the input's size on this axis
    window: WindowAxis | None = None
    index: int = 0


class _Step(NamedTuple):
    layout: Layout
    ops: tuple[tuple[_AxisOp, _AxisOp], ...]  # per input, per axis
    notes: tuple[str, ...] = ()




def layouts(report: Report) -> dict[str, _Step]:
    """For each layer, the layout of its output and how each input is read along H and along W."""
    steps = {INPUT: _Step(Layout("map", tuple(report.input[1:]), (1, 2)), ())}
    for layer in report.layers:
        sources = [steps[source].layout for source in layer.spec.inputs]
        steps[layer.name] = _step(layer, sources)
    return steps


def _same(layout: Layout) -> tuple[_AxisOp, _AxisOp]:
    return _AxisOp("point", layout.sizes[0]), _AxisOp("point", layout.sizes[1])


def _unknown(layer: LayerResult, sources: list[Layout], why: str) -> _Step:
    sizes = (1, 1)
    ops = tuple((_AxisOp("whole", s.sizes[0]), _AxisOp("whole", s.sizes[1])) for s in sources)
    notes = () if any(s.kind == "unknown" for s in sources) else \
        (f"{why}: receptive fields are not followed from here (RF, jump and start are the input's; no Unseen px)",)
    return _Step(Layout("unknown", sizes), ops, notes)


def _mixed(layout: Layout, shape_out: tuple[int, ...], mixed: set[int]) -> _Step:
    """An operation that keeps the rank and reads, along each dimension in `mixed`, every entry."""
    if layout.kind == "map":
        ops = tuple(_AxisOp("whole" if dim in mixed else "point", size)
                    for dim, size in zip(layout.dims, layout.sizes, strict=True))
        sizes = tuple(1 if dim is None else shape_out[dim] for dim in layout.dims)
        return _Step(layout._replace(sizes=sizes), (ops,))
    # tokens: mixing the token dimension reads every token
    if layout.token not in mixed:
        return _Step(layout, (_same(layout),))
    ops = (_AxisOp("whole", layout.sizes[0]), _AxisOp("whole", layout.sizes[1]))
    if shape_out[layout.token] == len(layout.extra) + layout.sizes[0] * layout.sizes[1]:
        return _Step(layout._replace(extra=tuple(True for _ in layout.extra)), (ops,))
    return _Step(Layout("map", (1, 1)), (ops,))  # the token dimension now holds features, all alike


def _spatial_dims(layout: Layout) -> set[int]:
    if layout.kind == "tokens":
        return {layout.token}
    return {dim for dim in layout.dims if dim is not None}


def _step(layer: LayerResult, sources: list[Layout]) -> _Step:
    rule = trait_of(REGISTRY[layer.type], "receptive", layer.spec.params)
    if not sources:  # a source (a learned tensor used directly) reads no pixel
        return _Step(Layout("map", (1, 1)), ())
    shape_in, shape_out = layer.input_shapes[0], layer.output_shape
    layout = sources[0]
    if any(source.kind == "unknown" for source in sources):
        return _unknown(layer, sources, "")
    if len(sources) > 1:
        return _merge(layer, sources)
    if rule == "reshape":
        return _reshape(layout, shape_in, shape_out)
    if rule == "permute":
        order = layer.spec.params["order"]
        if layout.kind == "map":
            dims = tuple(None if dim is None else order.index(dim) for dim in layout.dims)
            return _Step(layout._replace(dims=dims), (_same(layout),))
        if layout.kind == "tokens":
            return _Step(layout._replace(token=order.index(layout.token)), (_same(layout),))
        return _Step(layout, (_same(layout),))
    if layout.kind == "lost":
        if rule == "flatten":
            ops = (_AxisOp("whole", layout.sizes[0]), _AxisOp("whole", layout.sizes[1]))
            return _Step(Layout("map", (1, 1)), (ops,))
        if rule == "pointwise" and shape_out == shape_in:
            return _Step(layout, (_same(layout),))  # element-wise
        return _unknown(layer, sources, f"{layer.type} mixes elements of a tensor whose H and W a reshape moved")
    spatial = _spatial_dims(layout)
    if rule in ("window", "adaptive", "global"):
        if layout.kind != "map" or layout.dims != (1, 2):
            return _unknown(layer, sources, f"{layer.type} slides over dimensions 1 and 2, which are not H and W here")
        if rule == "window":
            ops = tuple(_AxisOp("window", n, w) for n, w in zip(layout.sizes, layer.windows, strict=True))
        else:  # adaptive windows, or one window over the whole map
            read = "adaptive" if rule == "adaptive" else "whole"
            ops = (_AxisOp(read, layout.sizes[0]), _AxisOp(read, layout.sizes[1]))
        return _Step(layout._replace(sizes=(shape_out[1], shape_out[2])), (ops,))
    if rule == "flatten":  # every output reads every element
        ops = tuple(_AxisOp("point" if layout.kind == "map" and dim is None else "whole", size)
                    for dim, size in zip(layout.dims, layout.sizes, strict=True))
        return _Step(Layout("map", (1, 1)), (ops,))
    if rule == "mix-last":  # reads every entry along the last dimension, features or not
        return _mixed(layout, shape_out, {len(shape_in) - 1})
    if rule == "mix-first":
        return _mixed(layout, shape_out, {0})
    if rule == "mix-all":  # every output reads every token and every feature
        return _mixed(layout, shape_out, {0, 1})
    if rule == "along-first" and 0 in spatial:
        return _unknown(layer, sources, f"{layer.type} acts along dimension 0, which holds positions here")
    if rule == "prepend":
        if layout.kind == "tokens" and layout.token == 0:
            return _Step(layout._replace(extra=(False,) + layout.extra), (_same(layout),),
                         ("class token prepended: positions, jump and RF start refer to the patch tokens",))
        if 0 in spatial:
            return _unknown(layer, sources, f"{layer.type} prepends along dimension 0, which holds positions here")
        return _Step(layout, (_same(layout),))
    if rule == "select":
        return _select(layer, layout)
    if rule in ("pointwise", "along-first"):  # along-first: dimension 0 holds channels here
        return _Step(layout._replace(sizes=layout.sizes), (_same(layout),))
    return _unknown(layer, sources, f"receptive fields through {layer.type} are not followed")


def _select(layer: LayerResult, layout: Layout) -> _Step:
    index = layer.spec.params["index"]
    shift = {None: None} | {dim: dim - 1 for dim in range(1, 8)}
    if layout.kind == "tokens":
        if layout.token > 0:
            return _Step(layout._replace(token=layout.token - 1), (_same(layout),))
        if index < len(layout.extra):  # a class token: everything after attention, nothing before
            read = "whole" if layout.extra[index] else "empty"
            ops = (_AxisOp(read, layout.sizes[0]), _AxisOp(read, layout.sizes[1]))
            notes = () if layout.extra[index] else ("a class token no attention has reached reads no pixel",)
            return _Step(Layout("map", (1, 1)), (ops,), notes)
        row, column = divmod(index - len(layout.extra), layout.sizes[1])
        ops = (_AxisOp("pick", layout.sizes[0], index=row), _AxisOp("pick", layout.sizes[1], index=column))
        return _Step(Layout("map", (1, 1)), (ops,))
    ops = tuple(_AxisOp("pick", size, index=index) if dim == 0 else _AxisOp("point", size)
                for dim, size in zip(layout.dims, layout.sizes, strict=True))
    dims = tuple(None if dim == 0 else shift[dim] for dim in layout.dims)
    sizes = tuple(1 if dim == 0 else size for dim, size in zip(layout.dims, layout.sizes, strict=True))
    return _Step(layout._replace(dims=dims, sizes=sizes), (ops,))


def _merge(layer: LayerResult, sources: list[Layout]) -> _Step:
    """add, concat, mul: position by position, a [C, 1, 1] side of a mul broadcast over the whole map."""
    widest = max(sources, key=lambda s: s.sizes[0] * s.sizes[1])
    if any(s.kind != widest.kind or s.dims != widest.dims or s.token != widest.token for s in sources):
        return _unknown(layer, sources, f"{layer.type} of inputs whose H and W lie in different dimensions")
    if layer.type == "concat" and 0 in _spatial_dims(widest):
        return _unknown(layer, sources, "concat along dimension 0, which holds positions here")
    ops = []
    for source in sources:
        per_axis = []
        for size, out in zip(source.sizes, widest.sizes, strict=True):
            if size == out:
                per_axis.append(_AxisOp("point", size))
            elif size == 1:  # broadcast: every position reads the one entry
                per_axis.append(_AxisOp("whole", size))
            else:
                return _unknown(layer, sources, f"{layer.type} of inputs with different positions")
        ops.append(tuple(per_axis))
    extra = tuple(any(whole) for whole in zip(*(s.extra for s in sources), strict=True)) if widest.extra else ()
    if widest.kind == "tokens" and any(len(s.extra) != len(widest.extra) for s in sources):
        return _unknown(layer, sources, f"{layer.type} of token lists with different class tokens")
    return _Step(widest._replace(extra=extra), tuple(ops))


def _keeps(shape: tuple[int, ...], target: tuple[int, ...], dim: int) -> int | None:
    """The target dimension that holds source dimension `dim` index for index (row-major order), if any."""
    inner = math.prod(shape[dim + 1:])
    for k, size in enumerate(target):
        if size == shape[dim] and math.prod(target[k + 1:]) == inner:
            return k
    return None


def _reshape(layout: Layout, shape: tuple[int, ...], target: tuple[int, ...]) -> _Step:
    same = (_same(layout),)
    lost = _Step(Layout("lost", layout.sizes), same,
                 (f"reshape {list(shape)} → {list(target)} moves H and W into other dimensions: RF, jump and "
                  f"start from here are those of the elements it moves (Unseen px stays exact)",))
    if layout.kind == "lost":
        return _Step(layout, same)
    if layout.kind == "map":
        if layout.dims == (None, None):  # every element alike: a map again if the target is one
            whole = (_AxisOp("whole", 1), _AxisOp("whole", 1))
            if len(target) == 3:
                return _Step(Layout("map", (target[1], target[2]), (1, 2)), (whole,))
            return _Step(layout, (whole,))
        kept = [None if dim is None else _keeps(shape, target, dim) for dim in layout.dims]
        if all(k is not None for k, dim in zip(kept, layout.dims, strict=True) if dim is not None):
            return _Step(layout._replace(dims=tuple(kept)), same)
        h, w = layout.dims
        if h is not None and w == h + 1:  # H and W joined, in order: tokens over the grid
            inner = math.prod(shape[w + 1:])
            for k, size in enumerate(target):
                if size == shape[h] * shape[w] and math.prod(target[k + 1:]) == inner:
                    return _Step(Layout("tokens", layout.sizes, token=k), same)
        return lost
    k = _keeps(shape, target, layout.token)
    if k is not None:
        return _Step(layout._replace(token=k), same)
    inner = math.prod(shape[layout.token + 1:])
    rows, columns = layout.sizes
    if not layout.extra:  # the grid split back into H and W
        for k in range(len(target) - 1):
            if (target[k], target[k + 1]) == (rows, columns) and math.prod(target[k + 2:]) == inner:
                return _Step(Layout("map", layout.sizes, (k, k + 1)), same)
    return lost


def receptive_fields(report: Report) -> dict[str, LayerField]:
    """The field of every analysed layer, in graph order."""
    steps = layouts(report)
    support = Supports(report, steps)
    fields: dict[str, tuple[AxisField, AxisField]] = {INPUT: (IDENTITY, IDENTITY)}
    uniform: dict[str, tuple[bool, bool]] = {INPUT: (False, False)}  # per axis: every position reads it all
    result: dict[str, LayerField] = {}
    for layer in report.layers:
        axes, notes, uniform[layer.name] = _layer_axes(layer, [(fields[s], uniform[s]) for s in layer.spec.inputs],
                                                       steps[layer.name])
        fields[layer.name] = axes
        result[layer.name] = LayerField(layer.name, axes, support.uncovered(layer), tuple(notes))
    return result


def _layer_axes(layer: LayerResult, inputs: list[tuple[tuple[AxisField, AxisField], tuple[bool, bool]]],
                step: _Step) -> tuple[tuple, list, tuple[bool, bool]]:
    """The layer's fields from its inputs' (and whether each axis is uniform: every position of the output
    reads the whole of what the tensor reads, after attention, a layer norm along the axis, a broadcast gate)."""
    notes: list[str] = []
    axes, uniform = inputs[0]
    if len(inputs) > 1:
        axes, uniform = max(inputs, key=lambda a: a[0][0].rf * a[0][1].rf)
        # a side broadcast over the map (a [C, 1, 1] gate), or one whose every position reads the whole input
        # (attention's output on a residual), has no grid of its own
        gridded = [(source, a) for source, (a, flags), ops in zip(layer.spec.inputs, inputs, step.ops, strict=True)
                   if not any(op.kind == "whole" for op in ops) and flags != (True, True)]
        grids = {(a[0].jump, a[1].jump, a[0].start, a[1].start) for _, a in gridded}
        if len(grids) > 1:
            described = ", ".join(f"'{source}' jump {show(a[0].jump)} start {show(a[0].start)}"
                                  for source, a in gridded)
            notes.append(f"merge of misaligned grids: {described}")
    notes += step.notes
    if step.layout.kind == "unknown":
        return axes, notes, uniform
    ops = step.ops[0] if len(inputs) == 1 else ()
    if layer.windows and ops[0].kind == "window":
        h, w = layer.windows
        first = axes[0].window(h.kernel, h.stride, h.padding, h.dilation)
        same = axes[0] == axes[1] and (h.kernel, h.stride, h.padding, h.dilation) == \
            (w.kernel, w.stride, w.padding, w.dilation)  # square: W is H over again
        axes = (first, first if same else axes[1].window(w.kernel, w.stride, w.padding, w.dilation))
        for w in merged_axes([w for w in layer.windows if not w.is_exact]):
            axis = w.axis
            if w.ceil:
                notes.append(f"{axis}: {w.formula()} rounded up to {w.out}: RF and jump are unchanged; the last "
                             f"window reaches past the input")
            else:
                notes.append(f"{axis}: {w.formula()} floored to {w.out}: RF and jump are unchanged, but the pixels "
                             f"only the dropped window would read go unseen (see Unseen px)")
    elif ops and ops[0].kind == "adaptive":
        axes, more = _adaptive(axes, layer.input_shapes[0][1:], layer.output_shape[1:])
        notes += more
    if ops and ops[0].kind in ("window", "adaptive") and any(uniform):
        # a window over positions that all read the same pixels reads those pixels: only the grid steps
        axes = tuple(replace(before, jump=after.jump) if flag else after
                     for before, after, flag in zip(inputs[0][0], axes, uniform, strict=True))
    elif ops and ops[0].kind not in ("window", "adaptive"):
        axes = tuple(_read(field, op, flag) for field, op, flag in zip(axes, ops, uniform, strict=True))
        uniform = tuple(flag or op.kind == "whole" for flag, op in zip(uniform, ops, strict=True))
    return axes, notes, uniform


def _read(field: AxisField, op: _AxisOp, uniform: bool) -> AxisField:
    if op.kind == "whole":  # one window over the whole input: flatten, linear, global pooling, attention
        return field if uniform else field.window(op.n, 1, 0)  # once whole, reading it all again adds nothing
    if op.kind == "pick":  # one position: its own field, centred where that position's is
        return replace(field, start=field.start + op.index * field.jump)
    return field


def _adaptive(axes: tuple[AxisField, ...], sizes: tuple[int, ...], outputs: tuple[int, ...]) -> tuple[tuple, list]:
    result, notes = [], []
    for field, size, out in zip(axes, sizes, outputs, strict=True):
        lengths, steps = adaptive_lengths_and_steps(size, out)
        if len(lengths) == 1 and len(steps) <= 1:  # a plain window: K = S = size / out
            result.append(field.window(min(lengths), min(steps) if steps else 1, 0))
            continue
        result.append(replace(field.window(max(lengths), 1, 0), jump=field.jump * Fraction(size, out)))
        notes.append(f"adaptive pool {size} → {out}: windows of {min(lengths)}–{max(lengths)} pixels at varying "
                     f"steps; rf uses the largest, jump the average {show(Fraction(size, out))}")
    return tuple(result), notes


def adaptive_lengths_and_steps(size: int, out: int) -> tuple[set[int], set[int]]:
    """The window lengths and the steps between window starts of PyTorch's adaptive pooling, without listing
    the windows: [⌊i·n/o⌋, ⌈(i+1)·n/o⌉) for i < o.

    With n = q·o + r: a start advances by q + (⌊(i+1)·r/o⌋ − ⌊i·r/o⌋), so by q always (r < o) and by q + 1
    somewhere iff (o − 1)·r ≥ o. A window is q + ⌈(i+1)·r/o⌉ − ⌊i·r/o⌋ long: q + 1 for i = 0 (when r > 0), and
    q + 2 iff a multiple k·o falls strictly between i·r and (i+1)·r, which happens iff r does not divide o.
    """
    q, r = divmod(size, out)
    steps = set() if out == 1 else {q} | ({q + 1} if (out - 1) * r >= out else set())
    lengths = {q} if r == 0 else {q + 1} | ({q + 2} if out % r else set())
    return lengths, steps


class Supports:
    """The first and last network-input pixel each output unit depends on, per axis, by exact arithmetic.

    The support of output `i` is the set of input pixels its value depends on: its window's taps clipped to
    the layer's input, followed back layer by layer. `low` is its first pixel (the input size N when it is
    empty: the unit reads only padding), `high` its last (−1 when empty). The last pixel is the first pixel
    of the mirrored network (x ↦ N − 1 − x), so one engine, `_Side`, computes both; see its notes.
    """

    def __init__(self, report: Report, steps: dict[str, _Step] | None = None):
        self.report = report
        self.network = report.input[1:]
        self.layers = {layer.name: layer for layer in report.layers}
        self.steps = steps if steps is not None else layouts(report)
        self._sides: dict[tuple[int, bool, bool], _Side] = {}

    def size(self, name: str, axis: int) -> int:
        """Positions along the axis: a map's H or W, a token grid's rows or columns, 1 for a vector."""
        return self.steps[name].layout.sizes[axis]

    def side(self, axis: int, mirrored: bool, envelope: bool = False) -> _Side:
        if axis == 1 and self.square:
            axis = 0  # W is H over again
        key = (axis, mirrored, envelope)
        if key not in self._sides:
            self._sides[key] = _Side(self, axis, mirrored, envelope)
        return self._sides[key]

    @cached_property
    def square(self) -> bool:
        """Whether every size and window is the same along H as along W, so one axis answers for both."""
        if self.network[0] != self.network[1]:
            return False
        for step in self.steps.values():
            if step.layout.sizes[0] != step.layout.sizes[1]:
                return False
            for h, w in step.ops:
                if h._replace(window=None) != w._replace(window=None) or \
                        (h.window is not None and replace(h.window, axis="W") != w.window):
                    return False
        return True

    def low(self, name: str, axis: int, index: int) -> int:
        """The first input pixel output `index` depends on (the input size if it reads only padding)."""
        return self.side(axis, False).value(name, index)

    def high(self, name: str, axis: int, index: int) -> int:
        """The last input pixel output `index` depends on (−1 if it reads only padding)."""
        mirrored = self.side(axis, True).value(name, self.size(name, axis) - 1 - index)
        return self.network[axis] - 1 - mirrored

    def uncovered(self, layer: LayerResult) -> tuple[int, int] | None:
        """Input pixels before the first output's support plus those after the last output's, per axis; None
        where the layer's elements are not followed (see Layout)."""
        if self.steps[layer.name].layout.kind == "unknown":
            return None
        result = []
        for axis in (0, 1):
            last = self.size(layer.name, axis) - 1
            before, after = self.low(layer.name, axis, 0), self.network[axis] - 1 - self.high(layer.name, axis, last)
            result.append(min(before + after, self.network[axis]))  # N each when nothing is read: all N unseen
        return result[0], result[1]


class _Rule(NamedTuple):
    """Which indices of one input an output index p reads, on one axis.

    window:   p·stride + offset + k·dilation for k < kernel, clipped to the input (offset = −padding)
    adaptive: [⌊p·n/out⌋, ⌈(p+1)·n/out⌉), PyTorch's adaptive windows, clipped
    whole:    every index of the input (flatten, linear, global pooling, vectors)
    point:    p + shift alone, not clipped (element-wise layers and merges; shift is 0 unmirrored)
    """

    kind: str
    source: str
    size: int  # the input's size on this axis
    stride: int = 1
    offset: int = 0
    dilation: int = 1
    kernel: int = 1
    out: int = 1  # adaptive: the number of windows

    def taps(self, p: int) -> tuple[int, int, int] | None:
        """(first, step, last) of the indices read, inside the input, or None if there are none."""
        if self.kind == "window":
            base = p * self.stride + self.offset
            first = max(0, -(base // self.dilation))  # the first k with base + k·D ≥ 0
            last = min(self.kernel - 1, (self.size - 1 - base) // self.dilation)
            return (base + first * self.dilation, self.dilation, base + last * self.dilation) if first <= last \
                else None
        if self.kind == "adaptive":
            start, end = max(0, p * self.size // self.out), min(self.size, -(-(p + 1) * self.size // self.out))
            return (start, 1, end - 1) if start < end else None
        return (0, 1, self.size - 1) if self.size > 0 else None  # whole


class _Mono(NamedTuple):
    """A layer whose first-pixel function f is non-decreasing over the outputs that read something.

    Those outputs are exactly [a, b] (a > b: none), and for p in [a, b]

        f(p) = max(F(alpha·p + beta), m),   F(x) = f_anchor(clamp(x, a_anchor, b_anchor))

    where the anchor is the input (f(x) = x) or a layer whose f is evaluated from its own inputs (uneven
    adaptive pooling, a merge where no input's f is everywhere the smallest). m = f(a) is the layer's smallest.
    """

    a: int
    b: int
    anchor: str
    alpha: int
    beta: int
    m: int


class _Side:
    """First pixels on one axis, plain or mirrored, computed layer by layer in one pass.

    Why a closed form exists. Take a window layer over an input whose f is non-decreasing on its non-empty
    outputs [a′, b′], with contiguous taps (dilation 1, or kernel 1). Output p reads [p·S + o, p·S + o + K′ − 1];
    it reads something iff that meets [a′, b′], and f is non-decreasing, so

        f(p) = f′(max(p·S + o, a′))

    which is again non-decreasing. Writing f′(q) = max(F(α′q + β′), m′) and using F(max(x, y)) = max(F(x), F(y))
    for non-decreasing F, with F(α′a′ + β′) ≤ f′(a′) = m′:

        f(p) = max(F(α′S·p + β′ + α′o), m′)        so α = α′S, β = β′ + α′o, m = max(F(αa + β), m′).

    Element-wise layers keep f; global layers make it the constant m′; PyTorch's adaptive windows are
    contiguous with non-decreasing ends, so f stays non-decreasing (m = m′, as the first window that reads
    anything contains a′). A merge of inputs with equal [a, b] takes the input whose f is smallest everywhere,
    or becomes an anchor. Anything else (dilated taps, which skip pixels, or shapes that do not line up) is
    evaluated point by point from its inputs' values, exactly as the rules say, and memoised; so are the
    rare points where F must be evaluated away from the anchor's first output. Nothing recurses: evaluation
    runs on an explicit stack.
    """

    def __init__(self, supports: Supports, axis: int, mirrored: bool, envelope: bool = False):
        self.supports, self.axis, self.mirrored, self.is_envelope = supports, axis, mirrored, envelope
        self.network = supports.network[axis]
        self.sizes = {INPUT: self.network}
        self.rules: dict[str, tuple[_Rule, ...]] = {}
        self.mono: dict[str, _Mono | None] = {INPUT: _Mono(0, self.network - 1, INPUT, 1, 0, 0)}
        self.floor: dict[str, int] = {INPUT: 0}  # a lower bound of f over the layer's outputs
        self.memo: dict[tuple[str, int], int] = {}
        sizes = self.sizes
        for layer in supports.report.layers:
            size = sizes[layer.name] = supports.size(layer.name, axis)
            step = supports.steps[layer.name]
            self.rules[layer.name] = tuple(self._rule(ops[axis], source, size, mirrored, envelope)
                                           for source, ops in zip(layer.spec.inputs, step.ops, strict=True))
            mono = self.mono[layer.name] = self._classify(layer.name, size)
            self.floor[layer.name] = min(self.floor[rule.source] for rule in self.rules[layer.name]) \
                if mono is None else mono.m if mono.a <= mono.b else self.network

    @cached_property
    def envelope(self) -> _Side | None:
        """The same network with each dilated window widened to its whole span: its supports contain the true
        ones, so its first pixels are lower bounds, and it has the closed form throughout."""
        return None if self.is_envelope else self.supports.side(self.axis, self.mirrored, True)

    @staticmethod
    def _rule(op: _AxisOp, source: str, size: int, mirrored: bool, envelope: bool) -> _Rule:
        """How output p reads `source` (op.n wide) along this axis; the output is `size` wide."""
        n = op.n
        if op.kind == "window":
            w = op.window
            kernel, dilation = (w.effective_kernel, 1) if envelope else (w.kernel, w.dilation)
            offset = -w.padding
            if mirrored:  # tap t of output p is tap n − 1 − t of output size − 1 − p, read from the other end
                offset = n - 1 - offset - (size - 1) * w.stride - (kernel - 1) * dilation
            return _Rule("window", source, n, w.stride, offset, dilation, kernel)
        if op.kind == "adaptive":
            if n % size == 0:  # windows of n/out at steps of n/out: a plain window (and its own mirror)
                return _Rule("window", source, n, n // size, 0, 1, n // size)
            return _Rule("adaptive", source, n, out=size)  # PyTorch's windows are their own mirror image
        if op.kind in ("pick", "empty"):  # output 0 reads position `index` alone, or one past the end: nothing
            offset = op.index if op.kind == "pick" else n
            return _Rule("window", source, n, 1, n - 1 - offset - (size - 1) if mirrored else offset)
        if op.kind == "whole":
            return _Rule("whole", source, n)
        return _Rule("point", source, n, offset=n - size if mirrored else 0)

    def _classify(self, name: str, size: int) -> _Mono | None:
        rules = self.rules[name]
        kinds = {rule.kind for rule in rules}
        if kinds == {"point", "whole"}:
            return self._broadcast(name, size)
        sources = [self.mono[rule.source] for rule in rules]
        if any(source is None for source in sources):
            return None
        empty = _Mono(0, -1, INPUT, 0, 0, self.network)
        if kinds == {"whole"}:
            reading = [source for source in sources if source.a <= source.b]
            if not reading:
                return empty
            best = min(reading, key=lambda s: s.m)  # every output is the union of all inputs' outputs
            return _Mono(0, size - 1, best.anchor, 0, best.alpha * best.a + best.beta, best.m)
        if kinds == {"point"}:
            return self._points(name, size, rules)
        if len(rules) != 1:
            return None
        rule, source = rules[0], sources[0]
        if source.a > source.b:
            return empty
        if rule.kind == "adaptive":
            # the first window ending after a′ and the last starting at or before b′
            a = max(0, source.a * rule.out // rule.size)
            b = min(size - 1, -(-(source.b + 1) * rule.out // rule.size) - 1)
            return _Mono(a, b, name, 1, 0, source.m) if a <= b else empty
        if rule.kind != "window" or (rule.dilation > 1 and rule.kernel > 1):
            return None
        span = (rule.kernel - 1) * rule.dilation + 1
        a = max(0, -(-(source.a - rule.offset - span + 1) // rule.stride))
        b = min(size - 1, (source.b - rule.offset) // rule.stride)
        if a > b:
            return empty
        alpha, beta = source.alpha * rule.stride, source.beta + source.alpha * rule.offset
        return _Mono(a, b, source.anchor, alpha, beta, max(self._outer(source.anchor, alpha * a + beta), source.m))

    def _points(self, name: str, size: int, rules: tuple[_Rule, ...] | list[_Rule]) -> _Mono | None:
        """Inputs read position by position: element-wise layers and merges."""
        sources = [self.mono[rule.source] for rule in rules]
        if any(source is None for source in sources):
            return None
        if len(rules) == 1 and rules[0].offset == 0 and rules[0].size == size:
            return sources[0]  # element-wise: the input's function
        if any(rule.offset != 0 or rule.size != size for rule in rules) or \
                len({(source.a, source.b) for source in sources}) > 1:
            return None
        if sources[0].a > sources[0].b:
            return _Mono(0, -1, INPUT, 0, 0, self.network)
        for candidate in sources:  # an input whose f is the smallest everywhere
            if all(other.anchor == candidate.anchor and other.alpha == candidate.alpha
                   and candidate.beta <= other.beta and candidate.m <= other.m for other in sources):
                return candidate
        return _Mono(sources[0].a, sources[0].b, name, 1, 0, min(source.m for source in sources))

    def _broadcast(self, name: str, size: int) -> _Mono | None:
        """A product with a side broadcast over the axis (the squeeze-excite gate [C, 1, 1] × [C, H, W]).

        Every output reads the broadcast side's one entry, whose first pixel c is a constant, and its own
        position of the others (g), so f = min(g, c). Where c ≤ g's smallest value m (the gate pooled the
        same map: the usual case) f is the constant c; where g reads something at every output, min(g, c)
        is non-decreasing and the layer anchors its own evaluation; anything else goes point by point.
        """
        rules = self.rules[name]
        wide = [rule for rule in rules if rule.kind == "whole"]
        if any(rule.size != 1 for rule in wide):
            return None
        c = min(self.value(rule.source, 0) for rule in wide)
        g = self._points(name, size, [rule for rule in rules if rule.kind == "point"])
        if c >= self.network:  # the broadcast side reads nothing: the product reads what g reads
            return g
        if g is None:
            return None
        if g.a > g.b or c <= g.m:
            return _Mono(0, size - 1, INPUT, 0, 0, c)  # F(0) = 0 ≤ c, so f = max(F(0), c) = c
        if (g.a, g.b) == (0, size - 1):
            return _Mono(0, size - 1, name, 1, 0, g.m)
        return None

    def _outer(self, anchor: str, x: int) -> int:
        """F(x) = f_anchor(clamp(x, a, b))."""
        mono = self.mono[anchor]
        q = min(max(x, mono.a), mono.b)
        if q == mono.a:
            return mono.m
        return q if anchor == INPUT else self.value(anchor, q)

    # ---------------------------------------------------------------- evaluation at one output

    def value(self, name: str, index: int) -> int:
        """f(index): the first input pixel of output `index`'s support (N if it reads only padding)."""
        key = (name, index)
        if key in self.memo:
            return self.memo[key]
        mono = self.mono.get(name)
        if mono is not None and 0 <= index < self.sizes[name] and not mono.a < index <= mono.b:
            return mono.m if index == mono.a else self.network  # the layer's smallest, or no support at all
        stack = [(key, self._steps(name, index))]
        sent: int | None = None
        while stack:
            key, steps = stack[-1]
            try:
                wanted = steps.send(sent)
            except StopIteration as done:
                self.memo[key] = done.value
                stack.pop()
                sent = done.value
                continue
            if wanted in self.memo:
                sent = self.memo[wanted]
            else:
                stack.append((wanted, self._steps(*wanted)))
                sent = None
        return self.memo[(name, index)]

    def _steps(self, name: str, p: int) -> Generator[tuple[str, int], int, int]:
        """Computes f(p), yielding each (layer, index) whose value it needs and receiving that value."""
        if name == INPUT:
            return p
        mono = self.mono[name]
        if mono is not None and 0 <= p < self.sizes[name]:
            if not mono.a <= p <= mono.b:
                return self.network
            if p == mono.a:
                return mono.m
            if mono.anchor != name:
                anchor = self.mono[mono.anchor]
                q = min(max(mono.alpha * p + mono.beta, anchor.a), anchor.b)
                inner = anchor.m if q == anchor.a else q if mono.anchor == INPUT else (yield (mono.anchor, q))
                return max(inner, mono.m)
        best = self.network
        for rule in self.rules[name]:
            if rule.kind == "point":
                best = min(best, (yield (rule.source, p + rule.offset)))
                continue
            taps = rule.taps(p)
            if taps is None:
                continue
            first, step, last = taps
            source = self.mono[rule.source]
            if source is not None:  # non-decreasing: the first tap among the outputs that read something
                t = first + -(-(max(first, source.a) - first) // step) * step
                if t <= min(last, source.b):
                    best = min(best, (yield (rule.source, t)))
                continue
            # f of a source that is not non-decreasing (a dilated window below): every tap, but none that
            # cannot beat the best so far (the source's floor, or the envelope's lower bound at the tap)
            floor, envelope = self.floor[rule.source], self.envelope
            bound = None if envelope is None else envelope.mono[rule.source]
            for t in range(first, last + 1, step):
                if best <= floor:
                    break
                if envelope is not None and envelope.value(rule.source, t) >= best:
                    if bound is not None and bound.a <= t:
                        break  # non-decreasing from here on: no later tap can do better
                    continue
                best = min(best, (yield (rule.source, t)))
        return best


def show(value: Fraction | int) -> str:
    """'4', '1.5', or '13/6' for a jump or start that is not a whole or half pixel."""
    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    if value.denominator in (2, 4, 8):
        return str(float(value))
    return f"{value.numerator}/{value.denominator}"
