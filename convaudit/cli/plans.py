"""`split`: a network planned across devices, exactly and without torch."""

from __future__ import annotations

from typing import Annotated

import typer

from convaudit.cli.emit import Result, emit
from convaudit.cli.networks import network
from convaudit.cli.options import (
    DEFAULT_STRATEGY,
    PLAN_BATCH,
    PLAN_DEVICES,
    DeviceMemoryOpt,
    Dtype,
    DtypeOpt,
    InputOpt,
    Optimizer,
    SpecArg,
    StrategyOpt,
    SummaryFormat,
    VariantOpt,
    format_option,
    shown,
)
from convaudit.errors import ConvauditError, printable


def split_plan(
    spec: SpecArg,
    devices: Annotated[int, typer.Option("--devices", "-n", min=1, metavar="DEVICES",
                                         help="How many devices to split over.")] = PLAN_DEVICES,
    strategy: StrategyOpt = DEFAULT_STRATEGY,
    input_size: InputOpt = None,
    variant: VariantOpt = None,
    batch: Annotated[int, typer.Option("--batch", "-b", min=1, metavar="BATCH",
                                       help="Batch size of one step (AlexNet: 128).")] = PLAN_BATCH,
    dtype: DtypeOpt = Dtype.fp32,
    optimizer: Annotated[Optimizer, typer.Option(
        "--optimizer", metavar=shown(*(member.value for member in Optimizer)),
        help="Optimizer state in the training memory.")] = Optimizer.momentum,
    profile: Annotated[str | None, typer.Option(
        "--profile", metavar="gtx580|h100", help="A device profile for time estimates and memory.")] = None,
    bandwidth: Annotated[float | None, typer.Option(
        "--bandwidth", metavar="GB/s", min=0.000001, help="Between-device bandwidth for the time estimate.")] = None,
    throughput: Annotated[float | None, typer.Option(
        "--throughput", metavar="TFLOP/s", min=0.000001, help="Per-device throughput for the time estimate.")
    ] = None,
    device_memory: DeviceMemoryOpt = None,
    output_format: Annotated[SummaryFormat, format_option(SummaryFormat)] = SummaryFormat.table,
) -> None:
    """Plan a network across devices, exactly: parameters, FLOPs, memory and bytes crossing per layer and device."""
    from convaudit.core.plan import PROFILES, parse_size, plan, with_rates
    from convaudit.resolve import analysed

    checked = network(spec, input_size, variant)
    chosen = None
    if profile is not None:
        if profile.lower() not in PROFILES:
            raise ConvauditError(f"--profile: unknown profile '{printable(profile)}'; choose one of "
                                 f"{', '.join(PROFILES)}")
        chosen = PROFILES[profile.lower()]
    chosen = with_rates(chosen, throughput, bandwidth)
    memory = parse_size(device_memory) if device_memory is not None else (chosen.memory if chosen else None)
    result = plan(analysed(checked, batch, dtype.value), strategy.value, devices, optimizer.value,
                  checked.placement, chosen, memory or None, checked.placement_where)
    emit(Result("plan", result), output_format)
