"""Hostile and malformed ONNX files: each is built here with onnx.helper, and each gives a result or one line.

Every refusal is `error: FILE: …` on stderr naming the node (its name, operator and, where the exporter
recorded one, its module path) and what is wrong, exit 2, nothing on stdout: never a traceback, never exit 3,
and never a count of part of the graph passed off as the whole. The numbers a case should give are worked out
in the test from the layers' definitions.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from convaudit.cli import app

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from .onnx_files import (  # noqa: E402
    KINDS,
    SHAPES,
    conv,
    exported_like,
    floats,
    info,
    ints,
    model,
    mutate,
    no_data,
    nodes,
    save,
    weights,
)

WIDTH = {"COLUMNS": "140"}


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), env=WIDTH)


@pytest.fixture(autouse=True, scope="module")
def command_built_once() -> Any:
    """Typer's CliRunner builds the click command from the app on every invoke (about 0.2 s, more than a run
    here takes); this file makes some 150 runs, so it is built once. Without that hook in Typer, nothing changes
    but the time."""
    import typer.main
    import typer.testing

    command = typer.main.get_command(app)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(typer.testing, "_get_command", lambda _app: command, raising=False)
        yield


def refused(path: str, *needles: str, extra: tuple[str, ...] = ()) -> str:
    """`import` and `summary` each refuse the file in one line holding every needle; the line is returned."""
    lines = []
    for command in ("import", "summary"):
        result = cli(command, path, *extra)
        assert result.exit_code == 2, (command, result.exit_code, result.output)
        assert result.stdout == "", (command, result.stdout)
        line = result.stderr.strip()
        assert line.startswith(f"error: {path}: ") and "\n" not in line, line
        assert "internal error" not in line and "Traceback" not in line, line
        for needle in needles:
            assert needle in line, (needle, line)
        lines.append(line)
    assert lines[0] == lines[1]
    return lines[0]


def test_the_valid_network_reads(tmp_path: Path) -> None:
    """The base every case mutates is itself fine: conv 4·3·3·3 + 4 = 112 params, fc 5·4 + 5 = 25."""
    result = cli("summary", save(tmp_path, model()), "--format", "json")
    assert result.exit_code == 0, result.output
    totals = json.loads(result.stdout)["totals"]
    # conv: 4 filters × 3 channels × 3·3 taps at each of 8·8 positions; fc: 5 × 4
    assert (totals["params"], totals["macs"]) == (112 + 25, 4 * 3 * 9 * 8 * 8 + 5 * 4)


# ------------------------------------------------------------------ files that crashed the importer (exit 3)

def sequence_at(position: int) -> Any:
    """conv1 → relu1 → split into sequence of 2-channel parts → part `position` → pool."""
    graph_nodes = [*nodes()[:2], helper.make_node("SplitToSequence", ["r", "two"], ["seq"], name="chunks", axis=1),
                   helper.make_node("SequenceAt", ["seq", "at"], ["part"], name="pick"),
                   helper.make_node("GlobalAveragePool", ["part"], ["y"], name="pool")]
    return model(graph_nodes, weights(fw=None, fb=None) + [ints("two", [2], []), ints("at", [position], [])],
                 outputs=[info("y", None)])


CRASHES = {
    # declared sizes with no data behind them: never allocated, never converted
    "int64 initializer of 2^40 elements, no data": (
        lambda: model(nodes(flat=helper.make_node("Reshape", ["p", "huge"], ["f"], name="flat")),
                      weights() + [no_data("huge", TensorProto.INT64, [2**40])]),
        ["initializer 'huge' (read by node flat (Reshape))", "declares 1,099,511,627,776 elements",
         "holds 0 values"]),
    "4 floats with an empty buffer": (
        lambda: model(initializers=weights(b=no_data("b", TensorProto.FLOAT, [4], raw_data=b""))),
        ["initializer 'b' (read by node conv1 (Conv)) declares 4 elements [4] but holds 0 bytes (16 expected)"]),
    "4 floats holding 3": (
        lambda: model(initializers=weights(b=no_data("b", TensorProto.FLOAT, [4], float_data=[1, 2, 3]))),
        ["initializer 'b'", "holds 3 values in float_data (4 expected)"]),
    "negative dimension": (
        lambda: model(initializers=weights(b=no_data("b", TensorProto.FLOAT, [-4]))),
        ["initializer 'b'", "negative dimension"]),
    "a Constant node's tensor with no data": (
        lambda: model(nodes(flat=helper.make_node("Reshape", ["p", "shape"], ["f"], name="flat"),
                            shape=helper.make_node("Constant", [], ["shape"], name="shape",
                                                   value=no_data("", TensorProto.INT64, [2**40])))),
        ["node shape (Constant): attribute value declares 1,099,511,627,776 elements"]),
    # the conv's weight
    "conv weight input empty": (
        lambda: model(nodes(conv1=conv(["x", ""]))),
        ["node conv1 (Conv): its input 1 (W) is required but empty"]),
    "conv weight produced by nothing": (
        lambda: model(nodes(conv1=conv(["x", "nowhere"]))),
        ["node conv1 (Conv): its input 'nowhere' is produced by no node, graph input or initializer"]),
    "conv weight computed from the input": (
        lambda: model(nodes(conv1=conv(["x", "x"])), declare=True),
        ["node conv1 (Conv): its weight is not a parameter"]),
    # per-axis attributes of the wrong length for a 2-D kernel (shapes declared, as inference gives none)
    "pads of length 2": (
        lambda: model(nodes(conv1=conv(["x", "w", "b"], pads=[1, 1])), declare=True),
        ["node conv1 (Conv): pads [1, 1]: a 2-D window takes 4 values"]),
    "strides of length 3": (
        lambda: model(nodes(conv1=conv(["x", "w", "b"], strides=[1, 1, 1])), declare=True),
        ["node conv1 (Conv): strides [1, 1, 1]: a 2-D window takes 2 values"]),
    "dilations of 0": (
        lambda: model(nodes(conv1=conv(["x", "w", "b"], dilations=[0, 1])), declare=True),
        ["node conv1 (Conv): dilations [0, 1]", "at least 1"]),
    "kernel_shape unlike the weight": (
        lambda: model(nodes(conv1=conv(["x", "w", "b"], kernel_shape=[5, 5])), declare=True),
        ["node conv1 (Conv): its weight has shape [4, 3, 3, 3], kernel_shape [5, 5]"]),
    "maxpool pads of length 3": (
        lambda: model(nodes(relu1=helper.make_node("MaxPool", ["c"], ["r"], name="relu1", kernel_shape=[1, 1],
                                                  pads=[0, 0, 0])), declare=True),
        ["node relu1 (MaxPool): pads [0, 0, 0]"]),
    "pads given as floats": (
        lambda: model(nodes(conv1=conv(["x", "w", "b"], pads=[1.0, 1.0, 1.0, 1.0]))),
        ["node conv1 (Conv): attribute pads is of type FLOATS; Conv takes INTS"]),
    # matrix products
    "Gemm with one input": (
        lambda: model(nodes(fc=helper.make_node("Gemm", ["f"], ["y"], name="fc"))),
        ["node fc (Gemm): Gemm takes 2 to 3 inputs, the node has 1"]),
    "MatMul with a scalar weight": (
        lambda: model(nodes(fc=helper.make_node("MatMul", ["f", "s"], ["y"], name="fc")),
                      weights(fw=None, fb=None, s=floats("s", [], 2.0)), declare=True),
        ["node fc (MatMul): its weight s has shape []; a linear layer's weight is a matrix"]),
    "Gemm whose weight does not fit its input": (
        lambda: model(nodes(fc=helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc")), declare=True),
        ["node fc (Gemm): its input has shape [1, 4] and its weight [5, 4]: the features do not match"]),
    # sequences and splits
    "SequenceAt out of range": (lambda: sequence_at(5), ["node pick (SequenceAt): SequenceAt position 5 of a "
                                                         "sequence of 2 parts"]),
    "SequenceAt out of range below": (lambda: sequence_at(-3), ["SequenceAt position -3 of a sequence of 2"]),
    "a sequence read by other than SequenceAt": (
        lambda: model([*nodes()[:2],
                       helper.make_node("SplitToSequence", ["r", "two"], ["seq"], name="chunks", axis=1),
                       helper.make_node("ConcatFromSequence", ["seq"], ["y"], name="join", axis=1)],
                      weights(fw=None, fb=None) + [ints("two", [2], [])], outputs=[info("y", None)]),
        ["node join (ConcatFromSequence): it reads a sequence"]),
    "Split with sizes computed at run time": (
        lambda: model([*nodes()[:2], helper.make_node("Shape", ["r"], ["dims"], name="dims"),
                       helper.make_node("Slice", ["dims", "one", "two"], ["sizes"], name="sizes"),
                       helper.make_node("Split", ["r", "sizes"], ["s0", "s1"], name="halves", axis=1),
                       helper.make_node("Add", ["s0", "s1"], ["y"], name="add")],
                      weights(fw=None, fb=None) + [ints("one", [1]), ints("two", [2])], outputs=[info("y", None)]),
        ["node halves (Split): the size of its output 's0' is unknown"]),
    # structure
    "a non-standard domain": (
        lambda: model(nodes(relu1=helper.make_node("Relu", ["c"], ["r"], name="relu1", domain="com.evil"))),
        ["node relu1 (Relu): operator com.evil.Relu is not a standard ONNX operator"]),
    "an unknown operator": (
        lambda: model(nodes(relu1=helper.make_node("Rleu", ["c"], ["r"], name="relu1"))),
        ["node relu1 (Rleu): Rleu is not an ONNX operator at opset 17"]),
    "two nodes produce one name": (
        lambda: model(nodes(relu1=helper.make_node("Relu", ["c"], ["c"], name="relu1"))),
        ["node relu1 (Relu): its output 'c' is also produced by node conv1 (Conv)"]),
    "a second output nobody reads into a layer": (
        lambda: model(nodes(relu1=helper.make_node("Dropout", ["c"], ["r", "mask"], name="relu1"),
                            pool=helper.make_node("Mul", ["c", "mask"], ["p"], name="pool")), declare=True),
        ["node pool (Mul): its input 'mask' is output 1 of node relu1 (Dropout), which convaudit does not read"]),
}


@pytest.mark.parametrize("case", list(CRASHES))
def test_a_file_that_crashed_is_one_line_naming_the_node(tmp_path: Path, case: str) -> None:
    build, needles = CRASHES[case]
    refused(save(tmp_path, build()), *needles)


@pytest.mark.parametrize("metadata", ["{'a': 1}", "7", "[1, 2, 3]", "['', 2, 'x']", "[[1], {'x': 2}, None]",
                                      "[" * 500, "'" + "x" * 200_000 + "'", "__import__('os')"])
def test_malformed_module_path_metadata_is_ignored(tmp_path: Path, metadata: str) -> None:
    """Exporter metadata that is not a list of strings: the layer is named after its node instead."""
    proto = model()
    for node in proto.graph.node:
        node.metadata_props.add(key="pkg.torch.onnx.name_scopes", value=metadata)
        node.metadata_props.add(key="pkg.torch.onnx.class_hierarchy", value=metadata)
    result = cli("import", save(tmp_path, proto), "--flat")
    assert result.exit_code == 0, result.output
    assert "name: conv1," in result.stdout and "name: fc," in result.stdout


def test_module_paths_name_the_node_in_errors(tmp_path: Path) -> None:
    proto = model(nodes(conv1=conv(["x", "w", "b"], pads=[1, 1])), declare=True)
    proto.graph.node[0].metadata_props.add(key="pkg.torch.onnx.name_scopes", value="['', 'stem', 'stem.0', 'conv']")
    refused(save(tmp_path, proto), "node conv1 (Conv) in module stem.0: pads [1, 1]")


# ------------------------------------------------------------------ files that were read, wrongly (exit 0)

def branch(op: str) -> Any:
    """An If (or Loop) whose subgraph holds the network's conv: the conv must not be dropped from the count."""
    inner = helper.make_graph([conv(["x", "w", "b"], name="hidden_conv")], "then", [], [info("c", None)])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["c0"], name="id")], "else", [],
                              [info("c0", None)])
    if op == "If":
        control = helper.make_node("If", ["cond"], ["c"], name="choose", then_branch=inner, else_branch=other)
        extra = [helper.make_tensor("cond", TensorProto.BOOL, [], [True])]
    else:
        body = helper.make_graph([helper.make_node("Identity", ["keep"], ["keep_out"], name="keep"),
                                  conv(["x", "w", "b"], name="hidden_conv")], "body",
                                 [info("i", []), helper.make_tensor_value_info("keep", TensorProto.BOOL, [])],
                                 [helper.make_tensor_value_info("keep_out", TensorProto.BOOL, []), info("c", None)])
        control = helper.make_node("Loop", ["trips", ""], ["c"], name="choose", body=body)
        extra = [ints("trips", [1], [])]
    return model(nodes(conv1=control), weights() + extra)


