"""How each output position reads its input along one axis, for the layers that resample rather than slide a
window: transposed convolutions, up-sampling, pixel shuffle and the padding modes that copy input positions.

A `Reads` says, for output p, which input positions it reads:

    span(p)    exactly, as PyTorch computes it (first, step, last), before clipping to the input; `taps` clips it.
               core/receptive/supports.py follows these to the exact first and last pixel of every output.
    ideal(p)   with the borders ignored and in exact arithmetic, repeating every `period` outputs by `advance`
               positions; core/receptive/patterns.py follows these to every output's field.
    sigma      input positions per output position (the jump multiplier)
    offset     where output 0 sits on the input axis, in input positions: a reference the fields are measured
               from (the start the tables show is the outputs' average field centre, patterns.py)
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

from convaudit.core.receptive.interpolation import (
    CUBIC_MODES,
    LINEAR_MODES,
    cubic_reads,
    linear_reads,
    nearest_reads,
)

Span = tuple[int, int, int]  # first, step, last input position read


class Reads:
    """The positions each output reads along one axis; subclasses give `span`, `sigma` and `offset`."""

    n: int  # input positions on the axis
    size: int  # output positions on the axis

    def span(self, p: int) -> Span | None:
        raise NotImplementedError

    @property
    def sigma(self) -> Fraction:
        raise NotImplementedError

    @property
    def offset(self) -> Fraction:
        raise NotImplementedError

    def taps(self, p: int) -> Span | None:
        """span(p) clipped to the input: the positions output p really reads."""
        span = self.span(p)
        if span is None:
            return None
        first, step, last = span
        if first < 0:
            first += -(-(0 - first) // step) * step
        if last > self.n - 1:
            last -= -(-(last - self.n + 1) // step) * step
        return (first, step, last) if first <= last else None

    @cached_property
    def monotone(self) -> bool:
        """Every output reads a run of consecutive positions (before clipping), whose first and last never
        decrease from one output to the next: the property core/receptive/supports.py's closed form needs."""
        previous = (-math.inf, -math.inf)
        for p in range(self.size):
            span = self.span(p)
            if span is None or (span[1] != 1 and span[0] != span[2]) or span[0] < previous[0] \
                    or span[2] < previous[1]:
                return False
            previous = (span[0], span[2])
        return True

    def reaching(self, first: int, last: int) -> tuple[int, int]:
        """For a monotone reader: the outputs whose positions meet [first, last] are exactly [a, b]."""
        a = bisect_left(range(self.size), first, key=lambda p: self.span(p)[2])  # type: ignore[index]
        b = bisect_right(range(self.size), last, key=lambda p: self.span(p)[0]) - 1  # type: ignore[index]
        return a, b

    def ideal(self, p: int) -> Span | None:
        """The positions output p reads with the borders ignored (no clipping, no clamping): what the field
        recurrence follows. It repeats: ideal(p + period) is ideal(p) moved on by `advance` positions."""
        return self.span(p)

    @property
    def period(self) -> int:
        raise NotImplementedError

    @property
    def advance(self) -> int:
        raise NotImplementedError

    def mirrored(self) -> Reads:
        return Mirrored(self)

    def widened(self) -> Reads:
        return Widened(self)


class Mirrored(Reads):
    """The same reads seen from the other end of both axes (x ↦ n − 1 − x): output p reads what output
    size − 1 − p reads, mirrored. Its first positions are the original's last ones."""

    def __init__(self, inner: Reads):
        self.inner, self.n, self.size = inner, inner.n, inner.size

    def span(self, p: int) -> Span | None:
        span = self.inner.span(self.size - 1 - p)
        return None if span is None else (self.n - 1 - span[2], span[1], self.n - 1 - span[0])

    @cached_property
    def monotone(self) -> bool:
        return self.inner.monotone  # the mirror image of a run is a run, and the order reverses twice

    def mirrored(self) -> Reads:
        return self.inner


