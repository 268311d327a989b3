"""`split`: a parallelism plan as a Rich table (one column group per device, as the paper's figure 2 draws
the top and bottom GPU), JSON, CSV or Markdown. Numbers are never cut: columns that do not fit the terminal
are dropped whole, and a footer names them."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from convaudit.core.plan import ALL, CONVENTIONS, Plan
from convaudit.errors import printable
from convaudit.render.formatting import fmt_bytes, fmt_int, fmt_shape, fmt_si, fmt_time
from convaudit.render.output import FitColumn, Fitted


def fmt_exact(value: Fraction | int) -> str:
    """Whole bytes with separators; a ring all-reduce's fraction of a byte shown exactly: '13,333 1/3'."""
    value = Fraction(value)
    whole, rest = divmod(value.numerator, value.denominator)
    if not rest:
        return fmt_int(whole)
    return f"{fmt_int(whole)} {rest}/{value.denominator}" if whole else f"{rest}/{value.denominator}"


def json_number(value: Fraction | int) -> int | str:
    """JSON keeps exact numbers: an int, or 'p/q' when a ring all-reduce leaves a fraction of a byte."""
    value = Fraction(value)
    return int(value) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def device_name(plan: Plan, device: int) -> str:
    return f"GPU {device}"


def moves(plan: Plan, index: int) -> str:
    """What crosses at this layer: 'gather pool2 (fwd+bwd)', 'all-reduce conv3 (fwd)'."""
    items: dict[tuple[str, str], list[str]] = {}
    for exchange in plan.layers[index].exchanges:
        if exchange.total:
            items.setdefault((exchange.kind, exchange.moves), []).append(exchange.phase[:3].replace("bac", "bwd"))
    return "; ".join(f"{kind} {printable(tensor)} ({'+'.join(phases)})" for (kind, tensor), phases in items.items())


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    priority: int  # dropped lowest first when the table is too wide
    numeric: bool = True


def columns(plan: Plan) -> list[Column]:
    n = range(plan.devices)
    cols = [Column("layer", "Layer", 100, False), Column("mode", "Split", 40, False)]
    cols += [Column(f"params{d}", f"Params {device_name(plan, d)}", 90) for d in n]
    cols += [Column(f"flops{d}", f"FLOPs {device_name(plan, d)}", 60) for d in n]
    cols += [Column(f"fwd{d}", f"B in fwd {device_name(plan, d)}", 80) for d in n]
    cols += [Column(f"bwd{d}", f"B in bwd {device_name(plan, d)}", 70) for d in n]
    cols.append(Column("moves", "Crosses devices", 30, False))
    return cols


def layer_cells(plan: Plan, index: int) -> dict[str, str]:
    item = plan.layers[index]
    cells = {"layer": escape(printable(item.name)), "mode": item.mode, "moves": escape(moves(plan, index))}
    for d, share in enumerate(item.shares):
        cells[f"params{d}"] = fmt_int(share.params) if share.params else ""
        cells[f"flops{d}"] = fmt_si(share.flops) if share.flops else ""
        cells[f"fwd{d}"] = fmt_exact(share.received_forward) if share.received_forward else ""
        cells[f"bwd{d}"] = fmt_exact(share.received_backward) if share.received_backward else ""
    return cells


def total_cells(plan: Plan) -> dict[str, str]:
    cells = {"layer": "Total", "mode": "", "moves": ""}
    for t in plan.per_device:
        cells[f"params{t.device}"] = fmt_int(t.params)
        cells[f"flops{t.device}"] = fmt_si(t.flops)
        cells[f"fwd{t.device}"] = fmt_exact(t.received_forward)
        cells[f"bwd{t.device}"] = fmt_exact(t.received_backward)
    return cells


