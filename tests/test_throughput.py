"""Timing statistics and the roofline arithmetic (pure: no torch)."""

from __future__ import annotations

import pytest

from convaudit.core.analysis import analyze
from convaudit.core.throughput import Ceiling, achieved, attainable, bound, bytes_moved, intensity
from convaudit.core.timing import Timing
from convaudit.render.formatting import fmt_spread, fmt_time
from convaudit.spec.library import load


def test_timing_statistics() -> None:
    timing = Timing((0.004, 0.001, 0.003, 0.002, 0.005))
    assert timing.median == 0.003
    assert (timing.minimum, timing.maximum) == (0.001, 0.005)
    assert timing.quartiles == pytest.approx((0.002, 0.004))  # inclusive quartiles of 1..5 ms
    assert Timing((0.5,)).quartiles == (0.5, 0.5)
    assert timing.as_dict()["repeats"] == 5


def test_time_formatting() -> None:
    assert fmt_time(0.0298) == "29.8 ms" and fmt_time(4.51e-5) == "45.1 µs" and fmt_time(1.234) == "1.23 s"
    assert fmt_spread(0.00107, 0.00105, 0.00121) == "1.07 ms [1.05–1.21]"
    assert fmt_spread(27.2e-6, 23.2e-6, 3.93e-3) == "27.2 µs [23.2–3,930]"


def test_bytes_moved_and_intensity() -> None:
    conv1 = analyze(load("alexnet")).layer("conv1")
    # input 3·227·227, weights+biases 34,944, output 96·55·55, fp32
    moved = (3 * 227 * 227 + 34944 + 96 * 55 * 55) * 4
    assert bytes_moved(conv1) == moved
    assert intensity(conv1) == pytest.approx(2 * 105_415_200 / moved)


def test_roofline_verdicts() -> None:
    report = analyze(load("alexnet"), batch=1)
    ceiling = Ceiling(flops_per_s=100e12, bytes_per_s=2e12, source="given")  # ridge 50 FLOP/B
    assert ceiling.ridge == 50
    conv2, fc6 = report.layer("conv2"), report.layer("fc6")
    assert intensity(conv2) > 50 and bound(conv2, ceiling) == "compute"
    # fc6 at batch 1 reads each of its 37.7 M weights once for 2 FLOPs: about 0.5 FLOP/B
    assert intensity(fc6) == pytest.approx(0.5, abs=0.01) and bound(fc6, ceiling) == "memory"
    assert attainable(fc6, ceiling) == pytest.approx(intensity(fc6) * 2e12)
    assert attainable(conv2, ceiling) == 100e12
    assert bound(conv2, None) == "" and achieved(0, 1.0) is None and achieved(10, 2.0) == 5.0
