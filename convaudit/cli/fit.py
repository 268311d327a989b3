"""`fit`: the largest batch that trains within a device's memory, per strategy, autocast and checkpointing."""

from __future__ import annotations

from typing import Annotated

import typer

from convaudit.cli.emit import Result, emit
from convaudit.cli.networks import network
from convaudit.cli.options import (
    Amp,
    CheckpointOpt,
    InputOpt,
    Optimizer,
    OptimizerOpt,
    SpecArg,
    SummaryFormat,
    VariantOpt,
    format_option,
    shown,
)


def fit_batch(
    spec: SpecArg,
    device_memory: Annotated[str, typer.Option(
        "--device-memory", metavar="SIZE", show_default=False,
        help="Memory of each device, such as 24GiB or 80GB.")],
    devices: Annotated[int, typer.Option("--devices", "-n", min=1, metavar="DEVICES",
                                         help="Devices: above 1, the data, fsdp, zero1 and zero2 strategies.")] = 1,
    optimizer: OptimizerOpt = Optimizer.adam,
    amp: Annotated[Amp, typer.Option("--amp", metavar=shown(*(member.value for member in Amp)),
                                     help="The half dtype tried with autocast (beside none).")] = Amp.bf16,
    checkpoint: CheckpointOpt = None,
    input_size: InputOpt = None,
    variant: VariantOpt = None,
    output_format: Annotated[SummaryFormat, format_option(SummaryFormat)] = SummaryFormat.table,
) -> None:
    """The largest batch that trains within --device-memory, exactly, with and without autocast and checkpointing
    (and each batch-splitting strategy over --devices), with the best one's memory term by term."""
    from convaudit.core.fit import fit
    from convaudit.core.plan import check_devices, parse_size

    check_devices(devices, "data")
    result = fit(network(spec, input_size, variant), parse_size(device_memory), devices, optimizer.value, amp.value,
                 checkpoint)
    emit(Result("fit", result), output_format)