def fitting_columns(plan: Plan, width: int | None) -> tuple[list[Column], list[Column], dict[str, int]]:
    """(kept, dropped, widths): drop the lowest-priority columns until every cell fits whole in `width`."""
    cols = columns(plan)
    rows = [layer_cells(plan, i) for i in range(len(plan.layers))] + [total_cells(plan)]
    widths = {c.key: max([len(c.title)] + [len(Text.from_markup(r[c.key]).plain) for r in rows]) for c in cols}
    kept, dropped = list(cols), []
    while width is not None and sum(widths[c.key] + 2 for c in kept) > width and len(kept) > 1:
        weakest = min(c.priority for c in kept)  # a kind of column goes for every device at once
        dropped += [c for c in kept if c.priority == weakest]
        kept = [c for c in kept if c.priority != weakest]
    return kept, dropped, widths


def heading(plan: Plan) -> str:
    report = plan.report
    return (f"split {escape(printable(report.spec.label))} over {plan.devices} devices · strategy {plan.strategy} · "
            f"input {fmt_shape(report.input)} · batch {report.batch} · {report.dtype}")


def plan_rich(plan: Plan, width: int | None = None) -> Group:
    kept, dropped, widths = fitting_columns(plan, width)
    table = Table(title=heading(plan), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_footer=True)
    totals = total_cells(plan)
    for column in kept:
        table.add_column(column.title, footer=totals[column.key], justify="right" if column.numeric else "left",
                         no_wrap=True, min_width=widths[column.key])
    for index in range(len(plan.layers)):
        cells = layer_cells(plan, index)
        table.add_row(*(cells[c.key] for c in kept))
    lines = summary_lines(plan)
    if dropped:
        lines.insert(0, "columns left out to fit the width (see --format json or csv): "
                        + ", ".join(c.title for c in dropped))
    return Group(table, Text("\n".join(lines)))


def summary_lines(plan: Plan) -> list[str]:
    lines = []
    fits = plan.fits()
    for t in plan.per_device:
        line = (f"{device_name(plan, t.device)}: {fmt_int(t.params)} parameters, {fmt_si(t.flops)}FLOPs forward + "
                f"{fmt_si(t.backward_flops)}FLOPs backward, training memory {fmt_bytes(t.training_memory)} "
                f"({plan.optimizer}), receives {fmt_exact(t.received)} B per step")
        if fits is not None:
            line += " — fits" if fits[t.device] else f" — does not fit in {fmt_bytes(plan.device_memory or 0)}"
        lines.append(line)
    share = plan.busiest_share
    lines.append(f"busiest device: {device_name(plan, plan.busiest.device)}, {float(share) * 100:.1f}% of all "
                 f"FLOPs (even: {100 / plan.devices:.1f}%); {fmt_exact(plan.total_received)} B cross per step, "
                 f"{float(plan.bytes_per_flop):.3g} B per FLOP")
    if plan.profile is not None:
        compute, comm, step = plan.step_time(plan.profile.flops_per_s, plan.profile.bytes_per_s)
        lines.append(f"estimated step on {plan.profile.description}: compute {fmt_time(compute)} + communication "
                     f"{fmt_time(comm)} = {fmt_time(step)} (no overlap)")
    communicating = [item.name for item in plan.layers if item.communicates]
    lines.append("communication at: " + (", ".join(printable(n) for n in communicating) or "no layer"))
    lines.append("conventions: " + "; ".join(f"{key}: {text}" for key, text in CONVENTIONS.items()))
    lines += [f"note: {note}" for note in plan.notes]
    return [escape(line) for line in lines]


# ------------------------------------------------------------------ machine-readable

