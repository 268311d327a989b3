"""Number, shape and size formatting shared by every renderer."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

from convaudit.core.analysis import LayerResult
from convaudit.core.units import fixed, fmt_bytes, significant  # noqa: F401  (fmt_bytes: re-exported)
from convaudit.core.windows import format_fraction

INEXACT_MARK = "⚠"  # floor rounding dropped part of the input
CEIL_MARK = "↑"  # ceil rounding (deliberate, Caffe-style)


def fmt_int(value: int) -> str:
    return f"{value:,}"


def fmt_si(value: int | float, unit: str = "") -> str:
    """724406816 -> '724.4 M' (four significant figures; for reading, never for quoting)."""
    for factor, prefix in ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "k")):
        if abs(value) >= factor:
            if isinstance(value, int):  # exact: a float overflows past 10^308
                return f"{significant(Fraction(value, factor), 4)} {prefix}{unit}"
            return f"{value / factor:.4g} {prefix}{unit}"
    return f"{value if isinstance(value, int) else format(value, 'g')} {unit}".rstrip()


def fmt_shape(shape: Iterable[int]) -> str:
    return "×".join(str(d) for d in shape)


def csv_shape(shape: Iterable[int]) -> str:
    """'3x227x227': an ASCII 'x', which tools that read CSV take as text, never '×'."""
    return "x".join(str(d) for d in shape)


def fmt_share(part: int, whole: int) -> str:
    if not part or not whole:
        return ""
    return f"{fixed(Fraction(100 * part, whole), 1)}%"  # exact, as fmt_si


def rounding_note(layer: LayerResult) -> str:
    """'⚠ 54.25' for a floored inexact division, '↑ 55.5' for a ceil-rounded one, '' if exact."""
    inexact = [axis for axis in layer.windows if not axis.is_exact]
    if not inexact:
        return ""
    mark = CEIL_MARK if inexact[0].ceil else INEXACT_MARK
    values = sorted({format_fraction(axis.exact) for axis in inexact})
    return f"{mark} {'/'.join(values)}"


def time_unit(seconds: float) -> tuple[float, str]:
    """The scale and unit that suit a duration: (1e3, 'ms') for 0.0298."""
    if seconds >= 1:
        return 1.0, "s"
    if seconds >= 1e-3:
        return 1e3, "ms"
    return 1e6, "µs"


def fmt_time(seconds: float) -> str:
    """0.0298 -> '29.8 ms'; 4.51e-05 -> '45.1 µs'; 1.234 -> '1.23 s'."""
    scale, unit = time_unit(seconds)
    return f"{seconds * scale:.3g} {unit}"


def _figure(value: float) -> str:
    """Three significant figures, never in exponent form: 1.07, 23.2, 393, 3,930."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def fmt_spread(median: float, low: float, high: float) -> str:
    """'1.07 ms [1.05–1.21]': the spread in the median's unit."""
    scale, unit = time_unit(median)
    return f"{_figure(median * scale)} {unit} [{_figure(low * scale)}–{_figure(high * scale)}]"


def fmt_exact(value: Fraction | int) -> str:
    """Whole bytes with separators; a ring collective's fraction of a byte shown exactly: '13,333 1/3'."""
    value = Fraction(value)
    whole, rest = divmod(value.numerator, value.denominator)
    if not rest:
        return fmt_int(whole)
    return f"{fmt_int(whole)} {rest}/{value.denominator}" if whole else f"{rest}/{value.denominator}"


def json_number(value: Fraction | int) -> int | str:
    """JSON keeps exact numbers: an int, or 'p/q' when a ring collective leaves a fraction of a byte."""
    value = Fraction(value)
    return int(value) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
