"""Many devices: the device count is bounded, a symmetric plan is as small at 65,536 devices as at 2 (runs of
identical devices), renderers group identical devices, and sizes are bounded text. `bench --devices` guards
each worker's memory and resolves targets before any worker starts."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from typer.testing import CliRunner

from convaudit.cli import app
from convaudit.core.analysis import analyze
from convaudit.core.plan import MAX_CHANNEL_DEVICES, MAX_DEVICES, SHOWN_ONE_BY_ONE, Spread, parse_size, plan
from convaudit.errors import ConvauditError
from convaudit.spec.library import load


def run(*args: str, columns: int = 200):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": str(columns)})


def one_line_error(result, needle: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and result.stderr.count("\n") == 1 and needle in result.stderr, result.stderr


# ------------------------------------------------------------------ Spread, the per-device record

def test_spread_keeps_runs_and_reads_any_device() -> None:
    s = Spread.sparse(10, 0, {3: 5, 4: 5, 9: 1})
    assert s.ends == (3, 5, 9, 10) and s.values == (0, 5, 0, 1)
    assert [s[d] for d in range(10)] == list(s) == [0, 0, 0, 5, 5, 0, 0, 0, 0, 1]
    assert s.total() == 11 and s.largest() == 5 and len(s) == 10
    assert Spread.of([1, 1, 2]) == Spread.from_runs([(1, 1), (2, 1), (3, 2)]) == Spread((2, 3), (1, 2))
    with pytest.raises(IndexError):
        s[10]


# ------------------------------------------------------------------ limits

@pytest.mark.parametrize("args, needle", [
    (("--devices", "1000000000"), f"over at most {MAX_CHANNEL_DEVICES} devices, got 1,000,000,000"),
    (("--devices", "1000000000", "--strategy", "data"), f"at most {MAX_DEVICES:,} devices, got 1,000,000,000"),
    (("--devices", str(MAX_DEVICES + 1), "--strategy", "data", "--batch", str(MAX_DEVICES + 1)),
     f"at most {MAX_DEVICES:,} devices"),
    (("--devices", str(MAX_CHANNEL_DEVICES + 1)), f"over at most {MAX_CHANNEL_DEVICES} devices"),
    (("--devices", "100000", "--strategy", "model"), f"over at most {MAX_CHANNEL_DEVICES} devices"),
])
def test_device_counts_past_the_limit_are_one_line(args: tuple[str, ...], needle: str) -> None:
    one_line_error(run("split", "lenet5", *args), needle)


def test_diff_plans_are_bounded_too() -> None:
    one_line_error(run("diff", "alexnet", "--devices", "2", "--devices", "70000", "--strategy", "data"),
                   f"at most {MAX_DEVICES:,} devices")


def test_the_largest_count_plans_as_small_as_two_devices() -> None:
    """The plan's records do not grow with N when the plan is symmetric: a few runs per layer, a few classes."""
    report = analyze(load("lenet5"), MAX_DEVICES)
    for strategy in ("data", "fsdp", "zero1", "zero2"):
        p = plan(report, strategy, MAX_DEVICES)
        assert all(len(item.shares.values) <= 4 for item in p.layers), strategy
        assert len(p.device_classes) <= 8 and sum(t.count for t in p.device_classes) == MAX_DEVICES
        # one sample each; LeNet-5's totals per device are the analysis' at batch 1
        assert p.device_classes[0].flops == sum(layer.flops for layer in analyze(load("lenet5"), 1).layers)
    # data: every device the same, the gradients' ring all-reduce 2·(N−1)/N of 60,000 trainable fp32
    data = plan(report, "data", MAX_DEVICES)
    assert len(data.device_classes) == 1
    assert data.device_classes[0].received == Fraction(2 * (MAX_DEVICES - 1), MAX_DEVICES) * 60_000 * 4


def test_fsdp_at_many_devices_gives_whole_rows_to_the_first_ones() -> None:
    # C5's weight [120, 6·… ] over 65,536 devices: ⌈120/65,536⌉ = 1 row each to devices 0–119, none to the rest
    p = plan(analyze(load("lenet5"), MAX_DEVICES), "fsdp", MAX_DEVICES)
    c5 = next(item for item in p.layers if item.name == "C5")
    runs = [(first, stop, share.params) for first, stop, share in c5.shares.runs()]
    assert runs == [(0, 120, 400 + 1), (120, MAX_DEVICES, 0)]
    assert c5.shares[MAX_DEVICES - 1].padding == 401  # every device stores one padded row of each


