"""`bench --devices`: its table never cuts a number or a name (a canned result, no workers), and a plan the
workers could not run is refused in one line, exit 2, before any worker starts."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from convaudit.render.output import output_console
from convaudit.render.plan import DISTRIBUTED_KINDS, distributed_rich

ROOT = Path(__file__).resolve().parent.parent
LONG = "features.denseblock4.denselayer16.conv2"

# Bytes each of 3 processes receives, written out independently of the planner:
#   conv3 gathers the 2 other processes' 128 maps of 13×13, batch 2, fp32: 2·128·13·13·2·4 = 346,112 (fwd and bwd)
#   LONG  all-reduces S = 20,000 B in backward; ring convention 2·(N−1)/N·S = 2·2/3·20,000 = 26,666 2/3
#   fc8   gathers 2·1,000·2·4 = 16,000 forward
BYTES = {"conv3": (2 * 128 * 13 * 13 * 2 * 4, 2 * 128 * 13 * 13 * 2 * 4),
         LONG: (0, Fraction(2 * 2, 3) * 20_000),
         "fc8": (2 * 1_000 * 2 * 4, 0),
         "relu": (0, 0)}  # nothing crosses: not a row of the table
SHOWN = {"conv3": ("346,112", "346,112"), LONG: ("0", "26,666 2/3"), "fc8": ("16,000", "0")}


def canned(devices: int = 3) -> dict:
    """A result shaped as `collect` returns it (measured = planned)."""
    layers = [{"name": name, "mode": "column", "devices": [
        {"device": d, "planned_forward_bytes": str(fwd), "measured_forward_bytes": str(fwd),
         "planned_backward_bytes": str(bwd), "measured_backward_bytes": str(bwd),
         "planned_params": 1_234_567, "measured_params": 1_234_567, "comm_s": 0.0123 + d / 1000,
         "same_every_step": True} for d in range(devices)]} for name, (fwd, bwd) in BYTES.items()]
    return {"spec": "alexnet", "input": [3, 227, 227], "batch": 2, "dtype": "fp32", "strategy": "columns",
            "devices": devices, "backend": "gloo", "device": "CPU Example (1 threads per process)", "warmup": 0,
            "repeats": 1, "torch": "2", "step_s": 0.5, "layers": layers, "bytes_match": True, "params_match": True}


def render(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], width: str | None) -> str:
    """Printed as the CLI prints it: COLUMNS when given, else to a pipe (pytest's capture is no terminal)."""
    if width is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", width)
    capsys.readouterr()
    output_console().print(distributed_rich(canned()))
    return capsys.readouterr().out


def header(text: str) -> list[str]:
    lines = text.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.strip().startswith("─"))
    return re.split(r"\s{2,}", lines[rule - 1].strip())


def test_at_80_columns_kinds_are_left_out_whole_and_named(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    text = render(monkeypatch, capsys, "80")
    assert "…" not in text
    assert not [line for line in text.splitlines() if line != line.rstrip()]
    shown = header(text)
    footer = [line for line in text.splitlines() if line.startswith("not shown at 80 columns: ")]
    assert len(footer) == 1, text
    named = footer[0].removeprefix("not shown at 80 columns: ").split(" (")[0].split(", ")
    every = [f"{label} {d}" for d in range(3) for _, label, _ in DISTRIBUTED_KINDS]
    assert sorted(shown[1:] + named) == sorted(every)  # each column is shown or named, never both
    for _, label, _ in DISTRIBUTED_KINDS:  # a kind goes for every process at once
        assert len({f"{label} {d}" in named for d in range(3)}) == 1, (label, named)
    table = text.split("not shown at")[0]
    assert all(len(line) <= 80 for line in table.splitlines()[2:]), table  # the table itself fits
    assert LONG in table
    if "measured fwd 0" in shown:
        assert "346,112" in table and "16,000" in table
    if "measured bwd 0" in shown:
        assert "26,666 2/3" in table


def test_piped_every_column_at_its_natural_width(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    text = render(monkeypatch, capsys, None)
    assert "…" not in text and "not shown at" not in text
    assert not [line for line in text.splitlines() if line != line.rstrip()]
    assert len(header(text)) == 1 + 3 * len(DISTRIBUTED_KINDS)
    rows = {line.split()[0]: line for line in text.splitlines() if line.split() and line.split()[0] in SHOWN}
    assert set(rows) == set(SHOWN)  # relu moved nothing: no row
    for name, (fwd, bwd) in SHOWN.items():  # per process: plan fwd, measured fwd, plan bwd, measured bwd, comm
        cells = [cell for comm in ("12.3 ms", "13.3 ms", "14.3 ms") for cell in (fwd, fwd, bwd, bwd, comm)]
        assert re.split(r"\s{2,}", rows[name].strip()) == [name, *cells], rows[name]
    assert f"{4 * 1_234_567:,} (plan {4 * 1_234_567:,})" in text  # per process: 4 layers of 1,234,567 each


@pytest.mark.needs_torch
def test_expected_shutdowns_are_quiet() -> None:
    from convaudit.pytorch.distributed import quiet_spawn

    log = logging.getLogger("torch.multiprocessing.spawn")  # torch's loggers do not propagate: listen on it
    heard: list[str] = []
    listener = logging.Handler()
    listener.emit = lambda record: heard.append(record.getMessage())  # type: ignore[method-assign]
    log.addHandler(listener)
    try:
        with quiet_spawn():
            log.warning("Terminating process %s via signal SIGTERM", 1)
        assert heard == []
        log.warning("after: heard again")
        assert heard == ["after: heard again"]
    finally:
        log.removeHandler(listener)


@pytest.mark.needs_torch
def test_a_plan_the_workers_cannot_run_is_one_line_before_any_worker() -> None:
    # AlexNet's conv2 has 256 maps in 2 groups of 128; over 3 devices device 0 holds ⌈256/3⌉ = 86 (channel c on
    # device ⌊3c/256⌋), which cuts a group
    done = subprocess.run([sys.executable, "-m", "convaudit", "bench", "alexnet", "--devices", "3", "--strategy",
                           "model", "--repeats", "1", "--warmup", "0"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "error: conv2: 86 output maps on device 0 cut a group of 128; bench --devices needs groups divisible "
        "by the devices"], done.stderr
