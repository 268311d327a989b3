"""The commands that write a file: report, draw and import.

Every file is written whole or not at all (convaudit.atomic_write): the old file survives a kill, a full disk
or a Ctrl-C mid-write. Without -o, draw and import print to standard output instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from convaudit.cli.emit import Result, emit
from convaudit.cli.networks import network
from convaudit.cli.options import (
    BatchOpt,
    Dtype,
    DtypeOpt,
    InputOpt,
    Optimizer,
    OptimizerOpt,
    SpecArg,
    VariantOpt,
    choices,
    parse_args,
    shown,
)
from convaudit.errors import ConvauditError, printable

# draw's layouts, as render/report/svg.py's LAYOUTS names them (a test keeps the two lists equal)
Layout = choices("Layout", "slide", "wide", "tall")


def write_file(path: str, text: str) -> None:
    from convaudit.atomic_write import write_atomically

    write_atomically(path, text)
    typer.echo(f"wrote {printable(path)}", err=True)


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
    from convaudit.core.checks import check
    from convaudit.render.report.page import load_bench, report_html
    from convaudit.render.summary import View
    from convaudit.resolve import analysed

    bench_data = load_bench(bench_file) if bench_file else None
    report = analysed(network(spec, input_size, variant), batch, dtype.value)
    write_file(output, report_html(View(report, None, optimizer.value), check(report), bench_data))


def draw_network(
    spec: SpecArg,
    output: Annotated[str | None, typer.Option("--output", "-o", metavar="FILE", help="Where to write the SVG "
                                               "(standard output if left out).")] = None,
    input_size: InputOpt = None,
    variant: VariantOpt = None,
    depth: Annotated[int | None, typer.Option(
        "--depth", min=1, metavar="DEPTH",
        help="Open blocks down to this depth only (default: all; runs of a long chain stay shut).")] = None,
    layout: Annotated[Layout, typer.Option(
        "--layout", metavar=shown(*(member.value for member in Layout)),
        help="slide: left to right, rows wrapped to come closest to 16:9; wide: left to right in one row; "
             "tall: top to bottom in one column.")] = Layout.slide,
) -> None:
    """The network alone as a standalone SVG: one box per layer or block, output shapes on the edges."""
    from convaudit.core.checks import check
    from convaudit.render.report.svg import draw_svg
    from convaudit.resolve import analysed

    report = analysed(network(spec, input_size, variant))
    svg = draw_svg(report, check(report), depth, layout.value)
    if output is None:
        emit(Result("text", svg), "svg")
    else:
        write_file(output, svg)


def import_model(
    target: Annotated[str, typer.Argument(metavar="TARGET", show_default=False, help="torchvision:NAME, "
                                          "package.module:function (a factory returning an nn.Module) or "
                                          "model.onnx.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="SPEC.yaml",
                                                help="Write the spec here (default: print it).")] = None,
    arg: Annotated[list[str] | None, typer.Option(
        "--arg", metavar="KEY=VALUE", help="An argument for the factory or builder, as a YAML scalar: "
        "--arg num_classes=10 (repeatable).")] = None,
    input_size: Annotated[str | None, typer.Option(
        "--input", "-i", metavar="N|HxW|DxHxW", help="Trace at this input size (default: the model's own, else "
        "224).")] = None,
    channels: Annotated[int, typer.Option("--channels", min=1, metavar="CHANNELS", help="Input channels.")] = 3,
    input_shape: Annotated[str | None, typer.Option(
        "--input-shape", metavar="C,…", help="Trace at this whole sample shape, channels first: 1,16000 (audio), "
        "3,16,112,112 (video), 3,256,256. Overrides --input and --channels.")] = None,
    partial: Annotated[bool, typer.Option(
        "--partial", help="Keep operators convaudit cannot count as named `uncounted` layers (shapes kept, their "
        "cost listed as not counted) instead of stopping; where the trace must stop (a data-dependent operator: "
        "detection's NMS), count what ran before it and name what did not.")] = False,
    flat: Annotated[bool, typer.Option("--flat", help="One line per layer: no blocks.")] = False,
) -> None:
    """Read a real model (PyTorch or ONNX) into a readable spec: module-path names, repeated blocks folded.

    Every layer's shape and parameters are checked against the trace before the spec is written. An operator
    convaudit cannot count stops the import (exit 2), naming every such operator and its module path, unless
    --partial keeps them as uncounted layers. So does an operator whose output depends on tensor values (the
    trace runs on the meta device); --partial then counts what runs before it.
    """
    from convaudit.importers import is_target, read, spec_of, spec_text
    from convaudit.resolve import analysed, parse_input_size, parse_shape

    if not is_target(target):
        raise ConvauditError(f"'{printable(target)}' is not an importable target: give torchvision:NAME, "
                             "package.module:function or a .onnx file")
    imported = read(target, parse_args(arg or []), parse_input_size(input_size) if input_size else None, channels,
                    parse_shape(input_shape) if input_shape else None, partial)
    spec = spec_of(imported, fold=not flat, file=str(output) if output else target)
    text = spec_text(imported, fold=not flat)
    totals = analysed(spec).totals
    if output is None:
        emit(Result("text", text), "yaml")
    else:
        from convaudit.atomic_write import write_atomically

        write_atomically(output, text)
    where = f"wrote {printable(str(output))}" if output else "imported"
    reference = f" (sum(p.numel()) {imported.model_params:,})" if imported.model_params is not None else ""
    partial = " (partial: the spec's comments say what is not counted)" if imported.partial else ""
    typer.echo(f"{where}: {printable(target)}, {len(spec.layers)} layers, params {totals.params:,}{reference}, "
               f"MACs {totals.macs:,} at {'×'.join(map(str, spec.input))}{partial}", err=True)
