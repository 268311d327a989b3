"""`verify`: a cross-check result as a Rich table or JSON."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from convaudit.render.findings import Checked, finding_dict, findings_rich
from convaudit.render.formatting import fmt_int, fmt_shape, fmt_time

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
        return Text(f"✓ {_value(cell.ours)}" if show_value else "✓", style="green")
    if cell.status == "mismatch":
        return Text(f"✗ ours {_value(cell.ours)} ≠ {_value(cell.theirs)}", style="bold red")
    if cell.status == "torch-overcount":
        factor = cell.note.split("by ")[-1].split(" ")[0] if "by ×" in cell.note else ""
        text = f"⚑ torch over-counts {factor}".rstrip() if not show_value else f"⚑ {_value(cell.theirs)}"
        return Text(text, style="yellow")
    if cell.status == "not-counted":
        return Text("not counted", style="dim")
    return Text("·", style="dim")


def verify_rich(result: VerifyResult) -> Group:
    heading = (f"verify {result.spec} — input {fmt_shape(result.input)} · batch {result.batch} · {result.dtype} · "
               f"{result.device}")
    if result.torch_error:
        parts: list[Any] = [Text(heading, style="bold"),
                            Text(f"✗ PyTorch cannot run {result.spec} at {fmt_shape(result.input)}", style="bold red"),
                            Padding(Text(result.torch_error), (0, 0, 0, 2))]
        if result.explanation:
            parts.append(Text("convaudit's analysis predicted it:", style="bold"))
            parts.append(findings_rich([Checked(result.spec, result.input, result.explanation)]).renderables[-1])
        return Group(*parts)
    table = Table(title=heading, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_footer=True)
    table.add_column("Layer", footer="Total", no_wrap=True)
    table.add_column("Type", no_wrap=True)
    for column, title in COLUMN_TITLES.items():
        footer = cell_text(result.totals.cells[column], show_value=True) if column in result.totals.cells else ""
        table.add_column(title, footer=footer)
    for row in result.rows:
        table.add_row(row.name, row.type, *(cell_text(row.cells[c]) for c in COLUMN_TITLES))
    return Group(table, Text("\n".join(verify_notes(result))))


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
            "note": cell.note}


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
