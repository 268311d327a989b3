"""The parallelism planner: golden numbers from AlexNet's paper shapes, conservation laws, CLI and renderers."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
from typer.testing import CliRunner

from convaudit.cli import app
from convaudit.core.analysis import analyze
from convaudit.core.plan import STRATEGIES, parse_size, plan
from convaudit.errors import ConvauditError
from convaudit.spec.library import bundled_paths, load
from convaudit.spec.parser import parse_text

FP32 = 4


def run(*args: str, columns: int = 200):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": str(columns)})


def alexnet(strategy: str, batch: int = 128, devices: int = 2):
    return plan(analyze(load("alexnet"), batch), strategy, devices)


def test_columns_alexnet_each_gpu_holds_half_and_talks_only_at_conv3_and_the_fc_layers() -> None:
    p = alexnet("columns")
    # Paper §3.5 (input 227): conv1 96·11·11·3 + 96, conv2 256·5·5·48 + 256, conv3 384·3·3·256 + 384,
    # conv4 384·3·3·192 + 384, conv5 256·3·3·192 + 256, fc6 9216·4096 + 4096, fc7 4096·4096 + 4096,
    # fc8 4096·1000 + 1000 = 60,965,224; every layer splits its outputs in two, so each GPU holds half.
    total = (96 * 11 * 11 * 3 + 96 + 256 * 5 * 5 * 48 + 256 + 384 * 3 * 3 * 256 + 384 + 384 * 3 * 3 * 192 + 384
             + 256 * 3 * 3 * 192 + 256 + 9216 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000)
    assert total == 60_965_224
    assert [t.params for t in p.per_device] == [total // 2, total // 2]
    assert [item.name for item in p.layers if item.communicates] == ["conv3", "fc6", "fc7", "fc8"]
    by_name = {item.name: item for item in p.layers}
    batch = 128
    # conv3 reads all 256 maps of pool2 (13×13): each GPU receives the other's 128 maps, and in backward
    # returns their gradients.
    conv3 = 128 * 13 * 13 * batch * FP32
    assert conv3 == 11_075_584
    assert [s.received_forward for s in by_name["conv3"].shares] == [conv3, conv3]
    assert [s.received_backward for s in by_name["conv3"].shares] == [conv3, conv3]
    # fc6 reads pool5's 256·6·6: the other GPU's 128·6·6 features; fc7 and fc8 the other 2048 neurons.
    assert by_name["fc6"].shares[0].received_forward == 128 * 6 * 6 * batch * FP32 == 2_359_296
    assert by_name["fc7"].shares[1].received_forward == 2048 * batch * FP32 == 1_048_576
    # fc8 also gathers its own 1000 outputs for the softmax (each GPU receives the other's 500), forward only.
    assert by_name["fc8"].shares[0].received_forward == (2048 + 500) * batch * FP32
    assert by_name["fc8"].shares[0].received_backward == 2048 * batch * FP32
    # conv2, conv4, conv5 (groups: 2) read only their own GPU's maps.
    for name in ("conv2", "conv4", "conv5"):
        assert by_name[name].mode == "column" and not by_name[name].exchanges
    # conv2 on GPU 0: 128 kernels of 5·5·48 plus 128 biases.
    assert by_name["conv2"].shares[0].params == 128 * 5 * 5 * 48 + 128


def test_data_alexnet_all_reduce_volume_is_the_ring_convention() -> None:
    p = alexnet("data")
    gradients = 60_965_224 * FP32  # every trainable parameter's gradient, fp32
    each = Fraction(2 * (2 - 1), 2) * gradients  # ring all-reduce: 2·(N−1)/N·S per device
    assert [t.received_backward for t in p.per_device] == [each, each]
    assert all(t.received_forward == 0 for t in p.per_device)
    assert [t.params for t in p.per_device] == [60_965_224, 60_965_224]
    assert p.layers[0].batches == (64, 64)


def test_data_ring_convention_keeps_fractions_of_a_byte_exact() -> None:
    p = alexnet("data", batch=3, devices=3)
    conv1 = next(item for item in p.layers if item.name == "conv1")
    assert conv1.exchanges[0].received[0] == Fraction(4, 3) * 34_944 * FP32  # 2·2/3·S


def test_model_alexnet_is_megatron_row_after_column() -> None:
    p = alexnet("model")
    by_name = {item.name: item for item in p.layers}
    # conv3 reads pool2 split over the GPUs: row-parallel, all-reduce of its 384×13×13 output.
    out = 384 * 13 * 13 * 128 * FP32
    assert by_name["conv3"].mode == "row"
    assert by_name["conv3"].shares[0].received_forward == Fraction(2 * 1, 2) * out
    # row-parallel weights: 384·3·3·128 per GPU, the 384 biases on GPU 0 only
    assert [s.params for s in by_name["conv3"].shares] == [384 * 9 * 128 + 384, 384 * 9 * 128]
    # conv4 reads conv3's replicated output: column, and all-reduces that input's gradient in backward
    assert by_name["conv4"].mode == "column" and by_name["conv4"].shares[1].received_backward == out
    assert sum(t.params for t in p.per_device) == 60_965_224


@pytest.mark.parametrize("path", bundled_paths(), ids=lambda p: Path(p).stem)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_shares_add_up_to_the_analysis(path: Path, strategy: str) -> None:
    report = analyze(load(str(path)), 4)
    if report.halted:
        pytest.skip("the analysis stops on this spec at its input")
    p = plan(report, strategy, 2)
    replicated = {item.name for item in p.layers if item.mode == "replicated"}
    for item in p.layers:
        layer = item.layer
        if item.name in replicated:
            assert all(s.flops == layer.flops for s in item.shares)
            continue
        assert sum(s.flops for s in item.shares) == layer.flops
        assert sum(s.backward_flops for s in item.shares) == layer.backward_flops
        if strategy == "data":
            assert all(s.params == layer.params for s in item.shares)
        elif all(o != -1 for o in item.owners) or item.mode == "row":
            assert sum(s.params for s in item.shares) == layer.params


def test_one_device_moves_nothing() -> None:
    for strategy in STRATEGIES:
        p = alexnet(strategy, devices=1)
        assert p.total_received == 0 and p.per_device[0].params == 60_965_224


SMALL = """
name: pinned
input: [4, 8, 8]
placement: {fc: 1}
layers:
  - {type: conv, name: a, out: 8, kernel: 3, padding: 1, groups: 2}
  - {type: relu}
  - {type: linear, name: fc, out: 10}
