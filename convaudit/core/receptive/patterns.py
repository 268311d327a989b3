"""The field of every output along one axis, borders ignored: a pattern that repeats.

Output p = q·T + r (0 ≤ r < T) sits at grid + p·jump, in network-input pixels, and its field spans

    [grid + p·jump + low[r],  grid + p·jump + high[r]]

or is empty (None: the output reads no input position, as between the taps of a transposed convolution whose
stride exceeds its kernel). A network of windows keeps T = 1 and low = −(rf − 1)/2 = −high: the classic
recurrence. Layers whose outputs share input positions (transposed convolutions, up-sampling, pixel shuffle)
give outputs fields of different sizes and centres around the grid, and T counts the outputs before the pattern
repeats. Through a layer whose output p reads the input positions taps(p), borders ignored, with
taps(p + P) = taps(p) + A (a window: P = 1, A = S):

    jump_out  = jump_in · σ                     (a window: σ = S)
    grid_out  = grid_in + o · jump_in           (a window: o = (K' − 1)/2 − P; any reference would do)
    field_out(p) = the union of field_in(i) over i ∈ taps(p): its smallest low and largest high
    T_out = P · T_in / gcd(T_in, A)             (p ↦ taps(p) repeats every P, the input every T_in)

so the field of every output is exact, RF is the largest of them, and the start shown is where output 0's field
is centred on average (the grid plus the mean centre offset over a period: output 0's own centre when T = 1).
Where the largest field differs from the smallest (a U-Net after its up-convolutions: outputs that share a
coarse position see different context), the layer says so. A period beyond PERIOD_LIMIT is replaced by one
centred field of the largest size (noted).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cached_property

Span = tuple[int, int, int]
PERIOD_LIMIT = 1 << 16


@dataclass(frozen=True)
class AxisField:
    """What the tables show per axis: the largest field, the jump, and where output 0 sits (its field's centre
    when every output's field is centred on the grid)."""

    rf: Fraction
    jump: Fraction
    start: Fraction

    def window(self, kernel: int, stride: int, padding: int, dilation: int = 1) -> AxisField:
        span = dilation * (kernel - 1) + 1
        return AxisField(self.rf + (span - 1) * self.jump, self.jump * stride,
                         self.start + (Fraction(span - 1, 2) - padding) * self.jump)


@dataclass(frozen=True)
class Pattern:
    jump: Fraction
    grid: Fraction
    low: tuple[Fraction | None, ...]  # per residue r: the field's first pixel relative to the grid, or None
    high: tuple[Fraction | None, ...]

    @classmethod
    def centred(cls, field: AxisField) -> Pattern:
        half = (field.rf - 1) / 2
        return cls(field.jump, field.start, (-half,), (half,))

    @property
    def period(self) -> int:
        return len(self.low)

    def edges(self, i: int) -> tuple[Fraction, Fraction] | None:
        """Output i's field (any integer i: the borders are ignored)."""
        r = i % self.period
        low, high = self.low[r], self.high[r]
        if low is None or high is None:
            return None
        base = self.grid + i * self.jump
        return base + low, base + high

    @cached_property
    def monotone(self) -> bool:
        """Every output has a field, and neither end ever moves back: a run's union is then its ends'."""
        ends = [self.edges(r) for r in range(self.period + 1)]
        return all(e is not None for e in ends) and all(
            a[0] <= b[0] and a[1] <= b[1] for a, b in zip(ends, ends[1:], strict=False))  # type: ignore[index]

    def union_over(self, span: Span | None) -> tuple[Fraction, Fraction] | None:
        """The union of the fields of positions first, first + step, …, last."""
        if span is None:
            return None
        first, step, last = span
        if self.monotone:
            return self.edges(first)[0], self.edges(last)[1]  # type: ignore[index]
        edges = [e for e in map(self.edges, range(first, last + 1, step)) if e is not None]
        return (min(e[0] for e in edges), max(e[1] for e in edges)) if edges else None

    def through(self, taps: Callable[[int], Span | None], period: int, advance: int, sigma: Fraction,
                offset: Fraction) -> Pattern:
        """Through a layer whose output p reads taps(p), with taps(p + period) = taps(p) + advance."""
        count = period * (self.period // math.gcd(self.period, advance))
        jump, grid = self.jump * sigma, self.grid + offset * self.jump
        low: list[Fraction | None] = []
        high: list[Fraction | None] = []
        for r in range(count):
            union = self.union_over(taps(r))
            base = grid + r * jump
            low.append(None if union is None else union[0] - base)
            high.append(None if union is None else union[1] - base)
        return Pattern(jump, grid, tuple(low), tuple(high))

    def window(self, kernel: int, stride: int, padding: int, dilation: int = 1) -> Pattern:
        """Output p reads p·S − P + k·D for k < K: P = 1, A = S, σ = S, o = (D·(K − 1))/2 − P."""
        reach = dilation * (kernel - 1)
        return self.through(lambda p: (p * stride - padding, dilation, p * stride - padding + reach), 1, stride,
                            Fraction(stride), Fraction(reach, 2) - padding)

    def shifted(self, offset: int) -> Pattern:
        """Output p reads input p + offset (a crop, zero padding): every field moves with its position."""
        return replace(self, grid=self.grid + offset * self.jump)

    def picked(self, index: int) -> Pattern:
        """Position `index` alone: its own field, centred where it is."""
        edges, grid = self.edges(index), self.grid + index * self.jump
        return Pattern(self.jump, grid, (None if edges is None else edges[0] - grid,),
                       (None if edges is None else edges[1] - grid,))

    def union(self, other: Pattern) -> Pattern:
        """Two patterns on the same grid, position by position (a merge)."""
        count = math.lcm(self.period, other.period)
        low: list[Fraction | None] = []
        high: list[Fraction | None] = []
        for r in range(count):
            ours, theirs = self.edges(r), other.edges(r)
            both = [e for e in (ours, theirs) if e is not None]
            base = self.grid + r * self.jump
            low.append(min(e[0] for e in both) - base if both else None)
            high.append(max(e[1] for e in both) - base if both else None)
        return Pattern(self.jump, self.grid, tuple(low), tuple(high))

    @cached_property
    def widths(self) -> tuple[Fraction, Fraction] | None:
        """The smallest and largest field, in pixels (None: no output reads any input position)."""
        sizes = [high - low + 1 for low, high in zip(self.low, self.high, strict=True)
                 if low is not None and high is not None]
        return (min(sizes), max(sizes)) if sizes else None

    @property
    def empty(self) -> int:
        """How many outputs in every period read no input position."""
        return sum(low is None for low in self.low)

    @cached_property
    def start(self) -> Fraction:
        """Where output 0's field is centred on average: the grid moved by the mean of the field centres' offsets
        over one period. Output 0's own centre where every field sits alike on the grid (T = 1)."""
        centres = [(low + high) / 2 for low, high in zip(self.low, self.high, strict=True)
                   if low is not None and high is not None]
        return self.grid + sum(centres, Fraction(0)) / len(centres) if centres else self.grid

    def field(self) -> AxisField:
        return AxisField(self.widths[1] if self.widths else Fraction(0), self.jump, self.start)

    def regular(self) -> Pattern:
        """One centred field of the largest size (a period too long to follow)."""
        return Pattern.centred(self.field())
