"""`diff`: two analyses side by side as a Rich table, JSON or Markdown."""

from __future__ import annotations

import json
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from convaudit.core.analysis import Report
from convaudit.core.diff import Pair
from convaudit.render.formatting import fmt_int, fmt_shape


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


def diff_rich(left: Report, right: Report, pairs: list[Pair], changed_only: bool = False) -> Group:
    table = Table(title=f"{label(left)}  →  {label(right)}", title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False, show_footer=True)
    lt, rt = left.totals, right.totals
    columns = [("", "", False), ("Layer", "Total", False), ("Shape A", "", False), ("Shape B", "", False),
               ("Params A", fmt_int(lt.params), True), ("Params B", fmt_int(rt.params), True),
               ("MACs A", fmt_int(lt.macs), True), ("MACs B", fmt_int(rt.macs), True),
               ("Δ MACs", _delta(lt.macs, rt.macs), True)]
    for title, footer, numeric in columns:
        table.add_column(title, footer=footer, justify="right" if numeric else "left", no_wrap=True)
    marks = {"added": ("+", "green"), "removed": ("−", "red"), "changed": ("~", "yellow"), "same": ("", "")}
    for pair in pairs:
        if changed_only and pair.status == "same":
            continue
        mark, style = marks[pair.status]
        macs = _delta(pair.left.macs, pair.right.macs) if pair.left and pair.right else ""
        table.add_row(Text(mark, style=style), Text(pair.name, style=style if pair.status != "same" else ""),
                      _cell(pair, "left", "output_shape"), _cell(pair, "right", "output_shape"),
                      _cell(pair, "left", "params"), _cell(pair, "right", "params"),
                      _cell(pair, "left", "macs"), _cell(pair, "right", "macs"), macs)
    counts = {status: sum(1 for p in pairs if p.status == status) for status in ("changed", "added", "removed")}
    summary = (f"{counts['changed']} changed, {counts['added']} added, {counts['removed']} removed · params "
               f"{_delta(lt.params, rt.params) or 'unchanged'} · MACs {_delta(lt.macs, rt.macs) or 'unchanged'}")
    return Group(table, Text(summary + "\nLayers are aligned by name, and by position where the names differ."))


def _side(layer: Any) -> dict[str, Any] | None:
    if layer is None:
        return None
    return {"name": layer.name, "type": layer.type, "output_shape": list(layer.output_shape),
            "params": layer.params, "macs": layer.macs}


def diff_json(left: Report, right: Report, pairs: list[Pair]) -> str:
    def side(report: Report) -> dict[str, Any]:
        return {"name": report.spec.name, "variant": report.spec.variant, "input": list(report.input),
                "params": report.totals.params, "macs": report.totals.macs}

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
    lines = [f"### {label(left)} → {label(right)}", "",
             "| | Layer | Shape A | Shape B | Params A | Params B | MACs A | MACs B |",
             "|---|---|---|---|---:|---:|---:|---:|"]
    marks = {"added": "+", "removed": "−", "changed": "~", "same": ""}
    for p in pairs:
        cells = [_markdown_cell(p, side, key) for key in ("output_shape", "params", "macs")
                 for side in (p.left, p.right)]
        lines.append(f"| {marks[p.status]} | {p.name} | " + " | ".join(cells) + " |")
    lt, rt = left.totals, right.totals
    lines.append(f"| | **Total** | | | {fmt_int(lt.params)} | {fmt_int(rt.params)} | {fmt_int(lt.macs)} | "
                 f"{fmt_int(rt.macs)} |")
    return "\n".join(lines) + "\n"
