"""How long it takes to read a model: `convaudit.summary(module)` and our meta-device trace against torchinfo,
fvcore and FlopCounterMode, in one process, after imports.

    python benchmarks/import_speed.py            # every model, best of 3 rounds
    python benchmarks/import_speed.py --quick    # two small models, best of 2
    python benchmarks/import_speed.py --models resnet50 vit_b_16 --repeats 5

For each torchvision classification model, at its own size (efficientnet_b7 at 600), in milliseconds:
    summary cold   convaudit.summary(module) with no meta kernel's answer remembered (a process's first import)
    summary        convaudit.summary(module) on the meta model: trace, read, check against the trace, analyse
    trace          importers.trace.trace: one meta run where every operator has a batch rule, else two (batch 1
                   and 2), and the OpGraph
    trace 1 run    the same with batch_dims=False
    meta fwd       a bare forward of the meta model under no_grad: the floor for any meta-device tracer
    flopcounter    FlopCounterMode over a meta forward
    torchinfo 1st  torchinfo.summary of the model with real weights on the CPU, its first call in the process
    torchinfo 2nd  the same, called again (warm)
    fvcore         fvcore's FlopCountAnalysis(...).total() on the real model (a torch.jit trace)
Rounds go A B A B: every tool once per round, the best round kept (torchinfo's first call excepted), one model
at a time (the real weights of the large models are freed before the next is built).
The machine's load average is printed before and after; measure on a quiet machine. Torch keeps its default
thread count (the real forwards of torchinfo and fvcore use every core). No thresholds: this is for reading.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SMALL = ["resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_b0", "vit_b_16", "convnext_tiny",
         "regnet_y_400mf"]
LARGE = ["vit_l_16", "efficientnet_b7", "convnext_large", "regnet_y_32gf"]
COLUMNS = ["summary cold", "summary", "trace", "trace 1 run", "meta fwd", "flopcounter", "torchinfo 1st",
           "torchinfo 2nd", "fvcore"]


def timed_ms(run: Callable[[], Any]) -> tuple[float, float]:
    """(wall, CPU) milliseconds of one call; CPU time is the process's, over all its threads."""
    began, began_cpu = time.perf_counter(), time.process_time()
    run()
    return (time.perf_counter() - began) * 1000, (time.process_time() - began_cpu) * 1000


class Subject:
    """One model, built twice: on meta (for the tracers) and with real random weights (for torchinfo, fvcore)."""

    def __init__(self, name: str):
        import torch

        from convaudit.importers.defaults import default_input_shape
        from convaudit.importers.targets import build

        self.name = name
        self.meta = build(f"torchvision:{name}", {}).eval()
        self.shape = default_input_shape(self.meta, f"torchvision:{name}") or (3, 224, 224)
        torch.manual_seed(0)
        self.real = build(f"torchvision:{name}", {}, meta=False).eval()
        self.x_meta = torch.empty(1, *self.shape, device="meta")
        self.x_real = torch.randn(1, *self.shape)
        self.torchinfo_calls = 0

    def tools(self) -> dict[str, Callable[[], Any]]:
        import torch
        import torchinfo
        from fvcore.nn import FlopCountAnalysis
        from torch.utils.flop_counter import FlopCounterMode

        import convaudit
        from convaudit.importers import metacache
        from convaudit.importers.trace import trace

        def meta_forward() -> None:
            with torch.no_grad():
                self.meta(self.x_meta)

        def flop_counter() -> int:
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                self.meta(self.x_meta)
            return counter.get_total_flops()

        def torchinfo_summary() -> Any:
            self.torchinfo_calls += 1
            return torchinfo.summary(self.real, input_data=[self.x_real], verbose=0, device="cpu")

        def fvcore_total() -> int:
            analysis = FlopCountAnalysis(self.real, self.x_real)
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
            return analysis.total()

        def summary_cold() -> Any:
            metacache._ANSWERS.clear()
            return convaudit.summary(self.meta, input_size=self.shape)

        return {"summary cold": summary_cold, "summary": lambda: convaudit.summary(self.meta, input_size=self.shape),
                "trace": lambda: trace(self.meta, self.shape),
                "trace 1 run": lambda: trace(self.meta, self.shape, batch_dims=False), "meta fwd": meta_forward,
                "flopcounter": flop_counter, "torchinfo": torchinfo_summary, "fvcore": fvcore_total}


