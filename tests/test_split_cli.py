"""The CLI reaches what the core plans and runs: `split`/`diff --strategy fsdp|zero1|zero2`, `bench --devices N
--strategy fsdp` (two gloo processes running torch's fully_shard), and `draw --layout`.

Golden numbers are torch.chunk's arithmetic written out here: chunk = ⌈rows/N⌉ rows, device d holds
min(chunk, rows − d·chunk) of them (at least 0), each row of a weight with its bias."""

from __future__ import annotations

import csv
import io
import json
import re
from fractions import Fraction
from pathlib import Path

import pytest
from typer.testing import CliRunner

from convaudit.cli import app

from .conftest import ROOT

WIDE = {"COLUMNS": "400"}

# AlexNet as torchvision builds it: (rows, elements per row of the weight + 1 for the bias) per layer
ALEXNET_TV = {"conv1": (64, 3 * 11 * 11 + 1), "conv2": (192, 64 * 5 * 5 + 1), "conv3": (384, 192 * 3 * 3 + 1),
              "conv4": (256, 384 * 3 * 3 + 1), "conv5": (256, 256 * 3 * 3 + 1), "fc6": (4096, 256 * 6 * 6 + 1),
              "fc7": (4096, 4096 + 1), "fc8": (1000, 4096 + 1)}


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env=env or WIDE)


