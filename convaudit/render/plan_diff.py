"""`diff --strategy/--devices`: two parallelism plans side by side as a Rich table, JSON or Markdown.

Numbers are never cut: when the table is too wide, a whole A/B pair of columns is left out (the split
modes first, then FLOPs, then parameters) and a footer line names them."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.text import Text

from convaudit.core.plan import CONVENTIONS as PLAN_CONVENTIONS
from convaudit.core.plan import SHARDED_CONVENTIONS, Plan
from convaudit.core.plan_diff import CONVENTIONS, LayerSide, PlanDiff, PlanPair, PlanTotals
from convaudit.render.formatting import fmt_bytes, fmt_int, fmt_shape, fmt_si
from convaudit.render.output import FitColumn, Fitted, md, plain
from convaudit.render.plan import devices_key, fmt_exact, json_number, sharded_totals_json, spread_json

MARKS = {"added": ("+", "green"), "removed": ("−", "red"), "changed": ("~", "yellow"), "same": ("", "")}
CHANGED = "bold yellow"
HINT = "--format json has every number"
# Left out first to last when the table is too wide: a metric's A and B columns go together.
DROP_GROUPS = (("mode_a", "mode_b"), ("flops_a", "flops_b"), ("params_a", "params_b"), ("bytes_a", "bytes_b"))


def side_label(plan: Plan) -> str:
    report = plan.report
    return f"{report.spec.label} at {fmt_shape(report.input)}, {plan.strategy} over {plan.devices} devices"


def heading(diff: PlanDiff) -> str:
    report = diff.left.report
    return (f"A: {side_label(diff.left)}\nB: {side_label(diff.right)}\nbatch {report.batch} · {report.dtype} · "
            f"optimizer {diff.left.optimizer}")


def layer_text(metric: str, value: Any) -> str:
    if metric == "mode":
        return str(value)
    if metric == "params":
        return fmt_int(value) if value else ""
    if metric == "flops":
        return fmt_si(value) if value else ""
    return fmt_exact(value) if value else ""


def _cell(pair: PlanPair, side: LayerSide | None, metric: str) -> Text:
    if side is None:
        return Text("")
    return Text(layer_text(metric, side.value(metric)), style=CHANGED if metric in pair.changes else "")


def total_text(metric: str, totals: PlanTotals, plan: Plan) -> str:
    value = getattr(totals, metric)
    if metric in ("strategy",):
        return str(value)
    if metric == "devices":
        return fmt_int(value)
    if metric == "params":
        return fmt_int(value)
    if metric in ("flops", "work"):
        return fmt_si(value)
    if metric == "busiest_share":
        return f"{float(value) * 100:.1f}%"
    if metric == "bytes":
        return fmt_exact(value)
    if metric == "bytes_per_flop":
        return f"{float(value):.3g}"
    if metric == "memory":
        return fmt_bytes(value)
    if metric == "fits":
        return "yes" if value else "no"
    raise KeyError(metric)


TOTAL_TITLES = {
    "strategy": "strategy", "devices": "devices", "params": "parameters on one device (most)",
    "flops": "forward FLOPs on one device (most)", "work": "fwd + bwd FLOPs, busiest device",
    "busiest_share": "busiest device's share of FLOPs", "bytes": "bytes crossing per step",
    "bytes_per_flop": "bytes per FLOP", "memory": "training memory on one device (most)", "fits": "fits",
}


def total_rows(diff: PlanDiff) -> list[str]:
    rows = ["strategy", "devices", "params", "flops", "work", "busiest_share", "bytes", "bytes_per_flop", "memory"]
    if diff.left_totals.fits is not None:
        rows.append("fits")
    return rows


def total_title(diff: PlanDiff, metric: str) -> str:
    if metric == "fits":
        return f"fits in {fmt_bytes(diff.left.device_memory or 0)} per device"
    return TOTAL_TITLES[metric]


def ratio(a: Any, b: Any) -> str:
    """B ÷ A for a number, '' when equal or A is zero; strings and booleans compare only."""
    if a == b or isinstance(a, bool | str) or not a:
        return ""
    return f"×{float(Fraction(b) / Fraction(a)):.3g}"


@dataclass
class PairedFitted:
    """A Fitted table whose A and B columns are left out together, never one without the other."""

    columns: list[FitColumn]
    groups: Sequence[tuple[str, ...]]
    title: Text | None = None

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        keep, dropped = list(self.columns), []
        if not getattr(console, "natural_tables", False):
            probe = Fitted(keep)
            for group in self.groups:
                if probe.needed_width(console, keep) <= options.max_width:
                    break
                dropped += [c for c in keep if c.key in group]
                keep = [c for c in keep if c.key not in group]
        yield Fitted(keep, show_footer=True, hint=HINT, title=self.title)
        if dropped:
            titles = ", ".join(c.title for c in dropped)
            yield Text(f"not shown at {options.max_width} columns: {titles} ({HINT})", style="dim",
                       no_wrap=True, overflow="ignore")


def layer_columns(diff: PlanDiff, shown: list[PlanPair]) -> list[FitColumn]:
    a, b = diff.left_totals, diff.right_totals
    columns = [
        FitColumn("mark", "", [Text(MARKS[p.status][0], style=MARKS[p.status][1]) for p in shown]),
        FitColumn("layer", "Layer", [plain(p.name) if p.status == "same" else
                                     Text(plain(p.name).plain, style=MARKS[p.status][1]) for p in shown],
                  footer="Total"),
    ]
    titles = {"mode": "Split", "params": "Params", "flops": "FLOPs", "bytes": "Bytes"}
    footers: dict[str, Callable[[PlanTotals], str]] = {
        "mode": lambda t: "", "params": lambda t: fmt_int(t.params), "flops": lambda t: fmt_si(t.flops),
        "bytes": lambda t: fmt_exact(t.bytes)}
    for metric in ("mode", "params", "flops", "bytes"):
        for side, totals in (("a", a), ("b", b)):
            cells = [_cell(p, p.left if side == "a" else p.right, metric) for p in shown]
            footer = footers[metric](totals)
            other = footers[metric](b if side == "a" else a)
            columns.append(FitColumn(f"{metric}_{side}", f"{titles[metric]} {side.upper()}", cells,
                                     Text(footer, style=CHANGED if footer != other else ""),
                                     numeric=metric != "mode"))
    return columns


def plan_diff_rich(diff: PlanDiff, changed_only: bool = False) -> Group:
    shown = [p for p in diff.pairs if not (changed_only and p.status == "same")]
    title = Text("\n").join(plain(line) for line in heading(diff).splitlines())
    layers = PairedFitted(layer_columns(diff, shown), DROP_GROUPS, title)
    rows = total_rows(diff)
    a, b = diff.left_totals, diff.right_totals
    changed = set(diff.total_changes)
    style = [CHANGED if m in changed else "" for m in rows]
    totals = Fitted([
        FitColumn("metric", "Totals", [Text(total_title(diff, m)) for m in rows], wrap=True, priority=3),
        FitColumn("a", "A", [Text(total_text(m, a, diff.left), s) for m, s in zip(rows, style, strict=True)],
                  numeric=True, priority=2),
        FitColumn("b", "B", [Text(total_text(m, b, diff.right), s) for m, s in zip(rows, style, strict=True)],
                  numeric=True, priority=2),
        FitColumn("ratio", "B ÷ A", [ratio(getattr(a, m), getattr(b, m)) for m in rows], numeric=True),
    ], hint=HINT)
    return Group(layers, totals, Text("\n".join(summary_lines(diff))))


def collective_conventions(diff: PlanDiff) -> list[str]:
    """How the bytes of each side's collectives are counted: gathers and all-reduces (columns, model, data), and
    all-gathers and reduce-scatters (fsdp, zero1, zero2)."""
    sides = (diff.left, diff.right)
    texts = []
    if not all(side.sharded for side in sides):
        texts += [PLAN_CONVENTIONS["gather"], f"all-reduce {PLAN_CONVENTIONS['all-reduce']}"]
    if any(side.sharded for side in sides):
        texts += [f"{kind} {SHARDED_CONVENTIONS[kind]}" for kind in ("all-gather", "reduce-scatter")]
        texts.append(f"sharding: {SHARDED_CONVENTIONS['sharding']}")
    return texts


def summary_lines(diff: PlanDiff) -> list[str]:
    counts = {s: sum(1 for p in diff.pairs if p.status == s) for s in ("changed", "added", "removed")}
    lines = [f"{counts['changed']} layers changed, {counts['added']} added, {counts['removed']} removed; "
             "layers aligned by name, and by position where the names differ",
             "Params, FLOPs: the most on any one device (forward FLOPs); Bytes: crossing between devices per "
             "training step, counted at the receivers, all devices together",
             "bytes: " + "; ".join(collective_conventions(diff))]
    notes = [f"{label}: {note}" for label, plan in (("A", diff.left), ("B", diff.right)) for note in plan.notes]
    return lines + [f"note: {plain(note).plain}" for note in notes]


# ------------------------------------------------------------------ machine-readable

def _side(plan: Plan, side: LayerSide | None) -> dict[str, Any] | None:
    if side is None:
        return None
    item = side.item
    shares = item.shares
    return {"name": item.name, "type": item.layer.type, "mode": item.mode, "output": list(item.layer.output_shape),
            "params": spread_json(plan, shares.map(lambda s: s.params), "params"),
            "flops": spread_json(plan, shares.map(lambda s: s.flops), "flops"),
            "received_bytes": spread_json(plan, shares.map(lambda s: s.received)),
            "most_params": side.value("params"), "most_flops": side.value("flops"),
            "bytes": json_number(side.value("bytes"))}


def _plan(plan: Plan, totals: PlanTotals) -> dict[str, Any]:
    report = plan.report
    return {"spec": report.spec.label, "input": list(report.input), "batch": report.batch, "dtype": report.dtype,
            "strategy": plan.strategy, "devices": plan.devices, "optimizer": plan.optimizer,
            "device_memory_bytes": plan.device_memory,
            "totals": {"params": totals.params, "flops": totals.flops, "work": totals.work,
                       "busiest_share": json_number(totals.busiest_share), "bytes": json_number(totals.bytes),
                       "bytes_per_flop": json_number(totals.bytes_per_flop), "memory_bytes": totals.memory,
                       "fits": totals.fits},
            "per_device": [{**devices_key(t.device, t.count), "params": t.params, "flops": t.flops,
                            "backward_flops": t.backward_flops, "training_memory_bytes": t.training_memory,
                            "received_bytes": json_number(t.received),
                            **(sharded_totals_json(plan, t) if plan.sharded else {})} for t in plan.device_rows()],
            "notes": list(plan.notes)}


def plan_diff_dict(diff: PlanDiff) -> dict[str, Any]:
    return {"left": _plan(diff.left, diff.left_totals), "right": _plan(diff.right, diff.right_totals),
            "layers": [{"status": p.status, "changes": list(p.changes), "left": _side(diff.left, p.left),
                        "right": _side(diff.right, p.right)} for p in diff.pairs],
            "totals_changed": list(diff.total_changes), "conventions": CONVENTIONS}


def plan_diff_json(diff: PlanDiff) -> str:
    return json.dumps(plan_diff_dict(diff), indent=2, ensure_ascii=False)


def plan_diff_markdown(diff: PlanDiff) -> str:
    def cell(pair: PlanPair, side: LayerSide | None, metric: str) -> str:
        if side is None:
            return ""
        text = layer_text(metric, side.value(metric))
        return f"**{text}**" if text and metric in pair.changes else text

    marks = {status: mark for status, (mark, _) in MARKS.items()}
    lines = [f"**{md(line)}**  " for line in heading(diff).splitlines()]
    lines += ["",
             "| | Layer | Split A | Split B | Params A | Params B | FLOPs A | FLOPs B | Bytes A | Bytes B |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for p in diff.pairs:
        cells = [cell(p, side, metric) for metric in ("mode", "params", "flops", "bytes") for side in (p.left, p.right)]
        lines.append(f"| {marks[p.status]} | {md(p.name)} | " + " | ".join(cells) + " |")
    a, b = diff.left_totals, diff.right_totals
    lines.append(f"| | **Total** | | | {fmt_int(a.params)} | {fmt_int(b.params)} | {fmt_si(a.flops)} | "
                 f"{fmt_si(b.flops)} | {fmt_exact(a.bytes)} | {fmt_exact(b.bytes)} |")
    lines += ["", "| Totals | A | B | B ÷ A |", "|---|---:|---:|---:|"]
    changed = set(diff.total_changes)
    for metric in total_rows(diff):
        texts = [total_text(metric, t, plan) for t, plan in ((a, diff.left), (b, diff.right))]
        if metric in changed:
            texts = [f"**{t}**" for t in texts]
        lines.append(f"| {md(total_title(diff, metric))} | {texts[0]} | {texts[1]} | "
                     f"{ratio(getattr(a, metric), getattr(b, metric))} |")
    lines.append("")
    lines += [f"- {md(line)}" for line in summary_lines(diff)]
    return "\n".join(lines) + "\n"
