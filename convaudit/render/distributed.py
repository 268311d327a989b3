"""`bench --devices`: a distributed run beside its plan, as a Rich table or JSON.

Numbers are never cut: kinds of columns that do not fit are left out for every process at once, and named.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.text import Text

from convaudit.core.plan.measured import DistributedRun, MeasuredShare
from convaudit.errors import printable
from convaudit.render.formatting import fmt_exact, fmt_int, fmt_time
from convaudit.render.output import FitColumn, Fitted


def share_dict(share: MeasuredShare) -> dict[str, Any]:
    """Exact bytes as strings ('346112', '80000/3'); fsdp's state elements only where measured."""
    entry = {key: str(value) if isinstance(value, Fraction) else value for key, value in asdict(share).items()}
    return {key: value for key, value in entry.items() if value is not None}


def distributed_dict(run: DistributedRun) -> dict[str, Any]:
    result: dict[str, Any] = {
        "spec": run.spec, "input": list(run.input), "batch": run.batch, "dtype": run.dtype, "strategy": run.strategy,
        "devices": run.devices, "backend": run.backend, "device": run.device, "warmup": run.warmup,
        "repeats": run.repeats, "torch": run.torch, "step_s": run.step_s,
        "layers": [{"name": layer.name, "mode": layer.mode, "devices": [share_dict(s) for s in layer.devices]}
                   for layer in run.layers],
        "bytes_match": run.bytes_match, "params_match": run.params_match,
    }
    if run.optimizer is not None:
        result.update(optimizer=run.optimizer, state_match=run.state_match)
    return result


def distributed_json(run: DistributedRun) -> str:
    return json.dumps(distributed_dict(run), indent=2, ensure_ascii=False)


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


CELLS = {"plan_fwd": lambda c: fmt_exact(c.planned_forward_bytes),
         "measured_fwd": lambda c: fmt_exact(c.measured_forward_bytes),
         "plan_bwd": lambda c: fmt_exact(c.planned_backward_bytes),
         "measured_bwd": lambda c: fmt_exact(c.measured_backward_bytes),
         "comm": lambda c: fmt_time(c.comm_s) if c.comm_s is not None else "not timed"}


def per_process(run: DistributedRun, measured: str, planned: str) -> str:
    totals = [(sum(getattr(layer.devices[d], measured) or 0 for layer in run.layers),
               sum(getattr(layer.devices[d], planned) or 0 for layer in run.layers)) for d in range(run.devices)]
    return ", ".join(f"{fmt_int(m)} (plan {fmt_int(p)})" for m, p in totals)


def distributed_rich(run: DistributedRun) -> Group:
    """Per layer that communicates: planned and measured bytes per device, and the time spent communicating."""
    devices = range(run.devices)
    title = (f"bench {printable(run.spec)} over {run.devices} processes · {run.strategy} · {run.backend} · "
             f"batch {run.batch} · {run.dtype} · {printable(run.device)}")
    shown = [layer for layer in run.layers if any(share.moves_bytes for share in layer.devices)]
    order = ("plan_fwd", "measured_fwd", "plan_bwd", "measured_bwd", "comm")  # left to right, per process
    priority = {key: rank for key, _, rank in DISTRIBUTED_KINDS}
    label = {key: text for key, text, _ in DISTRIBUTED_KINDS}
    columns = [FitColumn("layer", "Layer", [Text(printable(layer.name)) for layer in shown], priority=100)]
    columns += [FitColumn(f"{key}{d}", f"{label[key]} {d}", [CELLS[key](layer.devices[d]) for layer in shown],
                          numeric=True, priority=priority[key]) for d in devices for key in order]
    lines = [
        "bytes: " + ("measured = planned on every layer and device" if run.bytes_match
                     else "MISMATCH between measured and planned bytes"),
        "parameters per process: " + per_process(run, "measured_params", "planned_params"),
    ]
    if run.optimizer is not None:
        lines += [
            "gradient elements per process: " + per_process(run, "measured_gradients", "planned_gradients"),
            f"optimizer-state elements per process ({run.optimizer}): "
            + per_process(run, "measured_optimizer_state", "planned_optimizer_state"),
            "state: " + ("measured = planned on every layer and device" if run.state_match
                         else "MISMATCH between measured and planned elements"),
        ]
    lines += [
        f"median step (forward + backward, communication included): {fmt_time(run.step_s or 0)}; "
        f"{run.repeats} steps after {run.warmup} warm-up",
        "measured bytes: the tensors that went through the collectives, counted by core/collectives.py (gather: "
        "received from the others; all-reduce: 2·(N−1)/N·S; all-gather and reduce-scatter: (N−1)/N·S); comm: "
        "median time inside collectives per step"
        + ("; under fsdp they run inside FSDP, asynchronously, and are not timed apart" if run.optimizer else ""),
    ]
    return Group(KindFitted(columns, title=Text(title)), Text("\n".join(lines)))
