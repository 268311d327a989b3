"""How fast the pure analytic core is: parsing, analysis, check (with fix search) and start-up.

    python benchmarks/analysis_speed.py

Prints a table of median times. No thresholds: this is for reading, not for CI.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable


def median_time(step: Callable[[], object], repeats: int = 20) -> float:
    samples = []
    for _ in range(repeats):
        began = time.perf_counter()
        step()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


def main() -> int:
    from convaudit.core.analysis import analyze
    from convaudit.core.checks import check
    from convaudit.spec.library import bundled_paths
    from convaudit.spec.parser import load_spec

    print(f"{'spec':22}{'parse':>10}{'analyse':>10}{'check':>10}{'check@224':>12}")
    for path in bundled_paths():
        spec = load_spec(path)
        at_224 = spec.with_input(224, 224) if spec.input[1] != 224 else spec.with_input(225, 225)
        parse = median_time(lambda path=path: load_spec(path))
        analyse = median_time(lambda spec=spec: analyze(spec))
        clean = median_time(lambda spec=spec: check(analyze(spec)))
        fixes = median_time(lambda spec=at_224: check(analyze(spec)), repeats=3)  # inexact: searches input sizes
        print(f"{spec.name:22}{parse * 1e3:9.2f}ms{analyse * 1e3:9.2f}ms{clean * 1e3:9.2f}ms{fixes * 1e3:11.1f}ms")
    for command in (["summary", "alexnet"], ["check"]):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "convaudit", *command], capture_output=True, check=True)
        print(f"python -m convaudit {' '.join(command)}: {time.perf_counter() - began:.2f} s wall, start-up included")
    return 0


if __name__ == "__main__":
    sys.exit(main())
