"""`fit`: the largest batch that trains within a device's memory, for each way of training, solved exactly.

A device holds its state, fixed whatever the batch (parameters, gradients and optimizer state, sharded or whole
as the strategy keeps them, plus fsdp's transient all-gathered unit: core/plan's per-device records), and the
activations its share of the batch saves (core/memory.py, under --amp and --checkpoint as asked), plus, with
checkpointing, the largest segment remade in the backward. The activations are affine in the batch from two
samples on (every saved tensor scales with it but a few fixed ones: batchnorm's statistics, the half copies of
the weights), so the largest per-device batch is solved from two evaluations, then confirmed by the exact model:
it fits, one more does not. With N devices the batch is split as the planner splits it (⌊B/N⌋ each, the first
B mod N devices one more), and the largest global batch is searched between p·N and p·N + N − 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from convaudit.core.analysis import Report, analyze
from convaudit.core.checkpoint import default_segments
from convaudit.core.memory import AMP_DTYPES, Memory, autocast_rule, training_memory
from convaudit.core.model import NetworkSpec
from convaudit.core.plan import plan
from convaudit.errors import ConvauditError

BATCH_STRATEGIES = ("data", "fsdp", "zero1", "zero2")
SINGLE = "single"
MAX_BATCH = 2**40  # beyond any memory: the search stops here


@dataclass(frozen=True)
class DeviceState:
    """The batch-independent bytes of a run of identical devices, from `device` on."""

    device: int
    count: int
    params: int
    gradients: int
    optimizer_state: int
    padding: int  # fsdp and zero2: the zero rows stored after uneven shards (parameters and gradients)
    transient: int  # fsdp: the largest all-gathered unit; zero2: the gradients' unit before reduce-scatter

    @property
    def total(self) -> int:
        return self.params + self.gradients + self.optimizer_state + self.padding + self.transient


@dataclass(frozen=True)
class Answer:
    strategy: str  # single, data, fsdp, zero1, zero2
    amp: str | None
    checkpoint: str | None
    batch: int  # the largest global batch that fits; 0 when none does
    memory: int  # the fullest device's bytes at `batch` (at batch 1 when none fits)
    next_memory: int  # the fullest device's bytes at batch + 1: over the limit
    state: DeviceState  # the fullest device's state at `batch`
    breakdown: Memory  # the activations of that device's share of the batch


@dataclass(frozen=True)
class Fit:
    name: str
    input: tuple[int, ...]
    device_memory: int
    devices: int
    optimizer: str
    amp_dtype: str
    answers: tuple[Answer, ...]
    notes: tuple[str, ...] = ()

    @property
    def best(self) -> Answer:
        """The largest batch; among equals, the first listed (the simplest way of training)."""
        return max(self.answers, key=lambda answer: answer.batch)


def device_states(spec: NetworkSpec, strategy: str, devices: int, optimizer: str) -> tuple[DeviceState, ...]:
    """Each run of identical devices' state in bytes: the planner's records, or one whole model on one device."""
    report = analyze(spec, batch=devices)
    if strategy == SINGLE:
        memory = training_memory(report, optimizer)
        return (DeviceState(0, 1, memory.params, memory.gradients, memory.optimizer_state, 0, 0),)
    planned = plan(report, strategy, devices, optimizer)
    size = planned.dtype_bytes
    return tuple(DeviceState(c.device, c.count, c.params * size, c.gradients * size, c.optimizer_state * size,
                             (c.padding + c.gradient_padding) * size, c.transient * size)
                 for c in planned.device_classes)


def share(batch: int, devices: int, device: int) -> int:
    """Samples device `device` runs of a global batch: ⌊B/N⌋, one more for the first B mod N devices."""
    return batch // devices + (1 if device < batch % devices else 0)


def fit(spec: NetworkSpec, device_memory: int, devices: int = 1, optimizer: str = "adam", amp_dtype: str = "bf16",
        checkpoint: str | None = None) -> Fit:
    """The largest batch under every combination of strategy, autocast (none, `amp_dtype`) and checkpointing
    (off, on: `checkpoint`, else the spec's blocks or every ⌈√L⌉ layers)."""
    if amp_dtype not in AMP_DTYPES:
        raise ConvauditError(f"--amp takes {' or '.join(AMP_DTYPES)}, got '{amp_dtype}'")
    if device_memory <= 0:
        raise ConvauditError("--device-memory must be more than 0 bytes")
    on = checkpoint or default_segments(analyze(spec, batch=1))
    strategies = (SINGLE,) if devices == 1 else BATCH_STRATEGIES

    @cache
    def activations(amp: str | None, segments: str | None, batch: int) -> Memory:
        return training_memory(analyze(spec, batch=batch), optimizer, amp=amp, checkpoint=segments)

    answers = []
    for strategy in strategies:
        states = device_states(spec, strategy, devices, optimizer)
        for amp in (None, amp_dtype):
            for segments in (None, on):
                answers.append(_solve(states, devices, device_memory, strategy, amp, segments,
                                      lambda n, amp=amp, segments=segments: activations(amp, segments, n)))
    notes = (f"checkpoint on: {on}",) + cuda_differences(analyze(spec, batch=1))
    return Fit(spec.label, tuple(spec.input), device_memory, devices, optimizer, amp_dtype, tuple(answers), notes)


def cuda_differences(report: Report) -> tuple[str, ...]:
    """A note naming the layer types whose dtype under autocast differs on CUDA (its op lists), if any."""
    differ = sorted({layer.type for layer in report.layers
                     if autocast_rule(layer, cuda=True) != autocast_rule(layer, cuda=False)})
    if not differ:
        return ()
    return (f"autocast follows the CPU's op lists here; CUDA's differ for {', '.join(differ)} (layernorm, "
            "groupnorm and softmax run in fp32 there; 3-D pooling and reflect or replicate padding at their "
            "input's dtype)",)


def held(memory: Memory) -> int:
    """The activation bytes a device holds at its peak: what is saved, and the largest segment remade."""
    return memory.saved_activations + memory.recompute_peak


def _solve(states: tuple[DeviceState, ...], devices: int, limit: int, strategy: str, amp: str | None,
           segments: str | None, activations: Callable[[int], Memory]) -> Answer:
    heaviest = max(state.total for state in states)

    def per_device(n: int) -> int:
        return heaviest + held(activations(n))

    def usage(batch: int) -> tuple[int, DeviceState, Memory]:
        """The fullest device at a global batch: (bytes, its state, its activations)."""
        worst = None
        for state in states:
            memory = activations(max(share(batch, devices, state.device), 1))
            total = state.total + held(memory)
            if worst is None or total > worst[0]:
                worst = (total, state, memory)
        assert worst is not None
        return worst

    p = _largest(per_device, limit)
    if p == 0:
        total, state, memory = usage(devices)
        return Answer(strategy, amp, segments, 0, total, total, state, memory)
    # every device at p fits; one more sample on the first devices may still fit where their state is lighter
    low, high = p * devices, p * devices + devices - 1
    while low < high:
        middle = (low + high + 1) // 2
        if usage(middle)[0] <= limit:
            low = middle
        else:
            high = middle - 1
    total, state, memory = usage(low)
    return Answer(strategy, amp, segments, low, total, usage(low + 1)[0], state, memory)


def _largest(need: Callable[[int], int], limit: int) -> int:
    """The largest n ≥ 1 with need(n) ≤ limit (need never falls as n grows), 0 when none: solved from the affine
    model through n = 2 and 3, confirmed exactly (n fits, n + 1 does not), else found by doubling and bisection."""
    if need(1) > limit:
        return 0
    if need(2) > limit:
        return 1
    slope = need(3) - need(2)
    if slope > 0:
        guess = 2 + (limit - need(2)) // slope
        if need(guess) <= limit < need(guess + 1):
            return guess
    low, high = 2, 4
    while need(high) <= limit:
        low, high = high, high * 2
        if high > MAX_BATCH:
            raise ConvauditError("fit: the batch grows without bound (nothing scales with it)")
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if need(middle) <= limit else (low, middle)
    return low