def measure(names: list[str], repeats: int) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Best wall and best CPU milliseconds per model and tool (the first torchinfo call measured once).

    One model at a time (its real weights freed before the next: vit_l_16 alone holds 1.2 GB), its tools
    alternating round after round."""
    import gc

    wall: dict[str, dict[str, Any]] = {}
    cpu: dict[str, dict[str, Any]] = {}
    for name in names:
        print(f"building {name}", file=sys.stderr, flush=True)
        subject = Subject(name)
        wall[name], cpu[name] = {"shape": subject.shape}, {"shape": subject.shape}
        for round_ in range(repeats):
            for tool, run in subject.tools().items():
                ms, cpu_ms = timed_ms(run)
                if tool == "torchinfo":
                    tool = "torchinfo 1st" if subject.torchinfo_calls == 1 else "torchinfo 2nd"
                for table_, value in ((wall, ms), (cpu, cpu_ms)):
                    row = table_[name]
                    row[tool] = min(row.get(tool, value), value)
            print(f"round {round_ + 1}/{repeats} {name}: " + ", ".join(
                f"{k} {v:.0f}" for k, v in wall[name].items() if k != "shape"), file=sys.stderr, flush=True)
        del subject
        gc.collect()
    return wall, cpu


def header(load_before: tuple[float, ...], load_after: tuple[float, ...], repeats: int) -> list[str]:
    import torch
    import torchvision

    return ["# Import speed", "",
            f"`python benchmarks/import_speed.py`: {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), torchvision "
            f"{torchvision.__version__}, Python {platform.python_version()}. Best of {repeats} rounds (A B A B), "
            f"milliseconds. Load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min).", "",
            "ratio = torchinfo's second call / convaudit.summary(module): above 1, we are faster. The tracers run on "
            "one thread; torchinfo's and fvcore's real forwards use every core, so on a busy machine their wall "
            "times suffer more, and the CPU table (the process's CPU time over all threads) is the steadier one: "
            "on a quiet machine a one-thread tool's wall time is about its CPU time, torchinfo's between half its "
            "CPU time and all of it.", ""]


def ratio(row: dict[str, Any], ours: str) -> float | None:
    """torchinfo's warm call over ours: above 1, we are faster."""
    return row["torchinfo 2nd"] / row[ours] if "torchinfo 2nd" in row and row.get(ours) else None


def table(title: str, times: dict[str, dict[str, Any]]) -> list[str]:
    lines = [f"## {title}", "", "| model | input | " + " | ".join(COLUMNS) + " | ratio | ratio cold |",
             "|---|---|" + "---:|" * (len(COLUMNS) + 2)]
    for name, row in times.items():
        cells = [f"{row[c]:.0f}" if c in row else "-" for c in COLUMNS]
        ratios = [ratio(row, "summary"), ratio(row, "summary cold")]
        shape = "×".join(map(str, row["shape"]))
        lines.append(f"| {name} | {shape} | " + " | ".join(cells) + " | "
                     + " | ".join(f"{r:.2f}" if r else "-" for r in ratios) + " |")
    return lines + [""] + verdict(times) + [""]


def verdict(times: dict[str, dict[str, Any]]) -> list[str]:
    """The issue's targets: the median ratio on the small models at least 1, every large model at least 5."""
    import statistics

    lines = []
    for ours, label in (("summary", "warm"), ("summary cold", "cold")):
        small = [r for name in SMALL if name in times and (r := ratio(times[name], ours))]
        large = [(r, name) for name in LARGE if name in times and (r := ratio(times[name], ours))]
        if small:
            median = statistics.median(small)
            lines.append(f"- {label}: median ratio on the small models {median:.2f} (target ≥ 1: "
                         f"{'met' if median >= 1 else 'not met'})")
        if large:
            worst, name = min(large)
            lines.append(f"- {label}: lowest ratio on the large models {worst:.2f}, {name} (target ≥ 5: "
                         f"{'met' if worst >= 5 else 'not met'})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "import_speed.md")
    options = parser.parse_args()
    import convaudit  # noqa: F401  (torchvision next to CPU torch)

    names = options.models or (["resnet18", "vit_b_16"] if options.quick else SMALL + LARGE)
    repeats = 2 if options.quick else options.repeats
    load_before = os.getloadavg()
    wall, cpu = measure(names, repeats)
    lines = header(load_before, os.getloadavg(), repeats)
    text = "\n".join(lines + table("Wall time", wall) + table("CPU time", cpu))
    print(text)
    if not options.quick and options.models is None:
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
