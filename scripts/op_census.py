"""The operator census: which ATen operators timm's and torchvision's models run, traced on the meta device.

    python scripts/op_census.py [--timeout 180] [--jobs 2] [--only NAME ...] [--skip FAMILY ...] [--out DIR]
                                [--cache DIR]

For the first architecture of every timm family (timm.list_models(module=FAMILY)[0], pretrained=False, nothing
downloaded: HF_HUB_OFFLINE=1) and for torchvision's segmentation, video, optical-flow and detection models, at
each model's own input shape (importers.defaults), it traces the model with importers.trace and records: ok or
the refusal, the seconds taken, every operator with its count (all calls, the top level as the model called
them, and the parts of composite operators), and, traced again at level "aten" (after autograd), whether the
leaves are the operators autograd's decomposition gives. Writes op_census.json and op_census.md (the summary)
to benchmarks/results/. Models run in --jobs worker processes, single-threaded, each under a time limit.

Facts for the importer's design, not a test: nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TORCHVISION = {
    "segmentation": ["fcn_resnet50", "deeplabv3_resnet50", "lraspp_mobilenet_v3_large"],
    "video": ["r3d_18", "mc3_18", "r2plus1d_18", "s3d"],
    "optical_flow": ["raft_small"],
    "detection": ["fasterrcnn_mobilenet_v3_large_fpn", "retinanet_resnet50_fpn", "ssdlite320_mobilenet_v3_large"],
}


def _setup_worker() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch

    from convaudit.importers.targets import prepare_torchvision

    torch.set_num_threads(1)
    prepare_torchvision()  # timm imports torchvision, which fails next to CPU torch without this


def build(source: str, name: str) -> Any:
    from convaudit.importers.targets import on_meta

    if source == "timm":
        import timm

        return on_meta(lambda: timm.create_model(name, pretrained=False))
    import inspect

    from convaudit.importers.targets import load_torchvision

    torchvision = load_torchvision()
    builder = torchvision.models.get_model_builder(name)
    args = {"weights": None}
    if "weights_backbone" in inspect.signature(builder).parameters:
        args["weights_backbone"] = None  # segmentation and detection builders download a backbone otherwise
    return on_meta(lambda: builder(**args))


def census_one(source: str, family: str, name: str) -> dict[str, Any]:
    """Trace one model; every fact about it as plain JSON."""
    record: dict[str, Any] = {"source": source, "family": family, "model": name}
    try:
        return _census(record, source, name)
    except Exception as error:  # a crash of the model or of the tracer: reported, the census goes on
        lines = str(error).strip().splitlines()
        record.update(status="error", reason=f"{type(error).__name__}: {lines[0][:300] if lines else ''}")
    return record


def _census(record: dict[str, Any], source: str, name: str) -> dict[str, Any]:
    from convaudit.importers.defaults import default_input_shape, positional_inputs
    from convaudit.importers.trace import TraceRefused, trace

    started = time.perf_counter()
    model = build(source, name)
    record["seconds_build"] = round(time.perf_counter() - started, 3)
    shape = default_input_shape(model, f"torchvision:{name}" if source == "torchvision" else None) or (3, 224, 224)
    shapes = [shape] * positional_inputs(model)
    record["input"] = [list(s) for s in shapes]
    record["parameters"] = sum(p.numel() for p in model.parameters())
    started = time.perf_counter()
    try:
        graph = trace(model, shapes)
    except TraceRefused as refusal:
        record["seconds_trace"] = round(time.perf_counter() - started, 3)
        record.update(status="refused", reason=str(refusal),
                      problems=[{"op": p.op, "module": p.module, "reason": p.reason} for p in refusal.problems])
        return record
    record["seconds_trace"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    flat = trace(model, shapes, level="aten", batch_dims=False)
    record["seconds_trace_aten_one_run"] = round(time.perf_counter() - started, 3)
    leaves = Counter(n.overload for n in graph.leaves() if "returns_input" not in n.tags)
    autograd = Counter(n.overload for n in flat.nodes)
    parents = {n.parent for n in graph.nodes}
    ops: dict[str, Any] = {}
    for node in graph.nodes:
        entry = ops.setdefault(node.overload, {"count": 0, "tags": sorted(node.tags), "module": node.module,
                                               "top": 0, "inner": 0, "composite": False})
        entry["count"] += 1
        entry["top" if node.parent is None else "inner"] += 1
        entry["composite"] = entry["composite"] or node.index in parents
    used = sum(_numel(t.shape) for t in graph.named("parameter"))
    record.update(
        status="ok", nodes=len(graph.nodes), top=len(graph.top()), leaves=len(graph.leaves()),
        tensors=len(graph.tensors), batch_known=graph.batch_known, batch_unknown=len(graph.batch_unknown),
        batch_irregular=len(graph.batch_irregular), batch_folded=sum(t.batch_folded for t in graph.tensors),
        outputs=[o.name for o in graph.outputs], graph_parameters=used, ops=ops,
        leaves_vs_autograd={op: [leaves.get(op, 0), autograd.get(op, 0)]
                            for op in sorted(set(leaves) | set(autograd)) if leaves.get(op, 0) != autograd.get(op, 0)},
        no_meta_kernel=sorted({n.overload for n in graph.nodes if "no_meta_kernel" in n.tags}))
    return record


def _numel(shape: Any) -> int:
    total = 1
    for d in shape:
        total *= d
    return total


def models(only: list[str], skip: list[str]) -> list[tuple[str, str, str]]:
    os.environ["HF_HUB_OFFLINE"] = "1"
    from convaudit.importers.targets import prepare_torchvision

    prepare_torchvision()  # timm imports torchvision, which fails next to CPU torch without this
    import timm

    found = [("timm", family, sorted(timm.list_models(module=family))[0]) for family in timm.list_modules()
             if timm.list_models(module=family)]
    found += [("torchvision", family, name) for family, names in TORCHVISION.items() for name in names]
    if only:
        found = [m for m in found if m[2] in only or m[1] in only]
    return [m for m in found if m[1] not in skip and m[2] not in skip]


# Groups for the summary, first match wins: (group, test on the packet name and the tags).
GROUPS: list[tuple[str, Any]] = [
    ("data-dependent", lambda p, t: "data_dependent_output" in t or p in {"nonzero", "unique", "_unique2", "unique_dim",
                                                                          "masked_select", "item"}),
    ("conv-like", lambda p, t: "conv" in p and "convert" not in p),
    ("matmul-like", lambda p, t: p in {"mm", "addmm", "bmm", "baddbmm", "matmul", "linear", "einsum", "addmv", "mv",
                                       "dot", "bilinear", "tensordot", "outer", "_trilinear", "addbmm"}
     or "dot_product" in p or "attention" in p),
    ("normalisation", lambda p, t: "norm" in p and "vector_norm" not in p and p != "norm"),
    ("pooling", lambda p, t: "pool" in p),
    ("resampling", lambda p, t: any(k in p for k in ("upsample", "interpolate", "grid_sampl", "pixel_shuffle",
                                                      "pixel_unshuffle", "im2col", "col2im", "unfold", "affine_grid"))),
    ("reductions", lambda p, t: "reduction" in t or "softmax" in p or p in {"mean", "sum", "amax", "amin", "var",
                                                                            "std", "var_mean", "cumsum", "norm"}),
    ("indexing", lambda p, t: any(k in p for k in ("index", "gather", "scatter", "select", "slice", "masked",
                                                    "embedding", "where", "take"))),
    ("views", lambda p, t: "view" in t or "inplace_view" in t or p in {"reshape", "contiguous", "flatten",
                                                                       "_unsafe_view", "unflatten"}),
    ("pointwise", lambda p, t: "pointwise" in t),
    ("copies and layout", lambda p, t: p in {"cat", "stack", "clone", "copy_", "pad", "constant_pad_nd", "roll",
                                              "repeat", "flip", "_to_copy", "to", "tile", "copy", "repeat_interleave",
                                              "reflection_pad2d", "replication_pad2d", "fill_", "zero_", "alias"}),
    ("factories", lambda p, t: "factory" in t),
]


def group_of(packet: str, tags: list[str]) -> str:
    return next((name for name, test in GROUPS if test(packet, set(tags))), "other")


def write_report(results: list[dict[str, Any]], out: Path, seconds: float, jobs: int) -> None:
    results.sort(key=lambda r: (r["source"] != "timm", r["family"], r["model"]))
    ops: dict[str, dict[str, Any]] = {}
    for result in results:
        for overload, entry in result.get("ops", {}).items():
            op = ops.setdefault(overload, {"packet": overload.split(".")[1] if "." in overload else overload,
                                           "tags": entry["tags"], "models": 0, "families": set(), "calls": 0,
                                           "top": 0, "inner": 0, "composite": False,
                                           "example": f"{result['model']}: {entry['module'] or '(model)'}"})
            op["models"] += 1
            op["families"].add(f"{result['source']}:{result['family']}")
            op["calls"] += entry["count"]
            op["top"] += entry["top"]
            op["inner"] += entry["inner"]
            op["composite"] = op["composite"] or entry["composite"]
    for op in ops.values():
        op["families"] = len(op["families"])
        op["group"] = group_of(op["packet"], op["tags"])
    out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    meta = {"models": len(results), "seconds": round(seconds, 1), "jobs": jobs,
            "model_seconds": round(sum(r.get("seconds_total", 0) for r in results), 1),
            "load_after": [round(x, 2) for x in load], "python": sys.version.split()[0],
            "torch": _version("torch"), "timm": _version("timm"), "torchvision": _version("torchvision")}
    (out / "op_census.json").write_text(json.dumps({"run": meta, "models": results, "ops": ops}, indent=1,
                                                   sort_keys=True) + "\n", encoding="utf-8")
    (out / "op_census.md").write_text(_markdown(results, ops, meta), encoding="utf-8")


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "-"


def _markdown(results: list[dict[str, Any]], ops: dict[str, dict[str, Any]], meta: dict[str, Any]) -> str:
    status = Counter(r["status"] for r in results)
    lines = ["# Operator census", "",
             f"Generated by `scripts/op_census.py`: {meta['models']} models (the first architecture of every timm "
             f"family, and torchvision's segmentation, video, optical-flow and detection models), traced on the meta "
             f"device at each model's own input shape with `convaudit.importers.trace` (level composite: operators "
             f"as the model called them, with their decompositions as children). torch {meta['torch']}, timm "
             f"{meta['timm']}, torchvision {meta['torchvision']}; {meta['jobs']} models at a time, one thread "
             f"each. The models took {meta['model_seconds']} s together (this run {meta['seconds']} s; results "
             f"kept from earlier runs are reused); load average after: {meta['load_after'][0]} on "
             f"{os.cpu_count()} cores, so times are inflated on a busy machine.", "",
             "Status: " + ", ".join(f"{n} {s}" for s, n in sorted(status.items())) + ".", "",
             "Columns: families (of the census's model families that use it), models, calls (over all models); "
             "top = calls made by the model's own code, inner = calls inside another operator's decomposition; "
             "composite = it was decomposed into parts (its parts are counted under their own names).", ""]
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for overload, op in ops.items():
        groups.setdefault(op["group"], []).append((overload, op))
    order = [name for name, _ in GROUPS] + ["other"]
    for group in sorted(groups, key=order.index):
        entries = sorted(groups[group], key=lambda e: (-e[1]["families"], -e[1]["calls"], e[0]))
        lines += [f"## {group} ({len(entries)})", "",
                  "| operator | families | models | calls | top | inner | composite | tags | example |",
                  "|---|---:|---:|---:|---:|---:|:-:|---|---|"]
        for overload, op in entries:
            tags = ", ".join(t for t in op["tags"] if t not in ("pointwise",) or group != "pointwise")
            lines.append(f"| `{overload}` | {op['families']} | {op['models']} | {op['calls']} | {op['top']} | "
                         f"{op['inner']} | {'yes' if op['composite'] else ''} | {tags} | {op['example']} |")
        lines.append("")
    lines += ["## Models", "", "seconds: build (on meta), trace (two runs, batch 1 and 2, and the graph), aten "
              "(one run at level aten, for the comparison below).", "",
              "| source | family | model | input | status | build s | trace s | aten s | nodes | top | leaves | "
              "batch | reason |",
              "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in results:
        shape = " + ".join("×".join(map(str, s)) for s in r.get("input", []))
        batch = ""
        if r["status"] == "ok":
            batch = "known" if r["batch_known"] else "unknown"
            if r["batch_unknown"] or r["batch_irregular"]:
                batch += f" ({r['batch_unknown']} unknown, {r['batch_irregular']} irregular)"
        reason = str(r.get("reason", "")).replace("|", "\\|")
        lines.append(f"| {r['source']} | {r['family']} | {r['model']} | {shape} | {r['status']} | "
                     f"{r.get('seconds_build', '')} | {r.get('seconds_trace', '')} | "
                     f"{r.get('seconds_trace_aten_one_run', '')} | {r.get('nodes', '')} | {r.get('top', '')} | "
                     f"{r.get('leaves', '')} | {batch} | {reason} |")
    differing = []
    for r in results:
        silent = {op for op, entry in r.get("ops", {}).items() if "returns_input" in entry["tags"]}
        diff = {op: counts for op, counts in r.get("leaves_vs_autograd", {}).items() if op not in silent}
        if diff:
            differing.append((r["model"], diff))
    lines += ["", "## Leaves against autograd's decomposition", "",
              f"{len(differing)} of {status.get('ok', 0)} traced models have leaf operators (inference mode, "
              "composite operators run through their C++ kernels by the tracer) that differ from a run under no_grad "
              "(decomposed by autograd), operators that return their input unchanged (dropout in eval, `to` the same "
              "dtype) aside. Per model, operator: leaves/autograd.", ""]
    for model, diff in differing:
        lines.append(f"- {model}: " + ", ".join(f"`{op}` {a}/{b}" for op, (a, b) in sorted(diff.items())))
    return "\n".join(lines) + "\n"


MARK = "@@census "  # a result line from a worker (a model may print to stdout too)


class Worker:
    """A process that imports torch and timm once and traces the models it is sent, one at a time; replaced
    when a model hangs past the time limit or kills it, and every RENEW models (meta models leak little, but some
    fall back to building real weights)."""

    RENEW = 12

    def __init__(self, timeout: int) -> None:
        self.timeout = timeout
        self.process: subprocess.Popen[str] | None = None
        self.served = 0

    def ask(self, model: tuple[str, str, str]) -> dict[str, Any]:
        timeout = self.timeout
        if self.process is None or self.served >= self.RENEW:
            self.stop()
            command = [sys.executable, __file__, "--serve", "--timeout", str(timeout)]
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.served = 0
        self.served += 1
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(model) + "\n")
        self.process.stdin.flush()
        deadline = time.monotonic() + timeout + 60  # the first model of a worker also waits for its imports
        while True:
            ready, _, _ = select.select([self.process.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                self.stop()
                return {"status": "timeout", "reason": f"over {timeout} s"}
            line = self.process.stdout.readline()
            if not line:
                code = self.process.poll()
                self.stop()
                return {"status": "crashed", "reason": f"the worker process died (exit {code})"}
            if line.startswith(MARK):
                return json.loads(line[len(MARK):])

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def serve(timeout: int) -> None:
    """The worker's side: one JSON model per line in, one result line out."""
    _setup_worker()
    signal.signal(signal.SIGALRM, _alarm)
    for line in sys.stdin:
        source, family, name = json.loads(line)
        signal.alarm(timeout)
        try:
            result = census_one(source, family, name)
        except _Timeout:
            result = {"status": "timeout", "reason": f"over {timeout} s"}
        finally:
            signal.alarm(0)
        print(MARK + json.dumps(result), flush=True)


