"""`check` and `list`: findings and the architecture library as Rich, JSON or Markdown."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from convaudit.core.checks import Finding
from convaudit.errors import printable
from convaudit.render.formatting import fmt_int, fmt_shape
from convaudit.render.output import FitColumn, Fitted, md, plain

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


def findings_rich(checked: list[Checked], scope: str | None = None) -> Group:
    """`scope`, when given, is one line saying which specs were checked and why (no SPEC named)."""
    parts: list[Any] = [Text(printable(scope), no_wrap=True, overflow="ignore")] if scope else []
    for item in checked:
        errors = item.count("error")
        mark, style = ("✗", "bold red") if errors else ("✓", "green")
        head = Text()
        head.append(f"{mark} ", style=style)
        head.append(printable(item.spec), style="bold")
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
            body = Text(printable(finding.message))
            body.append(f"\n{printable(str(finding.where))}", style="dim")
            for suggestion in finding.suggestions:
                if suggestion not in shown:
                    shown.add(suggestion)
                    body.append(f"\nfix: {printable(suggestion)}", style="green")
            grid.add_row("", Text(finding.severity, style=SEVERITY_STYLE[finding.severity]), body)
        parts.append(grid)
    return Group(*parts)


def findings_markdown(checked: list[Checked]) -> str:
    lines = []
    for item in checked:
        lines.append(f"- **{md(item.spec)}** at {fmt_shape(item.input)}: {_tally(item)}")
        for finding in item.findings:
            lines.append(f"  - {finding.severity}: {md(finding.message)} (`{md(finding.where)}`)")
            lines += [f"    - fix: {md(s)}" for s in finding.suggestions]
    return "\n".join(lines) + "\n"


LIBRARY_DROP_ORDER = ("title", "macs", "input", "params", "name")


def library_table(rows: list[dict[str, Any]]) -> Fitted:
    names = []
    for row in rows:
        aliases = f" ({', '.join(row['aliases'])})" if row["aliases"] else ""
        variants = "".join(f"\n  +{printable(name)}" for name in row.get("variants", {}))
        names.append(Text(printable(row["name"] + aliases) + variants))
    columns = [
        FitColumn("name", "Name (aliases)", names),
        FitColumn("title", "Title", [plain(row["title"] or "") for row in rows], wrap=True),
        FitColumn("input", "Input", [fmt_shape(row["input"]) for row in rows]),
        FitColumn("params", "Params", [fmt_int(row["params"]) for row in rows], numeric=True),
        FitColumn("macs", "MACs", [fmt_int(row["macs"]) for row in rows], numeric=True),
    ]
    for column in columns:
        column.priority = LIBRARY_DROP_ORDER.index(column.key)
    return Fitted(columns, hint="widen COLUMNS, or --format json")


def library_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2, ensure_ascii=False)


def library_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| name | aliases | variants | title | input | params | MACs |", "|---|---|---|---|---|---:|---:|"]
    lines += [f"| {md(row['name'])} | {md(', '.join(row['aliases']))} | {md(', '.join(row.get('variants', {})))} | "
              f"{md(row['title'] or '')} | {fmt_shape(row['input'])} | {fmt_int(row['params'])} | "
              f"{fmt_int(row['macs'])} |" for row in rows]
    return "\n".join(lines) + "\n"
