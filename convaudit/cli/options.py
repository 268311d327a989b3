"""The options commands share, as Annotated types, and the parsing of option values Typer leaves as text.

Choices are str Enums whose members are the values themselves; their metavar lists them as 'fp32 | fp16 | bf16'.
The lists come from their one home (convaudit.core.units), which imports nothing heavy.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Annotated, Any

import typer

from convaudit.core.units import AMP_DTYPES, DTYPE_BYTES, OPTIMIZER_STATES
from convaudit.errors import ConvauditError, printable

# One planned training step, as `split`, `diff --strategy/--devices` and `bench --devices` plan it by default:
# AlexNet's batch of 128 over its two GPUs, split by columns.
PLAN_BATCH = 128
PLAN_DEVICES = 2
PLAN_STRATEGY = "columns"


def choices(name: str, *values: str) -> Any:
    """A str Enum whose members are the values themselves: Typer lists them as the option's choices."""
    return Enum(name, {value: value for value in values}, type=str)


def shown(*values: str) -> str:
    """A choice option's metavar: its values, wrapping between them in --help, never inside one."""
    return " | ".join(values)


FORMATS = ("table", "json", "csv", "markdown")
Dtype = choices("Dtype", *DTYPE_BYTES)
BenchDtype = choices("BenchDtype", "fp32", "tf32", "bf16", "fp16")  # tf32: fp32 storage, TF32 math
Optimizer = choices("Optimizer", *OPTIMIZER_STATES)
Strategy = choices("Strategy", "columns", "model", "data", "fsdp", "zero1", "zero2")  # core.plan.STRATEGIES
RunStrategy = choices("RunStrategy", "columns", "model", "data", "fsdp")  # what bench --devices runs
SummaryFormat = choices("SummaryFormat", *FORMATS)
CheckFormat = choices("CheckFormat", "table", "json", "markdown")
VerifyFormat = choices("VerifyFormat", "table", "json")
BenchFormat = choices("BenchFormat", "table", "json", "csv")
DEFAULT_STRATEGY = Strategy(PLAN_STRATEGY)
DEFAULT_RUN_STRATEGY = RunStrategy(PLAN_STRATEGY)


def format_option(kind: Any) -> Any:
    """--format / -f with the choices of `kind`."""
    return typer.Option("--format", "-f", metavar=shown(*(member.value for member in kind)), help="Output format.")


SpecArg = Annotated[str, typer.Argument(
    metavar="SPEC", show_default=False, help="A spec file, or a bundled name such as alexnet or vgg16.")]
SpecsArg = Annotated[list[str] | None, typer.Argument(
    metavar="SPEC", show_default=False,
    help="Spec files or bundled names; every bundled architecture if none.")]
InputOpt = Annotated[str | None, typer.Option(
    "--input", "-i", metavar="N|HxW|DxHxW",
    help="Override the spec's input size: 224, 224x200, 16x112x112 (channels stay).")]
BatchOpt = Annotated[int, typer.Option("--batch", "-b", min=1, metavar="BATCH",
                                       help="Batch size: scales MACs, FLOPs and activations.")]
DtypeOpt = Annotated[Dtype, typer.Option("--dtype", metavar=shown(*DTYPE_BYTES), help="Element type for memory "
                                                                                      "figures.")]
OptimizerOpt = Annotated[Optimizer, typer.Option(
    "--optimizer", metavar=shown(*OPTIMIZER_STATES),
    help="Optimizer state for the training memory: sgd none, momentum one buffer, adam two per parameter.")]
VariantOpt = Annotated[str | None, typer.Option(
    "--variant", metavar="VARIANT",
    help="A variant the spec defines, such as googlenet's aux (also written googlenet+aux).")]
StrategyOpt = Annotated[Strategy, typer.Option(
    "--strategy", "-s", metavar=shown(*(member.value for member in Strategy)),
    help="columns: AlexNet's scheme (groups stay on their device, gathers where a layer reads every channel); "
         "model: Megatron column/row split; data: replicate, split the batch; fsdp: as torch's fully_shard (ZeRO-3), "
         "each parameter split along dimension 0 in torch.chunk sizes; zero1: data with the optimizer state "
         "sharded; zero2: the gradients too.")]
DeviceMemoryOpt = Annotated[str | None, typer.Option(
    "--device-memory", metavar="SIZE", help="Memory of each device, such as 3GiB: says whether each share fits.")]
GpuOpt = Annotated[bool, typer.Option("--gpu", help="Run on the CUDA GPU (exit 2 if there is none).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Run even if the memory estimate says it will not fit.")]
Amp = choices("Amp", *AMP_DTYPES)
AmpOpt = Annotated[Amp | None, typer.Option(
    "--amp", metavar=shown(*AMP_DTYPES),
    help="Mixed precision (torch.autocast): fp32 master weights, gradients and optimizer state; saved tensors at "
         "the dtype autocast gives each op.")]
CheckpointOpt = Annotated[str | None, typer.Option(
    "--checkpoint", metavar="blocks|every:N|NAMES",
    help="Activation checkpointing (torch.utils.checkpoint): each top-level block, every N layers, or the named "
         "layers and blocks (comma-separated), each a segment.")]
WarmupOpt = Annotated[int, typer.Option("--warmup", min=0, metavar="WARMUP", help="Untimed runs before timing.")]


def positive_finite(value: str | float) -> bool:
    """A number > 0 that is neither nan nor infinite ('nan' parses as a float, and compares false to 0)."""
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return False
    return math.isfinite(number) and number > 0


def parse_args(pairs: list[str]) -> dict[str, Any]:
    """--arg key=value pairs; values read as YAML scalars (10, 0.5, true, resnet), whole numbers within 2^63."""
    import yaml

    from convaudit.core.fields import too_large

    args: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ConvauditError(f"--arg: expected KEY=VALUE such as num_classes=10, got '{printable(pair)}'")
        try:
            args[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            raise ConvauditError(f"--arg {printable(key)}: cannot read '{printable(value)}' as a YAML value") from None
        number = args[key.strip()]
        if isinstance(number, int) and too_large(number):
            raise ConvauditError(f"--arg {printable(key)}: refused: a number larger than 2^63")
    return args
