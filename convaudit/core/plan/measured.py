"""A distributed run beside its plan (`bench --devices`): what each process measured and what the plan says.

Torch-free records, so the renderers read them without torch; pytorch/distributed.py fills them. Bytes are
exact Fractions (a ring over 3 processes moves thirds of a byte), elements ints.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class MeasuredShare:
    """One layer on one process: planned and measured bytes received, elements held, time in collectives."""

    device: int
    planned_forward_bytes: Fraction
    measured_forward_bytes: Fraction
    planned_backward_bytes: Fraction
    measured_backward_bytes: Fraction
    planned_params: int
    measured_params: int
    comm_s: float | None  # median seconds in this layer's collectives per step; None: not timed (fsdp)
    same_every_step: bool  # the measured bytes were the same in every timed step
    # fsdp: the real elements of this process's gradient shards and optimizer state (None: not sharded)
    planned_gradients: int | None = None
    measured_gradients: int | None = None
    planned_optimizer_state: int | None = None
    measured_optimizer_state: int | None = None

    @property
    def bytes_match(self) -> bool:
        return (self.planned_forward_bytes == self.measured_forward_bytes
                and self.planned_backward_bytes == self.measured_backward_bytes)

    @property
    def params_match(self) -> bool:
        return self.planned_params == self.measured_params

    @property
    def state_match(self) -> bool:
        return (self.planned_gradients == self.measured_gradients
                and self.planned_optimizer_state == self.measured_optimizer_state)

    @property
    def moves_bytes(self) -> bool:
        return any((self.planned_forward_bytes, self.planned_backward_bytes, self.measured_forward_bytes,
                    self.measured_backward_bytes))


@dataclass(frozen=True)
class MeasuredLayer:
    name: str
    mode: str
    devices: tuple[MeasuredShare, ...]


@dataclass(frozen=True)
class DistributedRun:
    """`bench --devices N`: every layer on every process, and how the run went."""

    spec: str
    input: tuple[int, ...]
    batch: int
    dtype: str
    strategy: str
    devices: int
    backend: str  # gloo | nccl
    device: str  # the hardware each process ran on
    warmup: int
    repeats: int
    torch: str
    step_s: float | None  # median step over the processes' medians
    layers: tuple[MeasuredLayer, ...]
    optimizer: str | None = None  # fsdp: the optimizer whose state was measured

    def _every(self, check: str) -> bool:
        return all(getattr(share, check) for layer in self.layers for share in layer.devices)

    @property
    def bytes_match(self) -> bool:
        return self._every("bytes_match")

    @property
    def params_match(self) -> bool:
        return self._every("params_match")

    @property
    def state_match(self) -> bool:
        """Gradient and optimizer-state elements (fsdp; trivially true for the other strategies)."""
        return self._every("state_match")

    @property
    def matches(self) -> bool:
        """Measured equals planned everywhere: the run's exit status is 0."""
        return self.bytes_match and self.params_match and self.state_match
