"""`summary`: a report as a Rich table, JSON, CSV or Markdown."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..analysis import CONVENTIONS, TOTAL_FIELDS, LayerResult, Report, totals_of
from ..groups import Group as BlockGroup
from ..groups import group_key, grouped, main_and_side
from ..spec import INPUT
from ..windows import format_fraction
from .formatting import CEIL_MARK, INEXACT_MARK, fmt_bytes, fmt_int, fmt_shape, fmt_share, fmt_si, rounding_note

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


def count_column(key: str, title: str, blank_zero: bool = True) -> Column:
    """A column showing LayerResult.<key>, totalled from Totals.<key>."""

    def cell(layer: LayerResult, report: Report) -> str:
        value = getattr(layer, key)
        return fmt_int(value) if value or not blank_zero else ""

    return Column(key, title, cell, lambda report: fmt_int(getattr(report.totals, key)))


COLUMNS: dict[str, Column] = {c.key: c for c in (
    Column("layer", "Layer", lambda layer, report: layer.name, lambda report: "Total", numeric=False),
    Column("type", "Type", lambda layer, report: layer.type, numeric=False),
    Column("from", "From", lambda layer, report: ", ".join(layer.spec.inputs), numeric=False),
    Column("input", "Input", lambda layer, report: " + ".join(fmt_shape(s) for s in layer.input_shapes),
           numeric=False),
    Column("output", "Output", _output_cell, numeric=False),
    count_column("params", "Params"),
    count_column("weights", "Weights"),
    count_column("biases", "Biases"),
    count_column("macs", "MACs"),
    count_column("flops", "FLOPs"),
    Column("share", "Share", lambda layer, report: fmt_share(layer.flops, report.totals.flops),
           lambda report: "100%"),
    count_column("other_ops", "Other ops"),
    count_column("activations", "Activations", blank_zero=False),
    Column("memory", "Act. memory", lambda layer, report: fmt_bytes(layer.activation_bytes),
           lambda report: fmt_bytes(report.totals.activation_bytes)),
)}
DEFAULT_COLUMNS = ("layer", "type", "output", "params", "macs", "flops", "share")


def parse_columns(text: str | None) -> tuple[str, ...] | None:
    """'default,other_ops' or 'layer,output,macs' -> column keys (None: the default); ValueError names the
    unknown one."""
    if not text:
        return None
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


def report_dict(report: Report) -> dict[str, Any]:
    """The JSON contract of `summary --format json`."""
    return {
        "name": report.spec.name,
        "variant": report.spec.variant,
        "title": report.spec.title,
        "source": report.spec.source,
        "input": list(report.input),
        "batch": report.batch,
        "dtype": report.dtype,
        "conventions": dict(CONVENTIONS),
        "layers": [layer_dict(layer) for layer in report.layers],
        "totals": {name: getattr(report.totals, name) for name in TOTAL_FIELDS},
        **parts_dict(report),
    }


def parts_dict(report: Report) -> dict[str, Any]:
    """Main-path and side-output totals, when the network has side outputs (auxiliary classifiers)."""
    main, side = main_and_side(report)
    if not side:
        return {}
    return {"parts": {"main": {name: getattr(totals_of(main), name) for name in TOTAL_FIELDS},
                      "side": {name: getattr(totals_of(side), name) for name in TOTAL_FIELDS},
                      "side_outputs": list(report.spec.outputs[1:])}}


def layer_dict(layer: LayerResult) -> dict[str, Any]:
    return {
        "name": layer.name,
        "type": layer.type,
        "inputs": list(layer.spec.inputs),
        "blocks": [instance for instance, _ in layer.spec.blocks],
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
        "backward_flops": layer.backward_flops,
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
    return f"{spec.label}{title}"


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
    main, side = main_and_side(report)
    if side:
        m, s = totals_of(main), totals_of(side)
        others = ", ".join(report.spec.outputs[1:]) or "unused branches"
        lines.append(f"main path to {report.spec.outputs[0]}: params {fmt_int(m.params)}, MACs {fmt_int(m.macs)} · "
                     f"side outputs ({others}): params {fmt_int(s.params)}, MACs {fmt_int(s.macs)}")
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


def default_columns(report: Report) -> tuple[str, ...]:
    """The default columns, with From for networks that branch."""
    if report.spec.is_chain:
        return DEFAULT_COLUMNS
    return DEFAULT_COLUMNS[:2] + ("from",) + DEFAULT_COLUMNS[2:]


def table_rows(report: Report, depth: int | None) -> list[tuple[Any, str]]:
    """(row, its From text): every layer, or groups at `depth`. From is blank when a row reads the one above."""
    rows: list[Any] = list(report.layers) if depth is None else grouped(report, depth)
    shown, previous = [], INPUT
    for row in rows:
        if isinstance(row, BlockGroup):  # name each input by the group it belongs to at this depth
            inputs = tuple(dict.fromkeys(group_key(name, report.spec.separator, depth or 1) for name in row.inputs))
        else:
            inputs = row.spec.inputs
        shown.append((row, "" if inputs == (previous,) else ", ".join(inputs)))
        previous = row.name
    return shown


def _cells(chosen: list[Column], row: Any, from_text: str, report: Report) -> list[str]:
    return [from_text if column.key == "from" else column.cell(row, report) for column in chosen]


def summary_table(report: Report, columns: tuple[str, ...] | None = None, depth: int | None = None) -> Group:
    chosen = [COLUMNS[key] for key in (columns or default_columns(report))]
    table = Table(title=_headline(report), caption=_setting(report), box=box.SIMPLE_HEAD, show_footer=True,
                  pad_edge=False, title_justify="left", caption_justify="left")
    for column in chosen:
        table.add_column(column.title, footer=column.total(report), justify="right" if column.numeric else "left",
                         no_wrap=column.key in ("output", "layer"))
    for row, from_text in table_rows(report, depth):
        style = "yellow" if not row.exact and any(not a.ceil for a in row.windows if not a.is_exact) else None
        table.add_row(*_cells(chosen, row, from_text, report), style=style)
    notes = Text("\n".join(totals_lines(report)) + "\n\n" + "\n".join(convention_lines(report)))
    return Group(table, notes)


def summary_markdown(report: Report, columns: tuple[str, ...] | None = None, depth: int | None = None) -> str:
    chosen = [COLUMNS[key] for key in (columns or default_columns(report))]
    lines = [f"### {_headline(report)}", "", _setting(report), ""]
    lines.append("| " + " | ".join(c.title for c in chosen) + " |")
    lines.append("|" + "|".join("---:" if c.numeric else "---" for c in chosen) + "|")
    for row, from_text in table_rows(report, depth):
        lines.append("| " + " | ".join(_cells(chosen, row, from_text, report)) + " |")
    lines.append("| " + " | ".join(f"**{c.total(report)}**" if c.total(report) else "" for c in chosen) + " |")
    lines.append("")
    lines += [f"- {line}" for line in totals_lines(report) + convention_lines(report)]
    return "\n".join(lines) + "\n"