def plan_dict(plan: Plan) -> dict[str, Any]:
    report = plan.report
    fits = plan.fits()
    layers = []
    for item in plan.layers:
        layers.append({
            "name": item.name, "type": item.layer.type, "mode": item.mode,
            "output": list(item.layer.output_shape),
            "owners": ["all" if o == ALL else o for o in item.owners] if item.owners else None,
            "exchanges": [{"kind": e.kind, "phase": e.phase, "moves": e.moves,
                           "received_bytes": [json_number(b) for b in e.received]} for e in item.exchanges],
            "devices": [{"device": d, "batch": item.batches[d], "params": s.params,
                         "trainable_params": s.trainable_params, "flops": s.flops,
                         "backward_flops": s.backward_flops, "other_ops": s.other_ops, "activations": s.activations,
                         "received_forward_bytes": json_number(s.received_forward),
                         "received_backward_bytes": json_number(s.received_backward)}
                        for d, s in enumerate(item.shares)],
        })
    devices = [{"device": t.device, "params": t.params, "trainable_params": t.trainable_params, "flops": t.flops,
                "backward_flops": t.backward_flops, "other_ops": t.other_ops,
                "activation_bytes": t.activation_bytes, "training_memory_bytes": t.training_memory,
                "received_forward_bytes": json_number(t.received_forward),
                "received_backward_bytes": json_number(t.received_backward),
                "fits": fits[t.device] if fits is not None else None} for t in plan.per_device]
    estimate = None
    if plan.profile is not None:
        compute, comm, step = plan.step_time(plan.profile.flops_per_s, plan.profile.bytes_per_s)
        estimate = {"profile": plan.profile.name, "description": plan.profile.description,
                    "flops_per_s": plan.profile.flops_per_s, "bytes_per_s": plan.profile.bytes_per_s,
                    "compute_s": compute, "communication_s": comm, "step_s": step}
    return {
        "spec": report.spec.label, "input": list(report.input), "batch": report.batch, "dtype": report.dtype,
        "strategy": plan.strategy, "devices": plan.devices, "optimizer": plan.optimizer,
        "device_memory_bytes": plan.device_memory, "placement": dict(plan.pins),
        "layers": layers, "per_device": devices,
        "busiest_device": plan.busiest.device, "busiest_share": json_number(plan.busiest_share),
        "received_bytes": json_number(plan.total_received),
        "bytes_per_flop": json_number(plan.bytes_per_flop), "estimate": estimate,
        "conventions": CONVENTIONS, "notes": list(plan.notes),
    }


def plan_json(plan: Plan) -> str:
    return json.dumps(plan_dict(plan), indent=2, ensure_ascii=False)


CSV_FIELDS = ("name", "type", "mode", "device", "batch", "params", "trainable_params", "flops", "backward_flops",
              "other_ops", "activations", "received_forward_bytes", "received_backward_bytes")


def plan_csv(plan: Plan) -> str:
    """One row per layer and device."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for layer in plan_dict(plan)["layers"]:
        for device in layer["devices"]:
            row = {**layer, **device}
            writer.writerow([row[f] for f in CSV_FIELDS])
    return buffer.getvalue()


def plan_markdown(plan: Plan) -> str:
    cols = columns(plan)
    lines = [f"**{heading(plan)}**", "", "| " + " | ".join(c.title for c in cols) + " |",
             "|" + "|".join("---:" if c.numeric else "---" for c in cols) + "|"]
    rows = [layer_cells(plan, i) for i in range(len(plan.layers))] + [total_cells(plan)]
    for cells in rows:
        lines.append("| " + " | ".join(Text.from_markup(cells[c.key]).plain.replace("|", "\\|") for c in cols) + " |")
    lines.append("")
    lines += [f"- {Text.from_markup(line).plain}" for line in summary_lines(plan)]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ a distributed run beside its plan

def distributed_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2, ensure_ascii=False)


# Each kind of column, shown once per process and left out for every process at once, lowest priority first.
DISTRIBUTED_KINDS = (("measured_fwd", "measured fwd", 90), ("measured_bwd", "measured bwd", 80),
                     ("comm", "comm", 70), ("plan_fwd", "plan fwd", 60), ("plan_bwd", "plan bwd", 50))
DISTRIBUTED_HINT = "a wider COLUMNS or --format json shows them"


@dataclass
class KindFitted:
    """A `Fitted` table whose columns of one kind (one per process) are left out together, never one process's
    column without the others'; a footer line names what is not shown."""

    columns: list[FitColumn]
    title: Text | None = None

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        keep, dropped = list(self.columns), []
        if not getattr(console, "natural_tables", False):
            probe = Fitted(keep)
            for priority in sorted({c.priority for c in self.columns})[:-1]:  # never the layer names
                if probe.needed_width(console, keep) <= options.max_width:
                    break
                dropped += [c for c in keep if c.priority == priority]
                keep = [c for c in keep if c.priority != priority]
        yield Fitted(keep, hint=DISTRIBUTED_HINT, title=self.title)
        if dropped:
            titles = ", ".join(c.title for c in self.columns if c in dropped)
            yield Text(f"not shown at {options.max_width} columns: {titles} ({DISTRIBUTED_HINT})", style="dim",
                       no_wrap=True, overflow="ignore")


