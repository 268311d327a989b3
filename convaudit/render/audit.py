"""`audit`: claims against the analysis as a Rich table, JSON or Markdown."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Group
from rich.text import Text

from convaudit.core.claims import Verdict, describe_computed, describe_stated
from convaudit.core.model import NetworkSpec
from convaudit.errors import printable
from convaudit.render.formatting import fmt_shape
from convaudit.render.output import FitColumn, Fitted, md, plain


def _at(verdict: Verdict, spec: NetworkSpec) -> str:
    claim = verdict.claim
    size = fmt_shape(claim.at) if claim.at else fmt_shape(spec.input[1:])
    return f"{size}+{claim.variant}" if claim.variant else size


AUDIT_DROP_ORDER = ("difference", "source", "at", "stated", "computed", "verdict", "claim")


def audit_rich(audits: list[tuple[NetworkSpec, list[Verdict]]], explain: bool = False) -> Group:
    parts: list[Any] = []
    for spec, verdicts in audits:
        wrong = [v for v in verdicts if not v.holds]
        title = plain(f"{spec.label}: {len(verdicts) - len(wrong)} of {len(verdicts)} claims hold")
        marks = [Text("✓ holds", style="green") if v.holds else Text("✗ contradicted", style="bold red")
                 for v in verdicts]
        columns = [
            FitColumn("claim", "Claim", [plain(v.claim.target) for v in verdicts]),
            FitColumn("at", "At", [plain(_at(v, spec)) for v in verdicts]),
            FitColumn("source", "Source", [plain(v.claim.source or "") for v in verdicts], wrap=True),
            FitColumn("stated", "Stated", [plain(describe_stated(v.claim)) for v in verdicts], numeric=True),
            FitColumn("computed", "Computed", [plain(describe_computed(v)) for v in verdicts], numeric=True),
            FitColumn("difference", "Difference", [plain(v.difference) for v in verdicts], wrap=True),
            FitColumn("verdict", "Verdict", marks),
        ]
        for column in columns:
            column.priority = AUDIT_DROP_ORDER.index(column.key)
        parts.append(Fitted(columns, hint="--explain or --format json has every claim", title=title))
        for verdict in verdicts if explain else wrong:
            mark = "✓" if verdict.holds else "✗"
            style = "green" if verdict.holds else "red"
            line = Text(f"{mark} {printable(verdict.claim.target)}", style=style)
            line.append(printable(f": stated {describe_stated(verdict.claim)}, computed {verdict.arithmetic}"))
            line.append(f"  [{printable(str(verdict.claim.where))}]", style="dim")
            parts.append(line)
        if not verdicts:
            parts.append(Text(f"{printable(spec.label)} states no claims (add a claims: section)", style="dim"))
        parts.append(Text(""))
    return Group(*parts)


def verdict_dict(verdict: Verdict) -> dict[str, Any]:
    claim = verdict.claim
    value = list(claim.value) if isinstance(claim.value, tuple) else _number(claim.value)
    computed = list(verdict.computed) if isinstance(verdict.computed, tuple) else verdict.computed
    return {"claim": claim.target, "layer": claim.layer, "quantity": claim.quantity, "stated": value,
            "tolerance": _number(claim.tolerance) if claim.tolerance is not None else None,
            "relative_tolerance": _number(claim.relative) if claim.relative is not None else None,
            "source": claim.source, "at": list(claim.at) if claim.at else None, "variant": claim.variant,
            "computed": computed, "difference": verdict.difference, "holds": verdict.holds,
            "arithmetic": verdict.arithmetic, "file": claim.where.file, "line": claim.where.line}


def _number(value: Any) -> int | float:
    return value.numerator if value.denominator == 1 else float(value)


def audit_json(audits: list[tuple[NetworkSpec, list[Verdict]]]) -> str:
    return json.dumps({"audits": [{"spec": spec.label, "claims": [verdict_dict(v) for v in verdicts],
                                   "contradicted": sum(1 for v in verdicts if not v.holds)}
                                  for spec, verdicts in audits]}, indent=2, ensure_ascii=False)


def audit_markdown(audits: list[tuple[NetworkSpec, list[Verdict]]]) -> str:
    lines = []
    for spec, verdicts in audits:
        lines += [f"### {md(spec.label)}", "", "| Claim | At | Source | Stated | Computed | Difference | Verdict |",
                  "|---|---|---|---:|---:|---|---|"]
        for v in verdicts:
            verdict = "✓ holds" if v.holds else "✗ contradicted"
            lines.append(f"| {md(v.claim.target)} | {md(_at(v, spec))} | {md(v.claim.source or '')} | "
                         f"{md(describe_stated(v.claim))} | {md(describe_computed(v))} | {md(v.difference)} | "
                         f"{verdict} |")
        lines += [""] + [f"- ✗ **{md(v.claim.target)}**: {md(v.arithmetic)}" for v in verdicts if not v.holds] + [""]
    return "\n".join(lines)
