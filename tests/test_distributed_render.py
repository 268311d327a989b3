"""`bench --devices`: its table never cuts a number or a name (a canned result, no workers), and a plan the
workers could not run is refused in one line, exit 2, before any worker starts."""

from __future__ import annotations

import io
import logging
import re
import subprocess
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest

from convaudit.core.plan.measured import DistributedRun, MeasuredLayer, MeasuredShare
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


def canned(devices: int = 3) -> DistributedRun:
    """A run as `collect` returns it (measured = planned)."""
    layers = tuple(MeasuredLayer(name, "column", tuple(
        MeasuredShare(d, Fraction(fwd), Fraction(fwd), Fraction(bwd), Fraction(bwd), 1_234_567, 1_234_567,
                      0.0123 + d / 1000, True) for d in range(devices))) for name, (fwd, bwd) in BYTES.items())
    return DistributedRun("alexnet", (3, 227, 227), 2, "fp32", "columns", devices, "gloo",
                          "CPU Example (1 threads per process)", 0, 1, "2", 0.5, layers)


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


def test_json_keeps_exact_bytes_as_text_and_the_verdicts() -> None:
    import json

    from convaudit.render.plan import distributed_json

    data = json.loads(distributed_json(canned()))
    long = next(layer for layer in data["layers"] if layer["name"] == LONG)
    # 2·2/3·20,000 = 80,000/3 bytes, exact
    assert long["devices"][0]["planned_backward_bytes"] == long["devices"][0]["measured_backward_bytes"] == "80000/3"
    assert data["bytes_match"] and data["params_match"] and "state_match" not in data
    assert "planned_gradients" not in long["devices"][0]  # fsdp only


def test_a_mismatch_is_said() -> None:
    run = canned(2)
    layer = run.layers[0]
    wrong = replace(layer.devices[1], measured_forward_bytes=layer.devices[1].measured_forward_bytes + 4)
    run = replace(run, layers=(replace(layer, devices=(layer.devices[0], wrong)),) + run.layers[1:])
    assert not run.bytes_match and run.params_match and not run.matches
    from rich.console import Console

    console = Console(width=200, record=True, file=io.StringIO())
    console.print(distributed_rich(run))
    assert "MISMATCH between measured and planned bytes" in console.export_text()