def distributed_rich(result: dict[str, Any]) -> Group:
    """Per layer that communicates: planned and measured bytes per device, and the time spent communicating.
    Numbers are never cut: kinds of columns that do not fit are left out for every process, and named."""
    devices = range(result["devices"])
    title = (f"bench {printable(result['spec'])} over {result['devices']} processes · "
             f"{result['strategy']} · {result['backend']} · batch {result['batch']} · {result['dtype']} · "
             f"{printable(result['device'])}")
    shown = [layer for layer in result["layers"]
             if any(Fraction(c["planned_forward_bytes"]) or Fraction(c["planned_backward_bytes"])
                    or Fraction(c["measured_forward_bytes"]) or Fraction(c["measured_backward_bytes"])
                    for c in layer["devices"])]
    cell = {"plan_fwd": lambda c: fmt_exact(Fraction(c["planned_forward_bytes"])),
            "measured_fwd": lambda c: fmt_exact(Fraction(c["measured_forward_bytes"])),
            "plan_bwd": lambda c: fmt_exact(Fraction(c["planned_backward_bytes"])),
            "measured_bwd": lambda c: fmt_exact(Fraction(c["measured_backward_bytes"])),
            "comm": lambda c: fmt_time(c["comm_s"])}
    order = ("plan_fwd", "measured_fwd", "plan_bwd", "measured_bwd", "comm")  # left to right, per process
    priority = {key: rank for key, _, rank in DISTRIBUTED_KINDS}
    label = {key: text for key, text, _ in DISTRIBUTED_KINDS}
    columns = [FitColumn("layer", "Layer", [Text(printable(layer["name"])) for layer in shown], priority=100)]
    columns += [FitColumn(f"{key}{d}", f"{label[key]} {d}", [cell[key](layer["devices"][d]) for layer in shown],
                          numeric=True, priority=priority[key]) for d in devices for key in order]
    params = [sum(layer["devices"][d]["measured_params"] for layer in result["layers"]) for d in devices]
    planned = [sum(layer["devices"][d]["planned_params"] for layer in result["layers"]) for d in devices]
    lines = [
        "bytes: " + ("measured = planned on every layer and device" if result["bytes_match"]
                     else "MISMATCH between measured and planned bytes"),
        "parameters per process: " + ", ".join(f"{fmt_int(m)} (plan {fmt_int(p)})"
                                               for m, p in zip(params, planned, strict=True)),
        f"median step (forward + backward, communication included): {fmt_time(result['step_s'] or 0)}; "
        f"{result['repeats']} steps after {result['warmup']} warm-up",
        "measured bytes: the tensors that went through the collectives (gather: received from the others; "
        "all-reduce: the ring convention 2·(N−1)/N·S); comm: median time inside collectives per step",
    ]
    return Group(KindFitted(columns, title=Text(title)), Text("\n".join(lines)))
