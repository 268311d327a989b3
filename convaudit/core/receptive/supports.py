"""Supports: the first and last network-input pixel each output unit depends on, per axis, by exact arithmetic.

The support of output `i` is the set of input pixels its value depends on: its taps clipped to the layer's input,
followed back layer by layer. The first pixel is computed by `_Side`, one axis at a time, in closed form where the
layers allow it and point by point where they do not; the last pixel is the first pixel of the mirrored network
(x ↦ N − 1 − x). Axes that are alike in every layer (a square network) are computed once.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from functools import cached_property
from typing import NamedTuple

from convaudit.core.analysis import LayerResult, Report
from convaudit.core.model import INPUT
from convaudit.core.receptive.layout import AxisOp, Step, layouts
from convaudit.core.receptive.resampling import Reads


class Supports:
    """The first and last network-input pixel each output unit depends on, per axis, by exact arithmetic.

    The support of output `i` is the set of input pixels its value depends on: its window's taps clipped to
    the layer's input, followed back layer by layer. Axes are followed one at a time: an element reads the
    pixels its position reads on every axis, none if it reads none along any one. `low` is its first pixel
    (the input size N when it is empty: the unit reads only padding), `high` its last (−1 when empty). The
    last pixel is the first pixel of the mirrored network (x ↦ N − 1 − x), so one engine, `_Side`, computes
    both; see its notes.
    """

    def __init__(self, report: Report, steps: dict[str, Step] | None = None):
        self.report = report
        self.network = tuple(report.input[1:])
        self.layers = {layer.name: layer for layer in report.layers}
        self.steps = steps if steps is not None else layouts(report)
        self._sides: dict[tuple[int, bool, bool], _Side] = {}

    def size(self, name: str, axis: int) -> int:
        """Positions along the axis: a map's L, D, H or W, a token grid's rows or columns, 1 for a vector."""
        return self.steps[name].layout.sizes[axis]

    def side(self, axis: int, mirrored: bool, envelope: bool = False) -> _Side:
        axis = self.alike[axis]  # an axis alike an earlier one in every layer is that axis over again
        key = (axis, mirrored, envelope)
        if key not in self._sides:
            self._sides[key] = _Side(self, axis, mirrored, envelope)
        return self._sides[key]

    @cached_property
    def alike(self) -> tuple[int, ...]:
        """Per axis, the first axis whose sizes and reads are the same in every layer (itself if none is): a
        square network's W is its H over again, a cube's H and W its D."""
        def key(op: AxisOp) -> AxisOp:
            return op._replace(window=None if op.window is None else replace(op.window, axis=""))

        def same(a: int, b: int) -> bool:
            return self.network[a] == self.network[b] and all(
                step.layout.sizes[a] == step.layout.sizes[b] and all(key(ops[a]) == key(ops[b]) for ops in step.ops)
                for step in self.steps.values())

        return tuple(next((earlier for earlier in range(axis) if same(earlier, axis)), axis)
                     for axis in range(len(self.network)))

    def low(self, name: str, axis: int, index: int) -> int:
        """The first input pixel output `index` depends on (the input size if it reads only padding)."""
        return self.side(axis, False).value(name, index)

    def high(self, name: str, axis: int, index: int) -> int:
        """The last input pixel output `index` depends on (−1 if it reads only padding)."""
        mirrored = self.side(axis, True).value(name, self.size(name, axis) - 1 - index)
        return self.network[axis] - 1 - mirrored

    def uncovered(self, layer: LayerResult) -> tuple[int, ...] | None:
        """Input pixels before the first pixel any output reads plus those after the last, per axis; None where
        the layer's elements are not followed (see Layout). The first and last outputs usually hold those, but
        an output that reads only padding holds neither."""
        if self.steps[layer.name].layout.kind == "unknown":
            return None
        result = []
        for axis, n in enumerate(self.network):
            before = self.side(axis, False).smallest(layer.name)
            after = self.side(axis, True).smallest(layer.name)  # n − 1 − (the largest last pixel)
            result.append(min(before + after, n))  # N each when nothing is read: all N unseen
        if any(unseen == n for unseen, n in zip(result, self.network, strict=True)):
            return self.network  # no output reads anything along one axis: none reads any pixel at all
        return tuple(result)


class _Rule(NamedTuple):
    """Which indices of one input an output index p reads, on one axis.

    window:   p·stride + offset + k·dilation for k < kernel, clipped to the input (offset = −padding)
    adaptive: [⌊p·n/out⌋, ⌈(p+1)·n/out⌉), PyTorch's adaptive windows, clipped
    whole:    every index of the input (flatten, linear, global pooling, vectors)
    point:    p + shift alone, not clipped (element-wise layers and merges; shift is 0 unmirrored)
    reads:    what `reads` names for p, clipped (transposed convolutions, up-sampling, pixel shuffle, reflect pads)
    """

    kind: str
    source: str
    size: int  # the input's size on this axis
    stride: int = 1
    offset: int = 0
    dilation: int = 1
    kernel: int = 1
    out: int = 1  # adaptive: the number of windows
    reads: Reads | None = None

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
        if self.kind == "reads":
            return self.reads.taps(p)  # type: ignore[union-attr]
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
                                           for source, ops in zip(layer.spec.inputs, step.ops, strict=True)
                                           if ops[axis].kind != "unread")  # a crop's size-giving input
            mono = self.mono[layer.name] = self._classify(layer.name, size)
            self.floor[layer.name] = min(self.floor[rule.source] for rule in self.rules[layer.name]) \
                if mono is None else mono.m if mono.a <= mono.b else self.network

    @cached_property
    def envelope(self) -> _Side | None:
        """The same network with each dilated window widened to its whole span: its supports contain the true
        ones, so its first pixels are lower bounds, and it has the closed form throughout."""
        return None if self.is_envelope else self.supports.side(self.axis, self.mirrored, True)

    @staticmethod
    def _rule(op: AxisOp, source: str, size: int, mirrored: bool, envelope: bool) -> _Rule:
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
        if op.kind in ("pick", "empty", "shift"):  # output p reads p + `index` (pick: output 0, `index` alone;
            offset = n if op.kind == "empty" else op.index  # empty: one past the end, nothing)
            return _Rule("window", source, n, 1, n - 1 - offset - (size - 1) if mirrored else offset)
        if op.kind == "reads":
            reads = op.reads.mirrored() if mirrored else op.reads  # type: ignore[union-attr]
            return _Rule("reads", source, n, out=size, reads=reads.widened() if envelope else reads)
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
        if not rules:  # a source (a learned tensor used directly) reads no pixel
            return empty
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
        if rule.kind == "reads":
            return self._monotone_reads(name, rule, source)
        if rule.kind != "window" or (rule.dilation > 1 and rule.kernel > 1):
            return None
        span = (rule.kernel - 1) * rule.dilation + 1
        a = max(0, -(-(source.a - rule.offset - span + 1) // rule.stride))
        b = min(size - 1, (source.b - rule.offset) // rule.stride)
        if a > b:
            return empty
        alpha, beta = source.alpha * rule.stride, source.beta + source.alpha * rule.offset
        return _Mono(a, b, source.anchor, alpha, beta, max(self._outer(source.anchor, alpha * a + beta), source.m))

    def _monotone_reads(self, name: str, rule: _Rule, source: _Mono) -> _Mono | None:
        """A transposed convolution, up-sampling, a pixel shuffle or a replicate pad: where each output reads a run
        of consecutive positions whose ends never decrease, f(p) = f′(max(first(p), a′)) is non-decreasing on
        the outputs whose runs meet [a′, b′], which are a range [a, b]; the layer anchors its own evaluation."""
        reads = rule.reads
        assert reads is not None
        if not reads.monotone:
            return None
        a, b = reads.reaching(source.a, source.b)
        if a > b:
            return _Mono(0, -1, INPUT, 0, 0, self.network)
        first = reads.span(a)[0]  # type: ignore[index]
        return _Mono(a, b, name, 1, 0, self.value(rule.source, max(first, source.a)))

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

    def smallest(self, name: str) -> int:
        """The smallest f over the layer's outputs (N when none reads anything): f(a) for a non-decreasing f, else
        output by output until the layer's lower bound is met."""
        mono = self.mono[name]
        if mono is not None:
            return mono.m if mono.a <= mono.b else self.network
        best = self.network
        for p in range(self.sizes[name]):
            best = min(best, self.value(name, p))
            if best <= self.floor[name]:
                break
        return best

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

