"""The command line: parse options, call the core, render. Torch is imported only by verify and bench."""

from __future__ import annotations

import contextlib
import functools
import importlib
import math
import os
import re
import sys
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperArgument, TyperGroup, TyperOption

try:  # Typer ≥ 0.24 vendors click; older releases depend on it
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as click_exceptions

from convaudit import __version__
from convaudit.errors import (
    EXIT_FINDINGS,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    ConvauditError,
    interrupted,
    noting_interrupts,
    printable,
)

if TYPE_CHECKING:
    from convaudit.core.analysis import Report
    from convaudit.core.model import NetworkSpec


def _later(module: str, name: str, attribute: str | None = None) -> Any:
    """A stand-in for `module.attribute` (a function or class) that imports it on the first call and then puts
    the real one in its place: `--help`, and commands that need little, load little."""

    def stand_in(*args: Any, **kwargs: Any) -> Any:
        value = getattr(importlib.import_module(module), attribute or name)
        if globals().get(name) is stand_in:
            globals()[name] = value
        return value(*args, **kwargs)

    stand_in.__name__ = stand_in.__qualname__ = name
    return stand_in


analyze = _later("convaudit.core.analysis", "analyze")
check_report = _later("convaudit.core.checks", "check_report", "check")
exit_status = _later("convaudit.core.checks", "exit_status")
too_large = _later("convaudit.core.fields", "too_large")
is_target = _later("convaudit.importers.targets", "is_target")
Checked = _later("convaudit.render.findings", "Checked")
findings_json = _later("convaudit.render.findings", "findings_json")
findings_markdown = _later("convaudit.render.findings", "findings_markdown")
findings_rich = _later("convaudit.render.findings", "findings_rich")
library_json = _later("convaudit.render.findings", "library_json")
library_markdown = _later("convaudit.render.findings", "library_markdown")
library_table = _later("convaudit.render.findings", "library_table")
View = _later("convaudit.render.summary", "View")
parse_columns = _later("convaudit.render.summary", "parse_columns")
rf_json = _later("convaudit.render.summary", "rf_json")
rf_table = _later("convaudit.render.summary", "rf_table")
summary_csv = _later("convaudit.render.summary", "summary_csv")
summary_json = _later("convaudit.render.summary", "summary_json")
summary_markdown = _later("convaudit.render.summary", "summary_markdown")
summary_table = _later("convaudit.render.summary", "summary_table")
bundled_paths = _later("convaudit.spec.library", "bundled_paths")
load = _later("convaudit.spec.library", "load")
load_spec = _later("convaudit.spec.parser", "load_spec")
DTYPES = ("fp32", "fp16", "bf16")  # core.analysis.DTYPE_BYTES and core.memory.OPTIMIZER_STATES, kept in step
OPTIMIZERS = ("sgd", "momentum", "adam")  # by tests/test_scale.py without importing them for every command


class HelpArgument(TyperArgument):
    """An argument in --help: 'SPEC' when required and '[SPEC]...' when optional, with no '<str>' type."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        base = self.display_name_raw.replace("[", "").replace("]", "").removesuffix("...")
        return (base if self.required else f"[{base}]") + ("..." if self.nargs != 1 else "")


class HelpOption(TyperOption):
    """An option in --help: flags show no '<bool>'; choices read 'fp32 | tf32 | bf16' (wrapping between
    choices, never inside one); other values show their metavar or their name."""

    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return None
        if self.metavar is not None:
            return self.metavar
        descriptor = self.type_descriptor
        if descriptor.is_choice and descriptor.choices:
            return " | ".join(str(getattr(choice, "value", choice)) for choice in descriptor.choices)
        return (self.name or "value").upper()


def _tidy_help(command: Any) -> None:
    """Give every parameter of a command (its --help option included) the help display above."""
    for param in command.params:
        if type(param) is TyperArgument:
            param.__class__ = HelpArgument
        elif type(param) is TyperOption:
            param.__class__ = HelpOption
    make_help_option = command.get_help_option

    def get_help_option(ctx: Any) -> Any:
        option = make_help_option(ctx)
        if type(option) is TyperOption:
            option.__class__ = HelpOption
        return option

    command.get_help_option = get_help_option


class OneLineErrors(TyperGroup):
    def __init__(self, **attrs: Any):
        super().__init__(**attrs)
        _tidy_help(self)
        for command in self.commands.values():
            _tidy_help(command)

    """Usage errors as one line ('error: …') on stderr with exit 2, instead of a boxed panel."""

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        try:
            code = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                                standalone_mode=False, **extra)
        except click_exceptions.ClickException as exc:
            if not standalone_mode:
                raise
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `convaudit`: show the help
                exc.show()
                sys.exit(0)
            hint = f" (see '{exc.ctx.command_path} --help')" if getattr(exc, "ctx", None) else ""
            typer.echo(f"error: {exc.format_message()}{hint}", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort as exc:
            if not standalone_mode:
                raise
            if isinstance(exc.__context__, KeyboardInterrupt) or interrupted():  # Ctrl-C outside a command
                say_interrupted()
                sys.exit(EXIT_INTERRUPTED)
            typer.echo("aborted", err=True)
            sys.exit(1)
        if not standalone_mode:
            return code
        if code == EXIT_INTERRUPTED:  # Typer turns a Ctrl-C outside our commands into a silent exit 130
            say_interrupted()
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=OneLineErrors,
    name="convaudit",
    help="Audit convolutional network architectures: exact shapes, parameters, MACs/FLOPs and memory, "
         "with the arithmetic that papers and blogs get wrong.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def choices(name: str, *values: str) -> Any:
    """A str Enum whose members are the values themselves: Typer lists them as the option's choices."""
    return Enum(name, {value: value for value in values}, type=str)


