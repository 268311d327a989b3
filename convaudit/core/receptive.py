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
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cached_property
from typing import NamedTuple

from convaudit.core.analysis import LayerResult, Report
from convaudit.core.model import INPUT
from convaudit.core.windows import merged_axes


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
    uncovered: tuple[int, int]  # network-input pixels per axis that no output depends on
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
GLOBAL = ("globalavgpool", "flatten", "linear", "rbf")  # on a feature map: one window over all of it


def receptive_fields(report: Report) -> dict[str, LayerField]:
    """The field of every analysed layer, in graph order."""
    support = Supports(report)
    fields: dict[str, tuple[tuple[AxisField, AxisField], list[str]]] = {INPUT: ((IDENTITY, IDENTITY), [])}
    result: dict[str, LayerField] = {}
    for layer in report.layers:
        axes, notes = _layer_axes(layer, [fields[s][0] for s in layer.spec.inputs])
        fields[layer.name] = (axes, notes)
        result[layer.name] = LayerField(layer.name, axes, support.uncovered(layer), tuple(notes))
    return result


def _layer_axes(layer: LayerResult, inputs: list[tuple[AxisField, AxisField]]) -> tuple[tuple, list[str]]:
    notes: list[str] = []
    axes = inputs[0]
    if len(inputs) > 1:
        axes = max(inputs, key=lambda a: a[0].rf * a[1].rf)
        grids = {(a[0].jump, a[1].jump, a[0].start, a[1].start) for a in inputs}
        if len(grids) > 1:
            described = ", ".join(f"'{source}' jump {show(a[0].jump)} start {show(a[0].start)}"
                                  for source, a in zip(layer.spec.inputs, inputs, strict=True))
            notes.append(f"merge of misaligned grids: {described}")
    shape_in = layer.input_shapes[0]
    if layer.windows:
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
    elif layer.type in GLOBAL and len(shape_in) == 3:
        axes = tuple(a.window(size, 1, 0) for a, size in zip(axes, shape_in[1:], strict=True))
    elif layer.type == "adaptiveavgpool":
        axes, more = _adaptive(axes, shape_in[1:], layer.output_shape[1:])
        notes += more
    return axes, notes


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

    def __init__(self, report: Report):
        self.report = report
        self.network = report.input[1:]
        self.layers = {layer.name: layer for layer in report.layers}
        self._sides: dict[tuple[int, bool], _Side] = {}

    def size(self, name: str, axis: int) -> int:
        if name == INPUT:
            return self.network[axis]
        shape = self.layers[name].output_shape
        return shape[1 + axis] if len(shape) == 3 else 1

    def side(self, axis: int, mirrored: bool) -> _Side:
        if axis == 1 and self.square:
            axis = 0  # W is H over again
        key = (axis, mirrored)
        if key not in self._sides:
            self._sides[key] = _Side(self, axis, mirrored)
        return self._sides[key]

    @cached_property
    def square(self) -> bool:
        """Whether every size and window is the same along H as along W, so one axis answers for both."""
        if self.network[0] != self.network[1]:
            return False
        for layer in self.layers.values():
            shape = layer.output_shape
            if len(shape) == 3 and shape[1] != shape[2]:
                return False
            if layer.windows and replace(layer.windows[0], axis="W") != layer.windows[1]:
                return False
            if layer.type == "adaptiveavgpool" and any(shape[1] != shape[2] for shape in layer.input_shapes):
                return False
        return True

    def low(self, name: str, axis: int, index: int) -> int:
        """The first input pixel output `index` depends on (the input size if it reads only padding)."""
        return self.side(axis, False).value(name, index)

    def high(self, name: str, axis: int, index: int) -> int:
        """The last input pixel output `index` depends on (−1 if it reads only padding)."""
        mirrored = self.side(axis, True).value(name, self.size(name, axis) - 1 - index)
        return self.network[axis] - 1 - mirrored

    def uncovered(self, layer: LayerResult) -> tuple[int, int]:
        """Input pixels before the first output's support plus those after the last output's, per axis."""
        result = []
        for axis in (0, 1):
            last = self.size(layer.name, axis) - 1
            result.append(self.low(layer.name, axis, 0) + (self.network[axis] - 1 - self.high(layer.name, axis, last)))
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

    def __init__(self, supports: Supports, axis: int, mirrored: bool):
        self.network = supports.network[axis]
        self.sizes = {INPUT: self.network}
        self.rules: dict[str, tuple[_Rule, ...]] = {}
        self.mono: dict[str, _Mono | None] = {INPUT: _Mono(0, self.network - 1, INPUT, 1, 0, 0)}
        self.memo: dict[tuple[str, int], int] = {}
        sizes = self.sizes
        for layer in supports.report.layers:
            shape = layer.output_shape
            size = sizes[layer.name] = shape[1 + axis] if len(shape) == 3 else 1
            self.rules[layer.name] = tuple(self._rule(layer, source, shape, size, sizes[source], axis, mirrored)
                                           for source, shape in zip(layer.spec.inputs, layer.input_shapes,
                                                                    strict=True))
            self.mono[layer.name] = self._classify(layer.name, size)

    @staticmethod
    def _rule(layer: LayerResult, source: str, shape: tuple[int, ...], size: int, n: int, axis: int,
              mirrored: bool) -> _Rule:
        """How output p of `layer` reads `source` (n wide); the layer's output is `size` wide."""
        if layer.windows:
            w = layer.windows[axis]
            offset = -w.padding
            if mirrored:  # tap t of output p is tap n − 1 − t of output size − 1 − p, read from the other end
                offset = n - 1 - offset - (size - 1) * w.stride - (w.kernel - 1) * w.dilation
            return _Rule("window", source, n, w.stride, offset, w.dilation, w.kernel)
        if layer.type == "adaptiveavgpool":
            out = layer.output_shape[1 + axis]
            if n % out == 0:  # windows of n/out at steps of n/out: a plain window (and its own mirror)
                return _Rule("window", source, n, n // out, 0, 1, n // out)
            return _Rule("adaptive", source, n, out=out)  # PyTorch's windows are their own mirror image
        if (layer.type in GLOBAL and len(shape) == 3) or len(layer.output_shape) == 1:
            return _Rule("whole", source, n)
        return _Rule("point", source, n, offset=n - size if mirrored else 0)

    def _classify(self, name: str, size: int) -> _Mono | None:
        rules = self.rules[name]
        sources = [self.mono[rule.source] for rule in rules]
        if any(source is None for source in sources):
            return None
        kinds = {rule.kind for rule in rules}
        empty = _Mono(0, -1, INPUT, 0, 0, self.network)
        if kinds == {"whole"}:
            reading = [source for source in sources if source.a <= source.b]
            if not reading:
                return empty
            best = min(reading, key=lambda s: s.m)  # every output is the union of all inputs' outputs
            return _Mono(0, size - 1, best.anchor, 0, best.alpha * best.a + best.beta, best.m)
        if kinds == {"point"}:
            if len(rules) == 1 and rules[0].offset == 0 and rules[0].size == size:
                return sources[0]  # element-wise: the input's function
            if any(rule.offset != 0 or rule.size != size for rule in rules) or \
                    len({(source.a, source.b) for source in sources}) > 1:
                return None
            if sources[0].a > sources[0].b:
                return empty
            for candidate in sources:  # an input whose f is the smallest everywhere
                if all(other.anchor == candidate.anchor and other.alpha == candidate.alpha
                       and candidate.beta <= other.beta and candidate.m <= other.m for other in sources):
                    return candidate
            return _Mono(sources[0].a, sources[0].b, name, 1, 0, min(source.m for source in sources))
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
            for t in range(first, last + 1, step):
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
