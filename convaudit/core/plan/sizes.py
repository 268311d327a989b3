"""Options of `split` and `diff` that are numbers with units: --device-memory sizes, --throughput and --bandwidth."""

from __future__ import annotations

import re
from fractions import Fraction

from convaudit.core.fields import MAX_MAGNITUDE, MAX_NUMBER_TEXT
from convaudit.core.plan.records import Profile
from convaudit.errors import ConvauditError, printable

SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
              "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?i?[bB]?)\s*")


def parse_size(text: str) -> int:
    """'3GiB' -> 3221225472, '1.5 GB' -> 1500000000, '4096' -> 4096: exact, whole bytes (rounded down).

    At most MAX_NUMBER_TEXT characters and 2^63 bytes, as every number convaudit reads."""
    if len(text) > MAX_NUMBER_TEXT:
        raise ConvauditError(f"--device-memory: a size is at most {MAX_NUMBER_TEXT} characters, got one of "
                             f"{len(text):,}")
    match = SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if unit and not unit.endswith("b"):
        unit += "b"  # 3G, 3Gi: bytes understood
    if not match or unit not in SIZE_UNITS:
        raise ConvauditError(f"--device-memory: expected a size such as 3GiB, 1.5GB or 4096, got "
                             f"'{printable(text)}'")
    size = int(Fraction(match.group(1)) * SIZE_UNITS[unit])
    if size < 1:
        raise ConvauditError(f"--device-memory: a size must be at least one byte, got '{printable(text)}'")
    if size > MAX_MAGNITUDE:
        raise ConvauditError(f"--device-memory: at most 2^63 bytes, got '{printable(text)}'")
    return size


def with_rates(profile: Profile | None, tflops: float | None, gbps: float | None) -> Profile | None:
    """A profile with --throughput (TFLOP/s) and --bandwidth (GB/s) given by hand; both needed without one."""
    if tflops is None and gbps is None:
        return profile
    if profile is None and (tflops is None or gbps is None):
        raise ConvauditError("a time estimate needs --throughput and --bandwidth, or a --profile such as gtx580")
    base = profile or Profile("given", 0.0, 0.0, 0, "")
    flops = tflops * 1e12 if tflops is not None else base.flops_per_s
    rate = gbps * 1e9 if gbps is not None else base.bytes_per_s
    text = f"{flops / 1e12:g} TFLOP/s, {rate / 1e9:g} GB/s" + (f" (from {base.name})" if profile else "")
    return Profile(base.name if profile else "given", flops, rate, base.memory, text)
