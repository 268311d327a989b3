"""Byte sizes in IEC units and exact fixed-point text, for messages from any layer (the renderers re-export them).

No float on these paths: a count of 10^400 would overflow one ("integer division result too large for a
float"), so every rounding here is done on exact integers and Fractions.
"""

from __future__ import annotations

from fractions import Fraction

DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}  # element types the analysis counts memory in
OPTIMIZER_STATES = {"sgd": 0, "momentum": 1, "adam": 2}  # optimizer buffers per trainable parameter
AMP_DTYPES = ("fp16", "bf16")  # torch.autocast's half dtypes (--amp)


def fixed(value: Fraction | int, places: int) -> str:
    """`value` rounded to `places` decimals, exactly (half to even, as Python's float formatting): 54.25 -> '54.2'."""
    scaled = round(Fraction(value) * 10**places)
    sign = "-" if scaled < 0 else ""
    whole, part = divmod(abs(scaled), 10**places)
    return f"{sign}{whole}.{part:0{places}d}" if places else f"{sign}{whole}"


def significant(value: Fraction | int, figures: int) -> str:
    """Like format(value, f'.{figures}g') for 1 ≤ |value|, exactly and never in exponent form: 724.4068 -> '724.4';
    values of more digits than `figures` are rounded to a whole number: 50000.3 -> '50000'."""
    value = Fraction(value)
    digits = len(str(int(abs(value)))) if abs(value) >= 1 else 1
    text = fixed(value, max(0, figures - digits))
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def fmt_bytes(value: int) -> str:
    """IEC units: 243860896 -> '232.6 MiB'."""
    units = ((2**60, "EiB"), (2**50, "PiB"), (2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))
    for factor, unit in units:
        if value >= factor:
            return f"{fixed(Fraction(value, factor), 1)} {unit}"
    return f"{value} B"
