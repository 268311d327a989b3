"""How fast the pure analytic core is, and how it scales: deep chains, huge inputs, start-up, and torchinfo.

    python benchmarks/analysis_speed.py            # everything, in one run on this machine
    python benchmarks/analysis_speed.py --quick    # fewer repeats
    python benchmarks/analysis_speed.py --startup  # start-up only: --help (at a terminal and piped), --version

Each figure is the best of a few runs of `python -m convaudit ...` in a fresh process (start-up included),
so they read as what a user waits for: with stdin from /dev/null and the output captured (as a script runs
it), and `--help` also at a terminal (stdin, stdout and stderr on a pseudo-terminal, 100 columns), where Rich
draws it in colour. The chains also show the process's CPU time, which a busy machine inflates less than the
wall time. No thresholds: this is for reading, not for CI. The targets the project holds itself to are
printed beside each figure.
"""

from __future__ import annotations

import os
import platform
import pty
import resource
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHAIN_LAYERS = (10, 1_000, 10_000, 20_000)
INPUT_SIDES = (224, 10**4, 10**6)


def chain_spec(layers: int) -> str:
    """The issue's chain: conv 8 channels 3×3 padding 1, then ReLU, repeated, at 8×32×32."""
    pairs = "\n".join("  - {type: conv, out: 8, kernel: 3, padding: 1}\n  - {type: relu}" for _ in range(layers // 2))
    return f"name: chain{layers}\ninput: [8, 32, 32]\nlayers:\n{pairs}\n"


def input_spec(side: int) -> str:
    """A few layers with strides, pooling and a global pool, at side × side: the same layers at every size."""
    return (f"name: wide{side}\ninput: [3, {side}, {side}]\nlayers:\n"
            "  - {type: conv, out: 16, kernel: 7, stride: 2, padding: 3}\n  - {type: relu}\n"
            "  - {type: maxpool, kernel: 3, stride: 2, padding: 1}\n"
            "  - {type: conv, out: 32, kernel: 3, padding: 1, dilation: 1}\n  - {type: relu}\n"
            "  - {type: globalavgpool}\n  - {type: linear, out: 10}\n")


CPU_SECONDS: dict[tuple[str, ...], float] = {}  # the best run's CPU time (user + system), by command


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def best_wall(command: list[str], repeats: int, **variables: str) -> float:
    """Best wall time of `command` with its output to a pipe and no terminal on stdin (as a script runs it);
    its CPU time goes to CPU_SECONDS (on a busy machine the wall time also counts waiting for a core)."""
    env = {**os.environ, **variables}
    samples, cpu = [], []
    for _ in range(repeats):
        began, began_cpu = time.perf_counter(), children_cpu()
        subprocess.run(command, capture_output=True, check=True, stdin=subprocess.DEVNULL, env=env)
        samples.append(time.perf_counter() - began)
        cpu.append(children_cpu() - began_cpu)
    CPU_SECONDS[tuple(command)] = min(cpu)
    return min(samples)


def best_wall_at_terminal(command: list[str], repeats: int, columns: int = 100) -> float:
    """Best wall time of `command` run as at a terminal: stdin, stdout and stderr on a pseudo-terminal of
    `columns` columns (COLUMNS and LINES unset, so Rich asks the terminal), its output read as it comes."""
    import fcntl
    import termios

    env = {name: value for name, value in os.environ.items() if name not in ("COLUMNS", "LINES")}
    samples, cpu = [], []
    for _ in range(repeats):
        began_cpu = children_cpu()
        controller, terminal = pty.openpty()
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
        began = time.perf_counter()
        process = subprocess.Popen(command, stdin=terminal, stdout=terminal, stderr=terminal, env=env)
        os.close(terminal)
        while True:  # drain the terminal until the process closes it (Linux then raises EIO)
            try:
                if not os.read(controller, 65536):
                    break
            except OSError:
                break
        process.wait()
        samples.append(time.perf_counter() - began)
        cpu.append(children_cpu() - began_cpu)
        os.close(controller)
        if process.returncode:
            raise RuntimeError(f"{command} exited {process.returncode}")
    CPU_SECONDS[("terminal", *command)] = min(cpu)
    return min(samples)


def best_call(step, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        began = time.perf_counter()
        step()
        samples.append(time.perf_counter() - began)
    return min(samples)


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = (", load average {:.1f} / {:.1f} / {:.1f} (1 / 5 / 15 min)".format(*os.getloadavg())
            if hasattr(os, "getloadavg") else "")
    return f"{os.cpu_count()} CPUs ({model}){load}; Python {platform.python_version()}"


def main() -> int:
    quick = "--quick" in sys.argv
    repeats = 2 if quick else 5
    convaudit = [sys.executable, "-m", "convaudit"]
    print(f"machine: {machine()}")
    print("best of", repeats, "runs, a fresh process each (start-up included)\n")

    startup = [("--help at a terminal", [*convaudit, "--help"], True, "   (target < 300 ms)"),
               ("--help, piped", [*convaudit, "--help"], False, ""),
               ("--version", [*convaudit, "--version"], False, ""),
               ("python -c pass at a terminal", [sys.executable, "-c", "pass"], True, "   (the interpreter alone)"),
               ("python -c pass", [sys.executable, "-c", "pass"], False, "")]
    for label, command, at_terminal, target in startup:
        wall = best_wall_at_terminal(command, repeats) if at_terminal else best_wall(command, repeats)
        cpu = CPU_SECONDS[("terminal", *command) if at_terminal else tuple(command)]
        print(f"{label:34}{wall * 1e3:9.0f} ms   CPU {cpu * 1e3:4.0f} ms{target}")
    if "--startup" in sys.argv:
        return 0
    summary_vgg19 = best_wall([*convaudit, "summary", "vgg19"], repeats)
    print(f"{'summary vgg19':34}{summary_vgg19 * 1e3:9.0f} ms")

    with tempfile.TemporaryDirectory() as folder:
        print("\nsummary --format json of a chain of conv 3×3 + ReLU at 8×32×32 (the issue's network)")
        chain_times, chain_cpu = {}, {}
        for layers in CHAIN_LAYERS:
            path = Path(folder, f"chain{layers}.yaml")
            path.write_text(chain_spec(layers), encoding="utf-8")
            command = [*convaudit, "summary", str(path), "--format", "json"]
            chain_times[layers] = best_wall(command, (1 if quick else 3) if layers >= 10_000 else repeats)
            chain_cpu[layers] = CPU_SECONDS[tuple(command)]
            extra = (f"  (+{chain_times[layers] - chain_times[10]:.2f} s over 10 layers; CPU "
                     f"{chain_cpu[layers]:.2f} s, +{chain_cpu[layers] - chain_cpu[10]:.2f} s)") if layers > 10 else \
                f"  (CPU {chain_cpu[layers]:.2f} s)"
            print(f"  {layers:>6,} layers{chain_times[layers]:12.2f} s{extra}")
        print("  target: 10,000 layers < 1 s more than 10; 20,000 layers works")

        print("\nsummary --format json of the same 7 layers at a growing input")
        side_times = {}
        for side in INPUT_SIDES:
            path = Path(folder, f"wide{side}.yaml")
            path.write_text(input_spec(side), encoding="utf-8")
            side_times[side] = best_wall([*convaudit, "summary", str(path), "--format", "json"], repeats)
            extra = f"  (+{side_times[side] - side_times[224]:.3f} s over 224)" if side > 224 else ""
            print(f"  {side:>9,} × {side:<9,}{side_times[side]:8.3f} s{extra}")
        print("  target: 10^6 × 10^6 < 0.2 s more than 224")

    print("\nsummary vgg19 against torchinfo.summary on the same torch model (in one process, start-up excluded)")
    compare_torchinfo(repeats)
    return 0


def compare_torchinfo(repeats: int) -> None:
    try:
        import torchinfo
    except ImportError:
        print("  torchinfo is NOT installed: no comparison (pip install torchinfo)")
        return
    import io
    from contextlib import redirect_stdout

    import torch
    from rich.console import Console

    from convaudit.core.analysis import analyze
    from convaudit.pytorch.builder import build_model
    from convaudit.render.summary import View, summary_table
    from convaudit.spec.library import load

    def ours() -> None:
        report = analyze(load("vgg19"))
        Console(file=io.StringIO(), width=120).print(summary_table(View(report), None, False))

    model = build_model(analyze(load("vgg19"))).eval()
    torch.set_num_threads(os.cpu_count() or 1)

    def theirs() -> None:
        with redirect_stdout(io.StringIO()):
            torchinfo.summary(model, input_size=(1, 3, 224, 224), device="cpu", verbose=0)

    ours_s = best_call(ours, repeats)
    theirs_s = best_call(theirs, max(1, repeats // 2))
    print(f"  convaudit (load, analyse, render the table) {ours_s * 1e3:9.1f} ms")
    print(f"  torchinfo {torchinfo.__version__} (a forward pass, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads) {theirs_s * 1e3:9.1f} ms")
    print(f"  convaudit is {theirs_s / ours_s:.0f}× faster   (target ≥ 20×)")


if __name__ == "__main__":
    sys.exit(main())
