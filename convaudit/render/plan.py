"""`split`: a parallelism plan as a Rich table (one column group per device, as the paper's figure 2 draws
the top and bottom GPU), JSON, CSV or Markdown. Numbers are never cut: columns that do not fit the terminal
are dropped whole, and a footer names them.

Up to SHOWN_ONE_BY_ONE devices each device has its columns and its line; beyond, each run of devices holding
the same share of every layer ("GPUs 2–65535") has them, so the output grows with the network, not with N.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from rich import box
from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from convaudit.core.plan import ALL, SHOWN_ONE_BY_ONE, DeviceTotals, LayerPlan, Plan, Share, Spread
from convaudit.errors import printable
from convaudit.render.distributed import DISTRIBUTED_KINDS, distributed_json, distributed_rich  # noqa: F401
from convaudit.render.formatting import (  # noqa: F401  (fmt_exact, json_number: re-exported)
    fmt_bytes,
    fmt_exact,
    fmt_int,
    fmt_shape,
    fmt_si,
    fmt_time,
    json_number,
)


def device_name(first: int, count: int = 1) -> str:
    return f"GPU {first}" if count == 1 else f"GPUs {first}–{first + count - 1}"


def moves(plan: Plan, index: int) -> str:
    """What crosses at this layer: 'gather pool2 (fwd+bwd)', 'all-reduce conv3 (fwd)'."""
    items: dict[tuple[str, str], list[str]] = {}
    for exchange in plan.layers[index].exchanges:
        if exchange.total:
            # as written since the first release: 'for' (forward), 'bwd' (backward); and 'step'
            phase = exchange.phase if exchange.phase == "step" else exchange.phase[:3].replace("bac", "bwd")
            items.setdefault((exchange.kind, exchange.moves), []).append(phase)
    return "; ".join(f"{kind} {printable(tensor)} ({'+'.join(phases)})" for (kind, tensor), phases in items.items())


def has_step(plan: Plan) -> bool:
    return any(e.phase == "step" for item in plan.layers for e in item.exchanges)


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    priority: int  # dropped lowest first when the table is too wide
    numeric: bool = True
    row: int | None = None  # the device row a per-device column shows


def shown_rows(kept: list[Column]) -> set[int]:
    return {c.row for c in kept if c.row is not None}


def columns(plan: Plan) -> list[Column]:
    rows = list(enumerate(plan.device_rows()))
    cols = [Column("layer", "Layer", 100, False), Column("mode", "Split", 40, False)]
    cols += [Column(f"params{i}", f"Params {device_name(t.device, t.count)}", 90, row=i) for i, t in rows]
    cols += [Column(f"flops{i}", f"FLOPs {device_name(t.device, t.count)}", 60, row=i) for i, t in rows]
    cols += [Column(f"fwd{i}", f"B in fwd {device_name(t.device, t.count)}", 80, row=i) for i, t in rows]
    cols += [Column(f"bwd{i}", f"B in bwd {device_name(t.device, t.count)}", 70, row=i) for i, t in rows]
    if has_step(plan):
        cols += [Column(f"step{i}", f"B in step {device_name(t.device, t.count)}", 65, row=i) for i, t in rows]
    cols.append(Column("moves", "Crosses devices", 30, False))
    return cols


def layer_cells(plan: Plan, index: int, shown: set[int] | None = None) -> dict[str, str]:
    """The row of one layer; per-device cells for the device rows in `shown` (None: every one)."""
    item = plan.layers[index]
    cells = {"layer": escape(printable(item.name)), "mode": item.mode, "moves": escape(moves(plan, index))}
    for i, row in enumerate(plan.device_rows()):
        if shown is not None and i not in shown:
            continue
        share = item.shares[row.device]
        cells[f"params{i}"] = fmt_int(share.params) if share.params else ""
        cells[f"flops{i}"] = fmt_si(share.flops) if share.flops else ""
        cells[f"fwd{i}"] = fmt_exact(share.received_forward) if share.received_forward else ""
        cells[f"bwd{i}"] = fmt_exact(share.received_backward) if share.received_backward else ""
        cells[f"step{i}"] = fmt_exact(share.received_step) if share.received_step else ""
    return cells


def total_cells(plan: Plan) -> dict[str, str]:
    cells = {"layer": "Total", "mode": "", "moves": ""}
    for i, t in enumerate(plan.device_rows()):
        cells[f"params{i}"] = fmt_int(t.params)
        cells[f"flops{i}"] = fmt_si(t.flops)
        cells[f"fwd{i}"] = fmt_exact(t.received_forward)
        cells[f"bwd{i}"] = fmt_exact(t.received_backward)
        cells[f"step{i}"] = fmt_exact(t.received_step)
    return cells


def fitting_columns(plan: Plan, width: int | None) -> tuple[list[Column], list[Column], dict[str, int]]:
    """(kept, dropped, widths): drop the lowest-priority columns until every cell fits whole in `width`.

    A kind of column goes for every device at once; while even its titles cannot fit, it goes before any
    cell is measured (many kinds of device make many columns)."""
    cols = columns(plan)
    kept, dropped = list(cols), []

    def drop_weakest() -> None:
        nonlocal kept
        weakest = min(c.priority for c in kept)
        dropped.extend(c for c in kept if c.priority == weakest)
        kept = [c for c in kept if c.priority != weakest]

    while width is not None and sum(len(c.title) + 2 for c in kept) > width and len(kept) > 1:
        drop_weakest()
    rows = [layer_cells(plan, i, shown_rows(kept)) for i in range(len(plan.layers))] + [total_cells(plan)]
    widths = {c.key: max([len(c.title)] + [len(Text.from_markup(r[c.key]).plain) for r in rows]) for c in kept}
    widths.update({c.key: len(c.title) for c in dropped})
    while width is not None and sum(widths[c.key] + 2 for c in kept) > width and len(kept) > 1:
        drop_weakest()
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
    shown = shown_rows(kept)
    for index in range(len(plan.layers)):
        cells = layer_cells(plan, index, shown)
        table.add_row(*(cells[c.key] for c in kept))
    lines = summary_lines(plan)
    if dropped:
        lines.insert(0, "columns left out to fit the width (see --format json or csv): "
                        + ", ".join(c.title for c in dropped))
    return Group(table, Text("\n".join(lines)))


def device_line(plan: Plan, t: DeviceTotals) -> str:
    name = device_name(t.device, t.count)
    if plan.sharded:
        size = plan.dtype_bytes
        peak = transient_layer(plan, t.device)
        collectives = "; ".join(f"{kind} {phase} {fmt_exact(value)} B"
                                for (kind, phase), value in received_by_collective(plan, t.device).items() if value)
        line = (f"{name}: {fmt_int(t.params)} parameters (+ {fmt_int(t.padding)} padding), {fmt_int(t.gradients)} "
                f"gradients (+ {fmt_int(t.gradient_padding)} padding), {fmt_int(t.optimizer_state)} optimizer "
                f"state ({plan.optimizer}), activations {fmt_bytes(t.activation_bytes)}, transient "
                f"{fmt_bytes(t.transient * size)}{f' (unit {printable(peak)})' if peak else ''}; "
                f"{fmt_si(t.flops)}FLOPs forward + {fmt_si(t.backward_flops)}FLOPs backward, training memory "
                f"{fmt_bytes(t.training_memory)}, receives {fmt_exact(t.received)} B per step"
                + (f" ({collectives})" if collectives else ""))
    else:
        line = (f"{name}: {fmt_int(t.params)} parameters, {fmt_si(t.flops)}FLOPs forward + "
                f"{fmt_si(t.backward_flops)}FLOPs backward, training memory {fmt_bytes(t.training_memory)} "
                f"({plan.optimizer}), receives {fmt_exact(t.received)} B per step")
    fits = plan.fits(t)
    if fits is not None:
        line += " — fits" if fits else f" — does not fit in {fmt_bytes(plan.device_memory or 0)}"
    return line


# Each collective a sharded plan runs, in the order of a step: (kind, phase).
COLLECTIVES = (("all-gather", "forward"), ("all-gather", "backward"), ("reduce-scatter", "backward"),
               ("all-gather", "step"))


def collective_field(kind: str, phase: str) -> str:
    """A CSV column of bytes received in one collective: all_gather_forward_bytes."""
    return f"{kind}_{phase}_bytes".replace("-", "_")


def received_by_collective(plan: Plan, device: int, item: LayerPlan | None = None) -> dict[tuple[str, str], Fraction]:
    """Bytes `device` receives per step in each of COLLECTIVES, over every layer (or over `item` alone)."""
    totals = dict.fromkeys(COLLECTIVES, Fraction(0))
    for layer in (item,) if item is not None else plan.layers:
        for exchange in layer.exchanges:
            key = (exchange.kind, exchange.phase)
            totals[key] = totals.get(key, Fraction(0)) + exchange.received[device]
    return totals


def transient_layer(plan: Plan, device: int) -> str | None:
    """The layer whose unit is the largest transient on `device` (the first of equals); None when none is."""
    peak = max((item.shares[device].transient for item in plan.layers), default=0)
    return next((item.name for item in plan.layers if item.shares[device].transient == peak), None) if peak else None


def summary_lines(plan: Plan) -> list[str]:
    lines = [device_line(plan, t) for t in plan.device_rows()]
    share = plan.busiest_share
    lines.append(f"busiest device: {device_name(plan.busiest.device)}, {float(share) * 100:.1f}% of all "
                 f"FLOPs (even: {100 / plan.devices:.1f}%); {fmt_exact(plan.total_received)} B cross per step, "
                 f"{float(plan.bytes_per_flop):.3g} B per FLOP")
    if plan.profile is not None:
        compute, comm, step = plan.step_time(plan.profile.flops_per_s, plan.profile.bytes_per_s)
        lines.append(f"estimated step on {plan.profile.description}: compute {fmt_time(compute)} + communication "
                     f"{fmt_time(comm)} = {fmt_time(step)} (no overlap)")
    communicating = [item.name for item in plan.layers if item.communicates]
    lines.append("communication at: " + (", ".join(printable(n) for n in communicating) or "no layer"))
    lines.append("conventions: " + "; ".join(f"{key}: {text}" for key, text in plan.conventions.items()))
    lines += [f"note: {note}" for note in plan.notes]
    return [escape(line) for line in lines]


# ------------------------------------------------------------------ machine-readable

def devices_key(first: int, count: int) -> dict[str, Any]:
    """One device as {"device": d}; a run of identical devices as {"device_range": [first, last], "device_count"}."""
    if count == 1:
        return {"device": first}
    return {"device_range": [first, first + count - 1], "device_count": count}


def per_device_json(plan: Plan, spread: Spread[Any]) -> list[tuple[int, int, Any]]:
    """(first, count, value): each device up to SHOWN_ONE_BY_ONE devices, else each run."""
    if plan.devices <= SHOWN_ONE_BY_ONE:
        return [(d, 1, value) for d, value in enumerate(spread)]
    return [(first, stop - first, value) for first, stop, value in spread.runs()]


def spread_json(plan: Plan, spread: Spread[Any], key: str = "bytes") -> list[Any]:
    """A number per device: a list of N numbers up to SHOWN_ONE_BY_ONE devices, else one {key: …} per run."""
    if plan.devices <= SHOWN_ONE_BY_ONE:
        return [json_number(value) for value in spread]
    return [{**devices_key(first, count), key: json_number(value)}
            for first, count, value in per_device_json(plan, spread)]


def share_json(plan: Plan, item: LayerPlan, first: int, count: int, s: Share) -> dict[str, Any]:
    entry = {**devices_key(first, count), "batch": item.batches[first], "params": s.params,
             "trainable_params": s.trainable_params, "flops": s.flops, "backward_flops": s.backward_flops,
             "other_ops": s.other_ops, "activations": s.activations,
             "received_forward_bytes": json_number(s.received_forward),
             "received_backward_bytes": json_number(s.received_backward)}
    if plan.sharded:
        entry.update(received_step_bytes=json_number(s.received_step), padding=s.padding, gradients=s.gradients,
                     gradient_padding=s.gradient_padding, optimizer_state=s.optimizer_state, transient=s.transient)
    return entry


def totals_json(plan: Plan, t: DeviceTotals) -> dict[str, Any]:
    fits = plan.fits(t)
    entry = {**devices_key(t.device, t.count), "params": t.params, "trainable_params": t.trainable_params,
             "flops": t.flops, "backward_flops": t.backward_flops, "other_ops": t.other_ops,
             "activation_bytes": t.activation_bytes, "training_memory_bytes": t.training_memory,
             "received_forward_bytes": json_number(t.received_forward),
             "received_backward_bytes": json_number(t.received_backward), "fits": fits}
    if plan.sharded:
        entry.update(sharded_totals_json(plan, t))
    return entry


def sharded_totals_json(plan: Plan, t: DeviceTotals) -> dict[str, Any]:
    """What a device holds and receives under fsdp, zero1 or zero2 beyond the other strategies' totals."""
    return {"received_step_bytes": json_number(t.received_step), "padding": t.padding, "gradients": t.gradients,
            "gradient_padding": t.gradient_padding, "optimizer_state": t.optimizer_state, "transient": t.transient,
            "transient_layer": transient_layer(plan, t.device),
            "received_by_collective": collective_json(received_by_collective(plan, t.device))}