WRONG = {
    "a cycle": (
        lambda: model([helper.make_node("Relu", ["x"], ["a"], name="start"),
                       helper.make_node("Add", ["a", "c"], ["s"], name="join"),
                       helper.make_node("Relu", ["s"], ["c"], name="back"),
                       helper.make_node("GlobalAveragePool", ["c"], ["y"], name="pool")], [],
                      outputs=[info("y", None)]),
        ["the graph has a cycle: node back (Relu) → node join (Add) → node back (Relu)"]),
    "a node that reads its own output": (
        lambda: model(nodes(relu1=helper.make_node("Add", ["c", "r"], ["r"], name="relu1"))),
        ["the graph has a cycle: node relu1 (Add) → node relu1 (Add)"]),
    "an output nothing produces": (
        lambda: model(outputs=[info("y", SHAPES["y"]), info("ghost", [1, 4])]),
        ["graph output 'ghost' is produced by no node, graph input or initializer"]),
    "an If whose branch holds the conv": (
        lambda: branch("If"),
        ["node choose (If): control flow is not counted: its subgraphs else_branch, then_branch hold 2 nodes "
         "(Conv, Identity), which would be left out of the count"]),
    "a Loop whose body holds the conv": (
        lambda: branch("Loop"),
        ["node choose (Loop): control flow is not counted: its subgraph body holds 2 nodes"]),
    "symbolic height and width": (
        lambda: model(input_shape=["N", 3, "H", "W"], outputs=[info("y", ["N", 5])]),
        ["input x: its height 'H' and width 'W' are symbolic; pass --input HxW to read the graph at that size"]),
    "an unnamed symbolic width": (
        lambda: model(input_shape=[1, 3, 8, None]),
        ["input x: its width '?' is symbolic; pass --input"]),
    "symbolic channels": (
        lambda: model(input_shape=[1, "C", 8, 8]), ["input x: its channel dimension is symbolic ('C')"]),
    "a dead branch": (
        lambda: model(nodes(extra=conv(["r", "w2"], name="unused", output="side", pads=[0, 0, 0, 0])),
                      weights(w2=floats("w2", [4, 4, 1, 1]))),
        ["node unused (Conv): its output is read by no node and is no graph output (a dead branch)"]),
}