"""


def test_placement_pins_a_layer_whole_to_one_device() -> None:
    spec = parse_text(SMALL, "pinned.yaml")
    assert spec.placement == {"fc": 1}
    p = plan(analyze(spec, 2), "columns", 2, pins=spec.placement)
    fc = p.layers[-1]
    assert fc.mode == "pinned:1"
    assert [s.params for s in fc.shares] == [0, 8 * 8 * 8 * 10 + 10]
    # device 1 receives device 0's 4 maps of 8×8, batch 2; backward returns their gradients to device 0
    assert [s.received_forward for s in fc.shares] == [0, 4 * 64 * 2 * FP32]
    assert [s.received_backward for s in fc.shares] == [4 * 64 * 2 * FP32, 0]


def test_placement_errors_name_the_line() -> None:
    with pytest.raises(ConvauditError) as error:
        parse_text(SMALL.replace("{fc: 1}", "{fd: 1}"), "pinned.yaml")
    assert "pinned.yaml:4" in str(error.value) and "'fd' is no layer" in str(error.value)
    spec = parse_text(SMALL, "pinned.yaml")
    with pytest.raises(ConvauditError, match="device 1, but there are 1 devices"):
        plan(analyze(spec), "columns", 1, pins=spec.placement, pin_where=spec.placement_where)


def test_parse_size() -> None:
    assert parse_size("3GiB") == 3 * 2**30 and parse_size("1.5 GB") == 1_500_000_000 and parse_size("64") == 64
    with pytest.raises(ConvauditError, match="--device-memory"):
        parse_size("lots")


def test_cli_table_json_csv_markdown() -> None:
    result = run("split", "alexnet", "--devices", "2", "--strategy", "columns", "--device-memory", "3GiB",
                 "--profile", "gtx580")
    assert result.exit_code == 0, result.output
    assert "GPU 0" in result.stdout and "GPU 1" in result.stdout and "…" not in result.stdout
    assert "communication at: conv3, fc6, fc7, fc8" in result.stdout and "fits" in result.stdout
    data = json.loads(run("split", "alexnet", "-s", "data", "-f", "json").stdout)
    assert data["per_device"][0]["received_backward_bytes"] == 60_965_224 * FP32
    csv_text = run("split", "alexnet", "-f", "csv").stdout
    assert csv_text.splitlines()[1].startswith("conv1,conv,column,0,128,17472,")
    assert "| conv3 |" in run("split", "alexnet", "-f", "markdown").stdout


def test_narrow_terminal_drops_columns_whole_and_says_so() -> None:
    result = run("split", "alexnet", columns=80)
    assert result.exit_code == 0 and "…" not in result.stdout
    assert "columns left out to fit the width" in result.stdout
    assert "30,482,612" in result.stdout  # parameter columns kept, whole


def test_cli_errors_are_one_line() -> None:
    result = run("split", "alexnet", "--strategy", "data", "--batch", "1")
    assert result.exit_code == 2 and "at least --batch 2" in result.stderr
    result = run("split", "alexnet", "--profile", "tpu")
    assert result.exit_code == 2 and "unknown profile" in result.stderr
    result = run("split", "alexnet", "--bandwidth", "8")
    assert result.exit_code == 2 and "--throughput" in result.stderr
