"""`fit`: the largest batch under a device's memory, checked by brute force against the memory model itself
(the answer fits, one more sample does not), on one device and across three."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from convaudit.cli import app
from convaudit.core.analysis import analyze
from convaudit.core.fit import fit, share
from convaudit.core.memory import training_memory
from convaudit.core.plan import plan
from convaudit.spec.library import load

GIB = 2**30


def one_device_bytes(spec, batch: int, amp, checkpoint) -> int:
    """The memory formula at `batch`, straight from training_memory: state + saved + one segment remade."""
    return training_memory(analyze(spec, batch=batch), "adam", amp=amp, checkpoint=checkpoint).training_total


@pytest.mark.parametrize("name", ["alexnet", "resnet50"])
@pytest.mark.parametrize("gib", [8, 24])
def test_each_answer_fits_and_one_more_does_not(name: str, gib: int) -> None:
    spec = load(name)
    result = fit(spec, gib * GIB)
    assert [(a.strategy, a.amp, a.checkpoint is not None) for a in result.answers] == [
        ("single", None, False), ("single", None, True), ("single", "bf16", False), ("single", "bf16", True)]
    for answer in result.answers:
        at, beyond = (one_device_bytes(spec, b, answer.amp, answer.checkpoint) for b in (answer.batch,
                                                                                         answer.batch + 1))
        assert at == answer.memory <= gib * GIB < beyond == answer.next_memory
    batches = [answer.batch for answer in result.answers]
    # autocast and checkpointing each free memory for more samples; both together the most
    assert batches[0] < min(batches[1], batches[2]) and max(batches) == batches[3] == result.best.batch


def test_three_devices_fsdp_brute_force() -> None:
    spec, limit = load("alexnet-torchvision"), 8 * GIB
    answer = next(a for a in fit(spec, limit, devices=3).answers if a.strategy == "fsdp" and a.amp and a.checkpoint)
    planned = plan(analyze(spec, batch=3), "fsdp", 3, "adam")

    def fullest(batch: int) -> int:
        worst = 0
        for devices in planned.device_classes:  # each run of identical devices: its state and its share's tensors
            state = (devices.params + devices.padding + devices.gradients + devices.gradient_padding
                     + devices.optimizer_state + devices.transient) * 4
            memory = training_memory(analyze(spec, batch=share(batch, 3, devices.device)), "adam", amp="bf16",
                                     checkpoint=answer.checkpoint)
            worst = max(worst, state + memory.saved_activations + memory.recompute_peak)
        return worst

    assert fullest(answer.batch) == answer.memory <= limit < fullest(answer.batch + 1)
    assert [share(7, 3, d) for d in range(3)] == [3, 2, 2]  # ⌊7/3⌋ each, the first 7 mod 3 = 1 one more


def test_nothing_fits_is_said() -> None:
    answer = fit(load("vgg-e"), 100 * 2**20).best  # 100 MiB: less than its 144 M fp32 parameters
    assert answer.batch == 0


def test_fit_command_formats() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["fit", "lenet5", "--device-memory", "1MiB", "-f", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert len(data["answers"]) == 4 and data["device_memory_bytes"] == 2**20
    best = data["answers"][data["best"]]
    assert best["memory_bytes"] <= 2**20 < best["next_batch_memory_bytes"]
    table = runner.invoke(app, ["fit", "lenet5", "--device-memory", "1MiB"], env={"COLUMNS": "160"})
    assert table.exit_code == 0 and "Largest batch" in table.output and "best:" in table.output
    for output_format in ("csv", "markdown"):
        assert runner.invoke(app, ["fit", "lenet5", "--device-memory", "1MiB", "-f", output_format]).exit_code == 0
    bad = runner.invoke(app, ["fit", "lenet5", "--device-memory", "lots"])
    assert bad.exit_code == 2 and bad.output.startswith("error:")
    bad = runner.invoke(app, ["fit", "lenet5", "--device-memory", "1MiB", "--checkpoint", "nosuch"])
    assert bad.exit_code == 2 and "no layer or block named nosuch" in bad.output


def test_summary_shows_amp_and_checkpoint() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["summary", "resnet18", "--amp", "bf16", "--checkpoint", "blocks", "-f", "json"])
    assert result.exit_code == 0, result.output
    memory = json.loads(result.output)["memory"]
    assert memory["amp"] == "bf16" and memory["checkpoint_segments"] == 8 and memory["recompute_flops"] > 0
    plain = json.loads(runner.invoke(app, ["summary", "resnet18", "-f", "json"]).output)["memory"]
    assert "amp" not in plain and "checkpoint" not in plain  # without the options, the JSON is as before
    assert memory["saved_activations_bytes"] < plain["saved_activations_bytes"]
