"""`bench`: per-layer timings as a Rich table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.text import Text

from convaudit.core.groups import group_key
from convaudit.core.throughput import achieved, attainable, bound, bytes_moved, intensity
from convaudit.errors import printable
from convaudit.render.formatting import fmt_bytes, fmt_shape, fmt_si, fmt_spread, fmt_time
from convaudit.render.output import FitColumn, Fitted, plain

if TYPE_CHECKING:  # the result types live with torch; rendering only reads their fields
    from convaudit.core.timing import Timing
    from convaudit.pytorch.bench import BenchResult, LayerBench


def fmt_timing(timing: Timing | None) -> str:
    if timing is None:
        return ""
    return fmt_spread(timing.median, timing.minimum, timing.maximum)


def fmt_rate(rate: float | None, unit: str = "FLOP/s") -> str:
    return fmt_si(rate, unit) if rate else ""


def layer_metrics(result: BenchResult, item: LayerBench) -> dict[str, Any]:
    """Everything derived for one layer: throughput, share of time, intensity, roofline verdict."""
    layer = item.layer
    forward_rate = achieved(layer.flops, item.forward.median if item.forward else None)
    backward_rate = achieved(layer.backward_flops, item.backward.median if item.backward else None)
    total = sum(result.layer_total(other) for other in result.layers)
    ceiling = result.ceiling
    peak_share = None
    if ceiling and ceiling.flops_per_s and forward_rate and layer.flops:
        peak_share = forward_rate / ceiling.flops_per_s
    roof = attainable(layer, ceiling) if ceiling else None
    return {
        "forward_rate": forward_rate,
        "backward_rate": backward_rate,
        "share_of_time": result.layer_total(item) / total if total else None,
        "percent_of_peak": 100 * peak_share if peak_share is not None else None,
        "intensity": intensity(layer),
        "bytes_moved": bytes_moved(layer),
        "bound": bound(layer, ceiling),
        "roofline": roof,
    }


def heading(result: BenchResult) -> str:
    where = "GPU timings" if result.gpu else "CPU timings (no --gpu)"
    layout = " · channels-last" if result.channels_last else ""
    return (f"bench {result.spec} — {where} · input {fmt_shape(result.input)} · batch {result.batch} · "
            f"{result.dtype}{layout} · {result.device}")


def block_times(result: BenchResult, depth: int) -> list[dict[str, Any]]:
    """Per block at `depth`: its layers' forward and backward medians summed, and its share of the total."""
    blocks: dict[str, list[LayerBench]] = {}
    for item in result.layers:
        blocks.setdefault(group_key(item.layer.name, result.separator, depth), []).append(item)
    total = sum(result.layer_total(item) for item in result.layers)
    rows = []
    for name, items in blocks.items():
        forward = sum(item.forward.median for item in items if item.forward)
        backward = sum(item.backward.median for item in items if item.backward)
        rows.append({"name": name, "layers": len(items), "forward_s": forward, "backward_s": backward,
                     "flops": sum(item.layer.flops for item in items),
                     "share_of_time": (forward + backward) / total if total else None})
    return rows


def blocks_table(result: BenchResult, depth: int) -> Fitted:
    rows = block_times(result, depth)
    cells = {
        "Block": [plain(row["name"]) for row in rows],
        "Layers": [str(row["layers"]) for row in rows],
        "Forward": [fmt_time(row["forward_s"]) for row in rows],
        "Backward": [fmt_time(row["backward_s"]) if row["backward_s"] else "" for row in rows],
        "Fwd FLOP/s": [fmt_rate(achieved(row["flops"], row["forward_s"]), "") for row in rows],
        "Share": [f"{100 * row['share_of_time']:.1f}%" if row["share_of_time"] is not None else "" for row in rows],
    }
    order = ("Layers", "Fwd FLOP/s", "Share", "Backward", "Forward", "Block")
    columns = [FitColumn(title, title, values, numeric=title != "Block", priority=order.index(title))
               for title, values in cells.items()]
    return Fitted(columns, hint="widen COLUMNS, or --format json",
                  title=Text(f"per block (depth {depth}): sums of layer medians"))


