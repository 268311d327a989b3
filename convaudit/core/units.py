"""Byte sizes in IEC units, for messages from any layer (the renderers re-export it)."""

from __future__ import annotations


def fmt_bytes(value: int) -> str:
    """IEC units: 243860896 -> '232.6 MiB'."""
    for factor, unit in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if value >= factor:
            return f"{value / factor:.1f} {unit}"
    return f"{value} B"
