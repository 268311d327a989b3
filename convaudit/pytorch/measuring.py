"""What one process of a distributed run measures, shared by the channel, data and fsdp runs. Imports torch."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import torch

from convaudit.pytorch.runtime import synchronize

UNPLANNED = "(unplanned)"  # bytes of collectives no layer of the plan runs


@dataclass(frozen=True)
class Step:
    """One timed step: bytes received per (layer, phase), seconds inside collectives per layer, the step."""

    bytes: dict[tuple[str, str], Fraction]
    comm_s: dict[str, float] | None  # None: the collectives run inside FSDP, asynchronously, and are not timed
    step_s: float


@dataclass(frozen=True)
class Measured:
    """One process's measurements: elements per layer, and its timed steps."""

    params: dict[str, int]
    steps: list[Step]
    gradients: dict[str, int] | None = None  # fsdp: real gradient elements per layer
    optimizer_state: dict[str, int] | None = None  # fsdp: optimizer-state elements per layer
    device: str = ""


class Meter:
    """Bytes received and seconds spent in collectives, per layer and phase, for the current step."""

    def __init__(self, device: torch.device):
        self.device = device
        self.bytes: dict[tuple[str, str], Fraction] = {}
        self.seconds: dict[str, float] = {}

    def reset(self) -> None:
        self.bytes, self.seconds = {}, {}

    @contextlib.contextmanager
    def timed(self, layer: str) -> Iterator[None]:
        synchronize(self.device)
        began = time.perf_counter()
        yield
        synchronize(self.device)
        self.seconds[layer] = self.seconds.get(layer, 0.0) + time.perf_counter() - began

    def add(self, layer: str, phase: str, nbytes: Fraction) -> None:
        self.bytes[(layer, phase)] = self.bytes.get((layer, phase), Fraction(0)) + nbytes

    def step(self, seconds: float) -> Step:
        return Step(dict(self.bytes), dict(self.seconds), seconds)
