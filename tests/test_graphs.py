"""Networks that branch: blocks, merges, GoogLeNet and ResNet, with the arithmetic written out."""

from __future__ import annotations

import pytest

from convaudit.core.analysis import analyze
from convaudit.core.checks import check
from convaudit.core.groups import grouped, main_and_side
from convaudit.errors import SpecError
from convaudit.spec.library import load
from convaudit.spec.parser import parse_text


def conv(cin: int, cout: int, k: int, bias: bool = True) -> int:
    return cin * cout * k * k + (cout if bias else 0)


# ------------------------------------------------------------------ GoogLeNet's inception module

def test_inception_3a_by_hand() -> None:
    report = analyze(load("googlenet"))
    # Table 1, inception (3a) on 28×28×192: 1×1 64; 3×3 reduce 96, 3×3 128; 5×5 reduce 16, 5×5 32; pool proj 32
    params = {"b1/conv1x1": conv(192, 64, 1), "b2/reduce": conv(192, 96, 1), "b2/conv3x3": conv(96, 128, 3),
              "b3/reduce": conv(192, 16, 1), "b3/conv5x5": conv(16, 32, 5), "b4/proj": conv(192, 32, 1)}
    for local, expected in params.items():
        layer = report.layer(f"inception3a/{local}")
        assert layer.params == expected, local
        weights = expected - layer.output_shape[0]
        assert layer.macs == weights * 28 * 28, local  # every conv keeps 28×28 ("same" padding)
    assert report.layer("inception3a/output").output_shape == (64 + 128 + 32 + 32, 28, 28)
    assert sum(params.values()) == 163_696
    total_macs = sum(p - report.layer(f"inception3a/{n}").output_shape[0] for n, p in params.items()) * 28 * 28
    assert round(total_macs / 1e6) == 128  # Table 1's "128M" ops for inception (3a)


def test_googlenet_shapes_follow_table_1() -> None:
    report = analyze(load("googlenet"))
    # depth after each inception: c1 + c3 + c5 + pool proj
    expected = {"inception3a": 256, "inception3b": 480, "inception4a": 512, "inception4b": 512, "inception4c": 512,
                "inception4d": 528, "inception4e": 832, "inception5a": 832, "inception5b": 1024}
    for name, depth in expected.items():
        assert report.layer(f"{name}/output").output_shape[0] == depth
    # Caffe's pools round up: (112 − 3)/2 + 1 = 55.5 → 56, and so on down to 7
    assert [report.layer(p).output_shape[1] for p in ("pool1", "pool2", "pool3", "pool4")] == [56, 28, 14, 7]
    assert check(report) and not [f for f in check(report) if f.severity == "error"]


def test_auxiliary_classifiers_are_counted_apart() -> None:
    plain, aux = analyze(load("googlenet")), analyze(load("googlenet+aux"))
    main, side = main_and_side(aux)
    assert sum(layer.params for layer in main) == plain.totals.params
    # each classifier: 1×1 conv 512→128 (528→128 for aux2), fc 4·4·128 → 1024, fc 1024 → 1000
    aux1 = conv(512, 128, 1) + (4 * 4 * 128 * 1024 + 1024) + (1024 * 1000 + 1000)
    aux2 = conv(528, 128, 1) + (4 * 4 * 128 * 1024 + 1024) + (1024 * 1000 + 1000)
    assert sum(layer.params for layer in side) == aux1 + aux2
    assert aux.spec.outputs == ("prob", "aux1/softmax", "aux2/softmax")
    assert aux.layer("aux1/pool").output_shape == (512, 4, 4)  # (14 − 5)/3 + 1 = 4


# ------------------------------------------------------------------ ResNet

def test_residual_unit_by_hand() -> None:
    report = analyze(load("resnet18"))
    # layer2.0: 3×3 64→128 stride 2, 3×3 128→128, shortcut 1×1 64→128 stride 2; no conv biases;
    # three batchnorms of 128 channels: γ, β trainable, running mean and variance not.
    trainable = 64 * 128 * 9 + 128 * 128 * 9 + 64 * 128 + 3 * 2 * 128
    unit = [layer for layer in report.layers if layer.name.startswith("layer2.0.")]
    assert sum(layer.trainable_params for layer in unit) == trainable == 230_144
    assert sum(layer.non_trainable_params for layer in unit) == 0  # running statistics are buffers
    assert sum(layer.buffers for layer in unit) == 3 * 2 * 128
    assert report.layer("layer2.0.add").input_shapes == ((128, 28, 28), (128, 28, 28))
    assert report.layer("layer2.0.add").other_ops == 128 * 28 * 28  # one add per element
    assert report.layer("layer2.0.conv1").macs == 64 * 128 * 9 * 28 * 28