Dtype = choices("Dtype", *DTYPES)
SummaryFormat = choices("SummaryFormat", "table", "json", "csv", "markdown")
CheckFormat = choices("CheckFormat", "table", "json", "markdown")
VerifyFormat = choices("VerifyFormat", "table", "json")
BenchFormat = choices("BenchFormat", "table", "json", "csv")
Optimizer = choices("Optimizer", *OPTIMIZERS)

SpecArg = Annotated[str, typer.Argument(
    metavar="SPEC", help="A spec file, or a bundled name such as alexnet or vgg16.")]
InputOpt = Annotated[str | None, typer.Option(
    "--input", "-i", metavar="N|HxW", help="Override the spec's input size: 224 or 224x200 (channels stay).")]
BatchOpt = Annotated[int, typer.Option("--batch", "-b", min=1, help="Batch size: scales MACs, FLOPs and activations.")]
DtypeOpt = Annotated[Dtype, typer.Option("--dtype", help="Element type for memory figures.")]
OptimizerOpt = Annotated[Optimizer, typer.Option("--optimizer", help="Optimizer state for the training memory: "
                                                 "sgd none, momentum one buffer, adam two per parameter.")]
VariantOpt = Annotated[str | None, typer.Option(
    "--variant", help="A variant the spec defines, such as googlenet's aux (also written googlenet+aux).")]


def stdout_console() -> Console:
    """Rich console for results: tables fit COLUMNS or the terminal by leaving out columns, never by cutting
    a number; piped, tables take their natural width and lines carry no trailing spaces."""
    from convaudit.render.output import output_console

    return output_console()


