"""`diff`: two analyses side by side as a Rich table, JSON or Markdown."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Group
from rich.text import Text

from convaudit.core.analysis import Report
from convaudit.core.checks import Finding
from convaudit.core.diff import Pair, ReportDiff
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


SEVERITY_MARKS = {"error": "✗", "warning": "⚠"}  # the worst finding `check` has on a side's layer


def worst_findings(findings: tuple[Finding, ...]) -> dict[str, str]:
    """Each layer's mark: ✗ where `check` finds an error, else ⚠ where it finds a warning."""
    marks: dict[str, str] = {}
    for finding in findings:
        if finding.layer is not None and finding.severity in SEVERITY_MARKS and marks.get(finding.layer) != "✗":
            marks[finding.layer] = SEVERITY_MARKS[finding.severity]
    return marks


def _tally(findings: tuple[Finding, ...]) -> str:
    counts = [(sum(1 for f in findings if f.severity == severity), severity) for severity in SEVERITY_MARKS]
    said = [f"{count} {severity}{'s' if count != 1 else ''}" for count, severity in counts if count]
    return ", ".join(said) or "none"


def findings_line(diff: ReportDiff) -> str | None:
    """What `check` finds on each side, when it finds anything: a side with errors must not look clean."""
    if not any(f.severity in SEVERITY_MARKS for f in diff.left_findings + diff.right_findings):
        return None
    return (f"findings: A {_tally(diff.left_findings)} · B {_tally(diff.right_findings)} (✗ a layer with an error, "
            "⚠ with a warning: see `convaudit check`)")


def _shape_text(layer: Any, marks: dict[str, str]) -> str:
    mark = marks.get(layer.name)
    return fmt_shape(layer.output_shape) + (f" {mark}" if mark else "")


def _cell(pair: Pair, side: str, key: str, marks: dict[str, str]) -> Text:
    layer = getattr(pair, side)
    if layer is None:
        return Text("")
    value = getattr(layer, key)
    text = _shape_text(layer, marks) if key == "output_shape" else (fmt_int(value) if value else "")
    return Text(text, style="bold yellow" if key in pair.changes else "")


DIFF_DROP_ORDER = ("delta", "params_a", "params_b", "shape_a", "shape_b", "macs_a", "macs_b", "mark", "layer")


def diff_rich(diff: ReportDiff, changed_only: bool = False) -> Group:
    left, right, pairs = diff.left, diff.right, diff.pairs
    lt, rt = left.totals, right.totals
    left_marks, right_marks = worst_findings(diff.left_findings), worst_findings(diff.right_findings)
    marks = {"added": ("+", "green"), "removed": ("−", "red"), "changed": ("~", "yellow"), "same": ("", "")}
    shown = [pair for pair in pairs if not (changed_only and pair.status == "same")]
    columns: dict[str, FitColumn] = {
        "mark": FitColumn("mark", "", [Text(marks[p.status][0], style=marks[p.status][1]) for p in shown]),
        "layer": FitColumn("layer", "Layer", [Text(printable(p.name), style=marks[p.status][1] if p.status != "same"
                                                   else "") for p in shown], footer="Total"),
        "shape_a": FitColumn("shape_a", "Shape A", [_cell(p, "left", "output_shape", left_marks) for p in shown]),
        "shape_b": FitColumn("shape_b", "Shape B", [_cell(p, "right", "output_shape", right_marks) for p in shown]),
        "params_a": FitColumn("params_a", "Params A", [_cell(p, "left", "params", left_marks) for p in shown],
                              fmt_int(lt.params), numeric=True),
        "params_b": FitColumn("params_b", "Params B", [_cell(p, "right", "params", right_marks) for p in shown],
                              fmt_int(rt.params), numeric=True),
        "macs_a": FitColumn("macs_a", "MACs A", [_cell(p, "left", "macs", left_marks) for p in shown],
                            fmt_int(lt.macs), numeric=True),
        "macs_b": FitColumn("macs_b", "MACs B", [_cell(p, "right", "macs", right_marks) for p in shown],
                            fmt_int(rt.macs), numeric=True),
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
    found = findings_line(diff)
    return Group(table, Text(summary + (f"\n{found}" if found else "") + "\nLayers are aligned by name, and by "
                                                                        "position where the names differ."))


def _side(layer: Any) -> dict[str, Any] | None:
    if layer is None:
        return None
    return {"name": layer.name, "type": layer.type, "output_shape": list(layer.output_shape),
            "params": layer.params, "buffers": layer.buffers, "macs": layer.macs}


def diff_json(diff: ReportDiff) -> str:
    def side(report: Report, findings: tuple[Finding, ...]) -> dict[str, Any]:
        return {"name": report.spec.name, "variant": report.spec.variant, "input": list(report.input),
                "params": report.totals.params, "buffers": report.totals.buffers, "macs": report.totals.macs,
                "errors": sum(1 for f in findings if f.severity == "error"),
                "warnings": sum(1 for f in findings if f.severity == "warning")}

    return json.dumps({"left": side(diff.left, diff.left_findings), "right": side(diff.right, diff.right_findings),
                       "layers": [{"status": p.status, "changes": list(p.changes), "left": _side(p.left),
                                   "right": _side(p.right)} for p in diff.pairs]}, indent=2, ensure_ascii=False)


def _markdown_cell(pair: Pair, layer: Any, key: str, marks: dict[str, str]) -> str:
    if layer is None:
        return ""
    text = _shape_text(layer, marks) if key == "output_shape" else fmt_int(getattr(layer, key))
    return f"**{text}**" if key in pair.changes else text


def diff_markdown(diff: ReportDiff) -> str:
    left, right = diff.left, diff.right
    sides = (worst_findings(diff.left_findings), worst_findings(diff.right_findings))
    lines = [f"### {md(label(left))} → {md(label(right))}", "",
             "| | Layer | Shape A | Shape B | Params A | Params B | MACs A | MACs B |",
             "|---|---|---|---|---:|---:|---:|---:|"]
    marks = {"added": "+", "removed": "−", "changed": "~", "same": ""}
    for p in diff.pairs:
        cells = [_markdown_cell(p, layer, key, marks) for key in ("output_shape", "params", "macs")
                 for layer, marks in zip((p.left, p.right), sides, strict=True)]
        lines.append(f"| {marks[p.status]} | {md(p.name)} | " + " | ".join(cells) + " |")
    lt, rt = left.totals, right.totals
    lines.append(f"| | **Total** | | | {fmt_int(lt.params)} | {fmt_int(rt.params)} | {fmt_int(lt.macs)} | "
                 f"{fmt_int(rt.macs)} |")
    found = findings_line(diff)
    return "\n".join(lines + ([f"\n{found}"] if found else [])) + "\n"