class Widened(Reads):
    """Every position from first to last read (gaps filled): supports that contain the true ones, whose first
    positions are therefore lower bounds (the envelope of core/receptive/supports.py)."""

    def __init__(self, inner: Reads):
        self.inner, self.n, self.size = inner, inner.n, inner.size

    def span(self, p: int) -> Span | None:
        span = self.inner.span(p)
        return None if span is None else (span[0], 1, span[2])

    def mirrored(self) -> Reads:
        return Widened(self.inner.mirrored())


@dataclass(frozen=True)
class AxisReads(Reads):
    """A layer's own reads along one axis: compared by value, so identical axes are computed once."""

    n: int
    size: int


@dataclass(frozen=True)
class Transposed(AxisReads):
    """A transposed convolution: input i feeds outputs i·S − P + k·D for k < K, so output p reads the i with
    i·S − P + k·D = p:  i ∈ [⌈(p + P − D·(K − 1))/S⌉, ⌊(p + P)/S⌋]  with  (p + P − i·S) divisible by D.

    S·i ≡ p + P (mod D) has solutions iff g = gcd(S, D) divides p + P, and they are one residue modulo D/g: the
    taps are every (D/g)-th position of that range. Input i feeds outputs centred on i·S − P + D·(K − 1)/2, so
    output p sits at input coordinate (p + P − D·(K − 1)/2)/S: σ = 1/S, offset (P − D·(K − 1)/2)/S.
    """

    kernel: int = 1
    stride: int = 1
    padding: int = 0
    dilation: int = 1

    @property
    def sigma(self) -> Fraction:
        return Fraction(1, self.stride)

    @property
    def offset(self) -> Fraction:
        return (self.padding - Fraction(self.dilation * (self.kernel - 1), 2)) / self.stride

    def span(self, p: int) -> Span | None:
        s, d, reach = self.stride, self.dilation, p + self.padding
        low, high = -(-(reach - d * (self.kernel - 1)) // s), reach // s
        g = math.gcd(s, d)
        if reach % g:
            return None
        step = d // g
        residue = (reach // g) * pow(s // g, -1, step) % step if step > 1 else 0  # i ≡ residue (mod D/g)
        first, last = low + (residue - low) % step, high - (high - residue) % step
        return (first, step, last) if first <= last else None

    @cached_property
    def monotone(self) -> bool:
        # contiguous taps (D = 1, or one tap) and none missing (K ≥ S): lo and hi then never decrease
        return (self.dilation == 1 or self.kernel == 1) and self.kernel >= self.stride

    @property
    def period(self) -> int:
        return self.stride  # output p + S reads what output p reads, one position on

    @property
    def advance(self) -> int:
        return 1


@dataclass(frozen=True)
class Upsampled(AxisReads):
    """nn.Upsample / F.interpolate along one axis, by PyTorch's arithmetic (core/receptive/interpolation.py).

    σ is the exact step of its source index: (in − 1)/(out − 1) with align_corners, else 1/scale for a scale
    factor (PyTorch's choice, not in/out) or in/out for a size, 1 where it copies and 1/2 where nearest shifts.
    With σ = a/b in lowest terms, output p + b reads what output p reads, a positions on.
    """

    mode: str = "nearest"
    align_corners: bool = False
    scale: Fraction | None = None
    copy: bool = False  # bicubic: every axis keeps its size, and PyTorch copies

    def span(self, p: int) -> Span | None:
        return self.table[p]

    @cached_property
    def table(self) -> tuple[Span, ...]:
        """Every output's run, once: PyTorch's float arithmetic is emulated exactly, which takes a while."""
        table = []
        for p in range(self.size):
            if self.mode in LINEAR_MODES:
                first, last = linear_reads(p, self.n, self.size, self.align_corners, self.scale)
            elif self.mode in CUBIC_MODES:
                first, last = cubic_reads(p, self.n, self.size, self.align_corners, self.scale, self.copy)
            else:
                first = last = nearest_reads(p, self.n, self.size, self.scale, self.mode == "nearest-exact")
            table.append((first, 1, last))
        return tuple(table)

    def ideal(self, p: int) -> Span | None:
        """Exact arithmetic, no clamping: nearest ⌊p·σ⌋, nearest-exact ⌊(p + 0.5)·σ⌋; linear modes the two
        neighbours of x = (p + 0.5)·σ − 0.5 (p·σ with align_corners), or x alone when whole; bicubic ⌊x⌋ − 1 …
        ⌊x⌋ + 2, or x alone when whole."""
        sigma = self.sigma
        if self.mode in ("nearest", "nearest-exact"):
            first = math.floor((p + (Fraction(1, 2) if self.mode == "nearest-exact" else 0)) * sigma)
            return first, 1, first
        x = p * sigma if self.align_corners else (p + Fraction(1, 2)) * sigma - Fraction(1, 2)
        first = math.floor(x)
        if x == first:
            return first, 1, first
        return (first, 1, first + 1) if self.mode in LINEAR_MODES else (first - 1, 1, first + 2)

    @property
    def period(self) -> int:
        return self.sigma.denominator  # σ = a/b: output p + b reads what output p reads, a positions on

    @property
    def advance(self) -> int:
        return self.sigma.numerator

    @cached_property
    def sigma(self) -> Fraction:
        if self.copy or (self.size == self.n and self.mode in LINEAR_MODES + ("nearest",)):
            return Fraction(1)
        if self.mode == "nearest" and self.size == 2 * self.n:
            return Fraction(1, 2)
        if self.align_corners:
            return Fraction(self.n - 1, self.size - 1) if self.size > 1 else Fraction(0)
        return 1 / self.scale if self.scale is not None else Fraction(self.n, self.size)

    @property
    def offset(self) -> Fraction:
        # output p's area centred at (p + 0.5)·σ − 0.5 (p·σ with align_corners): a reference for the fields only
        return Fraction(0) if self.align_corners else (self.sigma - 1) / 2


@dataclass(frozen=True)
class Repeated(AxisReads):
    """Pixel shuffle along H or W: output p comes from input position ⌊p/r⌋ (its channel picks which of the r
    sub-positions): σ = 1/r, and the r outputs of one input sit around it, offset −(r − 1)/(2r)."""

    factor: int = 1

    def span(self, p: int) -> Span | None:
        return p // self.factor, 1, p // self.factor

    @property
    def sigma(self) -> Fraction:
        return Fraction(1, self.factor)

    @property
    def offset(self) -> Fraction:
        return -Fraction(self.factor - 1, 2 * self.factor)

    @property
    def period(self) -> int:
        return self.factor

    @property
    def advance(self) -> int:
        return 1


@dataclass(frozen=True)
class Padded(AxisReads):
    """Reflect, replicate or circular padding: output p reads input q = p − before when 0 ≤ q < n, and inside
    the padding reflect reads −q (q < 0) or 2(n − 1) − q (q ≥ n), replicate the nearest edge, circular q mod n.
    The field moves by `before` (σ = 1), as zero padding moves it."""

    before: int = 0
    mode: str = "reflect"

    def span(self, p: int) -> Span | None:
        q, last = p - self.before, self.n - 1
        if self.mode == "reflect":
            q = -q if q < 0 else 2 * last - q if q > last else q
        elif self.mode == "replicate":
            q = min(max(q, 0), last)
        else:
            q %= self.n
        return q, 1, q

    @property
    def sigma(self) -> Fraction:
        return Fraction(1)

    @property
    def offset(self) -> Fraction:
        return Fraction(-self.before)

    def ideal(self, p: int) -> Span | None:
        return p - self.before, 1, p - self.before  # borders ignored: a shift

    @property
    def period(self) -> int:
        return 1

    @property
    def advance(self) -> int:
        return 1