@pytest.mark.parametrize("case", list(WRONG))
def test_a_file_read_wrongly_is_now_refused(tmp_path: Path, case: str) -> None:
    build, needles = WRONG[case]
    refused(save(tmp_path, build()), *needles)


def test_shapes_the_file_declares_wrongly_are_inferred_again(tmp_path: Path) -> None:
    """Declared shapes that contradict inference are the file's mistake: they are dropped and inferred anew."""
    proto = model()
    proto.graph.value_info.extend([info("c", [1, 4, 3, 3])])
    proto.graph.output[0].CopyFrom(info("y", [7, 9]))
    result = cli("summary", save(tmp_path, proto), "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["layers"][0]["output_shape"] == [4, 8, 8]


def test_a_split_piece_nothing_reads_is_no_layer(tmp_path: Path) -> None:
    """torch.split(x, 2)[0]: the exporter writes every piece; the unread one is neither a layer nor dead code."""
    graph_nodes = [*nodes()[:2], helper.make_node("Split", ["r", "halves"], ["s0", "s1"], name="halves", axis=1),
                   helper.make_node("GlobalAveragePool", ["s0"], ["y"], name="pool")]
    proto = model(graph_nodes, weights(fw=None, fb=None) + [ints("halves", [2, 2])], outputs=[info("y", None)])
    result = cli("summary", save(tmp_path, proto), "--format", "json")
    assert result.exit_code == 0, result.output
    layers = json.loads(result.stdout)["layers"]
    assert [layer["type"] for layer in layers] == ["conv", "relu", "slice", "globalavgpool"]
    assert layers[2]["output_shape"] == [2, 8, 8]


def test_a_pool_without_strides_steps_by_one(tmp_path: Path) -> None:
    """ONNX's strides default to 1 (torch's pools default to the kernel): MaxPool 3×3 over 8×8 gives 6×6."""
    pool = helper.make_node("MaxPool", ["c"], ["r"], name="relu1", kernel_shape=[3, 3])
    result = cli("summary", save(tmp_path, model(nodes(relu1=pool))), "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["layers"][1]["output_shape"] == [4, 8 - 3 + 1, 8 - 3 + 1]


def test_symbolic_height_and_width_are_read_at_input(tmp_path: Path) -> None:
    """--input fills the symbols, and shape inference the rest; a symbolic batch counts as 1 and says so."""
    path = save(tmp_path, model(input_shape=["N", 3, "H", "W"], outputs=[info("y", ["N", 5])]))
    result = cli("summary", path, "--input", "16x12", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["input"] == [3, 16, 12]
    # conv: 4 × 3 × 3·3 at each of 16·12 positions (pad 1 keeps the size); fc 5 × 4
    assert data["totals"]["macs"] == 4 * 3 * 9 * 16 * 12 + 5 * 4
    spec = cli("import", path, "--input", "16x12")
    assert spec.exit_code == 0, spec.output
    assert "# the file's batch dimension is symbolic ('N'): counted as 1" in spec.stdout
    fixed = cli("summary", save(tmp_path, model(), "fixed.onnx"), "--input", "16")
    assert fixed.exit_code == 2 and "the file was exported at 8×8" in fixed.stderr


def test_an_input_of_a_billion_is_counted_exactly_and_allocates_nothing(tmp_path: Path) -> None:
    """Shapes are only inferred, never allocated: 10^9 × 10^9 feature maps count exactly, and a flatten past
    2^63 elements (16 · 10^18 > 2^63 ≈ 9.2 · 10^18) is refused, not wrapped."""
    path = save(tmp_path, model(input_shape=["N", 3, "H", "W"], outputs=[info("y", ["N", 5])]))
    side = 10**9
    for command in ("summary", "import"):
        result = cli(command, path, "--input", str(side), *(["--format", "json"] if command == "summary" else []))
        assert result.exit_code == 0, result.output
    data = json.loads(cli("summary", path, "--input", str(side), "--format", "json").stdout)
    assert data["totals"]["macs"] == 4 * 3 * 9 * side * side + 5 * 4
    wide = model([conv(["x", "w"]), helper.make_node("Flatten", ["c"], ["y"], name="flat")],
                 [floats("w", [16, 3, 3, 3])], input_shape=["N", 3, "H", "W"], outputs=[info("y", None)])
    refused(save(tmp_path, wide, "wide.onnx"), "node flat (Flatten): shape inference gave no shape for 'y'",
            extra=("--input", str(side)))


# ------------------------------------------------------------------ bounds: refused from the header

def test_a_graph_over_the_node_limit_is_refused_from_its_header(tmp_path: Path) -> None:
    from convaudit.importers.onnx_bounds import MAX_NODES

    chain = [helper.make_node("Relu", [f"t{i}"], [f"t{i + 1}"]) for i in range(MAX_NODES + 1)]
    graph = helper.make_graph(chain, "long", [info("t0", [1, 3, 8, 8])], [info(f"t{MAX_NODES + 1}", None)])
    refused(save(tmp_path, helper.make_model(graph)), "refused: the graph has more than 20,000 nodes")
    # the same nodes inside one If's branch count too: the file is refused before its subgraphs are parsed
    inner = helper.make_graph(chain, "then", [], [info(f"t{MAX_NODES + 1}", None)])
    control = helper.make_node("If", ["cond"], ["y"], then_branch=inner, else_branch=inner)
    graph = helper.make_graph([control], "hidden", [info("t0", [1, 3, 8, 8])], [info("y", None)],
                              [helper.make_tensor("cond", TensorProto.BOOL, [], [True])])
    refused(save(tmp_path, helper.make_model(graph), "nested.onnx"), "more than 20,000 nodes (subgraphs included)")


def test_subgraphs_nested_deeply_are_refused_from_the_header(tmp_path: Path) -> None:
    leaf = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "leaf", [], [info("y", None)])
    graph = leaf
    for level in range(20):  # protobuf itself stops near 32 levels (100 nested messages)
        control = helper.make_node("If", ["cond"], ["y"], name=f"if{level}", then_branch=graph, else_branch=leaf)
        graph = helper.make_graph([control], f"g{level}", [], [info("y", None)])
    graph.input.extend([info("x", [1, 3, 8, 8])])
    graph.initializer.extend([helper.make_tensor("cond", TensorProto.BOOL, [], [True])])
    refused(save(tmp_path, helper.make_model(graph)), "refused: subgraphs nest more than 16 deep")


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    from convaudit.importers.onnx_bounds import MAX_FILE_BYTES

    path = tmp_path / "huge.onnx"
    with path.open("wb") as file:
        file.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk used, and never read
    refused(str(path), f"refused: the file is {MAX_FILE_BYTES + 1:,} bytes")


@pytest.mark.parametrize(("content", "needle"), [
    (b"", "refused: the file is empty"),
    (b"\xff" * 40, "not a readable ONNX model"),
    (b"\x3a\x05\x0a\x03", "not a readable ONNX model (a field runs past its message"),  # graph of 5 bytes, 3 given
    (b"\x3a" + b"\x80" * 12, "not a readable ONNX model (a number longer than 10 bytes"),
])
def test_bytes_that_are_not_onnx(tmp_path: Path, content: bytes, needle: str) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    refused(str(path), needle)


# ------------------------------------------------------------------ external data: checked, never trusted

@pytest.mark.parametrize(("location", "size", "needle"), [
    ("weights.bin", 4 * 108, None),
    ("weights.bin", 4 * 100, "declares 108 elements (432 bytes) but its external data 'weights.bin' holds 400 bytes"),
    ("missing.bin", 0, "its external data file 'missing.bin' is missing"),
    ("../weights.bin", 4 * 108, "its external data file '../weights.bin' is missing or outside the model's folder"),
    ("/etc/passwd", 0, "its external data file '/etc/passwd' is missing or outside"),
    ("link.bin", 0, "its external data file 'link.bin' is missing or outside"),  # a symlink out of the folder
])
def test_external_data_is_checked_against_its_file(tmp_path: Path, location: str, size: int,
                                                   needle: str | None) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"\0" * size)
    (tmp_path / "weights.bin").write_bytes(b"\0" * 4 * 108)
    (folder / "link.bin").symlink_to(tmp_path / "weights.bin")
    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, 3, 3, 3],
                         data_location=TensorProto.EXTERNAL)
    weight.external_data.add(key="location", value=location)
    path = save(folder, model(initializers=weights(w=weight)))
    if needle is None:
        result = cli("summary", path, "--format", "json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["totals"]["params"] == 112 + 25
    else:
        refused(path, "initializer 'w' (read by node conv1 (Conv))", needle)


# ------------------------------------------------------------------ mutations of a valid file

def test_the_exported_like_file_reads(tmp_path: Path) -> None:
    result = cli("summary", save(tmp_path, exported_like()), "--format", "json")
    assert result.exit_code == 0, result.output
    # stem 8·3·9 + 8, bn 2·8 (plus 2·8 buffers), branch conv 4·4, fc 5·8 + 5; the clip is a ReLU6
    assert json.loads(result.stdout)["totals"]["params"] == 8 * 3 * 9 + 8 + 2 * 8 + 4 * 4 + 5 * 8 + 5


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(changes=st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 50), st.integers(0, 50),
                                  st.integers(-2, 9)), min_size=1, max_size=3))
def test_a_mutated_file_gives_a_result_or_one_line(tmp_path: Path, changes: list[tuple[str, int, int, int]]) -> None:
    proto = exported_like()
    for change in changes:
        mutate(proto, *change)
    path = save(tmp_path, proto, "mutated.onnx")
    began = time.monotonic()
    result = cli("summary", path, "--format", "json")
    assert time.monotonic() - began < 30, changes  # a hang guard, as for mutated specs: each run takes ~0.2 s
    assert result.exit_code in (0, 1, 2), (changes, result.exit_code, result.output)
    if result.exit_code == 0:
        assert json.loads(result.stdout)["totals"]["params"] >= 0
    else:
        line = result.stderr.strip()
        assert line.startswith("error: ") and "\n" not in line and "internal error" not in line, (changes, line)
        assert result.stdout == ""