def test_large_counts_render_runs_of_identical_devices() -> None:
    result = run("split", "lenet5", "--devices", "65536", "--strategy", "data", "--batch", "65536")
    assert result.exit_code == 0, result.output
    assert "GPUs 0–65535: " in result.stdout and "GPU 1:" not in result.stdout
    data = json.loads(run("split", "lenet5", "--devices", "65536", "--strategy", "data", "--batch", "65537",
                          "-f", "json").stdout)
    # 65,537 samples: device 0 runs 2, the others 1: two kinds of device
    assert [(d.get("device"), d.get("device_range")) for d in data["per_device"]] == [(0, None), (None, [1, 65535])]
    assert data["per_device"][1]["device_count"] == 65_535
    assert len(data["layers"][0]["devices"]) == 2
    csv_text = run("split", "lenet5", "--devices", "65536", "--strategy", "data", "--batch", "65537",
                   "-f", "csv").stdout
    assert csv_text.splitlines()[2].split(",")[3] == "1-65535"


def test_small_counts_keep_one_column_per_device() -> None:
    # data over 2: both devices identical, still shown one by one (up to SHOWN_ONE_BY_ONE devices)
    assert SHOWN_ONE_BY_ONE == 8
    text = run("split", "alexnet", "--strategy", "data").stdout
    assert "GPU 0:" in text and "GPU 1:" in text and "GPUs" not in text


def test_columns_past_the_channel_count_leave_devices_idle_without_error() -> None:
    p = plan(analyze(load("lenet5"), 2), "columns", MAX_CHANNEL_DEVICES)
    c1 = p.layers[0]  # 6 maps over 256 devices: device ⌊c·256/6⌋ holds map c
    assert [first for first, _, share in c1.shares.runs() if share.params] == [0, 42, 85, 128, 170, 213]
    assert sum(t.count * t.params for t in p.device_classes) == sum(layer.params for layer in p.report.layers)


# ------------------------------------------------------------------ sizes

def test_device_memory_is_bounded_text() -> None:
    with pytest.raises(ConvauditError, match="at most 100 characters, got one of 5,000"):
        parse_size("1" * 5000)
    with pytest.raises(ConvauditError, match="at most 2\\^63 bytes"):
        parse_size(f"{2**63 + 1}")
    assert parse_size(f"{2**63}") == 2**63
    one_line_error(run("split", "alexnet", "--device-memory", "9" * 5000), "at most 100 characters")
    one_line_error(run("diff", "alexnet", "--devices", "2", "--devices", "3", "--device-memory", "9" * 5000),
                   "at most 100 characters")


# ------------------------------------------------------------------ bench --devices before any worker starts

@pytest.mark.needs_torch
def test_bench_devices_guards_each_workers_share(monkeypatch: pytest.MonkeyPatch) -> None:
    import convaudit.pytorch.runtime as runtime

    monkeypatch.setattr(runtime, "host_available_bytes", lambda: 50 * 2**20)  # 50 MiB free
    # AlexNet's data workers each build the whole model (244 MB of parameters): refused, no worker started
    one_line_error(run("bench", "alexnet", "--devices", "2", "--strategy", "data", "--batch", "2",
                       "--repeats", "1"),
                   "but only 50.0 MiB of host memory is free")
    one_line_error(run("bench", "alexnet", "--devices", "2", "--repeats", "1"), "of host memory is free")


@pytest.mark.needs_torch
def test_bench_devices_accepts_targets_and_refuses_plans_it_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from convaudit.errors import DeviceError
    from convaudit.pytorch.distributed import Options, prepare

    plan_ = prepare(Options("tests.import_models:branches", (16, 16), None, 2, "fp32", "fsdp", 2, 0, 1, False), 2)
    assert plan_.strategy == "fsdp" and plan_.report.spec.label == "branches"
    with pytest.raises(DeviceError, match="--strategy zero2 is planned by `convaudit split` only"):
        prepare(Options("lenet5", None, None, 2, "fp32", "zero2", 2, 0, 1, False), 2)
    # columns over more devices than a layer has channels: a device would build nothing of it
    with pytest.raises(DeviceError, match="would hold none of its 6 output channels"):
        prepare(Options("lenet5", None, None, 2, "fp32", "columns", 7, 0, 1, False), 7)
