"""`diff --strategy/--devices`: two split plans side by side. Golden numbers from AlexNet's paper shapes with
the arithmetic written out; conservation (the rows add up to each plan's totals); JSON; the CLI at 80 columns."""

from __future__ import annotations

import json
import re
from fractions import Fraction

import pytest
from typer.testing import CliRunner

from convaudit.cli import app
from convaudit.core.analysis import analyze
from convaudit.core.plan import plan
from convaudit.core.plan_diff import compare
from convaudit.render.plan_diff import plan_diff_markdown
from convaudit.spec.library import load

FP32 = 4
BATCH = 128
# AlexNet (paper §3.5, input 227), weights + biases per layer.
PARAMS = {
    "conv1": 96 * 11 * 11 * 3 + 96, "conv2": 256 * 5 * 5 * 48 + 256, "conv3": 384 * 3 * 3 * 256 + 384,
    "conv4": 384 * 3 * 3 * 192 + 384, "conv5": 256 * 3 * 3 * 192 + 256, "fc6": 9216 * 4096 + 4096,
    "fc7": 4096 * 4096 + 4096, "fc8": 4096 * 1000 + 1000,
}
TOTAL = sum(PARAMS.values())


def run(*args: str, columns: int = 80):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": str(columns)})


def alexnet_plan(strategy: str, devices: int = 2, memory: int | None = None):
    return plan(analyze(load("alexnet"), BATCH), strategy, devices, "momentum", device_memory=memory)


def ring(devices: int, tensor_bytes: int) -> Fraction:
    """What each device receives in a ring all-reduce of a tensor of `tensor_bytes`: 2·(N−1)/N·S."""
    return Fraction(2 * (devices - 1), devices) * tensor_bytes


def rows(diff) -> dict:
    return {pair.name: pair for pair in diff.pairs}