def chunk_rows(rows: int, devices: int) -> list[int]:
    chunk = -(-rows // devices)
    return [max(0, min(chunk, rows - d * chunk)) for d in range(devices)]


def split_json(*args: str) -> dict:
    result = run("split", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# ------------------------------------------------------------------ the choices are the core's

def test_choices_are_the_cores() -> None:
    from convaudit.cli.files import Layout
    from convaudit.cli.options import Strategy
    from convaudit.core.plan import STRATEGIES
    from convaudit.render.report.svg import LAYOUTS

    assert tuple(member.value for member in Strategy) == STRATEGIES
    assert tuple(member.value for member in Layout) == LAYOUTS


@pytest.mark.needs_torch
def test_bench_runs_what_the_distributed_run_runs() -> None:
    from convaudit.cli.options import RunStrategy
    from convaudit.pytorch.distributed import RUNS

    assert tuple(member.value for member in RunStrategy) == RUNS


@pytest.mark.parametrize("command", ["split", "diff", "bench"])
def test_help_lists_the_sharded_strategies(command: str) -> None:
    text = " ".join(run(command, "--help", env={"COLUMNS": "200"}).stdout.split())
    assert "fsdp" in text
    assert ("zero1 | zero2" in text) == (command != "bench")  # bench runs fsdp; zero1/zero2 are plans only


# ------------------------------------------------------------------ split --strategy fsdp|zero1|zero2

def test_fsdp_gives_each_device_torch_chunks_of_every_parameter() -> None:
    data = split_json("alexnet-torchvision", "--devices", "3", "--strategy", "fsdp")
    held = [sum(chunk_rows(rows, 3)[d] * per_row for rows, per_row in ALEXNET_TV.values()) for d in range(3)]
    padded = [sum(-(-rows // 3) * per_row for rows, per_row in ALEXNET_TV.values())] * 3
    # conv1's 64 rows are 22, 22, 20; fc6's 4,096 are 1,366, 1,366, 1,364; fc8's 1,000 are 334, 334, 332
    assert held == [20_382_638, 20_382_638, 20_335_564]
    devices = data["per_device"]
    assert [d["params"] for d in devices] == held
    assert [d["params"] + d["padding"] for d in devices] == padded
    assert [(d["gradients"], d["gradient_padding"]) for d in devices] == [
        (h, p - h) for h, p in zip(held, padded, strict=True)]
    assert [d["optimizer_state"] for d in devices] == held  # momentum: one buffer per real element
    by_name = {layer["name"]: layer for layer in data["layers"]}
    for name, (rows, _) in ALEXNET_TV.items():
        weight = by_name[name]["parameters"][0]
        assert [r["rows"] for r in weight["rows"]] == chunk_rows(rows, 3), name
    # per step each device receives (N − 1)/N of every padded unit, fp32: once in the forward all-gather, once in
    # the backward all-gather and once in the gradients' reduce-scatter
    each = Fraction(2, 3) * 3 * padded[0] * 4
    assert each == 163_061_104
    for device in devices:
        assert {(c["kind"], c["phase"]): c["bytes"] for c in device["received_by_collective"]} == {
            ("all-gather", "forward"): each, ("all-gather", "backward"): each,
            ("reduce-scatter", "backward"): each, ("all-gather", "step"): 0}
        assert device["received_forward_bytes"] + device["received_backward_bytes"] == 3 * each
        # the largest unit at its peak: fc6 all-gathered (3 · 1,366 rows of 9,217) and its whole gradients
        assert (device["transient_layer"], device["transient"]) == ("fc6", 2 * 3 * 1366 * 9217)


def test_fsdp_table_names_each_collective_and_the_transient_unit() -> None:
    result = run("split", "alexnet-torchvision", "--devices", "3", "--strategy", "fsdp")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "strategy fsdp" in text
    assert ("GPU 2: 20,335,564 parameters (+ 47,074 padding), 20,335,564 gradients (+ 47,074 padding), "
            "20,335,564 optimizer state (momentum)") in text
    assert ("receives 489,183,312 B per step (all-gather forward 163,061,104 B; all-gather backward "
            "163,061,104 B; reduce-scatter backward 163,061,104 B)") in text
    assert "transient 288.2 MiB (unit fc6)" in text  # 2 · 3 · 1,366 · 9,217 · 4 B = 302,170,128 B
    assert 2 * 3 * 1366 * 9217 * 4 == 302_170_128 and f"{302_170_128 / 2**20:.1f}" == "288.2"


def test_zero1_and_zero2_shard_the_optimizer_state_then_the_gradients() -> None:
    whole = sum(rows * per_row for rows, per_row in ALEXNET_TV.values())
    held = [sum(chunk_rows(rows, 3)[d] * per_row for rows, per_row in ALEXNET_TV.values()) for d in range(3)]
    padded = sum(-(-rows // 3) * per_row for rows, per_row in ALEXNET_TV.values())
    each = Fraction(2, 3) * 3 * padded * 4  # a reduce-scatter, or an all-gather, of every padded unit
    for strategy in ("zero1", "zero2"):
        devices = split_json("alexnet-torchvision", "--devices", "3", "--strategy", strategy)["per_device"]
        assert [d["params"] for d in devices] == [whole] * 3
        assert [d["optimizer_state"] for d in devices] == held
        assert [d["gradients"] for d in devices] == ([whole] * 3 if strategy == "zero1" else held)
        for device in devices:
            assert {(c["kind"], c["phase"]): c["bytes"] for c in device["received_by_collective"]} == {
                ("all-gather", "forward"): 0, ("all-gather", "backward"): 0,
                ("reduce-scatter", "backward"): each, ("all-gather", "step"): each}
            assert device["transient"] == (0 if strategy == "zero1" else 2 * 3 * 1366 * 9217 // 2)


def test_fsdp_csv_and_markdown() -> None:
    result = run("split", "alexnet-torchvision", "--devices", "3", "--strategy", "fsdp", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    for field in ("all_gather_forward_bytes", "all_gather_backward_bytes", "reduce_scatter_backward_bytes"):
        assert sum(Fraction(row[field]) for row in rows if row["device"] == "2") == 163_061_104, field
    fc8 = {row["device"]: row for row in rows if row["name"] == "fc8"}
    assert [int(fc8[d]["params"]) for d in "012"] == [334 * 4097, 334 * 4097, 332 * 4097]
    assert int(fc8["2"]["padding"]) == 2 * 4097
    markdown = run("split", "alexnet-torchvision", "--devices", "3", "--strategy", "fsdp", "--format", "markdown")
    assert markdown.exit_code == 0
    assert "- GPU 2: 20,335,564 parameters (+ 47,074 padding)" in markdown.stdout
    assert "| fc8 | fsdp | 1,368,398 | 1,368,398 | 1,360,204 |" in markdown.stdout  # (334, 334, 332) · 4,097


def test_many_devices_fsdp_stays_small() -> None:
    data = split_json("lenet5", "--devices", "65536", "--strategy", "fsdp", "--batch", "65536")
    # F6 (84 rows of 121): chunk 1, so devices 0–83 hold a row each and the other 65,452 none
    f6 = next(layer for layer in data["layers"] if layer["name"] == "F6")
    assert f6["parameters"][0]["rows"] == [{"device_range": [0, 83], "device_count": 84, "rows": 1},
                                           {"device_range": [84, 65535], "device_count": 65452, "rows": 0}]


# ------------------------------------------------------------------ diff --strategy fsdp

def test_diff_data_against_fsdp() -> None:
    result = run("diff", "alexnet", "--devices", "4", "--strategy", "data", "--strategy", "fsdp", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    # the paper's AlexNet: conv2, conv4 and conv5 in two groups (48 and 192 input maps per group)
    params = (96 * (3 * 121 + 1) + 256 * (48 * 25 + 1) + 384 * (256 * 9 + 1) + 384 * (192 * 9 + 1)
              + 256 * (192 * 9 + 1) + 4096 * (9216 + 1) + 4096 * (4096 + 1) + 1000 * (4096 + 1))
    assert params == 60_965_224
    left, right = data["left"]["totals"], data["right"]["totals"]
    assert (left["params"], right["params"]) == (params, params // 4)  # every row count divides by 4: no padding
    # data: a ring all-reduce of every gradient, 2·(N − 1)/N·S per device; fsdp: all-gather, all-gather again and
    # reduce-scatter, (N − 1)/N·S each; S = the parameters at fp32, over 4 devices
    assert Fraction(left["bytes"]) == 4 * 2 * Fraction(3, 4) * params * 4
    assert Fraction(right["bytes"]) == 4 * 3 * Fraction(3, 4) * params * 4
    sharded = data["right"]["per_device"][0]
    assert (sharded["transient_layer"], sharded["gradients"], sharded["optimizer_state"]) == \
        ("fc6", params // 4, params // 4)
    assert "transient" not in data["left"]["per_device"][0]
    table = run("diff", "alexnet", "--devices", "4", "--strategy", "data", "--strategy", "fsdp")
    text = " ".join(table.stdout.split())
    assert "15,241,306" in text and "all-gather (N−1)/N·S per device" in text and "all-reduce ring" in text


# ------------------------------------------------------------------ draw --layout

def svg_size(svg: str) -> tuple[int, int]:
    match = re.search(r'<svg [^>]*width="(\d+)" height="(\d+)"', svg)
    assert match, svg[:200]
    return int(match.group(1)), int(match.group(2))


@pytest.mark.parametrize("extra", [[], ["--depth", "2"]])
def test_draw_slide_has_slide_proportions(extra: list[str]) -> None:
    result = run("draw", "resnet50", "--layout", "slide", *extra)
    assert result.exit_code == 0, result.output
    width, height = svg_size(result.stdout)
    assert Fraction(4, 3) <= Fraction(width, height) <= Fraction(21, 9), (width, height)
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", result.stdout)
    assert "conv 7×7 stride 2 padding 3" in texts and "2048×7×7" in texts
    numbers = [token for text in texts for token in re.findall(r"\d[\d.,]*", text)]
    assert numbers and all(token.isdigit() for token in numbers), [t for t in numbers if not t.isdigit()]
    assert not any("…" in text for text in texts)  # nothing cut


def test_draw_layouts() -> None:
    drawings = {layout: run("draw", "resnet50", "--layout", layout).stdout for layout in ("slide", "wide", "tall")}
    assert run("draw", "resnet50").stdout == drawings["slide"]  # the default
    (sw, sh), (ww, wh), (tw, th) = (svg_size(drawings[layout]) for layout in ("slide", "wide", "tall"))
    assert ww > sw and wh < sh and Fraction(ww, wh) > Fraction(21, 9)  # one row, left to right
    assert th > sh and Fraction(tw, th) < 1  # one column, top to bottom
    result = run("draw", "resnet50", "--layout", "sideways")
    assert result.exit_code == 2 and result.stderr.startswith("error: Invalid value for '--layout'")


# ------------------------------------------------------------------ bench --devices 2 --strategy fsdp, for real

HOSTILE_ORIGIN = 'imported: {from: "os:system", args: {command: "touch PWNED"}}\n'


@pytest.mark.needs_torch
def test_bench_fsdp_from_the_cli_measures_the_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two gloo processes run torch's fully_shard on LeNet-5 (its spec with an `imported:` origin that would leave
    a file behind if anything called it): measured parameters, gradients, optimizer state and bytes = planned."""
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "lenet5.yaml"
    spec.write_text((ROOT / "architectures" / "lenet5.yaml").read_text(encoding="utf-8") + HOSTILE_ORIGIN,
                    encoding="utf-8")
    result = run("bench", str(spec), "--devices", "2", "--strategy", "fsdp", "--optimizer", "adam", "--batch", "4",
                 "--warmup", "0", "--repeats", "1", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["strategy"], data["backend"], data["devices"], data["optimizer"]) == ("fsdp", "gloo", 2, "adam")
    assert data["bytes_match"] and data["params_match"] and data["state_match"]
    c5 = next(layer["devices"] for layer in data["layers"] if layer["name"] == "C5")
    # C5: 120 maps of 16·5·5 weights and a bias, 60 rows on each process; Adam: two moments per local element
    assert [d["measured_params"] for d in c5] == [60 * 401] * 2
    assert [d["measured_optimizer_state"] for d in c5] == [2 * 60 * 401] * 2
    # the forward all-gather of C5: (2 − 1)/2 of 120 · 401 fp32 elements
    assert [Fraction(d["measured_forward_bytes"]) for d in c5] == [Fraction(1, 2) * 120 * 401 * 4] * 2
    assert not (tmp_path / "PWNED").exists()


def test_bench_refuses_what_only_split_plans() -> None:
    result = run("bench", "lenet5", "--devices", "2", "--strategy", "zero1")
    assert result.exit_code == 2 and "\n" not in result.stderr.strip(), result.output
    assert result.stderr.startswith("error: Invalid value for '--strategy'")
    # a format the distributed run has no renderer for: refused before any worker starts
    result = run("bench", "lenet5", "--devices", "2", "--strategy", "fsdp", "--format", "csv")
    assert (result.exit_code, result.stderr) == (2, "error: bench --devices: --format csv is not available; use "
                                                    "--format table or json\n")


# ------------------------------------------------------------------ a spec's imported: origin is never called

@pytest.mark.needs_torch
def test_bench_never_calls_the_imported_origin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "net.yaml"
    spec.write_text("name: t\ninput: [3, 8, 8]\n" + HOSTILE_ORIGIN + "layers:\n  - {type: conv, out: 4, kernel: 3}\n",
                    encoding="utf-8")
    result = run("bench", str(spec), "--warmup", "0", "--repeats", "1", "--no-backward", "--format", "json")
    assert result.exit_code == 0, result.output
    verify = run("verify", str(spec), "--repeats", "0")
    assert verify.exit_code == 0, verify.output
    assert "which runs only with --against imported" in verify.stderr
    assert not (tmp_path / "PWNED").exists()