def test_resnet18_total_matches_the_stage_arithmetic() -> None:
    def basic(cin: int, width: int, downsample: bool) -> int:
        body = cin * width * 9 + width * width * 9 + 2 * 2 * width
        return body + (cin * width + 2 * width if downsample else 0)

    stem = 7 * 7 * 3 * 64 + 2 * 64
    stages = (basic(64, 64, False) * 2 + basic(64, 128, True) + basic(128, 128, False)
              + basic(128, 256, True) + basic(256, 256, False) + basic(256, 512, True) + basic(512, 512, False))
    fc = 512 * 1000 + 1000
    assert analyze(load("resnet18")).totals.trainable_params == stem + stages + fc == 11_689_512


def test_resnet50_total_matches_the_stage_arithmetic() -> None:
    def bottleneck(cin: int, width: int, downsample: bool) -> int:
        body = cin * width + width * width * 9 + width * 4 * width + 2 * (width + width + 4 * width)
        return body + (cin * 4 * width + 2 * 4 * width if downsample else 0)

    total = 7 * 7 * 3 * 64 + 2 * 64 + 2048 * 1000 + 1000
    cin = 64
    for width, units in ((64, 3), (128, 4), (256, 6), (512, 3)):  # Table 1: 3, 4, 6, 3 units
        total += bottleneck(cin, width, True) + (units - 1) * bottleneck(4 * width, width, False)
        cin = 4 * width
    totals = analyze(load("resnet50")).totals
    assert totals.trainable_params == totals.params == total == 25_557_032  # sum(p.numel()), as torchvision


def test_resnet50_v1_moves_the_stride_not_the_parameters() -> None:
    v15, v1 = analyze(load("resnet50")), analyze(load("resnet50", variant="v1"))
    assert v15.totals.params == v1.totals.params
    # v1: the first 1×1 conv of layer2.0 runs at 28×28 (stride 2) instead of 56×56
    assert v1.layer("layer2.0.conv1").output_shape == (128, 28, 28)
    assert v15.layer("layer2.0.conv1").output_shape == (128, 56, 56)
    assert v1.totals.macs < v15.totals.macs


def test_names_follow_torchvision() -> None:
    names = {layer.name for layer in analyze(load("resnet50")).layers}
    assert {"layer3.1.conv2", "layer1.0.downsample.0", "layer4.2.bn3", "fc"} <= names


# ------------------------------------------------------------------ grouping

def test_depth_groups_sum_exactly() -> None:
    report = analyze(load("resnet50"))
    for depth in (1, 2, 3):
        groups = grouped(report, depth)
        assert sum(g.params for g in groups) == report.totals.params
        assert sum(g.macs for g in groups) == report.totals.macs
    stages = {g.name: g for g in grouped(report, 1)}
    assert stages["layer3"].label == "bottleneck_down + bottleneck ×5"
    assert stages["layer3"].output_shape == (1024, 14, 14)