class _Timeout(BaseException):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout


def run_one(worker: Worker, model: tuple[str, str, str], cache: Path) -> dict[str, Any]:
    """One model, under a time limit; a result kept in `cache` from an earlier run is used again."""
    kept = cache / f"{model[0]}-{model[2]}.json"
    if kept.exists():
        return json.loads(kept.read_text(encoding="utf-8"))
    started = time.perf_counter()
    result = worker.ask(model)
    result.update(source=model[0], family=model[1], model=model[2])
    result["seconds_total"] = round(time.perf_counter() - started, 3)
    cache.mkdir(parents=True, exist_ok=True)
    kept.write_text(json.dumps(result), encoding="utf-8")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=int, default=180)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=[])
    parser.add_argument("--skip", nargs="*", default=[])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "convaudit_op_census",
                        help="one JSON file per model traced, used again by the next run (delete it to start over)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        serve(options.timeout)
        return
    todo = models(options.only, options.skip)
    print(f"{len(todo)} models, {options.jobs} at a time, {options.timeout} s each at most", flush=True)
    results: list[dict[str, Any]] = []
    started = time.perf_counter()
    queue = list(reversed(todo))
    lock = threading.Lock()

    def work() -> list[dict[str, Any]]:
        worker, done = Worker(options.timeout), []
        try:
            while True:
                with lock:
                    if not queue:
                        return done
                    model = queue.pop()
                result = run_one(worker, model, options.cache)
                done.append(result)
                with lock:
                    results.append(result)
                    print(f"{len(results):3}/{len(todo)} {result['model']:40} {result['status']:8} "
                          f"{result['seconds_total']:7.1f} s  {str(result.get('reason', ''))[:110]}", flush=True)
        finally:
            worker.stop()

    with ThreadPoolExecutor(options.jobs) as pool:
        for future in [pool.submit(work) for _ in range(options.jobs)]:
            future.result()
    write_report(results, options.out, time.perf_counter() - started, options.jobs)


if __name__ == "__main__":
    main()
