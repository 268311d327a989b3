"""ONNX files for the tests, built with onnx.helper: a small valid network to break one piece at a time, a
file shaped like an exporter's, and the mutations a careless tool or a hostile hand might make to it.

Every tensor is written with raw bytes that hold exactly what its dims declare, unless a test says otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

OPSET = 17


# ------------------------------------------------------------------ the small network, piece by piece

def floats(name: str, shape: list[int], value: float = 0.5) -> Any:
    """A float32 initializer whose raw bytes hold exactly the elements its dims declare."""
    return helper.make_tensor(name, TensorProto.FLOAT, shape, np.full(shape, value, np.float32).tobytes(), raw=True)


def ints(name: str, values: list[int], shape: list[int] | None = None) -> Any:
    data = np.array(values, np.int64)
    return helper.make_tensor(name, TensorProto.INT64, shape if shape is not None else [len(values)],
                              data.tobytes(), raw=True)


def info(name: str, shape: list[Any] | None) -> Any:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def conv(inputs: list[str], name: str = "conv1", output: str = "c", **attributes: Any) -> Any:
    return helper.make_node("Conv", inputs, [output], name=name, **({"pads": [1, 1, 1, 1]} | attributes))


# The valid network every case starts from: x [1, 3, 8, 8] → conv1 (4 filters, 3×3, pad 1) → relu1 → pool
# (global average) → flat → fc (Gemm, 5 outputs).
SHAPES = {"c": [1, 4, 8, 8], "r": [1, 4, 8, 8], "p": [1, 4, 1, 1], "f": [1, 4], "y": [1, 5]}


def nodes(**replaced: Any) -> list[Any]:
    """The valid network's nodes, with some replaced by name (None drops one)."""
    made = {"conv1": conv(["x", "w", "b"]),
            "relu1": helper.make_node("Relu", ["c"], ["r"], name="relu1"),
            "pool": helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
            "flat": helper.make_node("Flatten", ["p"], ["f"], name="flat"),
            "fc": helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1)}
    made.update(replaced)
    return [node for node in made.values() if node is not None]


def weights(**replaced: Any) -> list[Any]:
    made = {"w": floats("w", [4, 3, 3, 3]), "b": floats("b", [4]), "fw": floats("fw", [5, 4]),
            "fb": floats("fb", [5])}
    made.update(replaced)
    return [tensor for tensor in made.values() if tensor is not None]


def model(graph_nodes: list[Any] | None = None, initializers: list[Any] | None = None,
          input_shape: list[Any] | None = None, outputs: list[Any] | None = None, declare: bool = False) -> Any:
    """The network as a ModelProto. `declare` writes every intermediate shape into value_info, as a file from
    another tool may: shape inference then keeps it where it cannot infer one, and the node reaches our checks."""
    value_info = [info(name, shape) for name, shape in SHAPES.items() if name != "y"] if declare else []
    graph = helper.make_graph(nodes() if graph_nodes is None else graph_nodes, "net",
                              [info("x", input_shape or [1, 3, 8, 8])], outputs or [info("y", SHAPES["y"])],
                              weights() if initializers is None else initializers, value_info=value_info)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def save(tmp_path: Path, proto: Any, name: str = "net.onnx") -> str:
    path = tmp_path / name
    onnx.save(proto, str(path))
    return str(path)


def no_data(name: str, data_type: int, dims: list[int], **fields: Any) -> Any:
    """A tensor that declares `dims` and holds only `fields` (make_tensor would refuse to build it)."""
    return TensorProto(name=name, data_type=data_type, dims=dims, **fields)



# ------------------------------------------------------------------ a file shaped like an exporter's, and mutations

