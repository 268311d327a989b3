"""The records a plan is made of: per layer and device what is held, computed and received; per device the totals.

Every per-device value is a `Spread` (runs of equal values), so a plan over many devices stays as small as
its network. Counts are ints (elements, FLOPs), bytes that a ring collective moves are Fractions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from fractions import Fraction
from functools import cached_property

from convaudit.core import collectives
from convaudit.core.analysis import LayerResult, Report
from convaudit.core.plan.spread import Spread

CHANNEL_STRATEGIES = ("columns", "model")  # split each layer by channels
SHARDED_STRATEGIES = ("fsdp", "zero1", "zero2")  # data parallel, parameters' state split by dimension 0
STRATEGIES = CHANNEL_STRATEGIES + ("data",) + SHARDED_STRATEGIES
ALL = -1  # a channel every device holds

# The most devices a plan takes. Splitting the batch (data, fsdp, zero1, zero2) leaves a few kinds of device
# whatever N is, so the planner's work and its output do not grow with N: 65,536 (2^16) is above the largest
# data-parallel jobs run (tens of thousands of GPUs). Splitting channels (columns, model) gives each device its
# own share of every layer, so the records grow with N up to the layers' channel counts; past 256 devices most
# layers of a CNN have fewer channels than devices (AlexNet's conv1 96, ResNet-50's stem 64) and the devices
# sit idle, while the largest bundled network (DenseNet-121, 427 layers) plans in seconds at 256.
MAX_DEVICES = 65_536
MAX_CHANNEL_DEVICES = 256
# Up to one server's worth of devices, the renderers show each device; beyond, each run of identical devices.
SHOWN_ONE_BY_ONE = 8

CONVENTIONS = {
    "bytes": "bytes crossing between devices per training step, counted at the receiving device",
    "gather": "forward: the channels a device reads but does not hold; backward: their gradients, returned to "
              "the owner (none when no gradient flows there or the readers are replicated)",
    "all-reduce": collectives.FORMULAS["all-reduce"],
    "flops": "forward FLOPs = 2 × MACs of the device's share; backward as the analysis counts it (dW + dX)",
    "memory": "training memory per device = parameters + gradients + optimizer state of what it holds + every "
              "activation it holds (its outputs and the copies it received), at the dtype",
    "time": "estimated step time per device = (forward + backward FLOPs) / throughput + bytes / bandwidth, "
            "no overlap; the step waits for the busiest device",
}

SHARDED_CONVENTIONS = {
    "bytes": CONVENTIONS["bytes"],
    "all-gather": collectives.FORMULAS["all-gather"],
    "reduce-scatter": collectives.FORMULAS["reduce-scatter"],
    "sharding": "each parameter split along dimension 0 in torch.chunk sizes, as fully_shard does: chunk ⌈rows/N⌉ "
                "rows, device d holds rows d·chunk … (d+1)·chunk − 1 of them (the last devices fewer, or none); "
                "parameters and gradients are stored padded to chunk rows on every device, optimizer state is "
                "not; all-gathers and reduce-scatters move the padded N·chunk rows",
    "units": "fsdp: fully_shard on every layer with parameters, then the root; each unit is all-gathered before "
             "its forward, resharded after it, all-gathered again for its backward (when a gradient flows "
             "through it), and its gradients reduce-scattered",
    "zero": "zero1: optimizer state sharded; zero2: gradients too (reduce-scattered in backward); both keep "
            "whole parameters and all-gather the updated shards after the optimizer step",
    "flops": CONVENTIONS["flops"] + "; each device runs its share of the batch",
    "memory": "training memory per device = parameters (padded shards under fsdp) + gradients (padded shards "
              "under fsdp and zero2) + optimizer state of its shard + its batch share's activations + the "
              "largest transient unit, at the dtype",
    "transient": "fsdp: the largest unit's all-gathered parameters plus, for a trainable unit, its whole "
                 "gradients before the reduce-scatter; zero2: the largest unit's whole gradients; "
                 "the next unit prefetched meanwhile is not counted",
    "time": CONVENTIONS["time"],
}


@dataclass(frozen=True)
class Profile:
    name: str
    flops_per_s: float  # sustained FP32 throughput
    bytes_per_s: float  # between two devices, one direction
    memory: int
    description: str


PROFILES = {
    "gtx580": Profile("gtx580", 1.5811e12, 8e9, 3 * 2**30,
                      "GTX 580 (3 GB, as the paper's): 512 cores × 1544 MHz × 2 = 1.58 TFLOP/s FP32; "
                      "PCIe 2.0 x16, 8 GB/s each way"),
    "h100": Profile("h100", 67e12, 450e9, 80 * 2**30,
                    "H100 SXM: 67 TFLOP/s FP32 (no tensor cores); NVLink 4, 450 GB/s each way; 80 GiB"),
}


@dataclass(frozen=True)
class ReadSet:
    """The channels of one input that each device reads.

    all: every channel, on each of `readers` (None: on every device); held: the channels that `owners` puts on
    the device (and those every device holds); listed: the devices in `listed` read their channels, others none."""

    kind: str
    channels: int
    owners: tuple[int, ...] = ()
    listed: tuple[tuple[int, tuple[int, ...]], ...] = ()
    readers: tuple[int, ...] | None = None

    def of(self, device: int) -> tuple[int, ...]:
        if self.kind == "all":
            return tuple(range(self.channels)) if self.readers is None or device in self.readers else ()
        if self.kind == "held":
            return held_by(self.owners, device)
        return next((channels for d, channels in self.listed if d == device), ())


def held_by(owners: tuple[int, ...], device: int) -> tuple[int, ...]:
    return tuple(c for c, owner in enumerate(owners) if owner in (device, ALL))


@dataclass(frozen=True)
class Exchange:
    """One collective a layer runs. `moves` is the tensor that moves (a layer name, 'input', or NAME.grad)."""

    kind: str  # gather | all-reduce | all-gather | reduce-scatter
    phase: str  # forward | backward | step (after the optimizer step)
    moves: str
    received: Spread[Fraction]  # bytes into each device
    # gather only: the layout of the tensor that moves, and what each device reads of it
    owners: tuple[int, ...] = ()
    reads: ReadSet | None = None

    @cached_property
    def total(self) -> Fraction:
        return Fraction(self.received.total())

    def channels(self, device: int) -> tuple[int, ...]:
        """A gather: the channels `device` receives (global indices into `moves`), ascending."""
        assert self.reads is not None
        return tuple(c for c in self.reads.of(device) if self.owners[c] not in (device, ALL))


@dataclass(frozen=True)
class Share:
    """One layer's work and memory on one device. Elements unless named bytes."""

    params: int = 0  # parameters held at rest (under fsdp: the real elements of its shards)
    trainable_params: int = 0
    flops: int = 0
    backward_flops: int = 0
    other_ops: int = 0
    activations: int = 0  # output elements this device holds
    received_forward: Fraction = Fraction(0)
    received_backward: Fraction = Fraction(0)
    received_step: Fraction = Fraction(0)  # zero1/zero2: the updated parameters, after the optimizer step
    copies: Fraction = Fraction(0)  # bytes of received activations kept for backward
    padding: int = 0  # fsdp: zeros stored after the real rows of its parameter shards
    gradients: int = 0  # gradient elements kept (real)
    gradient_padding: int = 0
    optimizer_state: int = 0  # optimizer-state elements (momentum, Adam's two moments)
    transient: int = 0  # elements alive only while this layer's unit is whole (the all-gathered unit)

    @property
    def received(self) -> Fraction:
        return self.received_forward + self.received_backward + self.received_step


