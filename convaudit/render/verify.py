"""`verify`: a cross-check result as a Rich table or JSON."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.padding import Padding
from rich.text import Text

from convaudit.errors import printable
from convaudit.render.findings import Checked, finding_dict, findings_rich
from convaudit.render.formatting import fmt_int, fmt_shape, fmt_time
from convaudit.render.output import FitColumn, Fitted, plain

if TYPE_CHECKING:  # the result type lives with torch; rendering only reads its fields
    from convaudit.pytorch.verify import Cell, VerifyResult

COLUMN_TITLES = {
    "shape": "Shape",
    "params": "Params",
    "buffers": "Buffers",
    "fvcore_macs": "MACs (fvcore)",
    "torch_forward": "FLOPs fwd (torch)",
    "torch_backward": "FLOPs bwd (torch)",
}


def _value(value: object) -> str:
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        total = value[0] + value[1]  # (trainable, non-trainable): the headline is their sum, as sum(p.numel())
        return f"{total:,} ({value[1]:,} fixed)" if value[1] else f"{total:,}"
    if isinstance(value, tuple):
        return fmt_shape(value)
    if isinstance(value, int):
        return fmt_int(value)
    return "—" if value is None else str(value)


def cell_text(cell: Cell, show_value: bool = False) -> Text:
    if cell.status == "match":
        return Text(f"✓ {_value(cell.theirs)}" if show_value else "✓", style="green")
    if cell.status == "mismatch":
        return Text(f"✗ {_value(cell.theirs)} ≠ ours {_value(cell.ours)}", style="bold red")
    if cell.status == "torch-overcount":
        factor = cell.note.split("by ")[-1].split(" ")[0] if "by ×" in cell.note else ""
        text = f"⚑ torch over-counts {factor}".rstrip() if not show_value else f"⚑ {_value(cell.theirs)}"
        return Text(text, style="yellow")
    if cell.status == "not-counted":
        return Text("not counted", style="dim")
    return Text("·", style="dim")


def verify_rich(result: VerifyResult) -> Group:
    heading = (f"verify {printable(result.spec)} — input {fmt_shape(result.input)} · batch {result.batch} · "
               f"{result.dtype} · {result.device}")
    if result.torch_error:
        parts: list[Any] = [Text(heading, style="bold"),
                            Text(f"✗ PyTorch cannot run {result.spec} at {fmt_shape(result.input)}", style="bold red"),
                            Padding(Text(printable(result.torch_error)), (0, 0, 0, 2))]
        if result.explanation:
            parts.append(Text("convaudit's analysis predicted it:", style="bold"))
            parts.append(findings_rich([Checked(result.spec, result.input, result.explanation)]).renderables[-1])
        return Group(*parts)
    keys = [c for c in COLUMN_TITLES if c != "buffers" or any(row.cells[c].status != "none" for row in result.rows)]
    columns = [FitColumn("layer", "Layer", [plain(row.name) for row in result.rows], footer="Total"),
               FitColumn("type", "Type", [plain(row.type) for row in result.rows])]
    for key in keys:
        total = result.totals.cells.get(key) if result.totals else None
        columns.append(FitColumn(key, COLUMN_TITLES[key], [cell_text(row.cells[key]) for row in result.rows],
                                 footer=cell_text(total) if total else ""))
    for column in columns:
        column.priority = VERIFY_DROP_ORDER.index(column.key)
    table = Fitted(columns, show_footer=True, hint="--format json has every cell", title=plain(heading))
    return Group(table, Text("\n".join(printable(line) for line in total_lines(result) + verify_notes(result))))


VERIFY_DROP_ORDER = ("type", "buffers", "torch_backward", "torch_forward", "fvcore_macs", "params", "shape", "layer")
TOTAL_LABELS = {
    "params": "params, PyTorch's sum(p.numel())",
    "buffers": "buffers (running statistics)",
    "fvcore_macs": "fvcore flops (1 per MAC)",
    "torch_forward": "FlopCounterMode forward FLOPs",
    "torch_backward": "FlopCounterMode backward FLOPs",
}


def total_text(cell: Cell) -> str:
    """The reference's own total, the conversion to ours, then ✓ or ✗: never our number under its name."""
    own = cell.shown or _value(cell.theirs)
    if cell.status == "match":
        return f"{own} ✓"
    if cell.status == "mismatch":
        return f"{own} ✗ (ours {_value(cell.ours)})"
    if cell.status == "torch-overcount":
        return f"{own} ⚑ ({cell.note})"
    return f"{own} ({cell.note or cell.status})"