def collective_json(received: dict[tuple[str, str], Fraction]) -> list[dict[str, Any]]:
    return [{"kind": kind, "phase": phase, "bytes": json_number(value)} for (kind, phase), value in received.items()]


def plan_dict(plan: Plan) -> dict[str, Any]:
    report = plan.report
    layers = []
    for item in plan.layers:
        entry: dict[str, Any] = {
            "name": item.name, "type": item.layer.type, "mode": item.mode,
            "output": list(item.layer.output_shape),
            "owners": ["all" if o == ALL else o for o in item.owners] if item.owners else None,
            "exchanges": [{"kind": e.kind, "phase": e.phase, "moves": e.moves,
                           "received_bytes": spread_json(plan, e.received)} for e in item.exchanges],
            "devices": [share_json(plan, item, first, count, s)
                        for first, count, s in per_device_json(plan, item.shares)],
        }
        if plan.sharded:
            entry["parameters"] = [{"shape": list(p.shape), "trainable": p.trainable, "chunk_rows": p.chunk,
                                    "rows": [{**devices_key(first, count), "rows": rows}
                                             for first, count, rows in per_device_json(plan, p.rows)]}
                                   for p in item.parameters]
        layers.append(entry)
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
        "layers": layers, "per_device": [totals_json(plan, t) for t in plan.device_rows()],
        "busiest_device": plan.busiest.device, "busiest_share": json_number(plan.busiest_share),
        "received_bytes": json_number(plan.total_received),
        "bytes_per_flop": json_number(plan.bytes_per_flop), "estimate": estimate,
        "conventions": plan.conventions, "notes": list(plan.notes),
    }