def test_columns_against_data_on_alexnet() -> None:
    diff = compare(alexnet_plan("columns"), alexnet_plan("data"))
    by_name = rows(diff)
    assert TOTAL == 60_965_224
    # conv3 reads all 256 maps of pool2 (13×13). columns: each GPU receives the other's 128 maps forward and
    # sends back their gradients backward: 128·13·13·128·4 bytes each way per device, on 2 devices.
    gathered = 128 * 13 * 13 * BATCH * FP32
    assert gathered == 11_075_584
    conv3 = by_name["conv3"]
    assert conv3.left.value("bytes") == 2 * 2 * gathered == 44_302_336
    # data: each device all-reduces conv3's gradients, 2·(2−1)/2·(885,120·4 bytes), on 2 devices.
    assert conv3.right.value("bytes") == 2 * ring(2, PARAMS["conv3"] * FP32) == 7_080_960
    # columns holds half of conv3's kernels on each GPU, data the whole layer.
    assert conv3.left.params == (PARAMS["conv3"] // 2,) * 2 and conv3.right.params == (PARAMS["conv3"],) * 2
    # Forward FLOPs per device are the same: columns halves the maps, data halves the batch.
    # conv1: 2 · 55·55 outputs · 96 maps · 11·11·3 taps · 128 samples / 2 devices.
    conv1_flops = 2 * 55 * 55 * 96 * 11 * 11 * 3 * BATCH // 2
    assert by_name["conv1"].left.flops == by_name["conv1"].right.flops == (conv1_flops,) * 2
    assert by_name["conv1"].changes == ("mode", "params", "bytes") and by_name["conv1"].status == "changed"
    # relu1 moves nothing and holds nothing in either plan: a different split alone does not change a row.
    assert by_name["relu1"].changes == ("mode",) and by_name["relu1"].status == "same"
    a, b = diff.left_totals, diff.right_totals
    assert (a.params, b.params) == (TOTAL // 2, TOTAL)
    # columns: conv3 as above; fc6 the other GPU's 128·6·6 features each way; fc7 the other 2048 neurons each
    # way; fc8 the other 2048 neurons each way plus the other 500 outputs forward, for the softmax.
    columns_bytes = 2 * (2 * gathered + 2 * 128 * 6 * 6 * BATCH * FP32 + 2 * 2048 * BATCH * FP32
                         + (2048 + 500 + 2048) * BATCH * FP32)
    assert a.bytes == columns_bytes == 62_640_128
    # data: every gradient all-reduced once per step, on each of the 2 devices.
    assert b.bytes == 2 * ring(2, TOTAL * FP32) == 487_721_792
    assert a.busiest_share == b.busiest_share == Fraction(1, 2)
    assert b.bytes_per_flop / a.bytes_per_flop == Fraction(487_721_792, 62_640_128)  # the same FLOPs on both
    assert "bytes" in diff.total_changes and "busiest_share" not in diff.total_changes


def test_two_device_counts_keep_fractions_of_a_byte_exact() -> None:
    diff = compare(alexnet_plan("data", 3), alexnet_plan("data", 4))
    fc8 = rows(diff)["fc8"]
    # A ring over 3 devices: 2·2/3 of fc8's 4,097,000·4 gradient bytes per device, not a whole number.
    assert fc8.left.received == (ring(3, PARAMS["fc8"] * FP32),) * 3
    assert ring(3, PARAMS["fc8"] * FP32) == Fraction(65_552_000, 3)
    assert fc8.right.value("bytes") == 4 * ring(4, PARAMS["fc8"] * FP32) == 98_328_000
    assert diff.right_totals.bytes == 4 * ring(4, TOTAL * FP32)
    assert diff.left_totals.params == diff.right_totals.params == TOTAL  # data replicates the model


@pytest.mark.parametrize("left,right,strategies", [("alexnet", "alexnet", ("columns", "model")),
                                                   ("alexnet", "vgg-a", ("columns", "columns")),
                                                   ("resnet18", "resnet50", ("data", "model"))])
def test_rows_add_up_to_each_plans_totals(left: str, right: str, strategies: tuple[str, str]) -> None:
    plans = [plan(analyze(load(name), 8), strategy, 2) for name, strategy in zip((left, right), strategies,
                                                                                  strict=True)]
    diff = compare(*plans)
    for side, p in (("left", plans[0]), ("right", plans[1])):
        sides = [getattr(pair, side) for pair in diff.pairs if getattr(pair, side) is not None]
        assert [s.item.name for s in sides] == [item.name for item in p.layers]  # each layer once, in order
        assert sum((s.value("bytes") for s in sides), Fraction(0)) == p.total_received
        for d, t in enumerate(p.per_device):
            assert sum(s.params[d] for s in sides) == t.params


def test_json_fields() -> None:
    result = run("diff", "alexnet", "--strategy", "columns", "--strategy", "data", "--device-memory", "1GiB",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["left"]["strategy"], data["right"]["strategy"]) == ("columns", "data")
    assert data["left"]["devices"] == data["right"]["devices"] == 2 and data["left"]["batch"] == BATCH
    assert data["left"]["totals"]["params"] == TOTAL // 2 and data["right"]["totals"]["params"] == TOTAL
    assert data["left"]["totals"]["bytes"] == 62_640_128 and data["right"]["totals"]["bytes"] == 487_721_792
    assert data["left"]["totals"]["busiest_share"] == "1/2"
    # 1 GiB: columns' share fits, data's whole model with momentum and activations does not.
    assert (data["left"]["totals"]["fits"], data["right"]["totals"]["fits"]) == (True, False)
    assert data["left"]["device_memory_bytes"] == 2**30
    conv3 = next(layer for layer in data["layers"] if layer["left"]["name"] == "conv3")
    assert conv3["status"] == "changed" and conv3["changes"] == ["mode", "params", "bytes"]
    assert conv3["left"]["received_bytes"] == [2 * 11_075_584] * 2 and conv3["right"]["bytes"] == 7_080_960
    assert set(data["totals_changed"]) >= {"params", "bytes", "bytes_per_flop", "memory", "fits"}
    fractional = json.loads(run("diff", "alexnet", "--strategy", "data", "--devices", "3", "--devices", "2",
                                "--format", "json").stdout)
    fc8 = next(layer for layer in fractional["layers"] if layer["left"]["name"] == "fc8")
    assert fc8["left"]["received_bytes"] == ["65552000/3"] * 3


def test_table_at_80_columns_is_whole_and_names_what_it_left_out() -> None:
    result = run("diff", "alexnet", "--strategy", "columns", "--strategy", "data")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "…" not in text
    assert not [line for line in text.splitlines() if line != line.rstrip()]
    footer = [line for line in text.splitlines() if line.startswith("not shown at 80 columns")]
    assert len(footer) == 1 and "Split A, Split B" in footer[0]  # a pair goes together, never A alone
    for line in text.splitlines():
        assert len(line) <= 80 or line in footer or not line.startswith(" "), line
    assert re.search(r"^ ~ +conv3 .*44,302,336 +7,080,960$", text, re.M)
    assert "62,640,128" in text and "487,721,792" in text and "columns over 2 devices" in text
    wide = run("diff", "alexnet", "--strategy", "columns", "--strategy", "data", columns=200).stdout
    assert "not shown" not in wide and "Split A" in wide and "column+gather" in wide


def test_two_specs_and_two_device_counts_and_changed_only() -> None:
    both = run("diff", "alexnet", "alexnet-torchvision", "--devices", "2", "--devices", "4", columns=200)
    assert both.exit_code == 0, both.output
    assert "alexnet-torchvision" in both.stdout and "over 4 devices" in both.stdout
    changed = run("diff", "alexnet", "--devices", "2", "--devices", "4", "--changed", columns=200).stdout
    assert "relu1" not in changed and "conv3" in changed


def test_markdown_marks_changed_cells() -> None:
    text = plan_diff_markdown(compare(alexnet_plan("columns"), alexnet_plan("data")))
    assert "| ~ | conv3 |" in text and "**44,302,336** | **7,080,960** |" in text
    assert "| bytes crossing per step | **62,640,128** | **487,721,792** |" in text
    cli = run("diff", "alexnet", "--strategy", "columns", "--strategy", "data", "--format", "markdown")
    assert cli.exit_code == 0 and cli.stdout == text


@pytest.mark.parametrize("args,message", [
    (["alexnet", "-s", "columns", "-s", "data", "-s", "model"], "--strategy: give it once"),
    (["alexnet", "--devices", "2", "--devices", "3", "--devices", "4"], "--devices: give it once"),
    (["alexnet", "--strategy", "data"], "diff needs two specs, or one spec and two --input sizes, --strategy"),
    (["alexnet", "vgg16", "--batch", "4"], "give --strategy or --devices too"),
    (["alexnet", "vgg16", "--device-memory", "3GiB"], "give --strategy or --devices too"),
    (["alexnet", "--devices", "2", "--devices", "4", "--device-memory", "3Q"], "--device-memory: expected a size"),
    (["alexnet", "-s", "data", "--devices", "2", "--devices", "4", "--batch", "2"], "use at least --batch 4"),
])
def test_inconsistent_options_are_one_line_errors(args: list[str], message: str) -> None:
    result = run("diff", *args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
