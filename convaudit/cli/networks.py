"""The analysis commands, torch-free: summary, rf, check, audit, diff, list and schema.

Each command parses its options, calls the core through the resolver, and emits the result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from convaudit.cli.emit import Result, emit
from convaudit.cli.options import (
    PLAN_BATCH,
    PLAN_DEVICES,
    PLAN_STRATEGY,
    AmpOpt,
    BatchOpt,
    CheckFormat,
    CheckpointOpt,
    Dtype,
    DtypeOpt,
    InputOpt,
    Optimizer,
    OptimizerOpt,
    SpecArg,
    SpecsArg,
    Strategy,
    SummaryFormat,
    VariantOpt,
    format_option,
    shown,
)
from convaudit.errors import EXIT_FINDINGS, ConvauditError

if TYPE_CHECKING:
    from convaudit.core.model import NetworkSpec


def network(reference: str, input_size: str | None, variant: str | None = None, partial: bool = False) -> NetworkSpec:
    """The spec a command argument names, at --input when given (the one resolver, see convaudit.resolve)."""
    from convaudit.resolve import parse_input_size, resolve_network

    return resolve_network(reference, parse_input_size(input_size) if input_size is not None else None, variant,
                           partial=partial)


def summary(
    spec: SpecArg,
    input_size: InputOpt = None,
    variant: VariantOpt = None,
    batch: BatchOpt = 1,
    dtype: DtypeOpt = Dtype.fp32,
    output_format: Annotated[SummaryFormat, format_option(SummaryFormat)] = SummaryFormat.table,
    columns: Annotated[str | None, typer.Option(
        "--columns", metavar="LIST", help="Table columns, comma-separated: default, all, or names such as "
        "layer, output, other_ops (written without spaces)."
    )] = None,
    depth: Annotated[int | None, typer.Option(
        "--depth", min=1, metavar="DEPTH", help="Collapse blocks below this depth (1: one row per top-level "
                                                "block).")] = None,
    rf: Annotated[bool, typer.Option("--rf", help="Add receptive-field columns: RF, jump, start, unseen pixels.")
                  ] = False,
    optimizer: OptimizerOpt = Optimizer.adam,
    amp: AmpOpt = None,
    checkpoint: CheckpointOpt = None,
    partial: Annotated[bool, typer.Option(
        "--partial", help="For a target: count what can be counted and name the rest, as `import --partial`.")
    ] = False,
) -> None:
    """Per-layer shapes, parameters, MACs and FLOPs, with totals, memory and the conventions used."""
    from convaudit.render.summary import View, parse_columns
    from convaudit.resolve import analysed

    report = analysed(network(spec, input_size, variant, partial), batch, dtype.value)
    try:
        chosen = parse_columns(columns)
    except ValueError as exc:
        raise ConvauditError(f"--columns: {exc}") from None
    view = View(report, depth, optimizer.value, amp.value if amp else None, checkpoint)
    if amp or checkpoint:
        view.memory  # noqa: B018  (a bad --checkpoint or --amp is one error line before any output)
    emit(Result("summary", view, {"columns": chosen, "rf": rf}), output_format)


def receptive_field(
    spec: SpecArg,
    input_size: InputOpt = None,
    variant: VariantOpt = None,
    depth: Annotated[int | None, typer.Option("--depth", min=1, metavar="DEPTH",
                                              help="One row per block at this depth.")] = None,
    output_format: Annotated[CheckFormat, format_option(CheckFormat)] = CheckFormat.table,
) -> None:
    """Receptive field, jump and first centre of every layer, per axis, and the input pixels no output sees."""
    from convaudit.render.summary import View
    from convaudit.resolve import analysed

    emit(Result("rf", View(analysed(network(spec, input_size, variant)), depth)), output_format)


def check(
    specs: SpecsArg = None,
    input_size: InputOpt = None,
    variant: VariantOpt = None,
    output_format: Annotated[CheckFormat, format_option(CheckFormat)] = CheckFormat.table,
    strict: Annotated[bool, typer.Option("--strict", help="Fail (exit 1) on warnings too.")] = False,
) -> None:
    """Find inexact divisions, layers that do not fit, and claims that do not hold. Exit 1 on errors."""
    from convaudit.core.analysis import analyze
    from convaudit.core.checks import check as check_report
    from convaudit.core.checks import exit_status
    from convaudit.render.findings import Checked

    networks = [network(ref, input_size, variant) for ref in specs_or_bundled(specs, variant)]
    checked = [Checked(net.label, net.input, tuple(check_report(analyze(net)))) for net in networks]
    scope = None
    if not specs:  # say what was checked, and why
        at = f"at --input {input_size}" if input_size else "each at its own input"
        scope = (f"no SPEC given: checked all {len(networks)} bundled architectures {at}: "
                 f"{', '.join(net.label for net in networks)}")
    emit(Result("check", checked, {"scope": scope}), output_format)
    raise typer.Exit(exit_status([f for item in checked for f in item.findings], strict))


def specs_or_bundled(specs: list[str] | None, variant: str | None) -> list[str]:
    """The references given, or every bundled spec; a variant needs a spec to belong to."""
    from convaudit.spec.library import bundled_paths

    if specs:
        return specs
    if variant:
        raise ConvauditError("--variant needs a SPEC: each spec defines its own variants")
    return [str(path) for path in bundled_paths()]


def audit_claims(
    specs: Annotated[list[str] | None, typer.Argument(
        metavar="SPEC", show_default=False,
        help="Spec files or bundled names; every bundled spec with claims if none.")] = None,
    variant: VariantOpt = None,
    output_format: Annotated[CheckFormat, format_option(CheckFormat)] = CheckFormat.table,
    explain: Annotated[bool, typer.Option("--explain", help="Show the arithmetic of every claim, not only "
                                                            "the contradicted ones.")] = False,
) -> None:
    """Check what sources claim (the spec's claims: section) against the analysis. Exit 1 if any is contradicted."""
    from convaudit.core.claims import audit
    from convaudit.spec.parser import load_spec

    networks = [network(ref, None, variant) for ref in specs_or_bundled(specs, variant)]
    if not specs:
        networks = [net for net in networks if net.claims]
    audits = [(net, audit(net, lambda name, net=net: load_spec(net.file, name))) for net in networks]
    emit(Result("audit", audits, {"explain": explain}), output_format)
    raise typer.Exit(EXIT_FINDINGS if any(not v.holds for _, verdicts in audits for v in verdicts) else 0)


def diff_specs(
    left: SpecArg,
    right: Annotated[str | None, typer.Argument(
        metavar="SPEC_B", show_default=False,
        help="The second spec; the first again if left out (compare two inputs).")] = None,
    input_sizes: Annotated[list[str] | None, typer.Option(
        "--input", "-i", metavar="N|HxW|DxHxW", help="Input size: once for both sides, or twice (A then B).")] = None,
    output_format: Annotated[CheckFormat, format_option(CheckFormat)] = CheckFormat.table,
    changed_only: Annotated[bool, typer.Option("--changed", help="Show only the rows that differ.")] = False,
    strategies: Annotated[list[Strategy] | None, typer.Option(
        "--strategy", "-s", metavar=shown(*(member.value for member in Strategy)),
        help="Compare split plans (as `split`): once for both sides, or twice (A then B).")] = None,
    device_counts: Annotated[list[int] | None, typer.Option(
        "--devices", "-n", min=1, metavar="N", help="Compare split plans over N devices: once for both sides, or "
        "twice.")] = None,
    batch: Annotated[int | None, typer.Option("--batch", "-b", min=1, metavar="N",
                                              help=f"Plans: batch of one step ({PLAN_BATCH}).")] = None,
    dtype: Annotated[Dtype | None, typer.Option("--dtype", metavar=shown(*(member.value for member in Dtype)),
                                                help="Plans: element type (fp32).")] = None,
    optimizer: Annotated[Optimizer | None, typer.Option(
        "--optimizer", metavar=shown(*(member.value for member in Optimizer)),
        help="Plans: optimizer state (momentum).")] = None,
    device_memory: Annotated[str | None, typer.Option(
        "--device-memory", metavar="SIZE", help="Plans: memory of each device, such as 3GiB.")] = None,
) -> None:
    """Two specs, or one spec at two inputs, side by side: shapes, parameters and MACs per layer. With
    --strategy or --devices, two split plans side by side: per-device parameters, FLOPs and bytes crossing.

    convaudit diff alexnet --input 224 --input 227 · convaudit diff alexnet --strategy columns --strategy data
    """
    from convaudit.core.diff import compare_reports, per_side, validate_diff
    from convaudit.resolve import analysed

    chosen = [strategy.value for strategy in strategies or []]
    planning = validate_diff(right is not None, input_sizes or [], chosen, device_counts or [],
                             {"--batch": batch, "--dtype": dtype, "--optimizer": optimizer,
                              "--device-memory": device_memory})
    sides = zip((left, right or left), per_side(input_sizes or [], None), strict=True)
    if not planning:
        reports = [analysed(network(reference, size)) for reference, size in sides]
        emit(Result("diff", compare_reports(*reports), {"changed_only": changed_only}), output_format)
        return
    from convaudit.core.plan import parse_size
    from convaudit.core.plan_diff import compare_plans

    reports = [analysed(network(reference, size), batch or PLAN_BATCH, (dtype or Dtype.fp32).value)
               for reference, size in sides]
    result = compare_plans(reports, per_side(chosen, PLAN_STRATEGY), per_side(device_counts or [], PLAN_DEVICES),
                           (optimizer or Optimizer.momentum).value,
                           parse_size(device_memory) if device_memory is not None else None)
    emit(Result("plan_diff", result, {"changed_only": changed_only}), output_format)


def list_architectures(
    output_format: Annotated[CheckFormat, format_option(CheckFormat)] = CheckFormat.table,
) -> None:
    """The bundled architectures, with title, input, parameters and MACs."""
    from convaudit.resolve import analysed
    from convaudit.spec.library import bundled_paths
    from convaudit.spec.parser import load_spec

    rows = []
    for path in bundled_paths():
        spec = load_spec(path)
        totals = analysed(spec).totals
        rows.append({"name": spec.name, "aliases": list(spec.aliases), "title": spec.title,
                     "input": list(spec.input), "params": totals.params, "macs": totals.macs,
                     "variants": dict(spec.variants)})
    emit(Result("list", rows), output_format)


def schema() -> None:
    """Print the JSON Schema of the spec format (for editor validation and completion)."""
    from convaudit.spec.schema import schema_json

    emit(Result("schema", schema_json()), "json")
