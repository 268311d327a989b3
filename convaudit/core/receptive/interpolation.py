"""Which input positions PyTorch's up-sampling reads for each output position, by PyTorch's own arithmetic.

PyTorch computes an up-sampling's source index in floating point. Where the exact index is a whole number, its
rounding decides whether a neighbour is read (a weight of exactly 0 reads nothing), so the exact answer is the
one its arithmetic gives, reproduced here operation by operation. The arithmetic is that of its CPU kernels for
float32 tensors, which fp16 and bf16 share (their index arithmetic is in float too); float64 tensors compute
the linear and cubic indices in double and can differ where an index falls within rounding of a whole number.

    σ (compute_scales_value, area_pixel_compute_scale), in float:
        align_corners:      (in − 1)/(out − 1), one float division (0 when out = 1)
        a scale factor s:   1.0/s divided in double, then rounded to float (PyTorch uses 1/s, not in/out)
        a size:             in/out, one float division
    nearest (nearest_idx):  out = in: p;  out = 2·in: p >> 1;  else min(⌊p·σ⌋, in − 1), the product in float
    nearest-exact:          min(⌊(p + 0.5)·σ⌋, in − 1), the product in double, rounded to float before the floor
    linear, bilinear, trilinear (compute_source_index_and_lambda), per axis:
        out = in: p alone (a copy); else x = σ·(p + 0.5) − 0.5 clamped at 0 (σ·p with align_corners), rounded
        once: the CPU kernels are compiled with fused multiply-add, so σ·(p + 0.5) − 0.5 is one FMA;
        i = min(⌊x⌋, in − 1), λ = x − i: reads i, and i + 1 when λ > 0 and i < in − 1
    bicubic (upsample_bicubic2d_backward_out_frame, the kernel autograd runs):
        every axis the same size: a copy; else x = σ·(p + 0.5) − 0.5 in float, rounded after the product and
        after the difference (no FMA in this kernel), not clamped (σ·p with align_corners); i = ⌊x⌋, t = x − i;
        taps i − 1 … i + 2 clamped to [0, in − 1], each read unless its cubic-convolution weight (A = −0.75,
        get_cubic_upsample_coefficients, evaluated in float) is exactly 0, as all but tap i are at t = 0.

Each output reads a contiguous run of input positions: linear reads one or two neighbours, and a cubic weight
vanishes only at the ends of the four taps (t = 0, or t within rounding of 0 or 1), never in the middle.
"""

from __future__ import annotations

import math
import struct
from fractions import Fraction

A = Fraction(-3, 4)  # the cubic convolution's constant (PyTorch's A = −0.75)
CUBIC_MODES = ("bicubic",)
LINEAR_MODES = ("linear", "bilinear", "trilinear")


def to_float32(value: Fraction | float | int) -> Fraction:
    """The float32 nearest to an exact value (ties to even), exactly: what C++ stores in a float."""
    value = Fraction(value)
    if value == 0:
        return Fraction(0)
    magnitude = abs(value)
    exponent = magnitude.numerator.bit_length() - magnitude.denominator.bit_length()
    if Fraction(2) ** exponent > magnitude:
        exponent -= 1  # now 2^e ≤ |value| < 2^(e+1)
    exponent = max(exponent, -126)  # subnormals share the smallest exponent
    scaled = magnitude / Fraction(2) ** (exponent - 23)  # 24 significant bits before the point
    whole, remainder = divmod(scaled.numerator, scaled.denominator)
    if 2 * remainder > scaled.denominator or (2 * remainder == scaled.denominator and whole % 2):
        whole += 1
    rounded = whole * Fraction(2) ** (exponent - 23)
    return rounded if value > 0 else -rounded


def double_to_float32(value: float) -> Fraction:
    """A double converted to float, as C++ converts one (struct rounds to nearest, ties to even)."""
    return Fraction(struct.unpack("f", struct.pack("f", value))[0])


def source_scale(size: int, out: int, align_corners: bool, scale: Fraction | None) -> Fraction:
    """σ, the float PyTorch's kernels step the source index by (exactly, as a Fraction)."""
    if align_corners:
        return to_float32(Fraction(size - 1, out - 1)) if out > 1 else Fraction(0)
    if scale is not None:
        return double_to_float32(1.0 / float(scale))  # 1.0 / scale in double, then static_cast<float>
    return to_float32(Fraction(size, out))


def nearest_reads(p: int, size: int, out: int, scale: Fraction | None, exact: bool) -> int:
    """The one input position output p copies (nearest_idx, nearest_exact_idx)."""
    if not exact and out == size:
        return p
    if not exact and out == 2 * size:
        return p >> 1
    sigma = source_scale(size, out, False, scale)
    if exact:  # (p + 0.5)·σ: exact in double (25 × 24 significant bits), then floorf rounds it to float
        position = double_to_float32(float(Fraction(2 * p + 1, 2) * sigma))
    else:
        position = to_float32(p * sigma)
    return min(math.floor(position), size - 1)


def linear_reads(p: int, size: int, out: int, align_corners: bool, scale: Fraction | None) -> tuple[int, int]:
    """The first and last input position output p weighs (one or two neighbours)."""
    if out == size:
        return p, p
    sigma = source_scale(size, out, align_corners, scale)
    x = to_float32(sigma * p) if align_corners else max(Fraction(0), to_float32(sigma * (p + Fraction(1, 2))
                                                                                 - Fraction(1, 2)))
    i = min(math.floor(x), size - 1)
    return (i, i + 1) if x > i and i < size - 1 else (i, i)


def _cubic_weights(t: Fraction) -> tuple[Fraction, ...]:
    """get_cubic_upsample_coefficients(t) in float: every product and sum rounded to float32, in C++'s order."""
    r = to_float32

    def near(x: Fraction) -> Fraction:  # ((A + 2)·x − (A + 3))·x·x + 1, for |x| ≤ 1
        return r(r(r(r(r((A + 2) * x) - (A + 3)) * x) * x) + 1)

    def far(x: Fraction) -> Fraction:  # ((A·x − 5A)·x + 8A)·x − 4A, for 1 < |x| < 2
        return r(r(r(r(r(r(A * x) - 5 * A) * x) + 8 * A) * x) - 4 * A)

    opposite = r(1 - t)
    return far(r(t + 1)), near(t), near(opposite), far(r(opposite + 1))


def cubic_reads(p: int, size: int, out: int, align_corners: bool, scale: Fraction | None,
                copy: bool) -> tuple[int, int]:
    """The first and last input position output p weighs (up to four, clamped to the input)."""
    if copy:
        return p, p
    sigma = source_scale(size, out, align_corners, scale)
    x = to_float32(sigma * p) if align_corners else to_float32(to_float32(sigma * (p + Fraction(1, 2)))
                                                               - Fraction(1, 2))
    i = math.floor(x)
    weights = _cubic_weights(to_float32(x - i))
    taps = [min(max(i - 1 + j, 0), size - 1) for j, weight in enumerate(weights) if weight != 0]
    return min(taps), max(taps)