def boundary(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a ConvauditError into 'error: …' on stderr and its exit code; never a traceback.

    Ctrl-C at any moment is exit 130 with 'interrupted', even when a library swallowed the KeyboardInterrupt
    or turned it into another error (the SIGINT handler notes it first). Running out of memory or stack on
    an extreme input is exit 2 with one line, like any other refused input.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with noting_interrupts():
            try:
                result = command(*args, **kwargs)
            except ConvauditError as exc:
                if interrupted():
                    stop_interrupted()
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(exc.exit_code) from None
            except KeyboardInterrupt:
                stop_interrupted()
            except typer.Exit as exc:
                if interrupted() and exc.exit_code != EXIT_INTERRUPTED:
                    stop_interrupted()
                raise
            except typer.Abort:
                raise
            except (MemoryError, RecursionError) as exc:
                if interrupted():
                    stop_interrupted()
                what = "memory" if isinstance(exc, MemoryError) else "stack (the input nests too deeply)"
                typer.echo(f"error: refused: this input needs more {what} than there is", err=True)
                raise typer.Exit(EXIT_USAGE) from None
            except Exception as exc:  # a bug of ours: still one line, unless debugging
                if interrupted():
                    stop_interrupted()
                if os.environ.get("CONVAUDIT_DEBUG"):
                    raise
                typer.echo(f"internal error ({type(exc).__name__}: {safe_text(exc)}); rerun with CONVAUDIT_DEBUG=1 "
                           "and report it", err=True)
                raise typer.Exit(3) from None
            if interrupted():  # a library swallowed the KeyboardInterrupt: still honour it
                stop_interrupted()
            return result

    return wrapper


def positive_finite(value: str | float) -> bool:
    """A number > 0 that is neither nan nor infinite ('nan' parses as a float, and compares false to 0)."""
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return False
    return math.isfinite(number) and number > 0


def stop_interrupted() -> None:
    say_interrupted()
    raise typer.Exit(EXIT_INTERRUPTED) from None


def say_interrupted(said: list[bool] = [False]) -> None:  # noqa: B006  (once per process)
    if not said[0]:
        said[0] = True
        typer.echo("interrupted", err=True)


def safe_text(exc: BaseException) -> str:
    """An exception's text on one line, escaped for the terminal, never itself an error."""
    try:
        text = " ".join(str(exc).split())
    except Exception:  # str() of a 5,000-digit int, say
        text = "(unprintable)"
    return printable(text[:300])


def parse_input_size(text: str) -> tuple[int, int]:
    """'224' -> (224, 224); '224x200' -> (224, 200)."""
    match = re.fullmatch(r"\s*(\d{1,30})\s*(?:[x×X,]\s*(\d{1,30}))?\s*", text)
    if not match:
        shown = f"'{text}'" if len(text) <= 60 else f"{len(text):,} characters"
        raise ConvauditError(f"--input: expected N or HxW such as 224 or 224x200 (at most 2^63), got {shown}")
    height = int(match.group(1))
    width = int(match.group(2) or height)
    if height < 1 or width < 1:
        raise ConvauditError(f"--input: sizes must be positive, got '{text}'")
    if too_large(height) or too_large(width):
        raise ConvauditError(f"--input: refused: a size larger than 2^63, got '{text}'")
    return height, width


def load_network(reference: str, input_size: str | None, variant: str | None = None) -> NetworkSpec:
    if is_target(reference):  # torchvision:NAME, package.module:function, model.onnx: imported, then audited
        if variant:
            raise ConvauditError("--variant applies to specs; an imported model has no variants")
        from convaudit.importers import load_target

        return load_target(reference, None, parse_input_size(input_size) if input_size is not None else None)
    spec = load(reference, variant)
    if input_size is not None:
        spec = spec.with_input(*parse_input_size(input_size))
    return spec


def analysed(spec: NetworkSpec, batch: int = 1, dtype: str = "fp32") -> Report:
    """Analyse, refusing (exit 2) a network that cannot be computed at this input."""
    report = analyze(spec, batch, dtype)
    if report.halted:
        halt = report.halted
        raise ConvauditError(f"{halt.layer.name}: {halt.problem.message} (see `convaudit check`)",
                             halt.layer.where_key(halt.problem.key))
    return report


@app.command()
@boundary
def summary(
    spec: SpecArg,
    input_size: InputOpt = None,
    variant: VariantOpt = None,
    batch: BatchOpt = 1,
    dtype: DtypeOpt = Dtype.fp32,
    output_format: Annotated[SummaryFormat, typer.Option(
        "--format", "-f", help="Output format.")] = SummaryFormat.table,
    columns: Annotated[str | None, typer.Option(
        "--columns", metavar="LIST", help="Table columns, comma-separated: default, all, or names such as "
        "layer, output, other_ops (written without spaces)."
    )] = None,
    depth: Annotated[int | None, typer.Option(
        "--depth", min=1, help="Collapse blocks below this depth (1: one row per top-level block).")] = None,
    rf: Annotated[bool, typer.Option("--rf", help="Add receptive-field columns: RF, jump, start, unseen pixels.")
                  ] = False,
    optimizer: OptimizerOpt = Optimizer.adam,
) -> None:
    """Per-layer shapes, parameters, MACs and FLOPs, with totals, memory and the conventions used."""
    report = analysed(load_network(spec, input_size, variant), batch, dtype.value)
    view = View(report, depth, optimizer.value)
    try:
        chosen = parse_columns(columns)
    except ValueError as exc:
        raise ConvauditError(f"--columns: {exc}") from None
    if output_format is SummaryFormat.json:
        typer.echo(summary_json(view))
    elif output_format is SummaryFormat.csv:
        typer.echo(summary_csv(report), nl=False)
    elif output_format is SummaryFormat.markdown:
        typer.echo(summary_markdown(view, chosen, rf), nl=False)
    else:
        stdout_console().print(summary_table(view, chosen, rf))


@app.command("rf")
@boundary
def receptive_field(
    spec: SpecArg,
    input_size: InputOpt = None,
    variant: VariantOpt = None,
    depth: Annotated[int | None, typer.Option("--depth", min=1, help="One row per block at this depth.")] = None,
    output_format: Annotated[CheckFormat, typer.Option("--format", "-f", help="Output format.")] = CheckFormat.table,
) -> None:
    """Receptive field, jump and first centre of every layer, per axis, and the input pixels no output sees."""
    view = View(analysed(load_network(spec, input_size, variant)), depth)
    if output_format is CheckFormat.json:
        typer.echo(rf_json(view))
    elif output_format is CheckFormat.markdown:
        from convaudit.render.summary import RF_VIEW_COLUMNS

        typer.echo(summary_markdown(view, RF_VIEW_COLUMNS), nl=False)
    else:
        stdout_console().print(rf_table(view))


def write_text(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise ConvauditError(f"cannot write {path}: {exc.strerror}") from None


@app.command("report")
@boundary
def html_report(
    spec: SpecArg,
    output: Annotated[str, typer.Option("--output", "-o", metavar="FILE", help="Where to write the HTML file.")
                      ] = "report.html",
    input_size: InputOpt = None,
    variant: VariantOpt = None,
    batch: BatchOpt = 1,
    dtype: DtypeOpt = Dtype.fp32,
    optimizer: OptimizerOpt = Optimizer.adam,
    bench_file: Annotated[str | None, typer.Option(
        "--bench", metavar="FILE", help="Timings from `convaudit bench --format json`, shown beside the FLOPs.")
    ] = None,
) -> None:
    """One self-contained HTML file: the network drawn, findings, per-layer charts, receptive fields, totals."""
    from convaudit.render.report.page import load_bench, report_html

    bench_data = load_bench(bench_file) if bench_file else None
    report = analysed(load_network(spec, input_size, variant), batch, dtype.value)
    write_text(output, report_html(View(report, None, optimizer.value), check_report(report), bench_data))
    typer.echo(f"wrote {printable(output)}", err=True)


@app.command("draw")
@boundary
def draw_network(
    spec: SpecArg,
    output: Annotated[str | None, typer.Option("--output", "-o", metavar="FILE", help="Where to write the SVG "
                                               "(standard output if left out).")] = None,
    input_size: InputOpt = None,
    variant: VariantOpt = None,
    depth: Annotated[int | None, typer.Option(
        "--depth", min=1, help="Open blocks down to this depth only (default: all; runs of a long chain stay shut).")
    ] = None,
) -> None:
    """The network alone as a standalone SVG: one box per layer or block, output shapes on the edges."""
    from convaudit.render.report.layout import structure
    from convaudit.render.report.svg import default_expanded, network_svg

    report = analysed(load_network(spec, input_size, variant))
    drawing = structure(report)
    svg = network_svg(report, drawing, check_report(report), default_expanded(drawing, depth))
    if output is None:
        typer.echo(svg, nl=False)
    else:
        write_text(output, svg)
        typer.echo(f"wrote {printable(output)}", err=True)


Strategy = choices("Strategy", "columns", "model", "data")


@app.command("split")
@boundary
def split_plan(
    spec: SpecArg,
    devices: Annotated[int, typer.Option("--devices", "-n", min=1, help="How many devices to split over.")] = 2,
    strategy: Annotated[Strategy, typer.Option(
        "--strategy", "-s", help="columns: AlexNet's scheme (groups stay on their device, gathers where a layer "
        "reads every channel); model: Megatron column/row split; data: replicate, split the batch.")
    ] = Strategy.columns,
    input_size: InputOpt = None,
    variant: VariantOpt = None,
    batch: Annotated[int, typer.Option("--batch", "-b", min=1, help="Batch size of one step (AlexNet: 128).")
                     ] = 128,
    dtype: DtypeOpt = Dtype.fp32,
    optimizer: Annotated[Optimizer, typer.Option("--optimizer", help="Optimizer state in the training memory.")
                         ] = Optimizer.momentum,
    profile: Annotated[str | None, typer.Option(
        "--profile", metavar="gtx580|h100", help="A device profile for time estimates and memory.")] = None,
    bandwidth: Annotated[float | None, typer.Option(
        "--bandwidth", metavar="GB/s", min=0.000001, help="Between-device bandwidth for the time estimate.")] = None,
    throughput: Annotated[float | None, typer.Option(
        "--throughput", metavar="TFLOP/s", min=0.000001, help="Per-device throughput for the time estimate.")
    ] = None,
    device_memory: Annotated[str | None, typer.Option(
        "--device-memory", metavar="SIZE", help="Memory of each device, such as 3GiB: says whether each share "
        "fits.")] = None,
    output_format: Annotated[SummaryFormat, typer.Option("--format", "-f", help="Output format.")
                             ] = SummaryFormat.table,
) -> None:
    """Plan a network across devices, exactly: parameters, FLOPs, memory and bytes crossing per layer and device."""
    from convaudit.core.plan import PROFILES, parse_size, plan, with_rates
    from convaudit.render.plan import plan_csv, plan_json, plan_markdown, plan_rich

    network = load_network(spec, input_size, variant)
    chosen = None
    if profile is not None:
        if profile.lower() not in PROFILES:
            raise ConvauditError(f"--profile: unknown profile '{profile}'; choose one of {', '.join(PROFILES)}")
        chosen = PROFILES[profile.lower()]
    chosen = with_rates(chosen, throughput, bandwidth)
    memory = parse_size(device_memory) if device_memory is not None else (chosen.memory if chosen else None)
    result = plan(analysed(network, batch, dtype.value), strategy.value, devices, optimizer.value,
                  network.placement, chosen, memory or None, network.placement_where)
    if output_format is SummaryFormat.json:
        typer.echo(plan_json(result))
    elif output_format is SummaryFormat.csv:
        typer.echo(plan_csv(result), nl=False)
    elif output_format is SummaryFormat.markdown:
        typer.echo(plan_markdown(result), nl=False)
    else:
        console = stdout_console()
        console.print(plan_rich(result, console.width))


@app.command()
@boundary
def check(
    specs: Annotated[list[str] | None, typer.Argument(
        metavar="[SPEC]...", help="Spec files or bundled names; every bundled architecture if none.")] = None,
    input_size: InputOpt = None,
    variant: VariantOpt = None,
    output_format: Annotated[CheckFormat, typer.Option("--format", "-f", help="Output format.")] = CheckFormat.table,
    strict: Annotated[bool, typer.Option("--strict", help="Fail (exit 1) on warnings too.")] = False,
) -> None:
    """Find inexact divisions, layers that do not fit, and claims that do not hold. Exit 1 on errors."""
    networks = [load_network(ref, input_size, variant) for ref in specs_or_bundled(specs, variant)]
    checked = [Checked(net.label, net.input, tuple(check_report(analyze(net)))) for net in networks]
    scope = None
    if not specs:  # say what was checked, and why
        at = f"at --input {input_size}" if input_size else "each at its own input"
        scope = (f"no SPEC given: checked all {len(networks)} bundled architectures {at}: "
                 f"{', '.join(net.label for net in networks)}")
    if output_format is CheckFormat.json:
        typer.echo(findings_json(checked))
    elif output_format is CheckFormat.markdown:
        typer.echo((f"{scope}\n\n" if scope else "") + findings_markdown(checked), nl=False)
    else:
        stdout_console().print(findings_rich(checked, scope))
    raise typer.Exit(exit_status([f for item in checked for f in item.findings], strict))


def specs_or_bundled(specs: list[str] | None, variant: str | None) -> list[str]:
    """The references given, or every bundled spec; a variant needs a spec to belong to."""
    if specs:
        return specs
    if variant:
        raise ConvauditError("--variant needs a SPEC: each spec defines its own variants")
    return [str(path) for path in bundled_paths()]


def require_torch(command: str) -> None:
    """verify and bench need torch; say how to get it instead of a traceback."""
    try:
        import torch  # noqa: F401
    except ImportError:
        if interrupted():  # Ctrl-C halfway through torch's import can surface as an ImportError
            raise KeyboardInterrupt from None
        raise ConvauditError(f"{command} needs PyTorch: pip install 'convaudit[torch]' (for the CPU build, "
                             "pip install torch==2.13.0 first)") from None


GpuOpt = Annotated[bool, typer.Option("--gpu", help="Run on the CUDA GPU (exit 2 if there is none).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Run even if the memory estimate says it will not fit.")]
WarmupOpt = Annotated[int, typer.Option("--warmup", min=0, help="Untimed runs before timing.")]


@app.command()
@boundary
def verify(
    spec: SpecArg,
    input_size: InputOpt = None,
    variant: VariantOpt = None,
    batch: BatchOpt = 1,
    gpu: GpuOpt = False,
    dtype: DtypeOpt = Dtype.fp32,
    output_format: Annotated[VerifyFormat, typer.Option("--format", "-f", help="Output format.")] = VerifyFormat.table,
    warmup: WarmupOpt = 1,
    repeats: Annotated[int, typer.Option("--repeats", min=0, help="Timed runs (0: do not time).")] = 5,
    force: ForceOpt = False,
    against: Annotated[str | None, typer.Option(
        "--against", metavar="TARGET", help="Compare with your own model instead of one built from the spec: "
        "torchvision:NAME or package.module:function (default for an imported spec: the model it came from; "
        "'spec' builds from the spec).")] = None,
) -> None:
    """Cross-check every number against a real PyTorch model, fvcore and FlopCounterMode; time it.

    Exit 0 when every comparable cell matches, 1 on a mismatch or when PyTorch cannot run the model.
    """
    require_torch("verify")
    from convaudit.pytorch.runtime import pick_device
    from convaudit.pytorch.verify import verify_report
    from convaudit.render.verify import verify_json, verify_rich

    network = load_network(spec, input_size, variant)
    device = pick_device(gpu)
    reference, reference_args = against_target(network, against)
    if reference is not None:
        from convaudit.pytorch.against import verify_against

        result = verify_against(analyze(network, batch, dtype.value), reference, reference_args, device,
                                dtype.value, warmup, repeats, force)
    else:
        # a layer the analysis refuses stops here, as in every command: PyTorch would only fail on it (or build
        # a module of gigabytes first)
        result = verify_report(analysed(network, batch, dtype.value), device, dtype.value, warmup, repeats, force)
    if output_format is VerifyFormat.json:
        typer.echo(verify_json(result))
    else:
        stdout_console().print(verify_rich(result))
    raise typer.Exit(0 if result.passed else EXIT_FINDINGS)


def against_target(network: NetworkSpec, against: str | None) -> tuple[str | None, dict[str, Any]]:
    """The model verify compares with: --against, else the one an imported spec records, else none (the
    model built from the spec)."""
    if against == "spec":
        return None, {}
    if against is not None:
        if not is_target(against) or against.lower().endswith(".onnx"):
            raise ConvauditError(f"--against: expected torchvision:NAME or package.module:function, got '{against}'")
        return against, {}
    imported = network.raw.get("imported") if isinstance(network.raw, dict) else None
    if isinstance(imported, dict) and not str(imported["from"]).lower().endswith(".onnx"):
        return str(imported["from"]), dict(imported.get("args") or {})
    return None, {}


BenchDtype = choices("BenchDtype", "fp32", "tf32", "bf16", "fp16")  # tf32: fp32 storage, TF32 math


DEFAULT_BENCH_SPEC = "alexnet"


def storage_dtype_name(dtype: str) -> str:
    return "fp32" if dtype == "tf32" else dtype  # TF32 is a compute mode over fp32 storage


@app.command()
@boundary
def bench(
    spec: Annotated[str, typer.Argument(metavar="[SPEC]", help="A spec file or bundled name (default: alexnet).")
                    ] = DEFAULT_BENCH_SPEC,
    input_size: InputOpt = None,
    variant: VariantOpt = None,
    batch: BatchOpt = 1,
    gpu: GpuOpt = False,
    dtype: Annotated[BenchDtype, typer.Option("--dtype", help="fp32, tf32 (fp32 storage, TF32 math), bf16 or fp16.")
                     ] = BenchDtype.fp32,
    channels_last: Annotated[bool, typer.Option("--channels-last", help="NHWC memory layout.")] = False,
    warmup: WarmupOpt = 5,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Timed runs per layer.")] = 20,
    backward: Annotated[bool, typer.Option("--backward/--no-backward", help="Time backward passes too.")] = True,
    peak: Annotated[str | None, typer.Option(
        "--peak", metavar="auto|TFLOPS", help="Device ceiling for % of peak and the roofline: 'auto' measures a "
        "large matmul; a number gives TFLOP/s by hand.")] = None,
    bandwidth: Annotated[float | None, typer.Option(
        "--bandwidth", metavar="GB/s", help="Memory bandwidth for the roofline with --peak TFLOPS (else measured).")
    ] = None,
    output_format: Annotated[BenchFormat, typer.Option("--format", "-f", help="Output format.")] = BenchFormat.table,
    depth: Annotated[int | None, typer.Option(
        "--depth", min=1, help="Also sum the timings per block at this depth (default 1 for specs with blocks).")
    ] = None,
    force: ForceOpt = False,
    devices: Annotated[int | None, typer.Option(
        "--devices", "-n", min=1, help="Run the `split` plan for real over this many processes with "
        "torch.distributed (gloo on the CPU, NCCL with --gpu), measuring the bytes that cross.")] = None,
    strategy: Annotated[Strategy, typer.Option("--strategy", "-s", help="With --devices: columns, model or data."
                                               )] = Strategy.columns,
) -> None:
    """Time every layer's forward and backward, and the whole model; throughput, roofline and memory per layer.

    Ctrl-C stops and prints what was measured so far (exit 130).
    """
    if devices is not None:
        require_torch("bench")
        from convaudit.pytorch.distributed import Options, bench_distributed
        from convaudit.render.plan import distributed_json, distributed_rich

        size = parse_input_size(input_size) if input_size is not None else None
        load_network(spec, input_size, variant)  # a bad spec fails here, in one line, before any worker starts
        outcome = bench_distributed(Options(spec, size, variant, batch, storage_dtype_name(dtype.value),
                                            strategy.value, devices, warmup, repeats, gpu))
        if outcome is None:  # a torchrun worker other than rank 0
            return
        if output_format is BenchFormat.json:
            typer.echo(distributed_json(outcome))
        else:
            stdout_console().print(distributed_rich(outcome))
        raise typer.Exit(0 if outcome["bytes_match"] and outcome["params_match"] else EXIT_FINDINGS)
    if peak is not None and peak != "auto" and not positive_finite(peak):
        raise ConvauditError(f"--peak: expected 'auto' or a positive number of TFLOP/s, got '{peak[:40]}'")
    if bandwidth is not None and not positive_finite(bandwidth):
        raise ConvauditError(f"--bandwidth: expected a positive number of GB/s, got {bandwidth}")
    require_torch("bench")
    from convaudit.pytorch.bench import bench_report, storage_dtype
    from convaudit.pytorch.runtime import pick_device
    from convaudit.render.bench import bench_csv, bench_json, bench_rich

    network = load_network(spec, input_size, variant)
    device = pick_device(gpu)
    report = analysed(network, batch, storage_dtype(dtype.value))
    with bench_progress() as progress:
        result = bench_report(report, device, dtype.value, warmup, repeats, backward, channels_last, peak,
                              bandwidth, progress, force)
    if output_format is BenchFormat.json:
        typer.echo(bench_json(result, depth))
    elif output_format is BenchFormat.csv:
        typer.echo(bench_csv(result), nl=False)
    else:
        stdout_console().print(bench_rich(result, depth))
    if result.interrupted:
        raise typer.Exit(130)


@contextlib.contextmanager
def bench_progress() -> Iterator[Callable[[int, int, str], None]]:
    """A Rich progress bar over the layers, on stderr so that JSON and CSV on stdout stay clean."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(TextColumn("bench"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn(), console=console, transient=console.is_terminal) as bar:
        task = bar.add_task("", total=None)

        def update(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total, description=name)

        yield update


@app.command("audit")
@boundary
def audit_claims(
    specs: Annotated[list[str] | None, typer.Argument(
        metavar="[SPEC]...", help="Spec files or bundled names; every bundled spec with claims if none.")] = None,
    variant: VariantOpt = None,
    output_format: Annotated[CheckFormat, typer.Option("--format", "-f", help="Output format.")] = CheckFormat.table,
    explain: Annotated[bool, typer.Option("--explain", help="Show the arithmetic of every claim, not only "
                                                            "the contradicted ones.")] = False,
) -> None:
    """Check what sources claim (the spec's claims: section) against the analysis. Exit 1 if any is contradicted."""
    from convaudit.core.claims import audit
    from convaudit.render.audit import audit_json, audit_markdown, audit_rich

    networks = [load_network(ref, None, variant) for ref in specs_or_bundled(specs, variant)]
    if not specs:
        networks = [network for network in networks if network.claims]
    audits = [(net, audit(net, lambda name, net=net: load_spec(net.file, name))) for net in networks]
    if output_format is CheckFormat.json:
        typer.echo(audit_json(audits))
    elif output_format is CheckFormat.markdown:
        typer.echo(audit_markdown(audits), nl=False)
    else:
        stdout_console().print(audit_rich(audits, explain))
    raise typer.Exit(EXIT_FINDINGS if any(not v.holds for _, verdicts in audits for v in verdicts) else 0)


@app.command("diff")
@boundary
def diff_specs(
    left: SpecArg,
    right: Annotated[str | None, typer.Argument(
        metavar="[SPEC_B]", help="The second spec; the first again if left out (compare two inputs).")] = None,
    input_sizes: Annotated[list[str] | None, typer.Option(
        "--input", "-i", metavar="N|HxW", help="Input size: once for both sides, or twice (A then B).")] = None,
    output_format: Annotated[CheckFormat, typer.Option("--format", "-f", help="Output format.")] = CheckFormat.table,
    changed_only: Annotated[bool, typer.Option("--changed", help="Show only the rows that differ.")] = False,
    strategies: Annotated[list[Strategy] | None, typer.Option(
        "--strategy", "-s", help="Compare split plans (as `split`): once for both sides, or twice (A then B).")
    ] = None,
    device_counts: Annotated[list[int] | None, typer.Option(
        "--devices", "-n", min=1, metavar="N", help="Compare split plans over N devices: once for both sides, or "
        "twice.")] = None,
    batch: Annotated[int | None, typer.Option("--batch", "-b", min=1, metavar="N",
                                              help="Plans: batch of one step (128).")] = None,
    dtype: Annotated[Dtype | None, typer.Option("--dtype", help="Plans: element type (fp32).")] = None,
    optimizer: Annotated[Optimizer | None, typer.Option("--optimizer", help="Plans: optimizer state (momentum).")
                         ] = None,
    device_memory: Annotated[str | None, typer.Option(
        "--device-memory", metavar="SIZE", help="Plans: memory of each device, such as 3GiB.")] = None,
) -> None:
    """Two specs, or one spec at two inputs, side by side: shapes, parameters and MACs per layer. With
    --strategy or --devices, two split plans side by side: per-device parameters, FLOPs and bytes crossing.

    convaudit diff alexnet --input 224 --input 227 · convaudit diff alexnet --strategy columns --strategy data
    """
    from convaudit.core.diff import align
    from convaudit.render.diff import diff_json, diff_markdown, diff_rich

    sizes, chosen, counts = input_sizes or [], strategies or [], device_counts or []
    for option, given in (("--input", sizes), ("--strategy", chosen), ("--devices", counts)):
        if len(given) > 2:
            raise ConvauditError(f"{option}: give it once (both sides) or twice (A then B)")
    planning = bool(chosen or counts)
    if not planning and (batch, dtype, optimizer, device_memory) != (None,) * 4:
        raise ConvauditError("--batch, --dtype, --optimizer and --device-memory compare split plans: "
                             "give --strategy or --devices too")
    if right is None and 2 not in (len(sizes), len(chosen), len(counts)):
        raise ConvauditError("diff needs two specs, or one spec and two --input sizes"
                             + (", --strategy or --devices" if planning else ""))
    left_size = sizes[0] if sizes else None
    right_size = sizes[-1] if sizes else None
    if planning:
        from convaudit.core.plan import parse_size, plan
        from convaudit.core.plan_diff import compare
        from convaudit.render.plan_diff import plan_diff_json, plan_diff_markdown, plan_diff_rich

        memory = parse_size(device_memory) if device_memory is not None else None
        sides = []
        for index, (reference, size) in enumerate(((left, left_size), (right or left, right_size))):
            network = load_network(reference, size)
            pick = -1 if index else 0
            sides.append(plan(analysed(network, batch or 128, (dtype or Dtype.fp32).value),
                              (chosen[pick] if chosen else Strategy.columns).value, counts[pick] if counts else 2,
                              (optimizer or Optimizer.momentum).value, network.placement, None, memory,
                              network.placement_where))
        result = compare(*sides)
        if output_format is CheckFormat.json:
            typer.echo(plan_diff_json(result))
        elif output_format is CheckFormat.markdown:
            typer.echo(plan_diff_markdown(result), nl=False)
        else:
            stdout_console().print(plan_diff_rich(result, changed_only))
        return
    a = analysed(load_network(left, left_size))
    b = analysed(load_network(right or left, right_size))
    pairs = align(a, b)
    if output_format is CheckFormat.json:
        typer.echo(diff_json(a, b, pairs))
    elif output_format is CheckFormat.markdown:
        typer.echo(diff_markdown(a, b, pairs), nl=False)
    else:
        stdout_console().print(diff_rich(a, b, pairs, changed_only))


@app.command("list")
@boundary
def list_architectures(
    output_format: Annotated[CheckFormat, typer.Option("--format", "-f", help="Output format.")] = CheckFormat.table,
) -> None:
    """The bundled architectures, with title, input, parameters and MACs."""
    rows = []
    for path in bundled_paths():
        spec = load_spec(path)
        totals = analysed(spec).totals
        rows.append({"name": spec.name, "aliases": list(spec.aliases), "title": spec.title,
                     "input": list(spec.input), "params": totals.params, "macs": totals.macs,
                     "variants": dict(spec.variants)})
    if output_format is CheckFormat.json:
        typer.echo(library_json(rows))
    elif output_format is CheckFormat.markdown:
        typer.echo(library_markdown(rows), nl=False)
    else:
        stdout_console().print(library_table(rows))


@app.command("import")
@boundary
def import_model(
    target: Annotated[str, typer.Argument(metavar="TARGET", help="torchvision:NAME, package.module:function "
                                          "(a factory returning an nn.Module) or model.onnx.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="SPEC.yaml",
                                                help="Write the spec here (default: print it).")] = None,
    arg: Annotated[list[str] | None, typer.Option(
        "--arg", metavar="KEY=VALUE", help="An argument for the factory or builder, as a YAML scalar: "
        "--arg num_classes=10 (repeatable).")] = None,
    input_size: Annotated[str | None, typer.Option(
        "--input", "-i", metavar="N|HxW", help="Trace at this input size (default: the model's own, else 224).")
    ] = None,
    channels: Annotated[int, typer.Option("--channels", min=1, help="Input channels.")] = 3,
    flat: Annotated[bool, typer.Option("--flat", help="One line per layer: no blocks.")] = False,
) -> None:
    """Read a real model (PyTorch or ONNX) into a readable spec: module-path names, repeated blocks folded.

    Every layer's shape and parameters are checked against the trace before the spec is written. An operator
    convaudit cannot count stops the import (exit 2), naming the operator and the module path.
    """
    from convaudit.importers import read, spec_of, spec_text

    if not is_target(target):
        raise ConvauditError(f"'{target}' is not an importable target: give torchvision:NAME, "
                             "package.module:function or a .onnx file")
    imported = read(target, parse_args(arg or []), parse_input_size(input_size) if input_size else None, channels)
    spec = spec_of(imported, fold=not flat, file=str(output) if output else target)
    text = spec_text(imported, fold=not flat)
    totals = analysed(spec).totals
    if output is None:
        typer.echo(text, nl=False)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as error:
            raise ConvauditError(f"cannot write {output}: {error.strerror or error}") from None
    where = f"wrote {output}" if output else "imported"
    reference = f" (sum(p.numel()) {imported.model_params:,})" if imported.model_params is not None else ""
    typer.echo(f"{where}: {printable(target)}, {len(spec.layers)} layers, params {totals.params:,}{reference}, "
               f"MACs {totals.macs:,} at {'×'.join(map(str, spec.input))}", err=True)


def parse_args(pairs: list[str]) -> dict[str, Any]:
    """--arg key=value pairs; values read as YAML scalars (10, 0.5, true, resnet)."""
    import yaml

    args: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ConvauditError(f"--arg: expected KEY=VALUE such as num_classes=10, got '{printable(pair)}'")
        try:
            args[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            raise ConvauditError(f"--arg {printable(key)}: cannot read '{printable(value)}' as a YAML value") from None
    return args


@app.command()
@boundary
def schema() -> None:
    """Print the JSON Schema of the spec format (for editor validation and completion)."""
    from convaudit.spec.schema import schema_json

    typer.echo(schema_json())


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"convaudit {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=version_callback, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """Audit convolutional network architectures."""


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # between commands: while click parses, say
        say_interrupted()
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # outside any command (Typer building the CLI): still one line
        if os.environ.get("CONVAUDIT_DEBUG"):
            raise
        typer.echo(f"internal error ({type(exc).__name__}: {safe_text(exc)}); rerun with CONVAUDIT_DEBUG=1 "
                   "and report it", err=True)
        sys.exit(3)