SUMMED = tuple(f.name for f in fields(Share) if f.name != "transient")
EMPTY_SHARE = Share()


@dataclass(frozen=True)
class ShardedParameter:
    """One parameter tensor under fsdp or zero: its shape and torch.chunk's rows per device along dimension 0."""

    shape: tuple[int, ...]
    trainable: bool
    chunk: int  # ⌈rows/N⌉: torch.chunk's chunk size, the padded rows every device stores
    rows: Spread[int]  # real rows on each device: min(chunk, rows − d·chunk), at least 0

    @property
    def row_elements(self) -> int:
        count = 1
        for size in self.shape[1:]:
            count *= size
        return count


@dataclass(frozen=True)
class LayerPlan:
    layer: LayerResult
    mode: str  # column | column+gather | row | follow | replicated | pinned:<d> | data | fsdp | zero1 | zero2
    owners: tuple[int, ...]  # device of each output channel (ALL: every device); data and sharded: ()
    reads: tuple[ReadSet, ...]  # per input, what each device reads of it; data and sharded: ()
    exchanges: tuple[Exchange, ...]
    shares: Spread[Share]
    batches: Spread[int]  # samples each device runs
    parameters: tuple[ShardedParameter, ...] = ()  # fsdp and zero: how each parameter tensor is chunked

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def communicates(self) -> bool:
        return any(exchange.total for exchange in self.exchanges)


@dataclass(frozen=True)
class DeviceTotals:
    """Totals of one device, or of `count` consecutive devices that hold the same share of every layer."""

    device: int  # the first device
    params: int
    trainable_params: int
    flops: int
    backward_flops: int
    other_ops: int
    activation_bytes: int  # outputs held plus copies received in the forward pass
    received_forward: Fraction
    received_backward: Fraction
    training_memory: int
    count: int = 1
    received_step: Fraction = Fraction(0)
    padding: int = 0
    gradients: int = 0
    gradient_padding: int = 0
    optimizer_state: int = 0
    transient: int = 0

    @property
    def last(self) -> int:
        return self.device + self.count - 1

    @property
    def work(self) -> int:
        return self.flops + self.backward_flops

    @property
    def received(self) -> Fraction:
        return self.received_forward + self.received_backward + self.received_step


