"""The parallelism planner: golden numbers from AlexNet's paper shapes, conservation laws, CLI and renderers."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from convaudit.cli import app
from convaudit.core.analysis import analyze
from convaudit.core.plan import CHANNEL_STRATEGIES, STRATEGIES, column_owners, parse_size, plan
from convaudit.errors import ConvauditError
from convaudit.spec.library import bundled_paths, load
from convaudit.spec.parser import parse_text

from .conftest import REPRESENTATIVE

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
    assert tuple(p.layers[0].batches) == (64, 64)


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
        if strategy in ("data", "zero1", "zero2"):  # whole parameters on every device
            assert all(s.params == layer.params for s in item.shares)
        elif strategy == "fsdp":  # the real elements of the shards add up; the padding is extra
            assert sum(s.params for s in item.shares) == layer.params
            assert sum(s.optimizer_state for s in item.shares) == 0  # plan()'s default optimizer: sgd
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


# ------------------------------------------------ channel counts the device count does not divide (N = 3, 5)

def _owned(channels: int, devices: int) -> list[int]:
    """How many of `channels` each device owns when channel c goes to ⌊c·N/C⌋, counted one by one."""
    counts = [0] * devices
    for c in range(channels):
        counts[c * devices // channels] += 1
    return counts


def test_uneven_owners_by_hand() -> None:
    # 96 over 3: 32 each. 4096 over 3: ⌊c·3/4096⌋ = 0 for c ≤ 1365 (1366 channels), then 1365 and 1365.
    assert _owned(96, 3) == [32, 32, 32]
    assert _owned(4096, 3) == [1366, 1365, 1365] and 1366 + 1365 + 1365 == 4096
    assert _owned(256, 3) == [86, 85, 85]  # 3·85 = 255 < 256 ≤ 3·86


def test_model_alexnet_three_devices_is_whole_numbers_from_owned_channels() -> None:
    """Was an internal error ('a share that should be whole is 587775/2'): row-parallel biases were scaled."""
    batch = 128
    p = alexnet("model", batch=batch, devices=3)
    by_name = {item.name: item for item in p.layers}
    params = {name: [s.params for s in by_name[name].shares] for name in by_name}
    # conv1 column: 96 maps over 3 = 32 each, 32·11·11·3 weights + 32 biases = 11,648
    assert params["conv1"] == [32 * 11 * 11 * 3 + 32] * 3 == [11_648] * 3
    # conv2 (groups: 2) column: 256 maps as 86/85/85, each map 5·5·48 weights and one bias
    assert params["conv2"] == [86 * (5 * 5 * 48 + 1), 85 * (5 * 5 * 48 + 1), 85 * (5 * 5 * 48 + 1)]
    # conv3 row: reads pool2's 86/85/85 maps; 384·3·3 weights per input map; all 384 biases on device 0
    assert by_name["conv3"].mode == "row"
    assert params["conv3"] == [384 * 9 * 86 + 384, 384 * 9 * 85, 384 * 9 * 85]
    assert [s.flops for s in by_name["conv3"].shares] == [2 * 384 * 9 * m * 13 * 13 * batch for m in (86, 85, 85)]
    assert [s.other_ops for s in by_name["conv3"].shares] == [384 * 13 * 13 * batch, 0, 0]  # bias adds, once
    # fc6 row: pool5 is conv5's 86/85/85 maps of 6·6 = 3096/3060/3060 features, 4096 weights each
    assert by_name["fc6"].mode == "row"
    assert params["fc6"] == [3096 * 4096 + 4096, 3060 * 4096, 3060 * 4096]
    assert 3096 + 3060 + 3060 == 9216
    # its forward all-reduce of 4096 outputs: ring 2·(3−1)/3·S, a fraction of a byte by convention
    assert by_name["fc6"].shares[0].received_forward == Fraction(4, 3) * 4096 * batch * FP32
    # fc7 column: 4096 neurons as 1366/1365/1365, each 4096 weights and one bias
    assert params["fc7"] == [1366 * 4097, 1365 * 4097, 1365 * 4097]
    assert [s.flops for s in by_name["fc7"].shares] == [2 * m * 4096 * batch for m in (1366, 1365, 1365)]
    # fc8 row: reads fc7's 1366/1365/1365 neurons, 1000 weights each; 1000 biases on device 0
    assert params["fc8"] == [1366 * 1000 + 1000, 1365 * 1000, 1365 * 1000]
    assert sum(t.params for t in p.per_device) == 60_965_224


def test_columns_alexnet_three_devices_fc6_is_1366_1365_1365_neurons() -> None:
    batch = 128
    by_name = {item.name: item for item in alexnet("columns", batch=batch, devices=3).layers}
    # each fc6 neuron: 9216 weights and one bias
    assert [s.params for s in by_name["fc6"].shares] == [1366 * 9217, 1365 * 9217, 1365 * 9217]
    assert [s.flops for s in by_name["fc6"].shares] == [2 * m * 9216 * batch for m in (1366, 1365, 1365)]
    assert [s.other_ops for s in by_name["fc6"].shares] == [m * batch for m in (1366, 1365, 1365)]
    # activations: the neurons each device holds, per sample
    assert [s.activations for s in by_name["fc6"].shares] == [m * batch for m in (1366, 1365, 1365)]


def test_data_uneven_batch_counts_whole_samples() -> None:
    # batch 5 over 3: 2, 2, 1 samples; conv1 is 96·11·11·3 MACs at each of 55·55 positions per sample
    conv1 = alexnet("data", batch=5, devices=3).layers[0]
    assert tuple(conv1.batches) == (2, 2, 1)
    assert [s.flops for s in conv1.shares] == [2 * 96 * 11 * 11 * 3 * 55 * 55 * b for b in (2, 2, 1)]
    assert [s.activations for s in conv1.shares] == [96 * 55 * 55 * b for b in (2, 2, 1)]


def test_cli_model_over_three_devices_is_no_internal_error() -> None:
    result = run("split", "alexnet", "--strategy", "model", "--devices", "3", "-f", "json")
    assert result.exit_code == 0, result.output
    result = run("diff", "alexnet", "--strategy", "model", "--devices", "3", "--devices", "2", "-f", "json")
    assert result.exit_code == 0, result.output


def _check_conserved(p, report) -> None:
    """Every share is a whole number; split layers' shares add up to the analysis; replicated ones repeat it."""
    n = p.devices
    for item in p.layers:
        layer, shares = item.layer, item.shares
        counts = ("params", "trainable_params", "flops", "backward_flops", "other_ops", "activations")
        for s in shares:
            assert all(type(getattr(s, c)) is int and getattr(s, c) >= 0 for c in counts), (item.name, s)
        whole = {c: getattr(layer, c) for c in counts}

        def total(c: str, shares: tuple = shares) -> int:
            return sum(getattr(s, c) for s in shares)

        if p.strategy not in CHANNEL_STRATEGIES:  # data, fsdp, zero1, zero2: each device its share of the batch
            assert sum(item.batches) == report.batch
            if p.strategy == "fsdp":  # torch.chunk shards: the real elements add up, padding apart
                assert total("params") == whole["params"]
            else:
                assert all(s.params == layer.params for s in shares)
            assert all(total(c) == whole[c] for c in ("flops", "backward_flops", "other_ops", "activations"))
            continue
        if item.mode == "replicated" or (item.mode == "follow" and all(o == -1 for o in item.owners)):
            assert all(getattr(s, c) == whole[c] for s in shares for c in counts), item.name
        elif item.mode in ("column", "column+gather", "row") or item.mode.startswith("pinned") \
                or all(o != -1 for o in item.owners):
            assert all(total(c) == whole[c] for c in counts if c != "activations"), item.name
            if item.mode == "column" or all(o != -1 for o in item.owners):
                assert total("activations") == whole["activations"], item.name
            if item.mode.startswith("column"):  # owned channels differ by at most one
                owned = [sum(1 for o in column_owners(layer.output_shape[0], n) if o == d) for d in range(n)]
                assert max(owned) - min(owned) <= 1
    if n == 1:
        only = p.per_device[0]
        assert only.params == sum(layer.params for layer in report.layers)
        assert only.flops == sum(layer.flops for layer in report.layers)
        assert only.backward_flops == sum(layer.backward_flops for layer in report.layers)
        assert p.total_received == 0


