"""Each layer type's formulas, with the arithmetic written out beside the expected number."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from convaudit.core.analysis import analyze
from convaudit.core.layers import REGISTRY, adaptive_windows
from convaudit.spec.parser import parse_text


def one_layer(layer: str, shape: str = "[8, 16, 16]", before: str = ""):
    text = f"name: t\ninput: {shape}\nlayers:\n" + (f"  - {before}\n" if before else "") + f"  - {layer}\n"
    report = analyze(parse_text(text))
    assert report.halted is None, report.halted
    return report.layers[-1]


def test_grouped_conv_reads_cin_over_groups() -> None:
    layer = one_layer("{type: conv, out: 16, kernel: 3, padding: 1, groups: 4}")
    # weights 16·(8/4)·3·3 = 288, biases 16; MACs 288·16·16
    assert (layer.weights, layer.biases, layer.macs) == (288, 16, 288 * 16 * 16)
    assert layer.other_ops == 16 * 16 * 16  # one bias add per output


def test_conv_without_bias_and_rectangular_dilated_kernel() -> None:
    layer = one_layer("{type: conv, out: 4, kernel: [3, 5], dilation: [1, 2], bias: false}")
    # H: 16 − 3 + 1 = 14; W: K' = 2·(5 − 1) + 1 = 9, 16 − 9 + 1 = 8
    assert layer.output_shape == (4, 14, 8)
    assert (layer.weights, layer.biases, layer.other_ops) == (4 * 8 * 3 * 5, 0, 0)


def test_sparse_connection_table() -> None:
    layer = one_layer("{type: conv, out: 3, kernel: 1, connections: [[0], [0, 1], [0, 1, 2, 3]]}")
    # 1 + 2 + 4 = 7 input maps read in all, 1×1 taps: 7 weights, 3 biases
    assert (layer.weights, layer.biases, layer.macs) == (7, 3, 7 * 16 * 16)


def test_connection_table_naming_a_missing_input_map_stops_analysis() -> None:
    text = "name: t\ninput: [2, 8, 8]\nlayers:\n  - {type: conv, out: 1, kernel: 1, connections: [[0, 5]]}\n"
    report = analyze(parse_text(text))
    assert report.halted and "names input map 5, but the input has only 2 maps" in report.halted.problem.message


def test_max_and_avg_pool_ops() -> None:
    maxpool = one_layer("{type: maxpool, kernel: 3, stride: 2, padding: 1}")
    # (16 − 3 + 2)/2 + 1 = 8.5 → 8; 3·3 − 1 = 8 comparisons per output
    assert maxpool.output_shape == (8, 8, 8) and maxpool.other_ops == 8 * 8 * 8 * 8
    avgpool = one_layer("{type: avgpool, kernel: 2}")
    # stride defaults to the kernel: 16/2 = 8; 4 ops per output (3 adds, 1 divide)
    assert avgpool.output_shape == (8, 8, 8) and avgpool.other_ops == 4 * 8 * 8 * 8


def adaptive_window_elements(size: int, out: int) -> int:
    """Sum of window lengths by listing every input index each window covers."""
    total = 0
    for i in range(out):
        start = (i * size) // out
        end = -((-(i + 1) * size) // out)  # ceil((i + 1)·size / out)
        total += len(range(start, end))
    return total


@given(st.integers(1, 60), st.integers(1, 20))
def test_adaptive_windows_cover_the_input(size: int, out: int) -> None:
    windows = adaptive_windows(size, out)
    assert len(windows) == out
    assert windows[0][0] == 0 and windows[-1][1] == size
    assert all(start < end for start, end in windows)
    covered = {i for start, end in windows for i in range(start, end)}
    assert covered == set(range(size))


def test_adaptive_avgpool_counts_overlapping_windows() -> None:
    layer = one_layer("{type: adaptiveavgpool, output: 6}", shape="[256, 13, 13]")
    # 13 → 6: windows [0,3) [2,5) [4,7) [6,9) [8,11) [10,13): 3 each, 18 rows in all
    assert adaptive_window_elements(13, 6) == 18
    assert layer.output_shape == (256, 6, 6)
    assert layer.other_ops == 256 * 18 * 18


def test_lrn_softmax_batchnorm_and_activations() -> None:
    assert one_layer("{type: lrn, size: 5}").other_ops == (2 * 5 + 3) * 8 * 16 * 16
    softmax = one_layer("{type: softmax}", shape="[3, 4, 4]", before="{type: flatten}")
    assert softmax.other_ops == 3 * 48 - 1  # 48 exps, 47 adds, 48 divides
    bn = one_layer("{type: batchnorm}")
    # γ and β are trainable parameters (8 + 8); running mean and variance are buffers (8 + 8)
    assert (bn.params, bn.trainable_params, bn.non_trainable_params, bn.buffers) == (16, 16, 0, 16)
    assert bn.other_ops == 2 * 8 * 16 * 16
    assert one_layer("{type: relu}").other_ops == 8 * 16 * 16
    assert one_layer("{type: scaledtanh}").other_ops == 3 * 8 * 16 * 16
    assert one_layer("{type: dropout}").other_ops == 0


def test_linear_infers_in_from_the_flattened_input() -> None:
    layer = one_layer("{type: linear, out: 10}", shape="[4, 3, 3]")
    assert layer.outcome.in_features == 36 and layer.weights == 360 and layer.macs == 360


def test_subsample() -> None:
    layer = one_layer("{type: subsample, kernel: 2}", shape="[6, 28, 28]")
    # 6 maps × (coefficient + bias); one multiply-accumulate per output, 3 window adds per output
    assert layer.output_shape == (6, 14, 14)
    assert (layer.trainable_params, layer.macs, layer.other_ops) == (12, 6 * 14 * 14, 3 * 6 * 14 * 14)


def test_merges() -> None:
    text = """\
name: t
input: [4, 8, 8]
layers:
  - {type: conv, name: a, out: 3, kernel: 1}
  - {type: conv, name: b, out: 5, kernel: 1, from: input}
  - {type: concat, name: cat, from: [a, b]}
  - {type: conv, name: c, out: 8, kernel: 1, from: input}
  - {type: add, name: sum, from: [cat, c]}
"""
    report = analyze(parse_text(text))
    assert report.layer("cat").output_shape == (8, 8, 8)
    assert report.layer("sum").other_ops == 8 * 8 * 8  # one add per element for two inputs


def test_merge_mismatch_names_both_branches() -> None:
    text = """\
name: t
input: [4, 8, 8]
layers:
  - {type: conv, name: a, out: 3, kernel: 1}
  - {type: conv, name: b, out: 5, kernel: 3, from: input}
  - {type: concat, name: cat, from: [a, b]}
"""
    report = analyze(parse_text(text))
    assert report.halted and report.halted.layer.name == "cat"
    assert "'a' gives 3×8×8, 'b' gives 5×6×6" in report.halted.problem.message


@pytest.mark.parametrize("type_name", sorted(REGISTRY))
def test_every_type_documents_its_other_ops_rule(type_name: str) -> None:
    kind = REGISTRY[type_name]
    assert kind.doc and kind.other_ops_rule and kind.prefix