@dataclass(frozen=True)
class Plan:
    report: Report
    strategy: str
    devices: int
    optimizer: str
    layers: tuple[LayerPlan, ...]
    notes: tuple[str, ...] = ()
    profile: Profile | None = None
    device_memory: int | None = None  # bytes each device has, when given
    pins: Mapping[str, int] = field(default_factory=dict)

    @property
    def dtype_bytes(self) -> int:
        return self.report.layers[0].dtype_bytes if self.report.layers else 4

    @property
    def sharded(self) -> bool:
        return self.strategy in SHARDED_STRATEGIES

    @property
    def conventions(self) -> dict[str, str]:
        return SHARDED_CONVENTIONS if self.sharded else CONVENTIONS

    @cached_property
    def device_classes(self) -> tuple[DeviceTotals, ...]:
        """Runs of consecutive devices holding the same share of every layer, with their totals: one sweep
        over the layers' runs (work grows with the runs, never with N)."""
        changes: dict[int, list[int | Fraction]] = {}
        for item in self.layers:
            previous = EMPTY_SHARE
            for first, _stop, share in item.shares.runs():
                delta = changes.setdefault(first, [0] * len(SUMMED))
                if share is not previous:
                    for i, name in enumerate(SUMMED):
                        now, before = getattr(share, name), getattr(previous, name)
                        if now != before:
                            delta[i] += now - before
                previous = share
        transient = max((item.shares.largest(lambda s: s.transient) for item in self.layers), default=0)
        starts = sorted(changes) + [self.devices]
        running: list[int | Fraction] = [0] * len(SUMMED)
        classes = []
        for first, stop in zip(starts, starts[1:], strict=False):
            running = [a + b for a, b in zip(running, changes[first], strict=True)]
            classes.append(self._totals(first, stop - first, dict(zip(SUMMED, running, strict=True)), transient))
        return tuple(classes)

    def _totals(self, device: int, count: int, sums: dict[str, int | Fraction], transient: int) -> DeviceTotals:
        size = self.dtype_bytes
        held = int(sums["activations"]) * size + int(sums["copies"])
        stored = (sums["params"] + sums["padding"] + sums["gradients"] + sums["gradient_padding"]
                  + sums["optimizer_state"] + transient)
        return DeviceTotals(
            device=device, count=count, params=int(sums["params"]), trainable_params=int(sums["trainable_params"]),
            flops=int(sums["flops"]), backward_flops=int(sums["backward_flops"]), other_ops=int(sums["other_ops"]),
            activation_bytes=held, received_forward=Fraction(sums["received_forward"]),
            received_backward=Fraction(sums["received_backward"]), received_step=Fraction(sums["received_step"]),
            training_memory=int(stored) * size + held, padding=int(sums["padding"]),
            gradients=int(sums["gradients"]), gradient_padding=int(sums["gradient_padding"]),
            optimizer_state=int(sums["optimizer_state"]), transient=transient)

    @property
    def per_device(self) -> tuple[DeviceTotals, ...]:
        """One record per device (N of them: for small N; renderers use `device_rows`)."""
        return tuple(replace(t, device=d, count=1) for t in self.device_classes for d in range(t.device, t.last + 1))

    def device_rows(self) -> tuple[DeviceTotals, ...]:
        """What a renderer shows: each device up to SHOWN_ONE_BY_ONE devices, else each run of identical ones."""
        return self.per_device if self.devices <= SHOWN_ONE_BY_ONE else self.device_classes

    @property
    def busiest(self) -> DeviceTotals:
        return max(self.device_classes, key=lambda t: (t.work, t.received))

    @property
    def all_work(self) -> int:
        return sum(t.count * t.work for t in self.device_classes)

    @property
    def busiest_share(self) -> Fraction:
        """The busiest device's share of all devices' forward + backward FLOPs (1/N when perfectly even)."""
        total = self.all_work
        return Fraction(self.busiest.work, total) if total else Fraction(0)

    @property
    def total_received(self) -> Fraction:
        return sum((t.count * t.received for t in self.device_classes), Fraction(0))

    @property
    def bytes_per_flop(self) -> Fraction:
        """Bytes crossing per FLOP computed, over all devices: communication as a fraction of computation."""
        work = self.all_work
        return self.total_received / work if work else Fraction(0)

    def step_time(self, flops_per_s: float, bytes_per_s: float) -> tuple[float, float, float]:
        """(compute, communication, step) seconds of the slowest device; estimates, no overlap."""
        worst = (0.0, 0.0, 0.0)
        for t in self.device_classes:
            compute, comm = t.work / flops_per_s, float(t.received) / bytes_per_s
            if compute + comm > worst[2]:
                worst = (compute, comm, compute + comm)
        return worst

    def fits(self, totals: DeviceTotals) -> bool | None:
        """Whether these devices' training memory fits in --device-memory (None when not given)."""
        return None if self.device_memory is None else totals.training_memory <= self.device_memory

    def all_fit(self) -> bool | None:
        if self.device_memory is None:
            return None
        return all(self.fits(t) for t in self.device_classes)