def exported_like() -> Any:
    """A valid file shaped like an exporter's (opset 18, as torch.onnx.export writes): module paths in metadata,
    Constant nodes for shapes and axes, batchnorm, a channel split and concatenation, a residual add, a ReLU6 as
    Clip. x [1, 3, 8, 8] → stem conv 8 → bn → clip(0, 6) → maxpool 2 → split 4 + 4 → conv 1×1 on one half →
    concat → add the pooled map → mean over H, W → reshape [1, 8] → fc 5."""
    def node(op: str, inputs: list[str], output: str, scope: str, **attributes: Any) -> Any:
        made = helper.make_node(op, inputs, [output], name=f"node_{output}", **attributes)
        made.metadata_props.add(key="pkg.torch.onnx.name_scopes", value=str(["", *scope.split("/"), output]))
        made.metadata_props.add(key="pkg.torch.onnx.class_hierarchy",
                                value=str(["Net", *["torch.nn.Module"] * len(scope.split("/")), op]))
        return made

    graph_nodes = [
        node("Conv", ["x", "w0", "b0"], "c0", "stem/stem.0", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        node("BatchNormalization", ["c0", "g", "beta", "mean", "var"], "n0", "stem/stem.1"),
        node("Clip", ["n0", "low", "high"], "r0", "stem/stem.2"),
        node("MaxPool", ["r0"], "m0", "pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Split", ["m0", "halves"], ["s0", "s1"], name="node_split", axis=1),
        node("Conv", ["s0", "w1"], "c1", "branch", kernel_shape=[1, 1]),
        node("Concat", ["c1", "s1"], "cat", "join", axis=1),
        node("Add", ["cat", "m0"], "sum", "join"),
        helper.make_node("Constant", [], ["axes"], name="node_axes", value=ints("", [2, 3])),
        node("ReduceMean", ["sum", "axes"], "gap", "head", keepdims=1),
        helper.make_node("Constant", [], ["shape"], name="node_shape", value=ints("", [1, 8])),
        node("Reshape", ["gap", "shape"], "flat", "head"),
        node("Gemm", ["flat", "fw", "fb"], "y", "fc", transB=1),
    ]
    initializers = [floats("w0", [8, 3, 3, 3]), floats("b0", [8]), floats("g", [8], 1.0), floats("beta", [8]),
                    floats("mean", [8]), floats("var", [8], 1.0), floats("low", [], 0.0), floats("high", [], 6.0),
                    ints("halves", [4, 4]), floats("w1", [4, 4, 1, 1]), floats("fw", [5, 8]), floats("fb", [5])]
    graph = helper.make_graph(graph_nodes, "exported", [info("x", [1, 3, 8, 8])], [info("y", [1, 5])],
                              initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


OPS = ["Relu", "Conv", "Gemm", "MatMul", "Split", "If", "SequenceAt", "Concat", "Add", "Reshape", "Identity",
       "Rleu", "Constant", "Shape"]
METADATA = ["{}", "7", "[1, 2]", "['', 3]", "[[", "['', 'a', 'a.b', 'op']", "None"]
KINDS = ["drop_input", "empty_input", "rewire", "drop_output", "rename_output", "drop_attribute", "change_ints",
         "change_int", "drop_initializer", "change_dims", "input_dim", "op_type", "metadata", "swap", "truncate_data",
         "drop_node", "graph_output", "constant"]


def mutate(proto: Any, kind: str, a: int, b: int, value: int) -> None:
    """One change a careless tool or a hostile hand might make; positions wrap around what is there."""
    graph = proto.graph
    nodes_, tensors = graph.node, graph.initializer
    node = nodes_[a % len(nodes_)] if len(nodes_) else None
    names = sorted({n for each in nodes_ for n in [*each.input, *each.output]} | {t.name for t in tensors}
                   | {"x", "nowhere"})
    if kind in ("drop_input", "empty_input", "rewire") and node is not None and len(node.input):
        position = b % len(node.input)
        if kind == "drop_input":
            del node.input[position]
        else:
            node.input[position] = "" if kind == "empty_input" else names[value % len(names)]
    elif kind in ("drop_output", "rename_output") and node is not None and len(node.output):
        if kind == "drop_output":
            del node.output[b % len(node.output)]
        else:
            node.output[b % len(node.output)] = names[value % len(names)]
    elif kind.startswith(("drop_attribute", "change_int")) and node is not None and len(node.attribute):
        attribute = node.attribute[b % len(node.attribute)]
        if kind == "drop_attribute":
            node.attribute.remove(attribute)
        elif kind == "change_ints" and attribute.type == onnx.AttributeProto.INTS:
            attribute.ints[:] = [value] * (b % 6)
        elif kind == "change_int" and attribute.type == onnx.AttributeProto.INT:
            attribute.i = value
    elif kind in ("drop_initializer", "change_dims", "truncate_data") and len(tensors):
        tensor = tensors[a % len(tensors)]
        if kind == "drop_initializer":
            tensors.remove(tensor)
        elif kind == "change_dims" and len(tensor.dims):
            tensor.dims[b % len(tensor.dims)] = value
        elif kind == "truncate_data":
            tensor.raw_data = tensor.raw_data[:b % (len(tensor.raw_data) + 1)]
    elif kind == "input_dim":
        dim = graph.input[0].type.tensor_type.shape.dim[b % 4]
        if value > 0:
            dim.dim_value = value
        else:
            dim.dim_param = "S"
    elif kind == "op_type" and node is not None:
        node.op_type = OPS[value % len(OPS)]
    elif kind == "metadata" and node is not None:
        for prop in node.metadata_props:
            prop.value = METADATA[(value + b) % len(METADATA)]
    elif kind == "swap" and len(nodes_) > 1:
        first, second = a % len(nodes_), b % len(nodes_)
        copy = onnx.NodeProto()
        copy.CopyFrom(nodes_[first])
        nodes_[first].CopyFrom(nodes_[second])
        nodes_[second].CopyFrom(copy)
    elif kind == "drop_node" and node is not None:
        nodes_.remove(node)
    elif kind == "graph_output":
        graph.output[0].name = names[value % len(names)]
    elif kind == "constant":  # a Constant's or a small initializer's value: another rank, other numbers
        small = [t for t in tensors if len(t.raw_data) <= 64]
        small += [a.t for each in nodes_ for a in each.attribute if a.name == "value"]
        if small:
            target = small[a % len(small)]
            shape = [[], [b % 4], [b % 3, 2]][value % 3]
            numbers = [(value + k) % 7 - 2 for k in range(int(np.prod(shape)))]
            target.CopyFrom(helper.make_tensor(target.name, [TensorProto.INT64, TensorProto.FLOAT][b % 2], shape,
                                               numbers))