def total_lines(result: VerifyResult) -> list[str]:
    if not result.totals:
        return []
    cells = result.totals.cells
    width = max(len(TOTAL_LABELS[key]) for key in cells)
    return ["totals, as each reference counts them, converted to the analysis's terms:"] + [
        f"  {TOTAL_LABELS[key]:<{width}}  {total_text(cells[key])}" for key in COLUMN_TITLES if key in cells]


def verify_notes(result: VerifyResult) -> list[str]:
    notes = []
    unsupported: dict[str, list[str]] = defaultdict(list)
    torch_missing, overcounts = [], []
    for row in result.rows:
        fvcore = row.cells["fvcore_macs"]
        if fvcore.status == "not-counted":
            unsupported[fvcore.note.removeprefix("not counted by fvcore: ")].append(row.name)
        if row.cells["torch_forward"].status == "not-counted":
            torch_missing.append(row.name)
        backward = row.cells["torch_backward"]
        if backward.status == "torch-overcount":
            overcounts.append(f"{row.name}: {backward.note}")
    for ops, layers in unsupported.items():
        notes.append(f"not counted by fvcore ({ops}): {', '.join(layers)}")
    if torch_missing:
        notes.append(f"not counted by FlopCounterMode (conv and matmul only): {', '.join(torch_missing)}")
    notes += overcounts
    notes.append("fvcore counts one multiply-add as one flop (= our MACs); FlopCounterMode counts 2 per MAC "
                 "(= our FLOPs). Backward = weight gradient + input gradient, none before the first trained layer.")
    notes += timing_lines(result)
    notes.append(verdict(result))
    return notes


def timing_lines(result: VerifyResult) -> list[str]:
    if not result.timings:
        return []
    parts = []
    for key, label in (("forward", "forward"), ("forward_backward", "forward+backward")):
        timing = result.timings.get(key)
        if timing:
            parts.append(f"{label} {fmt_time(timing.median)} (min {fmt_time(timing.minimum)}, "
                         f"max {fmt_time(timing.maximum)})")
    repeats = len(next(iter(result.timings.values())).samples)
    return [f"time, median of {repeats}: " + " · ".join(parts)]


def verdict(result: VerifyResult) -> str:
    compared = result.count("match") + result.count("mismatch")
    extras = [f"{result.count('not-counted')} not countable by a reference"]
    if result.count("torch-overcount"):
        extras.append(f"{result.count('torch-overcount')} where torch over-counts")
    if result.passed:
        return f"✓ all {compared} comparable cells match ({', '.join(extras)})"
    return f"✗ {result.count('mismatch')} of {compared} comparable cells differ ({', '.join(extras)})"


def _jsonable(value: object) -> object:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def cell_dict(cell: Cell) -> dict[str, object]:
    return {"status": cell.status, "ours": _jsonable(cell.ours), "theirs": _jsonable(cell.theirs),
            "note": cell.note, "shown": cell.shown}


def verify_json(result: VerifyResult) -> str:
    return json.dumps({
        "spec": result.spec,
        "input": list(result.input),
        "batch": result.batch,
        "dtype": result.dtype,
        "device": result.device,
        "references": result.references,
        "passed": result.passed,
        "torch_error": result.torch_error,
        "explanation": [finding_dict(f) for f in result.explanation],
        "layers": [{"name": row.name, "type": row.type, "cells": {k: cell_dict(c) for k, c in row.cells.items()}}
                   for row in result.rows],
        "totals": {k: cell_dict(c) for k, c in result.totals.cells.items()} if result.totals else None,
        "timings": {k: t.as_dict() for k, t in result.timings.items()},
    }, indent=2, ensure_ascii=False)