# every layer type and rank, and AlexNet's two-GPU network and its torchvision form
PLANNED = (*REPRESENTATIVE, "alexnet-torchvision", "alexnet-seeds")


@pytest.mark.parametrize("path", [p for p in bundled_paths() if Path(p).stem in PLANNED], ids=lambda p: Path(p).stem)
def test_representative_specs_plan_over_one_to_five_devices(path: Path) -> None:
    """No strategy and device count is an internal error; a split batch refuses fewer samples than devices."""
    report = analyze(load(str(path)), 3)
    if report.halted:
        pytest.skip("the analysis stops on this spec at its input")
    for strategy in STRATEGIES:
        for n in range(1, 6):
            if strategy not in CHANNEL_STRATEGIES and n > 3:
                with pytest.raises(ConvauditError, match="at least --batch"):
                    plan(report, strategy, n)
                continue
            _check_conserved(plan(report, strategy, n), report)


RANDOM_NET = """
name: random
input: [{c0}, 6, 6]
layers:
  - {{type: conv, name: a, out: {c1}, kernel: 3, padding: 1, bias: {b1}}}
  - {{type: relu, name: ra}}
  - {{type: conv, name: b, out: {c2}, kernel: 3, padding: 1, groups: {g}}}
  - {{type: batchnorm, name: bn}}
  - {{type: conv, name: c, out: {c2}, kernel: 1, from: bn}}
  - {{type: add, name: sum, from: [bn, c]}}
  - {{type: concat, name: cat, from: [sum, ra]}}
  - {{type: maxpool, name: pool, kernel: 2}}
  - {{type: linear, name: fc1, out: {f1}}}
  - {{type: relu, name: rf}}
  - {{type: linear, name: fc2, out: {f2}, bias: {b2}}}
  - {{type: softmax, name: out}}
"""


@settings(max_examples=40, deadline=None)
@given(c0=st.integers(1, 4), g=st.integers(1, 3), k1=st.integers(1, 5), k2=st.integers(1, 5),
       f1=st.integers(1, 13), f2=st.integers(1, 11), b1=st.booleans(), b2=st.booleans(),
       batch=st.integers(1, 6), devices=st.integers(1, 6), strategy=st.sampled_from(STRATEGIES))
def test_shares_are_whole_and_conserved_for_any_channel_count(c0, g, k1, k2, f1, f2, b1, b2, batch, devices,
                                                              strategy) -> None:
    text = RANDOM_NET.format(c0=c0, c1=g * k1, c2=g * k2, g=g, f1=f1, f2=f2, b1=str(b1).lower(),
                             b2=str(b2).lower())
    report = analyze(parse_text(text, "random.yaml"), batch)
    if strategy not in CHANNEL_STRATEGIES and batch < devices:
        with pytest.raises(ConvauditError, match="at least --batch"):
            plan(report, strategy, devices)
        return
    _check_conserved(plan(report, strategy, devices), report)
