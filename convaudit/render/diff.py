"""`diff`: two analyses side by side as a Rich table, JSON or Markdown."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Group
from rich.text import Text

from convaudit.core.analysis import Report
from convaudit.core.diff import Pair
from convaudit.errors import printable
from convaudit.render.formatting import fmt_int, fmt_shape
from convaudit.render.output import FitColumn, Fitted, md, plain


def label(report: Report) -> str:
    return f"{report.spec.label} at {fmt_shape(report.input)}"


def _delta(left: int, right: int) -> str:
    if left == right:
        return ""
    share = f" ({(right - left) / left * 100:+.1f}%)" if left else ""
    return f"{right - left:+,}{share}"


def _cell(pair: Pair, side: str, key: str) -> Text:
    layer = getattr(pair, side)
    if layer is None:
        return Text("")
    value = getattr(layer, key)
    text = fmt_shape(value) if key == "output_shape" else (fmt_int(value) if value else "")
    return Text(text, style="bold yellow" if key in pair.changes else "")


DIFF_DROP_ORDER = ("delta", "params_a", "params_b", "shape_a", "shape_b", "macs_a", "macs_b", "mark", "layer")


def diff_rich(left: Report, right: Report, pairs: list[Pair], changed_only: bool = False) -> Group:
    lt, rt = left.totals, right.totals
    marks = {"added": ("+", "green"), "removed": ("−", "red"), "changed": ("~", "yellow"), "same": ("", "")}
    shown = [pair for pair in pairs if not (changed_only and pair.status == "same")]
    columns: dict[str, FitColumn] = {
        "mark": FitColumn("mark", "", [Text(marks[p.status][0], style=marks[p.status][1]) for p in shown]),
        "layer": FitColumn("layer", "Layer", [Text(printable(p.name), style=marks[p.status][1] if p.status != "same"
                                                   else "") for p in shown], footer="Total"),
        "shape_a": FitColumn("shape_a", "Shape A", [_cell(p, "left", "output_shape") for p in shown]),
        "shape_b": FitColumn("shape_b", "Shape B", [_cell(p, "right", "output_shape") for p in shown]),
        "params_a": FitColumn("params_a", "Params A", [_cell(p, "left", "params") for p in shown],
                              fmt_int(lt.params), numeric=True),
        "params_b": FitColumn("params_b", "Params B", [_cell(p, "right", "params") for p in shown],
                              fmt_int(rt.params), numeric=True),
        "macs_a": FitColumn("macs_a", "MACs A", [_cell(p, "left", "macs") for p in shown], fmt_int(lt.macs),
                            numeric=True),
        "macs_b": FitColumn("macs_b", "MACs B", [_cell(p, "right", "macs") for p in shown], fmt_int(rt.macs),
                            numeric=True),
        "delta": FitColumn("delta", "Δ MACs", [_delta(p.left.macs, p.right.macs) if p.left and p.right else ""
                                               for p in shown], _delta(lt.macs, rt.macs), numeric=True),
    }
    for key, column in columns.items():
        column.priority = DIFF_DROP_ORDER.index(key)
    table = Fitted(list(columns.values()), show_footer=True, hint="--format json has every number",
                   title=plain(f"{label(left)}  →  {label(right)}"))
    counts = {status: sum(1 for p in pairs if p.status == status) for status in ("changed", "added", "removed")}
    summary = (f"{counts['changed']} changed, {counts['added']} added, {counts['removed']} removed · params "
               f"{_delta(lt.params, rt.params) or 'unchanged'} · MACs {_delta(lt.macs, rt.macs) or 'unchanged'}")
    if lt.buffers or rt.buffers:
        summary += f" · buffers {fmt_int(lt.buffers)} → {fmt_int(rt.buffers)} (running statistics, not params)"
    return Group(table, Text(summary + "\nLayers are aligned by name, and by position where the names "
                                       "differ."))


def _side(layer: Any) -> dict[str, Any] | None:
    if layer is None:
        return None
    return {"name": layer.name, "type": layer.type, "output_shape": list(layer.output_shape),
            "params": layer.params, "buffers": layer.buffers, "macs": layer.macs}


def diff_json(left: Report, right: Report, pairs: list[Pair]) -> str:
    def side(report: Report) -> dict[str, Any]:
        return {"name": report.spec.name, "variant": report.spec.variant, "input": list(report.input),
                "params": report.totals.params, "buffers": report.totals.buffers, "macs": report.totals.macs}

    return json.dumps({"left": side(left), "right": side(right),
                       "layers": [{"status": p.status, "changes": list(p.changes), "left": _side(p.left),
                                   "right": _side(p.right)} for p in pairs]}, indent=2, ensure_ascii=False)


def _markdown_cell(pair: Pair, layer: Any, key: str) -> str:
    if layer is None:
        return ""
    value = getattr(layer, key)
    text = fmt_shape(value) if key == "output_shape" else fmt_int(value)
    return f"**{text}**" if key in pair.changes else text


def diff_markdown(left: Report, right: Report, pairs: list[Pair]) -> str:
    lines = [f"### {md(label(left))} → {md(label(right))}", "",
             "| | Layer | Shape A | Shape B | Params A | Params B | MACs A | MACs B |",
             "|---|---|---|---|---:|---:|---:|---:|"]
    marks = {"added": "+", "removed": "−", "changed": "~", "same": ""}
    for p in pairs:
        cells = [_markdown_cell(p, side, key) for key in ("output_shape", "params", "macs")
                 for side in (p.left, p.right)]
        lines.append(f"| {marks[p.status]} | {md(p.name)} | " + " | ".join(cells) + " |")
    lt, rt = left.totals, right.totals
    lines.append(f"| | **Total** | | | {fmt_int(lt.params)} | {fmt_int(rt.params)} | {fmt_int(lt.macs)} | "
                 f"{fmt_int(rt.macs)} |")
    return "\n".join(lines) + "\n"
