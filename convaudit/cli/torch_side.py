"""The PyTorch commands: verify and bench. Torch is imported here, inside the commands, with Ctrl-C deferred
until its C++ code is loaded (convaudit.interrupts).

What verify compares with is the user's choice, made on the command line: a spec file's `imported:` origin
names code (a factory, a module), and a spec may come from anyone, so verify calls it only when told
`--against imported`, and says first, on stderr, exactly what it will call.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from convaudit.cli.emit import Result, emit
from convaudit.cli.networks import network
from convaudit.cli.options import (
    DEFAULT_RUN_STRATEGY,
    PLAN_BATCH,
    BatchOpt,
    BenchDtype,
    BenchFormat,
    Dtype,
    DtypeOpt,
    ForceOpt,
    GpuOpt,
    InputOpt,
    Optimizer,
    RunStrategy,
    SpecArg,
    VariantOpt,
    VerifyFormat,
    WarmupOpt,
    format_option,
    positive_finite,
    shown,
)
from convaudit.errors import EXIT_FINDINGS, ConvauditError, printable
from convaudit.interrupts import EXIT_INTERRUPTED, deferred, interrupted

if TYPE_CHECKING:
    from convaudit.core.model import NetworkSpec

DEFAULT_BENCH_SPEC = "alexnet"
AGAINST_SPEC, AGAINST_IMPORTED = "spec", "imported"


def require_torch(command: str) -> None:
    """verify and bench need torch; say how to get it instead of a traceback."""
    try:
        with deferred():
            import torch  # noqa: F401
    except ImportError:
        if interrupted():  # Ctrl-C halfway through torch's import can surface as an ImportError
            raise KeyboardInterrupt from None
        raise ConvauditError(f"{command} needs PyTorch: pip install 'convaudit[torch]' (for the CPU build, "
                             "pip install torch==2.13.0 first)") from None


def verify(
    spec: SpecArg,
    input_size: InputOpt = None,
    variant: VariantOpt = None,
    batch: BatchOpt = 1,
    gpu: GpuOpt = False,
    dtype: DtypeOpt = Dtype.fp32,
    output_format: Annotated[VerifyFormat, format_option(VerifyFormat)] = VerifyFormat.table,
    warmup: WarmupOpt = 1,
    repeats: Annotated[int, typer.Option("--repeats", min=0, metavar="REPEATS",
                                         help="Timed runs (0: do not time).")] = 5,
    force: ForceOpt = False,
    against: Annotated[str | None, typer.Option(
        "--against", metavar="TARGET", help="Compare with your own model instead of one built from the spec: "
        "torchvision:NAME or package.module:function; 'imported' calls what an imported spec's imported: "
        "names (never done unless asked); 'spec' builds from the spec (the default for a spec file).")] = None,
) -> None:
    """Cross-check every number against a real PyTorch model, fvcore and FlopCounterMode; time it.

    Exit 0 when every comparable cell matches, 1 on a mismatch or when PyTorch cannot run the model.
    """
    require_torch("verify")
    with deferred():
        from convaudit.pytorch.runtime import pick_device
        from convaudit.pytorch.verify import verify_report
    from convaudit.resolve import analysed

    checked = network(spec, input_size, variant)
    reference, reference_args = against_target(spec, checked, against)
    device = pick_device(gpu)
    if reference is not None:
        from convaudit.core.analysis import analyze
        from convaudit.pytorch.against import verify_against

        result = verify_against(analyze(checked, batch, dtype.value), reference, reference_args, device,
                                dtype.value, warmup, repeats, force)
    else:
        # a layer the analysis refuses stops here, as in every command: PyTorch would only fail on it (or build
        # a module of gigabytes first)
        result = verify_report(analysed(checked, batch, dtype.value), device, dtype.value, warmup, repeats, force)
    emit(Result("verify", result), output_format)
    raise typer.Exit(0 if result.passed else EXIT_FINDINGS)


def against_target(argument: str, checked: NetworkSpec, against: str | None) -> tuple[str | None, dict[str, Any]]:
    """The model verify compares with: --against TARGET; the spec's recorded origin with --against imported;
    the target itself when SPEC is a target; else none (the model built from the spec)."""
    from convaudit.importers.targets import is_target

    torch_target = lambda text: is_target(text) and not text.lower().endswith(".onnx")  # noqa: E731
    imported = checked.raw.get("imported") if isinstance(checked.raw, dict) else None
    if against == AGAINST_SPEC:
        return None, {}
    if against == AGAINST_IMPORTED:
        if not isinstance(imported, dict) or not torch_target(str(imported.get("from"))):
            raise ConvauditError(f"--against imported: {printable(argument)} records no PyTorch model it was "
                                 "imported from (imported: {from: TARGET})")
        origin, args = str(imported["from"]), dict(imported.get("args") or {})
        call = ", ".join(f"{key}={value!r}" for key, value in args.items())
        typer.echo(f"--against imported: calling {printable(origin)}({printable(call)}), as "
                   f"{printable(argument)} records under imported:", err=True)
        return origin, args
    if against is not None:
        if not torch_target(against):
            raise ConvauditError(f"--against: expected torchvision:NAME, package.module:function, 'imported' or "
                                 f"'spec', got '{printable(against)}'")
        return against, {}
    if torch_target(argument):  # the user named the model on the command line
        return argument, {}
    if isinstance(imported, dict):
        typer.echo(f"verify: building the model from the spec; {printable(argument)} was imported from "
                   f"{printable(str(imported.get('from')))}, which runs only with --against imported", err=True)
    return None, {}


def storage_dtype_name(dtype: str) -> str:
    return "fp32" if dtype == "tf32" else dtype  # TF32 is a compute mode over fp32 storage


def bench(
    spec: Annotated[str, typer.Argument(metavar="SPEC", help="A spec file or bundled name (default: alexnet).")
                    ] = DEFAULT_BENCH_SPEC,
    input_size: InputOpt = None,
    variant: VariantOpt = None,
    batch: Annotated[int | None, typer.Option(
        "--batch", "-b", min=1, metavar="BATCH", show_default=False,
        help=f"Batch size: scales MACs, FLOPs and activations. [default: 1; with --devices {PLAN_BATCH}, as split]")
    ] = None,
    gpu: GpuOpt = False,
    dtype: Annotated[BenchDtype, typer.Option(
        "--dtype", metavar=shown(*(member.value for member in BenchDtype)),
        help="fp32, tf32 (fp32 storage, TF32 math), bf16 or fp16.")] = BenchDtype.fp32,
    channels_last: Annotated[bool, typer.Option("--channels-last", help="NHWC memory layout.")] = False,
    warmup: WarmupOpt = 5,
    repeats: Annotated[int, typer.Option("--repeats", min=1, metavar="REPEATS", help="Timed runs per layer.")] = 20,
    backward: Annotated[bool, typer.Option("--backward/--no-backward", help="Time backward passes too.")] = True,
    peak: Annotated[str | None, typer.Option(
        "--peak", metavar="auto|TFLOPS", help="Device ceiling for % of peak and the roofline: 'auto' measures a "
        "large matmul; a number gives TFLOP/s by hand.")] = None,
    bandwidth: Annotated[float | None, typer.Option(
        "--bandwidth", metavar="GB/s", help="Memory bandwidth for the roofline with --peak TFLOPS (else measured).")
    ] = None,
    output_format: Annotated[BenchFormat, format_option(BenchFormat)] = BenchFormat.table,
    depth: Annotated[int | None, typer.Option(
        "--depth", min=1, metavar="DEPTH",
        help="Also sum the timings per block at this depth (default 1 for specs with blocks).")] = None,
    force: ForceOpt = False,
    devices: Annotated[int | None, typer.Option(
        "--devices", "-n", min=1, metavar="DEVICES", help="Run the `split` plan for real over this many processes "
        "with torch.distributed (gloo on the CPU, NCCL with --gpu), measuring the bytes that cross.")] = None,
    strategy: Annotated[RunStrategy, typer.Option(
        "--strategy", "-s", metavar=shown(*(member.value for member in RunStrategy)),
        help="With --devices: columns, model or data (as `split`), or fsdp: torch's own fully_shard, measuring "
             "each process's parameter, gradient and optimizer-state elements. zero1 and zero2 are planned by "
             "`split` only.")] = DEFAULT_RUN_STRATEGY,
    optimizer: Annotated[Optimizer, typer.Option(
        "--optimizer", metavar=shown(*(member.value for member in Optimizer)),
        help="With --devices --strategy fsdp: the torch optimizer whose sharded state is measured.")
    ] = Optimizer.momentum,
) -> None:
    """Time every layer's forward and backward, and the whole model; throughput, roofline and memory per layer.

    Ctrl-C stops and prints what was measured so far (exit 130).
    """
    if devices is not None:
        if output_format == BenchFormat.csv:  # refused before any worker starts, not after the run
            raise ConvauditError("bench --devices: --format csv is not available; use --format table or json")
        bench_devices(spec, input_size, variant, batch or PLAN_BATCH, storage_dtype_name(dtype.value),
                      strategy.value, devices, warmup, repeats, gpu, output_format, optimizer.value, force)
        return
    if peak is not None and peak != "auto" and not positive_finite(peak):
        raise ConvauditError(f"--peak: expected 'auto' or a positive number of TFLOP/s, got '{printable(peak[:40])}'")
    if bandwidth is not None and not positive_finite(bandwidth):
        raise ConvauditError(f"--bandwidth: expected a positive number of GB/s, got {bandwidth}")
    require_torch("bench")
    with deferred():
        from convaudit.pytorch.bench import bench_report, storage_dtype
        from convaudit.pytorch.runtime import pick_device
    from convaudit.resolve import analysed

    checked = network(spec, input_size, variant)
    device = pick_device(gpu)
    report = analysed(checked, batch or 1, storage_dtype(dtype.value))
    with bench_progress() as progress:
        result = bench_report(report, device, dtype.value, warmup, repeats, backward, channels_last, peak,
                              bandwidth, progress, force)
    emit(Result("bench", result, {"depth": depth}), output_format)
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


def bench_devices(spec: str, input_size: str | None, variant: str | None, batch: int, dtype: str, strategy: str,
                  devices: int, warmup: int, repeats: int, gpu: bool, output_format: Any, optimizer: str,
                  force: bool) -> None:
    """bench --devices: the split plan run for real by `devices` worker processes; exit 1 unless every measured
    byte and element (parameters; under fsdp gradients and optimizer state too) equals the plan's."""
    require_torch("bench")
    with deferred():
        from convaudit.pytorch.distributed import Options, bench_distributed
    from convaudit.resolve import parse_input_size

    size = parse_input_size(input_size) if input_size is not None else None
    checked = network(spec, input_size, variant)  # a bad spec or target fails here, in one line, before any worker
    with spec_file_for_workers(spec, checked) as reference:
        outcome = bench_distributed(Options(reference, size, variant, batch, dtype, strategy, devices, warmup,
                                            repeats, gpu, force, optimizer))
    if outcome is None:  # a torchrun worker other than rank 0
        return
    emit(Result("distributed", outcome), output_format)
    raise typer.Exit(0 if outcome.matches else EXIT_FINDINGS)


@contextlib.contextmanager
def spec_file_for_workers(reference: str, checked: NetworkSpec) -> Iterator[str]:
    """What the workers load: the reference itself, or for a target the spec it was imported as, written to a
    temporary file (the workers read specs; each re-importing the target would trace it once per process)."""
    from convaudit.importers.targets import is_target

    if not is_target(reference):
        yield reference
        return
    import yaml

    with tempfile.TemporaryDirectory(prefix="convaudit-") as folder:
        path = Path(folder, f"{checked.name}.yaml")
        path.write_text(yaml.safe_dump(checked.raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
        yield str(path)


@contextlib.contextmanager
def bench_progress() -> Iterator[Callable[[int, int, str], None]]:
    """A Rich progress bar over the layers, on stderr so that JSON and CSV on stdout stay clean."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(TextColumn("bench"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn(), console=console, transient=console.is_terminal) as bar:
        task = bar.add_task("", total=None)

        def update(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total, description=name)

        yield update