# Which columns a bench table that does not fit leaves out, first to last.
BENCH_DROP_ORDER = ("Bwd FLOP/s", "FLOP/B", "% peak", "Share", "Fwd FLOP/s", "Bound", "Peak mem (est.)",
                    "Backward [min–max]", "Forward [min–max]", "Layer")


def bench_rich(result: BenchResult, depth: int | None = None) -> Group:
    titles = ["Layer", "Forward [min–max]", "Backward [min–max]" if result.backward else None,
              "Fwd FLOP/s", "Bwd FLOP/s" if result.backward else None, "% peak" if result.ceiling else None,
              "FLOP/B", "Bound" if result.ceiling else None, "Share",
              "Peak mem (est.)" if result.gpu else None]
    titles = [t for t in titles if t]
    rows: list[dict[str, str | Text]] = []
    failures: list[str] = []
    for item in result.layers:
        if item.status != "ok":
            label = "out of memory" if item.status == "out-of-memory" else "error"
            failures.append(f"{item.layer.name}: {label}: {item.note}")
            rows.append({"Layer": plain(item.layer.name), "Forward [min–max]": Text(label, style="bold red")})
            continue
        m = layer_metrics(result, item)
        rows.append({
            "Layer": plain(item.layer.name),
            "Forward [min–max]": fmt_timing(item.forward),
            "Backward [min–max]": fmt_timing(item.backward) or ("—" if item.note else ""),
            "Fwd FLOP/s": fmt_rate(m["forward_rate"], ""),
            "Bwd FLOP/s": fmt_rate(m["backward_rate"], ""),
            "% peak": f"{m['percent_of_peak']:.1f}%" if m["percent_of_peak"] is not None else "",
            "FLOP/B": f"{m['intensity']:.1f}" if item.layer.flops else f"({m['intensity']:.2f})",
            "Bound": m["bound"],
            "Share": f"{100 * m['share_of_time']:.1f}%" if m["share_of_time"] is not None else "",
            "Peak mem (est.)": (f"{fmt_bytes(item.peak_memory)} ({fmt_bytes(item.memory_estimate)})"
                                if item.peak_memory is not None else ""),
        })
    columns = [FitColumn(title, title, [row.get(title, "") for row in rows],
                         numeric=title not in ("Layer", "Bound"), priority=BENCH_DROP_ORDER.index(title))
               for title in titles]
    parts: list[Any] = [Fitted(columns, hint="widen COLUMNS, or --format json", title=plain(heading(result)))]
    if depth or result.has_blocks:
        parts.append(blocks_table(result, depth or 1))
    return Group(*parts, Text("\n".join(printable(line) for line in failures + bench_notes(result))))


def bench_notes(result: BenchResult) -> list[str]:
    notes = []
    if not result.gpu:
        notes.append("These are CPU timings: run with --gpu on a CUDA machine for GPU figures.")
    forward_sum, both_sum = result.sum_of_medians
    model = result.model
    if model and model.status == "ok" and model.forward:
        line = f"whole model: forward {fmt_time(model.forward.median)} (layers sum {fmt_time(forward_sum)})"
        if model.forward_backward:
            line += (f" · forward+backward {fmt_time(model.forward_backward.median)} "
                     f"(layers sum {fmt_time(both_sum)})")
        notes.append(line)
        if model.peak_memory is not None:
            notes.append(f"whole-model peak memory {fmt_bytes(model.peak_memory)}; analysis estimate "
                         f"{fmt_bytes(model.memory_estimate)}")
    elif model:
        notes.append(f"whole model: {model.status}: {model.note}")
    if result.ceiling:
        ceiling = result.ceiling
        ridge = f", ridge {ceiling.ridge:.1f} FLOP/B" if ceiling.ridge else ""
        notes.append(f"ceiling: {fmt_rate(ceiling.flops_per_s)}, {fmt_si(ceiling.bytes_per_s or 0, 'B/s')}"
                     f"{ridge} ({ceiling.source})")
    notes.append(f"median of {result.repeats} after {result.warmup} warm-up runs, [min–max]. Rates are the "
                 "analysis's FLOPs (2 × MACs; backward: dW + dX) over the median; FLOP/B is FLOPs per byte of "
                 "input, weights and output, in parentheses for layers without MACs (their other ops).")
    notes.append("Timed: each layer alone on inputs of its analysed shape; its backward without the forward "
                 "that builds it. Not timed: cudnn autotuning (warm-up), host↔device copies.")
    if result.interrupted:
        done = len(result.layers)
        notes.append(f"interrupted (Ctrl-C) after {done} layer{'s' if done != 1 else ''}: shown as measured")
    return notes


