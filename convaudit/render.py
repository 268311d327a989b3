"""Turn reports and findings into Rich tables, JSON, CSV and Markdown. No arithmetic beyond formatting."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from .analysis import CONVENTIONS, TOTAL_FIELDS, LayerResult, Report
from .checks import Finding
from .windows import format_fraction

INEXACT_MARK = "⚠"  # floor rounding dropped part of the input
CEIL_MARK = "↑"  # ceil rounding (deliberate, Caffe-style)


# ---------------------------------------------------------------- formatting helpers

def fmt_int(value: int) -> str:
    return f"{value:,}"


def fmt_si(value: int | float, unit: str = "") -> str:
    """724406816 -> '724.4 M' (four significant figures; for reading, never for quoting)."""
    for factor, prefix in ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.4g} {prefix}{unit}"
    return f"{value:g} {unit}".rstrip()


def fmt_bytes(value: int) -> str:
    """IEC units: 243860896 -> '232.6 MiB'."""
    for factor, unit in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if value >= factor:
            return f"{value / factor:.1f} {unit}"
    return f"{value} B"


def fmt_shape(shape: Iterable[int]) -> str:
    return "×".join(str(d) for d in shape)


def fmt_share(part: int, whole: int) -> str:
    if not part or not whole:
        return ""
    return f"{100 * part / whole:.1f}%"


def rounding_note(layer: LayerResult) -> str:
    """'⚠ 54.25' for a floored inexact division, '↑ 55.5' for a ceil-rounded one, '' if exact."""
    inexact = [axis for axis in layer.windows if not axis.is_exact]
    if not inexact:
        return ""
    mark = CEIL_MARK if inexact[0].ceil else INEXACT_MARK
    values = sorted({format_fraction(axis.exact) for axis in inexact})
    return f"{mark} {'/'.join(values)}"


# ---------------------------------------------------------------- columns

@dataclass(frozen=True)
class Column:
    key: str
    title: str
    cell: Callable[[LayerResult, Report], str]
    total: Callable[[Report], str] = lambda report: ""
    numeric: bool = True


def _output_cell(layer: LayerResult, report: Report) -> str:
    note = rounding_note(layer)
    return f"{fmt_shape(layer.output_shape)} {note}" if note else fmt_shape(layer.output_shape)


COLUMNS: dict[str, Column] = {c.key: c for c in (
    Column("layer", "Layer", lambda l, r: l.name, lambda r: "Total", numeric=False),
    Column("type", "Type", lambda l, r: l.type, numeric=False),
    Column("input", "Input", lambda l, r: " + ".join(fmt_shape(s) for s in l.input_shapes), numeric=False),
    Column("output", "Output", _output_cell, numeric=False),
    Column("params", "Params", lambda l, r: fmt_int(l.params) if l.params else "",
           lambda r: fmt_int(r.totals.params)),
    Column("weights", "Weights", lambda l, r: fmt_int(l.weights) if l.weights else "",
           lambda r: fmt_int(r.totals.weights)),
    Column("biases", "Biases", lambda l, r: fmt_int(l.biases) if l.biases else "",
           lambda r: fmt_int(r.totals.biases)),
    Column("macs", "MACs", lambda l, r: fmt_int(l.macs) if l.macs else "", lambda r: fmt_int(r.totals.macs)),
    Column("flops", "FLOPs", lambda l, r: fmt_int(l.flops) if l.flops else "", lambda r: fmt_int(r.totals.flops)),
    Column("share", "Share", lambda l, r: fmt_share(l.flops, r.totals.flops), lambda r: "100%"),
    Column("other_ops", "Other ops", lambda l, r: fmt_int(l.other_ops) if l.other_ops else "",
           lambda r: fmt_int(r.totals.other_ops)),
    Column("activations", "Activations", lambda l, r: fmt_int(l.activations), lambda r: fmt_int(r.totals.activations)),
    Column("memory", "Act. memory", lambda l, r: fmt_bytes(l.activation_bytes),
           lambda r: fmt_bytes(r.totals.activation_bytes)),
)}
DEFAULT_COLUMNS = ("layer", "type", "output", "params", "macs", "flops", "share")


def parse_columns(text: str | None) -> tuple[str, ...]:
    """'default,other_ops' or 'layer,output,macs' -> column keys; ValueError names the unknown one."""
    if not text:
        return DEFAULT_COLUMNS
    keys: list[str] = []
    for key in (part.strip() for part in text.split(",") if part.strip()):
        if key == "default":
            keys += DEFAULT_COLUMNS
        elif key == "all":
            keys += COLUMNS
        elif key in COLUMNS:
            keys.append(key)
        else:
            raise ValueError(f"unknown column '{key}'; choose from default, all, {', '.join(COLUMNS)}")
    return tuple(dict.fromkeys(keys))


# ---------------------------------------------------------------- summary

def report_dict(report: Report) -> dict[str, Any]:
    """The JSON contract of `summary --format json`."""
    return {
        "name": report.spec.name,
        "title": report.spec.title,
        "source": report.spec.source,
        "input": list(report.input),
        "batch": report.batch,
        "dtype": report.dtype,
        "conventions": dict(CONVENTIONS),
        "layers": [layer_dict(layer) for layer in report.layers],
        "totals": {name: getattr(report.totals, name) for name in TOTAL_FIELDS},
    }


def layer_dict(layer: LayerResult) -> dict[str, Any]:
    return {
        "name": layer.name,
        "type": layer.type,
        "inputs": list(layer.spec.inputs),
        "input_shape": list(layer.input_shapes[0]),
        "input_shapes": [list(shape) for shape in layer.input_shapes],
        "output_shape": list(layer.output_shape),
        "params": layer.params,
        "weights": layer.weights,
        "biases": layer.biases,
        "trainable_params": layer.trainable_params,
        "non_trainable_params": layer.non_trainable_params,
        "macs": layer.macs,
        "flops": layer.flops,
        "other_ops": layer.other_ops,
        "activations": layer.activations,
        "param_bytes": layer.param_bytes,
        "activation_bytes": layer.activation_bytes,
        "exact": layer.exact,
        "divisions": [
            {"axis": axis.axis, "formula": axis.formula(), "value": format_fraction(axis.exact),
             "rounding": "ceil" if axis.ceil else "floor", "out": axis.out}
            for axis in layer.windows
        ],
    }


def summary_json(report: Report) -> str:
    return json.dumps(report_dict(report), indent=2, ensure_ascii=False)


CSV_FIELDS = ("name", "type", "input_shape", "output_shape", "params", "weights", "biases", "trainable_params",
              "non_trainable_params", "macs", "flops", "other_ops", "activations", "param_bytes",
              "activation_bytes", "exact")


def summary_csv(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for layer in report.layers:
        row = layer_dict(layer)
        writer.writerow([fmt_shape(row[f]) if f.endswith("shape") else row[f] for f in CSV_FIELDS])
    totals = report.totals
    writer.writerow(["TOTAL", "", fmt_shape(report.input), ""] + [
        getattr(totals, f) if f in TOTAL_FIELDS else "" for f in CSV_FIELDS[4:]])
    return buffer.getvalue()


def _headline(report: Report) -> str:
    spec = report.spec
    title = f" — {spec.title}" if spec.title else ""
    return f"{spec.name}{title}"


def _setting(report: Report) -> str:
    return f"input {fmt_shape(report.input)} · batch {report.batch} · {report.dtype}"


def totals_lines(report: Report) -> list[str]:
    t = report.totals
    per = f" (batch {report.batch})" if report.batch > 1 else ""
    lines = [
        f"params {fmt_int(t.params)} ≈ {fmt_si(t.params)}: trainable {fmt_int(t.trainable_params)}, "
        f"non-trainable {fmt_int(t.non_trainable_params)}",
        f"MACs {fmt_int(t.macs)} ≈ {fmt_si(t.macs)} · FLOPs {fmt_int(t.flops)} ≈ {fmt_si(t.flops)} · "
        f"other ops {fmt_int(t.other_ops)}{per}",
        f"memory at {report.dtype}: params {fmt_bytes(t.param_bytes)} · activations "
        f"{fmt_bytes(t.activation_bytes)} ({fmt_int(t.activations)} values){per}",
    ]
    return lines


def convention_lines(report: Report) -> list[str]:
    lines = [
        "MACs: multiply-accumulates of conv, linear, subsample and RBF layers. FLOPs = 2 × MACs.",
        "Other ops (bias adds, activations, pooling, LRN, softmax, batchnorm) are counted apart, not in FLOPs.",
        "Output sizes: floor((W − K + 2P)/S) + 1 as PyTorch; layers with ceil: true round up.",
    ]
    notes = [layer for layer in report.layers if not layer.exact]
    if any(not a.ceil for layer in notes for a in layer.windows if not a.is_exact):
        lines.append(f"{INEXACT_MARK} marks a division that is not exact (value shown, floored by PyTorch): "
                     "see `convaudit check`.")
    if any(a.ceil for layer in notes for a in layer.windows if not a.is_exact):
        lines.append(f"{CEIL_MARK} marks a division rounded up by ceil: true.")
    return lines


def summary_table(report: Report, columns: tuple[str, ...] = DEFAULT_COLUMNS) -> Group:
    chosen = [COLUMNS[key] for key in columns]
    table = Table(title=_headline(report), caption=_setting(report), box=box.SIMPLE_HEAD, show_footer=True,
                  pad_edge=False, title_justify="left", caption_justify="left")
    for column in chosen:
        table.add_column(column.title, footer=column.total(report), justify="right" if column.numeric else "left",
                         no_wrap=column.key in ("output", "layer"))
    for layer in report.layers:
        cells = [column.cell(layer, report) for column in chosen]
        style = "yellow" if not layer.exact and any(not a.ceil for a in layer.windows) else None
        table.add_row(*cells, style=style)
    notes = Text("\n".join(totals_lines(report)) + "\n\n" + "\n".join(convention_lines(report)))
    return Group(table, notes)


def summary_markdown(report: Report, columns: tuple[str, ...] = DEFAULT_COLUMNS) -> str:
    chosen = [COLUMNS[key] for key in columns]
    lines = [f"### {_headline(report)}", "", _setting(report), ""]
    lines.append("| " + " | ".join(c.title for c in chosen) + " |")
    lines.append("|" + "|".join("---:" if c.numeric else "---" for c in chosen) + "|")
    for layer in report.layers:
        lines.append("| " + " | ".join(c.cell(layer, report) for c in chosen) + " |")
    lines.append("| " + " | ".join(f"**{c.total(report)}**" if c.total(report) else "" for c in chosen) + " |")
    lines.append("")
    lines += [f"- {line}" for line in totals_lines(report) + convention_lines(report)]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- findings

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def finding_dict(finding: Finding) -> dict[str, Any]:
    return {
        "spec": finding.spec,
        "layer": finding.layer,
        "severity": finding.severity,
        "kind": finding.kind,
        "message": finding.message,
        "suggestions": list(finding.suggestions),
        "file": finding.where.file,
        "line": finding.where.line,
        "key": finding.where.key,
    }


@dataclass(frozen=True)
class Checked:
    """One spec checked at one input, with what was found."""

    spec: str
    input: tuple[int, int, int]
    findings: tuple[Finding, ...]

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)


def findings_json(checked: list[Checked]) -> str:
    return json.dumps({
        "checked": [{"spec": c.spec, "input": list(c.input), "errors": c.count("error"),
                     "warnings": c.count("warning"), "infos": c.count("info")} for c in checked],
        "findings": [finding_dict(f) for c in checked for f in c.findings],
    }, indent=2, ensure_ascii=False)


def _tally(checked: Checked) -> str:
    parts = [f"{checked.count(s)} {s}{'s' if checked.count(s) != 1 else ''}"
             for s in ("error", "warning", "info") if checked.count(s)]
    return ", ".join(parts) if parts else "clean"


def findings_rich(checked: list[Checked]) -> Group:
    parts: list[Any] = []
    for item in checked:
        errors = item.count("error")
        mark, style = ("✗", "bold red") if errors else ("✓", "green")
        head = Text()
        head.append(f"{mark} ", style=style)
        head.append(item.spec, style="bold")
        head.append(f" at {fmt_shape(item.input)}: {_tally(item)}")
        parts.append(head)
        if not item.findings:
            continue
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=2)
        grid.add_column(no_wrap=True)
        grid.add_column(ratio=1)
        shown: set[str] = set()
        for finding in item.findings:
            body = Text(finding.message)
            body.append(f"\n{finding.where}", style="dim")
            for suggestion in finding.suggestions:
                if suggestion not in shown:
                    shown.add(suggestion)
                    body.append(f"\nfix: {suggestion}", style="green")
            grid.add_row("", Text(finding.severity, style=SEVERITY_STYLE[finding.severity]), body)
        parts.append(grid)
    return Group(*parts)


def findings_markdown(checked: list[Checked]) -> str:
    lines = []
    for item in checked:
        lines.append(f"- **{item.spec}** at {fmt_shape(item.input)}: {_tally(item)}")
        for finding in item.findings:
            lines.append(f"  - {finding.severity}: {finding.message} (`{finding.where}`)")
            lines += [f"    - fix: {s}" for s in finding.suggestions]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- list

def library_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for title, numeric in (("Name (aliases)", False), ("Title", False), ("Input", False), ("Params", True),
                           ("MACs", True)):
        table.add_column(title, justify="right" if numeric else "left", no_wrap=numeric or title == "Input")
    for row in rows:
        aliases = f" ({', '.join(row['aliases'])})" if row["aliases"] else ""
        table.add_row(row["name"] + aliases, row["title"], fmt_shape(row["input"]), fmt_int(row["params"]),
                      fmt_int(row["macs"]))
    return table
