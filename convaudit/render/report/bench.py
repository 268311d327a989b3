"""`report --bench FILE`: the timings of `convaudit bench --format json`, read with limits and checked.

The file is read up to MAX_BENCH_BYTES (and one byte more, to know it is larger: `/dev/zero` is refused, not
read until memory runs out). NaN and Infinity are refused (they are not JSON, and would make the page's JSON
invalid), and so is any median that is not a duration between 0 and MAX_SECONDS. Anything wrong is one line.
"""

from __future__ import annotations

import json
import math
from typing import Any

from convaudit.errors import SpecError, printable

MAX_BENCH_BYTES = 32 * 2**20  # `bench --format json` writes about 1.2 KB a layer: 20,000 layers fit
MAX_SECONDS = 10**6  # a layer's median: more than 11 days is not a measurement
TEXT_KEYS = ("spec", "device", "dtype")
COUNT_KEYS = ("batch", "repeats")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def load_bench(path: str) -> dict[str, Any]:
    shown = printable(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BENCH_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"--bench: cannot read {shown}: {exc.strerror}") from None
    if len(raw) > MAX_BENCH_BYTES:
        raise SpecError(f"--bench: {shown} is larger than {MAX_BENCH_BYTES // 2**20} MiB; "
                        "not a file `convaudit bench --format json` writes")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise SpecError(f"--bench: {shown} is not JSON (not UTF-8 text)") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError; so are 5,000-digit ints
        reason = str(exc) if not isinstance(exc, RecursionError) else "nested too deeply"
        raise SpecError(f"--bench: {shown} is not JSON ({printable(reason)})") from None


def bench_timings(bench: Any) -> dict[str, Any]:
    """What the report shows: per-layer forward and backward medians, as [name, forward, backward] rows (a
    list, not an object keyed by user text), and the setting they were measured in."""
    if not isinstance(bench, dict) or not isinstance(bench.get("layers"), list):
        raise SpecError("--bench: not the JSON of `convaudit bench --format json` (no 'layers' list)")
    rows = []
    for row in bench["layers"]:
        if not isinstance(row, dict) or not isinstance(row.get("name"), str):
            raise SpecError("--bench: every entry of 'layers' needs a 'name'")
        rows.append([row["name"], _median(row, "forward"), _median(row, "backward")])
    setting: dict[str, Any] = {}
    for key in TEXT_KEYS:
        value = bench.get(key)
        if value is not None and not isinstance(value, str):
            raise SpecError(f"--bench: '{key}' is not text")
        setting[key] = value
    for key in COUNT_KEYS:
        value = bench.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**53):
            raise SpecError(f"--bench: '{key}' is not a count")
        setting[key] = value
    return {"layers": rows, **setting}


def _median(row: dict[str, Any], phase: str) -> float | None:
    timing = row.get(phase)
    if timing is None:
        return None
    median = timing.get("median_s") if isinstance(timing, dict) else None
    if (not isinstance(median, (int, float)) or isinstance(median, bool) or not math.isfinite(median)
            or not 0 <= median <= MAX_SECONDS):
        raise SpecError(f"--bench: layer '{printable(row['name'])}': {phase}.median_s is not a duration "
                        f"(seconds from 0 to {MAX_SECONDS:,})")
    return float(median)
