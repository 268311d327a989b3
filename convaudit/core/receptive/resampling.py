"""How each output position reads its input along one axis, for the layers that resample rather than slide a
window: transposed convolutions, up-sampling, pixel shuffle and the padding modes that copy input positions.

A `Reads` names, for output p, the input positions it reads before any clipping to the input (`span`: first,
step, last; None for none) and, for the field recurrence of core/receptive/fields.py, three numbers:

    sigma    input positions per output position: the jump multiplier (jump_out = jump_in · σ)
    offset   where output 0 sits on the input axis, in input positions (start_out = start_in + offset · jump_in)
    widest   the largest last − first over the outputs (rf_out = rf_in + widest · jump_in)

Where outputs read varying numbers of positions, the outputs that share an input position are spread around it,
so `offset` is the grid the outputs follow on average, not the centre of output 0's own taps: for a U-Net's
2 × 2, stride-2 up-convolution, outputs 0 and 1 both read input 0 and sit a quarter of an input step either side
of it (offset −1/4), which is what lines them up with the skip connection's crop.
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

    @property
    def pattern(self) -> range:
        """The outputs the field recurrence looks at: all of them (a transposed convolution's repeat every S)."""
        return range(self.size)

    @cached_property
    def counts(self) -> tuple[int, int]:
        """The fewest and the most positions an output reads, over the pattern's outputs that read any."""
        spans = [span for span in map(self.span, self.pattern) if span is not None]
        counts = [(last - first) // step + 1 for first, step, last in spans]
        return (min(counts), max(counts)) if counts else (0, 0)

    @cached_property
    def widest(self) -> int:
        """The largest last − first over the pattern's outputs: rf_out = rf_in + widest · jump_in."""
        return max((last - first for first, _, last in filter(None, map(self.span, self.pattern))), default=0)

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
    taps are every (D/g)-th position of that range. Input i's taps spread over i·S − P + D·(K − 1)/2 ± …, so
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
    def pattern(self) -> range:
        return range(self.stride)  # span(p + S) is span(p) one position on: borders aside, S outputs say all


@dataclass(frozen=True)
class Upsampled(AxisReads):
    """nn.Upsample / F.interpolate along one axis, by PyTorch's arithmetic (core/receptive/interpolation.py).

    σ is the exact step of its source index: (in − 1)/(out − 1) with align_corners, else 1/scale for a scale
    factor (PyTorch's choice, not in/out) or in/out for a size, 1 where it copies and 1/2 where nearest shifts.
    offset: linear and cubic modes place output p at (p + 0.5)·σ − 0.5 (p·σ with align_corners). nearest reads
    ⌊p·σ⌋ and nearest-exact ⌊(p + 0.5)·σ⌋; with σ = a/b in lowest terms both repeat every b outputs, and the
    offset is the average of (position read − p·σ) over b outputs: −(b − 1)/(2b) for nearest.
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

    @cached_property
    def sigma(self) -> Fraction:
        if self.copy or (self.size == self.n and self.mode in LINEAR_MODES + ("nearest",)):
            return Fraction(1)
        if self.mode == "nearest" and self.size == 2 * self.n:
            return Fraction(1, 2)
        if self.align_corners:
            return Fraction(self.n - 1, self.size - 1) if self.size > 1 else Fraction(0)
        return 1 / self.scale if self.scale is not None else Fraction(self.n, self.size)

    @cached_property
    def offset(self) -> Fraction:
        sigma = self.sigma
        if self.align_corners or sigma == 1:
            return Fraction(0)
        if self.mode in LINEAR_MODES + CUBIC_MODES:
            return (sigma - 1) / 2
        shift = Fraction(1, 2) if self.mode == "nearest-exact" else Fraction(0)
        period = sigma.denominator
        return sum((math.floor((p + shift) * sigma) - p * sigma for p in range(period)), Fraction(0)) / period


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