def plan_json(plan: Plan) -> str:
    return json.dumps(plan_dict(plan), indent=2, ensure_ascii=False)


CSV_FIELDS = ("name", "type", "mode", "device", "batch", "params", "trainable_params", "flops", "backward_flops",
              "other_ops", "activations", "received_forward_bytes", "received_backward_bytes")
SHARDED_CSV_FIELDS = ("received_step_bytes", "padding", "gradients", "gradient_padding", "optimizer_state",
                      "transient") + tuple(collective_field(*key) for key in COLLECTIVES)


def plan_csv(plan: Plan) -> str:
    """One row per layer and device (per run of identical devices beyond SHOWN_ONE_BY_ONE: 'first-last')."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    fields = CSV_FIELDS + (SHARDED_CSV_FIELDS if plan.sharded else ())
    writer.writerow(fields)
    for item, layer in zip(plan.layers, plan_dict(plan)["layers"], strict=True):
        for device in layer["devices"]:
            first_last = device.get("device_range")
            first = device["device"] if first_last is None else first_last[0]
            row = {**layer, **device, "device": device["device"] if first_last is None else
                   f"{first_last[0]}-{first_last[1]}"}
            if plan.sharded:
                received = received_by_collective(plan, first, item)
                row.update({collective_field(*key): json_number(value) for key, value in received.items()})
            writer.writerow([row[f] for f in fields])
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
