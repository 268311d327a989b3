"""`plan()`: check the request, run the strategy's planner over the layers, and collect its notes."""

from __future__ import annotations

from collections.abc import Mapping

from convaudit.core.analysis import Report, not_counted
from convaudit.core.layers import REGISTRY
from convaudit.core.plan.channels import ChannelPlanner
from convaudit.core.plan.records import (
    CHANNEL_STRATEGIES,
    MAX_CHANNEL_DEVICES,
    MAX_DEVICES,
    STRATEGIES,
    Plan,
    Profile,
)
from convaudit.core.plan.sharding import ShardedPlanner
from convaudit.core.units import OPTIMIZER_STATES
from convaudit.errors import ConvauditError, Where


def check_devices(devices: int, strategy: str = "data", option: str = "--devices") -> None:
    """A device count the planner takes: 1 … MAX_DEVICES, or MAX_CHANNEL_DEVICES for columns and model."""
    if not isinstance(devices, int) or isinstance(devices, bool) or devices < 1:
        raise ConvauditError(f"{option} must be a positive integer, got {devices!r}")
    if strategy in CHANNEL_STRATEGIES and devices > MAX_CHANNEL_DEVICES:
        raise ConvauditError(f"{option}: --strategy {strategy} splits every layer's channels over at most "
                             f"{MAX_CHANNEL_DEVICES} devices, got {devices:,} (data, fsdp, zero1 and zero2 take up "
                             f"to {MAX_DEVICES:,})")
    if devices > MAX_DEVICES:
        raise ConvauditError(f"{option}: at most {MAX_DEVICES:,} devices, got {devices:,}")


def plan(report: Report, strategy: str, devices: int, optimizer: str = "sgd", pins: Mapping[str, int] | None = None,
         profile: Profile | None = None, device_memory: int | None = None,
         pin_where: Where | None = None) -> Plan:
    """Plan `report` over `devices` devices with one of STRATEGIES."""
    if strategy not in STRATEGIES:
        raise ConvauditError(f"unknown strategy '{strategy}'; choose one of {', '.join(STRATEGIES)}")
    check_devices(devices, strategy)
    if optimizer not in OPTIMIZER_STATES:
        raise ConvauditError(f"unknown optimizer '{optimizer}'; choose one of {', '.join(OPTIMIZER_STATES)}")
    pins = dict(pins or {})
    if strategy == "columns":
        for name, device in pins.items():
            if not 0 <= device < devices:
                raise ConvauditError(f"placement pins '{name}' to device {device}, but there are {devices} devices "
                                     f"(0–{devices - 1})", pin_where)
    if strategy not in CHANNEL_STRATEGIES and report.batch < devices:
        raise ConvauditError(f"--strategy {strategy} splits the batch: --batch {report.batch} leaves devices idle; "
                             f"use at least --batch {devices}")
    planner: ChannelPlanner | ShardedPlanner
    if strategy in CHANNEL_STRATEGIES or strategy == "data":
        planner = ChannelPlanner(report, strategy, devices, optimizer, pins if strategy == "columns" else {})
    else:
        planner = ShardedPlanner(report, strategy, devices, optimizer)
    layers = tuple(planner.plan_layer(layer) for layer in report.layers)
    notes = list(getattr(planner, "notes", []))
    if strategy == "model" and pins:
        notes.append("placement: pins apply to --strategy columns only")
    kind = "channels" if strategy in CHANNEL_STRATEGIES else "batch"
    for layer_type in dict.fromkeys(REGISTRY[layer.type] for layer in report.layers):
        notes += [note for applies, note in layer_type.split_notes if applies == kind and note not in notes]
    unknown = not_counted(report)
    if unknown:
        notes.append(f"not counted: {', '.join(layer.name for layer in unknown)} (no counting rule): the FLOPs and "
                     "times leave them out")
    if report.spec.untraced is not None:
        notes.append(f"not counted: {report.spec.untraced.describe()}")
    return Plan(report, strategy, devices, optimizer, layers, tuple(notes), profile, device_memory, pins)
