"""Sliding-window arithmetic along one axis, exact.

    out = (W − K' + 2P)/S + 1,   K' = D·(K − 1) + 1   (the dilated kernel)

evaluated as a Fraction. PyTorch floors it. With ceil_mode (Caffe's pooling
rule) it rounds up, but drops the last window if it would start in the right
padding: if (out − 1)·S ≥ W + P then out −= 1. Rounding up keeps every window
that overhangs the padded input by less than one stride.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cached_property

from convaudit.core.units import fixed


def format_fraction(value: Fraction) -> str:
    """54.25 for a terminating decimal, '163/3 (54.333…)' otherwise."""
    if value.denominator == 1:
        return str(value.numerator)
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    if denominator == 1:
        digits = 0
        while (value * 10**digits).denominator != 1:
            digits += 1
        return fixed(value, digits)  # exact: no float, which a value of 10^400 would overflow
    return f"{value.numerator}/{value.denominator} ({fixed(value, 3)}…)"


@dataclass(frozen=True)
class WindowAxis:
    """A kernel sliding along one axis of size `size`."""

    axis: str  # "H", "W", "L" (1-D), "D" (3-D), or a merged label such as "H and W"
    size: int
    kernel: int
    stride: int
    padding: int
    dilation: int = 1
    ceil: bool = False

    @property
    def effective_kernel(self) -> int:
        return self.dilation * (self.kernel - 1) + 1

    @property
    def padded(self) -> int:
        return self.size + 2 * self.padding

    @cached_property
    def exact(self) -> Fraction:
        """(W − K' + 2P)/S + 1 before any rounding."""
        return Fraction(self.padded - self.effective_kernel, self.stride) + 1

    @property
    def fits(self) -> bool:
        """Whether there is at least one output position.

        Floor: the kernel must fit in the padded input. Ceil (PyTorch): a window may
        overhang the padded input by less than one stride, even the first one.
        """
        return self.out >= 1

    @property
    def out(self) -> int:
        if not self.ceil:
            return math.floor(self.exact)
        out = math.ceil(self.exact)
        if (out - 1) * self.stride >= self.size + self.padding:
            out -= 1  # PyTorch/Caffe: the last window must start inside the input or left padding
        return out

    @property
    def is_exact(self) -> bool:
        return self.exact.denominator == 1

    @property
    def truncated(self) -> bool:
        """Inexact and floored: the division's remainder is dropped (ceil rounding is deliberate)."""
        return not self.is_exact and not self.ceil

    @property
    def covered(self) -> int:
        """Padded positions from the first window's start to the last window's end."""
        return (self.out - 1) * self.stride + self.effective_kernel

    @property
    def unseen(self) -> int:
        """Input rows past the last window (floor rounding drops them); right padding absorbs first."""
        return max(0, self.padded - self.covered - self.padding)

    @property
    def overhang(self) -> int:
        """How far the last window reaches past the padded input (ceil rounding)."""
        return max(0, self.covered - self.padded)

    def formula(self) -> str:
        """'(224 − 11 + 2·0)/4 + 1 = 54.25', with the dilated kernel spelled out when D > 1."""
        kernel = str(self.effective_kernel)
        if self.dilation > 1:
            kernel = f"({self.dilation}·({self.kernel}−1)+1)"
        return f"({self.size} − {kernel} + 2·{self.padding})/{self.stride} + 1 = {format_fraction(self.exact)}"

    def ceil_rounded(self) -> WindowAxis:
        return WindowAxis(self.axis, self.size, self.kernel, self.stride, self.padding, self.dilation, True)

    def floor_rounded(self) -> WindowAxis:
        return WindowAxis(self.axis, self.size, self.kernel, self.stride, self.padding, self.dilation, False)


@dataclass(frozen=True)
class Resize:
    """An output size that follows the input size along one axis by exact arithmetic, not by a floored division of
    windows: out = in·scale + offset (a transposed convolution: S·in + D·(K − 1) − 2P + output_padding + 1 − S;
    pixel shuffle: r·in; padding: in + before + after), floored where the product is not whole (up-sampling by a
    fractional factor), or a fixed size (up-sampling to a size, a crop to another input's size)."""

    axis: str
    size: int
    out: int
    kind: str  # transposed | scale | shuffle | unshuffle | pad | fixed
    scale: Fraction = Fraction(1)
    offset: int = 0
    product: Fraction | None = None  # scale: the product before flooring, as PyTorch computes it

    @property
    def exact(self) -> Fraction:
        """in·scale + offset before any rounding (a fixed size: the size itself)."""
        if self.product is not None:
            return self.product
        return Fraction(self.out) if self.kind == "fixed" else self.size * self.scale + self.offset

    @property
    def is_exact(self) -> bool:
        return self.exact.denominator == 1


AXIS_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}  # torch's names: [N, C, L], [N, C, H, W], [N, C, D, H, W]
AXIS_NOUNS = {"L": "samples", "D": "slices", "H": "rows", "W": "columns"}  # what one step along the axis is


def axis_names(count: int) -> tuple[str, ...]:
    return AXIS_NAMES[count]


def joined(names: list[str]) -> str:
    """'H', 'H and W', 'D, H and W'."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def merged_axes(windows: tuple[WindowAxis, ...] | list[WindowAxis]) -> list[WindowAxis]:
    """Axes that divide alike labelled together ('H and W', the square case), the others as they are, in order."""
    groups: list[list[WindowAxis]] = []
    for window in windows:
        for group in groups:
            if replace(group[0], axis="") == replace(window, axis=""):
                group.append(window)
                break
        else:
            groups.append([window])
    return [replace(group[0], axis=joined([w.axis for w in group])) if len(group) > 1 else group[0]
            for group in groups]
