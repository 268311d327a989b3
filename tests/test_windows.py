"""The shape rule against brute-force enumeration of window positions."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from convaudit.core.windows import WindowAxis, format_fraction


def enumerate_windows(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil: bool) -> int:
    """Count window positions by walking them, without the closed form.

    Windows start at 0, S, 2S, … in padded coordinates and span D·(K−1)+1 positions.
    Floor mode keeps a window while it ends inside the padded input. Ceil mode keeps
    a window while it overhangs the padded input by less than one stride (the
    windows needed to reach its end) and starts inside the input or the left
    padding (PyTorch's rule).
    """
    span = dilation * (kernel - 1) + 1
    padded = size + 2 * padding
    count, start = 0, 0
    while True:
        end = start + span
        keep = (end < padded + stride and start < size + padding) if ceil else end <= padded
        if not keep:
            return count
        count += 1
        start += stride


@st.composite
def axes(draw: st.DrawFn) -> dict:
    """Any conv axis (floor, any padding), or a pool axis PyTorch accepts (ceil allowed, P ≤ ⌊K/2⌋)."""
    kernel = draw(st.integers(1, 12))
    ceil = draw(st.booleans())
    return dict(
        size=draw(st.integers(1, 80)),
        kernel=kernel,
        stride=draw(st.integers(1, 6)),
        padding=draw(st.integers(0, kernel // 2 if ceil else 6)),
        dilation=draw(st.integers(1, 4)),
        ceil=ceil,
    )


@settings(max_examples=2000, deadline=None)
@given(axes())
def test_output_size_matches_enumeration(params: dict) -> None:
    axis = WindowAxis("H", **params)
    windows = enumerate_windows(**params)
    assert axis.fits == (windows > 0)
    if axis.fits:
        assert axis.out == windows


@settings(max_examples=500, deadline=None)
@given(axes())
def test_exactness_means_floor_and_ceil_agree(params: dict) -> None:
    axis = WindowAxis("H", **params)
    pool_legal = axis.padding <= axis.kernel // 2  # ceil rounding exists only for pools
    if axis.fits and axis.is_exact and pool_legal:
        assert axis.floor_rounded().out == axis.ceil_rounded().out == axis.exact


def test_alexnet_conv1_at_224() -> None:
    # (224 − 11 + 2·0)/4 + 1 = 213/4 + 1 = 54.25
    axis = WindowAxis("H", 224, 11, 4, 0)
    assert axis.exact == Fraction(217, 4)
    assert axis.out == 54
    # The last window starts at 53·4 = 212 and covers rows 212..222: row 223 is never read.
    assert axis.unseen == 1
    # Rounding up instead gives 55 windows; the last covers 216..226, 3 rows past the edge.
    assert axis.ceil_rounded().out == 55
    assert axis.ceil_rounded().overhang == 3
    assert axis.formula() == "(224 − 11 + 2·0)/4 + 1 = 54.25"


def test_alexnet_conv1_at_227_is_exact() -> None:
    axis = WindowAxis("H", 227, 11, 4, 0)
    assert axis.is_exact and axis.out == (227 - 11) // 4 + 1 == 55


def test_dilated_formula_spells_out_the_effective_kernel() -> None:
    # K' = 2·(3 − 1) + 1 = 5; (28 − 5 + 2·0)/1 + 1 = 24
    axis = WindowAxis("W", 28, 3, 1, 0, dilation=2)
    assert axis.effective_kernel == 5
    assert axis.out == 24
    assert axis.formula() == "(28 − (2·(3−1)+1) + 2·0)/1 + 1 = 24"


def test_ceil_drops_a_window_that_would_start_in_the_right_padding() -> None:
    # size 5, K 2, S 2, P 1: (5 − 2 + 2)/2 + 1 = 3.5 → ceil 4, but window 4 starts at
    # 3·2 = 6 ≥ 5 + 1 (inside the right padding), so PyTorch keeps 3.
    axis = WindowAxis("H", 5, 2, 2, 1, ceil=True)
    assert axis.out == 3


def test_format_fraction() -> None:
    assert format_fraction(Fraction(217, 4)) == "54.25"
    assert format_fraction(Fraction(55)) == "55"
    assert format_fraction(Fraction(1, 8)) == "0.125"
    assert format_fraction(Fraction(163, 3)) == "163/3 (54.333…)"


def test_ceil_keeps_a_window_larger_than_the_input_when_it_overhangs_by_less_than_a_stride() -> None:
    # PyTorch: MaxPool2d(3, 2, ceil_mode=True) on 2×2 gives 1×1: ceil((2 − 3)/2) + 1 = 0 + 1.
    assert WindowAxis("H", 2, 3, 2, 0, ceil=True).out == 1
    assert not WindowAxis("H", 2, 3, 2, 0, ceil=False).fits
