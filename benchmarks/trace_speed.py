"""Cold and warm tracing: `importers.trace.trace(model, shape)` and `convaudit.summary(model)`, in milliseconds.

    python benchmarks/trace_speed.py                           # torchvision's models below, best of 3
    python benchmarks/trace_speed.py --models resnet50 --repeats 5
    PYTHONPATH=/tmp/base python benchmarks/trace_speed.py      # another checkout's convaudit, for A B A B

cold: the meta kernels' remembered answers (and fastmeta's learnt dtypes: metacache._ANSWERS) cleared before
the call, as in a process's first trace of a model; warm: kept from the call before (a second trace of the same
model). Each model is built on meta once; its four measures alternate round after round and the best round is
kept, in wall time and in the process's CPU time (steadier on a busy machine). The load average is printed:
compare two checkouts by running them alternately, A B A B. No thresholds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MODELS = ["resnet50", "mobilenet_v3_small", "efficientnet_b0", "vit_b_16", "convnext_tiny", "regnet_y_400mf",
          "swin_t"]
COLUMNS = ["trace cold", "trace warm", "summary cold", "summary warm"]


def measure(names: list[str], repeats: int) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    import convaudit
    from convaudit.importers import metacache
    from convaudit.importers.defaults import default_input_shape
    from convaudit.importers.targets import build
    from convaudit.importers.trace import trace

    best: dict[str, dict[str, float]] = {}
    best_cpu: dict[str, dict[str, float]] = {}
    for name in names:
        model = build(f"torchvision:{name}", {}).eval()
        shape = default_input_shape(model, f"torchvision:{name}") or (3, 224, 224)
        runs: dict[str, Callable[[], Any]] = {
            "trace": lambda: trace(model, shape),  # noqa: B023
            "summary": lambda: convaudit.summary(model, input_size=shape)}  # noqa: B023
        row, row_cpu = best.setdefault(name, {}), best_cpu.setdefault(name, {})
        for _ in range(repeats):
            for label, run in runs.items():
                for state in ("cold", "warm"):
                    if state == "cold":
                        metacache._ANSWERS.clear()
                    began, began_cpu = time.perf_counter(), time.process_time()
                    run()
                    took, took_cpu = (time.perf_counter() - began) * 1000, (time.process_time() - began_cpu) * 1000
                    column = f"{label} {state}"
                    row[column] = min(row.get(column, took), took)
                    row_cpu[column] = min(row_cpu.get(column, took_cpu), took_cpu)
        print(f"{name}: " + ", ".join(f"{c} {row[c]:.0f}" for c in COLUMNS), file=sys.stderr, flush=True)
    return best, best_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    import convaudit

    before = os.getloadavg()[0]
    wall, cpu = measure(options.models, options.repeats)
    print(f"convaudit from {Path(convaudit.__file__).parent.parent}; best of {options.repeats}, ms; load average "
          f"{before:.2f} before, {os.getloadavg()[0]:.2f} after")
    for title, best in (("wall", wall), ("CPU", cpu)):
        print(f"| {title} | " + " | ".join(COLUMNS) + " |")
        print("|---|" + "---:|" * len(COLUMNS))
        for name, row in best.items():
            print(f"| {name} | " + " | ".join(f"{row[c]:.0f}" for c in COLUMNS) + " |")
        print("| total | " + " | ".join(f"{sum(row[c] for row in best.values()):.0f}" for c in COLUMNS) + " |")


if __name__ == "__main__":
    main()