def test_summary_depth_from_the_cli() -> None:
    from typer.testing import CliRunner

    from convaudit.cli import app

    result = CliRunner().invoke(app, ["summary", "googlenet+aux", "--depth", "1"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith(" ") and line.strip()}
    assert "inception" in rows["inception3a"] and "163,696" in rows["inception3a"]
    assert "inception4a" in rows["aux1"]  # From: the group it reads
    assert "main path to prob: params 6,998,552" in result.stdout


# ------------------------------------------------------------------ bad graphs and blocks

NET = "name: t\ninput: [4, 8, 8]\n{extra}layers:\n{layers}\n"


def bad(layers: list[str], extra: str = "") -> str:
    text = NET.format(extra=extra, layers="\n".join(f"  - {layer}" for layer in layers))
    with pytest.raises(SpecError) as caught:
        parse_text(text, "net.yaml")
    return str(caught.value)


def halted(layers: list[str]) -> str:
    report = analyze(parse_text(NET.format(extra="", layers="\n".join(f"  - {layer}" for layer in layers))))
    assert report.halted
    (finding,) = [f for f in check(report) if f.severity == "error"]
    return finding.message


def test_concat_of_different_spatial_sizes_names_both_branches() -> None:
    message = halted(["{type: conv, name: a, out: 2, kernel: 1}",
                      "{type: conv, name: b, out: 2, kernel: 3, from: input}",
                      "{type: concat, name: cat, from: [a, b]}"])
    assert "concat of mismatched inputs: spatial sizes differ: 'a' gives 2×8×8, 'b' gives 2×6×6" in message


def test_add_of_different_channels_names_both_branches() -> None:
    message = halted(["{type: conv, name: a, out: 2, kernel: 1}",
                      "{type: conv, name: b, out: 3, kernel: 1, from: input}",
                      "{type: add, name: sum, from: [a, b]}"])
    assert "'a' gives 2×8×8, 'b' gives 3×8×8" in message


def test_a_cycle_and_a_from_naming_nothing() -> None:
    assert "cycle" in bad(["{type: relu, name: a, from: b}", "{type: relu, name: b, from: a}"])
    assert "'from' names 'nowhere', which is no layer here" in bad(["{type: relu, from: nowhere}"])


BLOCK = """blocks:
  unit:
    params: {width: null, k: 3}
    layers:
      - {type: conv, name: c, out: $width, kernel: $k, padding: $k // 2}
      - {type: relu, name: r}
      - {type: add, name: out, from: [r, input]}
"""


def test_blocks_expand_with_parameters_and_repeat() -> None:
    text = NET.format(extra=BLOCK, layers="  - {block: unit, name: stage, width: 4, repeat: 3}")
    spec = parse_text(text)
    # instances stage/0, stage/1, stage/2 (the index joined with the spec's separator, "/" by default)
    assert [layer.name for layer in spec.layers][:3] == ["stage/0/c", "stage/0/r", "stage/0/out"]
    assert spec.layer("stage/1/c").inputs == ("stage/0/out",)
    assert spec.layer("stage/2/out").inputs == ("stage/2/r", "stage/1/out")
    assert spec.layer("stage/0/c").params["padding"] == (1,)  # $k // 2 with k = 3
    assert spec.layer("stage/2/c").blocks == (("stage/2", "unit"),)


@pytest.mark.parametrize("instance, needle", [
    ("{block: unti, width: 4}", "unknown block 'unti' (did you mean 'unit'?)"),
    ("{block: unit}", "block 'unit' needs 'width'"),
    ("{block: unit, width: 4, widht: 3}", "block 'unit' has no parameter 'widht'"),
    ("{block: unit, width: four}", "out: expected a positive integer, got string 'four' (in unit1, a 'unit' block)"),
    ("{block: unit, width: 4, k: many}", "$k is 'many', not an integer, in '$k // 2'"),
    ("{type: unit, width: 4}", "to use the block 'unit', write block: unit"),
    ("{block: unit, width: 4, repeat: 0}", "layers[0].repeat: expected a positive integer"),
])
def test_block_errors(instance: str, needle: str) -> None:
    assert needle in bad([instance], BLOCK)


def test_errors_inside_a_block_name_the_definition_and_the_instance() -> None:
    message = bad(["{block: unit, name: u1, width: 4}"], BLOCK.replace("$width, kernel", "$width, kernal"))
    assert message.startswith("net.yaml:7: blocks.unit.layers[0].kernal: conv does not take 'kernal'")
    assert message.endswith("(in u1, a 'unit' block)")


def test_expanded_names_must_not_collide() -> None:
    message = bad(["{block: unit, name: u, width: 4}", "{type: relu, name: u/r}"], BLOCK)
    assert "layer name 'u/r' is used twice once blocks are expanded" in message


def test_a_block_that_uses_itself_is_refused() -> None:
    recursive = "blocks:\n  loop:\n    layers:\n      - {block: loop}\n"
    assert "block 'loop' uses itself (loop → loop)" in bad(["{block: loop}"], recursive)


def test_from_inside_a_block_must_stay_inside() -> None:
    leaky = "blocks:\n  b:\n    layers:\n      - {type: relu, from: stem}\n"
    message = bad(["{type: relu, name: stem}", "{block: b}"], leaky)
    assert "'from' names 'stem', which is no layer of this block" in message


def test_repeat_bombs_are_refused() -> None:
    assert "more than 20000 layers" in bad(["{block: unit, width: 1, repeat: 100000}"], BLOCK)


def test_variant_errors() -> None:
    with pytest.raises(SpecError, match="googlenet has no variant 'axu' \\(did you mean 'aux'\\?\\)"):
        load("googlenet+axu")
