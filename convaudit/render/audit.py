"""`audit`: claims against the analysis as a Rich table, JSON or Markdown."""

from __future__ import annotations

import json
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from convaudit.core.claims import Verdict, describe_computed, describe_stated
from convaudit.core.model import NetworkSpec
from convaudit.render.formatting import fmt_shape


def _at(verdict: Verdict, spec: NetworkSpec) -> str:
    claim = verdict.claim
    size = fmt_shape(claim.at) if claim.at else fmt_shape(spec.input[1:])
    return f"{size}+{claim.variant}" if claim.variant else size


def audit_rich(audits: list[tuple[NetworkSpec, list[Verdict]]], explain: bool = False) -> Group:
    parts: list[Any] = []
    for spec, verdicts in audits:
        wrong = [v for v in verdicts if not v.holds]
        table = Table(title=f"{spec.label}: {len(verdicts) - len(wrong)} of {len(verdicts)} claims hold",
                      title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for title in ("Claim", "At", "Source", "Stated", "Computed", "Difference", "Verdict"):
            table.add_column(title, justify="right" if title in ("Stated", "Computed") else "left",
                             no_wrap=title in ("Claim", "Verdict", "At"))
        for verdict in verdicts:
            mark = Text("✓ holds", style="green") if verdict.holds else Text("✗ contradicted", style="bold red")
            table.add_row(verdict.claim.target, _at(verdict, spec), verdict.claim.source,
                          describe_stated(verdict.claim), describe_computed(verdict), verdict.difference, mark)
        parts.append(table)
        for verdict in verdicts if explain else wrong:
            mark = "✓" if verdict.holds else "✗"
            style = "green" if verdict.holds else "red"
            line = Text(f"{mark} {verdict.claim.target}", style=style)
            line.append(f": stated {describe_stated(verdict.claim)}, computed {verdict.arithmetic}")
            line.append(f"  [{verdict.claim.where}]", style="dim")
            parts.append(line)
        if not verdicts:
            parts.append(Text(f"{spec.label} states no claims (add a claims: section)", style="dim"))
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
        lines += [f"### {spec.label}", "", "| Claim | At | Source | Stated | Computed | Difference | Verdict |",
                  "|---|---|---|---:|---:|---|---|"]
        for v in verdicts:
            verdict = "✓ holds" if v.holds else "✗ contradicted"
            lines.append(f"| {v.claim.target} | {_at(v, spec)} | {v.claim.source} | {describe_stated(v.claim)} | "
                         f"{describe_computed(v)} | {v.difference} | {verdict} |")
        lines += [""] + [f"- ✗ **{v.claim.target}**: {v.arithmetic}" for v in verdicts if not v.holds] + [""]
    return "\n".join(lines)