def timing_dict(timing: Timing | None) -> dict[str, float | int] | None:
    return timing.as_dict() if timing else None


def bench_dict(result: BenchResult, depth: int | None = None) -> dict[str, Any]:
    layers = []
    for item in result.layers:
        m = layer_metrics(result, item) if item.status == "ok" else {}
        layers.append({
            "name": item.layer.name, "type": item.layer.type, "status": item.status, "note": item.note,
            "forward": timing_dict(item.forward), "backward": timing_dict(item.backward),
            "flops": item.layer.flops, "backward_flops": item.layer.backward_flops,
            "other_ops": item.layer.other_ops,
            "forward_flops_per_s": m.get("forward_rate"), "backward_flops_per_s": m.get("backward_rate"),
            "percent_of_peak": m.get("percent_of_peak"), "share_of_time": m.get("share_of_time"),
            "intensity_flop_per_byte": m.get("intensity"), "bytes_moved": m.get("bytes_moved"),
            "bound": m.get("bound") or None,
            "peak_memory_bytes": item.peak_memory, "memory_estimate_bytes": item.memory_estimate,
        })
    forward_sum, both_sum = result.sum_of_medians
    model = result.model
    return {
        "spec": result.spec, "input": list(result.input), "batch": result.batch, "dtype": result.dtype,
        "device": result.device, "gpu": result.gpu, "channels_last": result.channels_last,
        "backward": result.backward, "warmup": result.warmup, "repeats": result.repeats,
        "interrupted": result.interrupted, "versions": result.versions,
        "ceiling": ({"flops_per_s": result.ceiling.flops_per_s, "bytes_per_s": result.ceiling.bytes_per_s,
                     "ridge_flop_per_byte": result.ceiling.ridge, "source": result.ceiling.source}
                    if result.ceiling else None),
        "layers": layers,
        "model": ({"status": model.status, "note": model.note, "forward": timing_dict(model.forward),
                   "forward_backward": timing_dict(model.forward_backward),
                   "peak_memory_bytes": model.peak_memory, "memory_estimate_bytes": model.memory_estimate}
                  if model else None),
        "sum_of_layer_medians": {"forward_s": forward_sum, "forward_backward_s": both_sum},
        "blocks": block_times(result, depth or 1) if depth or result.has_blocks else [],
    }


def bench_json(result: BenchResult, depth: int | None = None) -> str:
    return json.dumps(bench_dict(result, depth), indent=2, ensure_ascii=False)


CSV_FIELDS = ("name", "type", "status", "forward_median_s", "forward_min_s", "forward_max_s", "backward_median_s",
              "backward_min_s", "backward_max_s", "flops", "backward_flops", "forward_flops_per_s",
              "backward_flops_per_s", "percent_of_peak", "share_of_time", "intensity_flop_per_byte", "bound",
              "peak_memory_bytes", "memory_estimate_bytes")


def bench_csv(result: BenchResult) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for row in bench_dict(result)["layers"]:
        flat = dict(row)
        for phase in ("forward", "backward"):
            timing = row[phase] or {}
            for stat in ("median_s", "min_s", "max_s"):
                flat[f"{phase}_{stat}"] = timing.get(stat, "")
        writer.writerow(["" if flat.get(f) is None else flat.get(f) for f in CSV_FIELDS])
    return buffer.getvalue()
