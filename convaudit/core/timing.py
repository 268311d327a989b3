"""Repeated timing samples and their statistics (pure: no torch)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """Repeated wall-clock samples of one step, in seconds."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def minimum(self) -> float:
        return min(self.samples)

    @property
    def maximum(self) -> float:
        return max(self.samples)

    @property
    def quartiles(self) -> tuple[float, float]:
        if len(self.samples) < 2:
            return self.samples[0], self.samples[0]
        q1, _, q3 = statistics.quantiles(self.samples, n=4, method="inclusive")
        return q1, q3

    def as_dict(self) -> dict[str, float | int]:
        q1, q3 = self.quartiles
        return {"median_s": self.median, "min_s": self.minimum, "max_s": self.maximum, "q1_s": q1, "q3_s": q3,
                "repeats": len(self.samples)}
