"""`fit`: the largest batch per way of training, as a Rich table, JSON, CSV or Markdown."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from rich.console import Group
from rich.text import Text

from convaudit.core.fit import Answer, Fit
from convaudit.errors import printable
from convaudit.render.formatting import fmt_bytes, fmt_int, fmt_si
from convaudit.render.output import FitColumn, Fitted, md, plain

TITLES = ("Strategy", "AMP", "Checkpoint", "Largest batch", "Bytes at it", "At batch + 1")


def _cells(answer: Answer) -> tuple[str, ...]:
    return (answer.strategy, answer.amp or "off", answer.checkpoint or "off",
            fmt_int(answer.batch) if answer.batch else "none fits",
            fmt_int(answer.memory), fmt_int(answer.next_memory))


def _headline(fit: Fit) -> str:
    where = f"{fit.devices} devices of " if fit.devices > 1 else "a device of "
    return (f"{fit.name} at {'×'.join(map(str, fit.input))}: the largest batch that trains on {where}"
            f"{fmt_bytes(fit.device_memory)} ({fmt_int(fit.device_memory)} B) with {fit.optimizer}")


def breakdown_lines(fit: Fit) -> list[str]:
    """The best answer's memory, term by term, on its fullest device; then the notes and the convention."""
    best = fit.best
    state, memory = best.state, best.breakdown
    if not best.batch:
        return [f"nothing fits: the state alone is {fmt_bytes(state.total)} per device, and one sample needs "
                f"{fmt_bytes(best.memory)}"] + list(fit.notes)
    how = ", ".join(part for part in (best.strategy, f"amp {best.amp}" if best.amp else "",
                                      f"checkpoint {best.checkpoint}" if best.checkpoint else "") if part)
    per = f" ({fmt_int(memory.batch)} on the fullest device)" if fit.devices > 1 else ""
    terms = [f"params {fmt_bytes(state.params)}", f"gradients {fmt_bytes(state.gradients)}",
             f"optimizer state {fmt_bytes(state.optimizer_state)}"]
    if state.padding:
        terms.append(f"shard padding {fmt_bytes(state.padding)}")
    if state.transient:
        terms.append(f"all-gathered unit {fmt_bytes(state.transient)}")
    terms.append(f"saved activations {fmt_bytes(memory.saved_activations)}")
    if memory.recompute_peak:
        terms.append(f"one segment remade in the backward {fmt_bytes(memory.recompute_peak)} (from "
                     f"{memory.recompute_segment})")
    lines = [f"best: {how}: batch {fmt_int(best.batch)}{per}: " + " + ".join(terms) +
             f" = {fmt_bytes(best.memory)} ({fmt_int(best.memory)} B); batch {fmt_int(best.batch + 1)} needs "
             f"{fmt_bytes(best.next_memory)}"]
    if memory.recompute_flops or memory.recompute_other_ops:
        lines.append(f"checkpointing: the backward runs the checkpointed layers' forward again: "
                     f"{fmt_int(memory.recompute_flops)} FLOPs ≈ {fmt_si(memory.recompute_flops)} (2·MACs) and "
                     f"{fmt_int(memory.recompute_other_ops)} other ops per step on that device")
    lines += list(fit.notes)
    lines.append("Memory per device: the state (fp32 master weights, gradients, optimizer state, as the strategy "
                 "shards them) plus the tensors saved for the backward by its share of the batch; with --amp at "
                 "the dtype autocast gives each op. A batch fits when the fullest device is within the limit.")
    return lines


def fit_rich(fit: Fit) -> Group:
    rows = [_cells(answer) for answer in fit.answers]
    columns = [FitColumn(title, title, [plain(row[i]) for row in rows], numeric=i >= 3, priority=10 - i)
               for i, title in enumerate(TITLES)]
    best = fit.best
    styles = ["bold" if answer is best else None for answer in fit.answers]
    table = Fitted(columns, styles, title=plain(_headline(fit)))
    return Group(table, Text("\n".join(printable(line) for line in breakdown_lines(fit))))


def _answer_dict(answer: Answer) -> dict[str, Any]:
    state, memory = answer.state, answer.breakdown
    return {"strategy": answer.strategy, "amp": answer.amp, "checkpoint": answer.checkpoint, "batch": answer.batch,
            "memory_bytes": answer.memory, "next_batch_memory_bytes": answer.next_memory,
            "fullest_device": state.device, "device_batch": memory.batch,
            "params_bytes": state.params, "gradients_bytes": state.gradients,
            "optimizer_state_bytes": state.optimizer_state, "padding_bytes": state.padding,
            "transient_bytes": state.transient, "saved_activations_bytes": memory.saved_activations,
            "recompute_peak_bytes": memory.recompute_peak, "recompute_flops": memory.recompute_flops,
            "recompute_other_ops": memory.recompute_other_ops}


def fit_json(fit: Fit) -> str:
    best = fit.best
    return json.dumps({"name": fit.name, "input": list(fit.input), "device_memory_bytes": fit.device_memory,
                       "devices": fit.devices, "optimizer": fit.optimizer,
                       "answers": [_answer_dict(answer) for answer in fit.answers],
                       "best": fit.answers.index(best), "notes": list(fit.notes)}, indent=2, ensure_ascii=False)


def fit_csv(fit: Fit) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    rows = [_answer_dict(answer) for answer in fit.answers]
    writer.writerow(list(rows[0]))
    for row in rows:
        writer.writerow(["" if value is None else value for value in row.values()])
    return buffer.getvalue()


def fit_markdown(fit: Fit) -> str:
    lines = [f"### {md(_headline(fit))}", "", "| " + " | ".join(TITLES) + " |",
             "|---|---|---|---:|---:|---:|"]
    lines += ["| " + " | ".join(md(cell) for cell in _cells(answer)) + " |" for answer in fit.answers]
    lines.append("")
    lines += [f"- {md(line)}" for line in breakdown_lines(fit)]
    return "\n".join(lines) + "\n"
