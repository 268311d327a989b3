"""Two parallelism plans side by side (`diff --strategy/--devices`): layer by layer and in total (pure, exact).

The plans may differ in strategy, device count, network or input; layers are aligned as `diff` aligns them
(by name, by position where names differ). Per layer each side shows three numbers:

  params  the most parameters any one device holds for this layer (what limits memory);
  flops   the most forward FLOPs any one device runs for this layer (what limits the step);
  bytes   the bytes crossing between devices for this layer in one training step, forward and backward,
          counted at the receivers and summed over all devices (the rows add up to the plan's total).

The per-device tuples stay in the records (and in JSON), so nothing is lost by showing the largest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from convaudit.core.analysis import Report
from convaudit.core.diff import align
from convaudit.core.plan import LayerPlan, Plan, plan

LAYER_METRICS = ("mode", "params", "flops", "bytes")
TOTAL_METRICS = ("params", "flops", "work", "busiest_share", "bytes", "bytes_per_flop", "memory", "fits")

CONVENTIONS = {
    "params": "per layer, the most parameters on any one device; in total, the device holding the most",
    "flops": "forward FLOPs (2 × MACs); per layer, the most on any one device; in total, the device running "
             "the most",
    "work": "forward + backward FLOPs of the busiest device",
    "busiest_share": "the busiest device's share of all devices' forward + backward FLOPs (1/N when even)",
    "bytes": "bytes crossing between devices per training step (forward and backward), counted at the "
             "receiving device, summed over all devices",
    "bytes_per_flop": "bytes crossing per FLOP computed (forward + backward), over all devices",
    "memory": "training memory of the device needing the most (parameters, gradients, optimizer state, "
              "activations)",
}


@dataclass(frozen=True)
class LayerSide:
    """One layer under one plan: per-device numbers and the values a row shows."""

    item: LayerPlan

    @property
    def params(self) -> tuple[int, ...]:
        """Per device (N values: for small N)."""
        return tuple(s.params for s in self.item.shares)

    @property
    def flops(self) -> tuple[int, ...]:
        return tuple(s.flops for s in self.item.shares)

    @property
    def received(self) -> tuple[Fraction, ...]:
        return tuple(s.received for s in self.item.shares)

    def value(self, metric: str) -> str | int | Fraction:
        shares = self.item.shares  # runs of identical devices: the work grows with the runs, not with N
        if metric == "mode":
            return self.item.mode
        if metric == "params":
            return shares.largest(lambda s: s.params)
        if metric == "flops":
            return shares.largest(lambda s: s.flops)
        if metric == "bytes":
            return Fraction(shares.total(lambda s: s.received))
        raise KeyError(metric)


@dataclass(frozen=True)
class PlanPair:
    """One row: a layer of plan A, of plan B, or of both."""

    left: LayerSide | None
    right: LayerSide | None

    @property
    def name(self) -> str:
        left, right = self.left, self.right
        if left and right and left.item.name != right.item.name:
            return f"{left.item.name} / {right.item.name}"
        return (left or right).item.name  # type: ignore[union-attr]

    @property
    def status(self) -> str:
        if self.left is None:
            return "added"
        if self.right is None:
            return "removed"
        # a different split alone (column vs data) is shown, but only a different number changes the row
        return "changed" if set(self.changes) - {"mode"} else "same"

    @property
    def changes(self) -> tuple[str, ...]:
        if self.left is None or self.right is None:
            return ()
        return tuple(m for m in LAYER_METRICS if self.left.value(m) != self.right.value(m))


@dataclass(frozen=True)
class PlanTotals:
    """A plan's headline numbers, as the comparison shows them."""

    strategy: str
    devices: int
    params: int  # the most parameters on one device
    flops: int  # the most forward FLOPs on one device
    work: int  # forward + backward FLOPs of the busiest device
    busiest_share: Fraction
    bytes: Fraction  # crossing per step, all devices
    bytes_per_flop: Fraction
    memory: int  # the most training memory on one device
    fits: bool | None  # every device's share fits in --device-memory; None when not given


def totals(plan: Plan) -> PlanTotals:
    classes = plan.device_classes
    return PlanTotals(
        strategy=plan.strategy, devices=plan.devices,
        params=max(t.params for t in classes), flops=max(t.flops for t in classes),
        work=plan.busiest.work, busiest_share=plan.busiest_share, bytes=plan.total_received,
        bytes_per_flop=plan.bytes_per_flop, memory=max(t.training_memory for t in classes), fits=plan.all_fit())


@dataclass(frozen=True)
class PlanDiff:
    left: Plan
    right: Plan
    pairs: tuple[PlanPair, ...]

    @property
    def left_totals(self) -> PlanTotals:
        return totals(self.left)

    @property
    def right_totals(self) -> PlanTotals:
        return totals(self.right)

    @property
    def total_changes(self) -> tuple[str, ...]:
        a, b = self.left_totals, self.right_totals
        return tuple(m for m in TOTAL_METRICS if getattr(a, m) != getattr(b, m))


def compare_plans(reports: Sequence[Report], strategies: tuple[str, str], device_counts: tuple[int, int],
                  optimizer: str, device_memory: int | None) -> PlanDiff:
    """Plan each side's report (its own placement pins) with its strategy and device count, and compare."""
    left, right = (plan(report, strategy, devices, optimizer, report.spec.placement, None, device_memory,
                        report.spec.placement_where)
                   for report, strategy, devices in zip(reports, strategies, device_counts, strict=True))
    return compare(left, right)


def compare(left: Plan, right: Plan) -> PlanDiff:
    """Align the two plans' layers (as `diff` aligns two reports) and pair their per-layer plans."""
    ours = {id(item.layer): item for item in left.layers}  # the two plans may share one report
    theirs = {id(item.layer): item for item in right.layers}
    pairs = []
    for pair in align(left.report, right.report):
        a = LayerSide(ours[id(pair.left)]) if pair.left is not None else None
        b = LayerSide(theirs[id(pair.right)]) if pair.right is not None else None
        pairs.append(PlanPair(a, b))
    return PlanDiff(left, right, tuple(pairs))
