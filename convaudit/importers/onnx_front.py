"""Read an .onnx file into convaudit layers with the `onnx` package: no runtime, no torch.

Shapes come from `onnx.shape_inference.infer_shapes`; each node goes through one entry of `table.ONNX`.
Files written by torch.onnx.export carry each node's module path (`pkg.torch.onnx.name_scopes`), so layers
get the same names as a PyTorch import (`layer1.0.conv1`); other files name layers after their nodes.
The file is read at the input size it was exported with; a symbolic batch dimension counts as 1.
"""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path
from typing import Any

from convaudit.errors import SpecError
from convaudit.importers.graph import Imported, Layer
from convaudit.importers.table import ONNX, Alias, Call, Unsupported, Value
from convaudit.importers.tidy import fuse_shuffles, name_layers

BUFFER_INPUTS = {"BatchNormalization": (3, 4)}  # running mean and variance: buffers, not parameters
INTEGER_TYPES = {2, 3, 4, 5, 6, 7, 9, 12, 13}  # onnx.TensorProto's (u)int8 … (u)int64 and bool


def load_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise SpecError("reading .onnx files needs the onnx package: pip install 'convaudit[torch]' "
                        "(or pip install onnx)") from None
    return onnx


def dims(type_proto: Any) -> tuple[int, ...] | None:
    tensor = type_proto.tensor_type
    if not tensor.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else 1 for d in tensor.shape.dim)


def scopes_of(node: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(module paths, class names) from the exporter's metadata, outermost first, root and op left out."""
    meta = {p.key: p.value for p in node.metadata_props}
    try:
        scopes = ast.literal_eval(meta.get("pkg.torch.onnx.name_scopes", "[]"))
        classes = ast.literal_eval(meta.get("pkg.torch.onnx.class_hierarchy", "[]"))
    except (ValueError, SyntaxError):
        return (), ()
    if len(scopes) < 2:
        return (), ()
    paths = tuple(s for s in scopes[1:-1] if s)
    kinds = tuple(str(c).rsplit(".", 1)[-1] for c in classes[1:1 + len(paths)])
    return paths, kinds


def read_onnx(path: Path, input_size: tuple[int, int] | None = None) -> Imported:
    onnx = load_onnx()
    from onnx import numpy_helper

    if not path.is_file():
        raise SpecError(f"no such file: {path}")
    try:
        model = onnx.load(str(path))
        model = onnx.shape_inference.infer_shapes(model)
    except Exception as error:  # onnx raises DecodeError, ValidationError, …
        raise SpecError(f"{path}: not a readable ONNX model ({type(error).__name__}: "
                        f"{(str(error).splitlines() or [''])[0][:200]})") from None
    graph = model.graph
    shapes: dict[str, tuple[int, ...]] = {}
    for info in list(graph.value_info) + list(graph.input) + list(graph.output):
        shape = dims(info.type)
        if shape is not None:
            shapes[info.name] = shape
    values: dict[str, Value] = {}
    numel: dict[str, int] = {}
    for tensor in graph.initializer:
        count = math.prod(tensor.dims)
        if tensor.data_type in INTEGER_TYPES:  # axes, shapes, indices: constants, not weights
            array = numpy_helper.to_array(tensor)
            values[tensor.name] = Value("const", tuple(tensor.dims),
                                        constant=array.tolist() if array.size <= 64 else None)
            continue
        numel[tensor.name] = count
        array = numpy_helper.to_array(tensor) if count <= 16 else None
        values[tensor.name] = Value("param", tuple(tensor.dims), names=(tensor.name,), numel=count,
                                    constant=array.tolist() if array is not None else None)
    inputs = [i for i in graph.input if i.name not in values]
    if len(inputs) != 1 or len(shapes.get(inputs[0].name, ())) != 4:
        raise Unsupported(f"{path}: convaudit reads models with one [N, C, H, W] image input")
    input_shape = shapes[inputs[0].name]
    values[inputs[0].name] = Value("act", input_shape, layer="input")
    if input_size is not None and tuple(input_size) != input_shape[2:]:
        raise Unsupported(f"{path}: the file was exported at {input_shape[2]}×{input_shape[3]}; an ONNX graph "
                          "is read at its own size (export it again, or pass --input to the analysis instead)")

    layers: list[Layer] = []
    used: set[str] = set()
    buffers: set[str] = set()
    all_scopes: set[str] = set()
    modules: dict[str, str] = {}
    pending: list[tuple[Layer, tuple[str, ...]]] = []
    for node in graph.node:
        if node.op_type == "Constant":
            values[node.output[0]] = Value("const", constant=_constant(node, numpy_helper))
            continue
        if node.op_type in ("Shape", "Size", "ConstantOfShape"):  # sizes of things, never data
            values[node.output[0]] = Value("const")
            continue
        if node.op_type == "CastLike":  # input 0 cast to input 1's type: input 1 only lends its type
            values[node.output[0]] = values.get(node.input[0], Value("const"))
            continue
        operands = [values[name] for name in node.input if name and name in values]
        attrs = {a.name: _attribute(onnx, a) for a in node.attribute}
        out = shapes.get(node.output[0]) if node.output else None
        scopes, kinds = scopes_of(node)
        where = f"{scopes[-1] if scopes else node.name or node.op_type} ({node.op_type})"
        if not any(v.kind in ("act", "parts") for v in operands):  # shape arithmetic and parameter-only work
            if operands and all(v.kind == "const" for v in operands):
                values[node.output[0]] = Value("const", constant=_fold_constant(node.op_type, operands))
                continue
            folded = [v for v in operands if v.kind == "param"]
            for output in node.output:
                values[output] = Value("param", out or (), names=tuple(n for v in folded for n in v.names),
                                       numel=sum(v.numel for v in folded),
                                       constant=folded[0].constant if len(folded) == 1 else None) \
                    if folded else Value("const", out or ())
            continue
        if node.op_type == "SplitToSequence":
            values[node.output[0]] = _sequence(operands, attrs, where)
            continue
        if node.op_type == "SequenceAt":
            sequence, index = operands[0], operands[1].constant if len(operands) > 1 else None
            if sequence.kind != "parts" or not isinstance(index, int):
                raise Unsupported(f"{path}: {where}: SequenceAt of something other than a channel split")
            start, end = sequence.parts[index]
            layer = Layer(name=f"#{len(layers)}", type="slice", params={"start": start, "end": end},
                          inputs=(sequence.source.layer,), scopes=scopes,  # type: ignore[union-attr]
                          shape=tuple(shapes[node.output[0]][1:]), op="SequenceAt")
            layers.append(layer)
            pending.append((layer, scopes))
            all_scopes.update(scopes)
            values[node.output[0]] = Value("act", shapes[node.output[0]], layer=layer.name)
            continue
        if node.op_type == "Split":
            _split(node, operands, attrs, values, shapes, layers, scopes, where)
            continue
        entry = ONNX.get(node.op_type)
        if entry is None:
            raise Unsupported(f"{path}: {where}: ONNX operator {node.op_type} has no convaudit layer type")
        if out is None:
            raise Unsupported(f"{path}: {where}: shape inference gave no shape for {node.output[0]}")
        result = entry(Call(node.op_type, operands, attrs, out, where))
        if isinstance(result, Alias):
            values[node.output[0]] = result.value
            continue
        weights = buffer_count = 0
        for index, name in enumerate(node.input):
            value = values.get(name)
            if value is None or value.kind != "param":
                continue
            for param in value.names:
                if param in used:
                    continue
                used.add(param)
                if index in BUFFER_INPUTS.get(node.op_type, ()):
                    buffers.add(param)
                    buffer_count += numel[param]
                else:
                    weights += numel[param]
        all_scopes.update(scopes)
        modules.update(zip(scopes, kinds, strict=False))
        made_list = [result, *result.extra]
        previous = [v.layer for v in (result.inputs if result.inputs is not None else
                                      [v for v in operands if v.kind == "act"][:1])]
        for index, piece in enumerate(made_list):
            shape = out if index == len(made_list) - 1 else (*out, 1, 1)
            layer = Layer(name="", type=piece.type, params=piece.params, inputs=tuple(previous), scopes=scopes,
                          shape=tuple(shape[1:]), weights=weights if index == 0 else 0,
                          buffers=buffer_count if index == 0 else 0, op=node.op_type,
                          named_after=piece.named_after)
            layer.name = f"#{len(layers)}"
            if not scopes and not any(p.key == "pkg.torch.onnx.name_scopes" for p in node.metadata_props):
                layer.named_after = layer.named_after or _node_name(node, piece.type)  # no module paths
            layers.append(layer)
            pending.append((layer, scopes))
            previous = [layer.name]
        values[node.output[0]] = Value("act", out, layer=layers[-1].name)
    for layer, scopes in pending:
        layer.leaf = bool(scopes) and not any(s.startswith(scopes[-1] + ".") for s in all_scopes) \
            and not layer.named_after
    outputs = tuple(values[o.name].layer for o in graph.output if values.get(o.name, Value("const")).kind == "act")
    layers, outputs = fuse_shuffles(layers, outputs)
    layers, outputs = name_layers(layers, outputs)
    return Imported(name=re.sub(r"\W", "_", path.stem) or "model", input=input_shape[1:],  # type: ignore[arg-type]
                    layers=layers, outputs=outputs, origin={"from": str(path)}, modules=modules,
                    source=f"{path.name}, read with onnx (shape inference)",
                    graph_params=sum(numel[p] for p in used - buffers))


def _node_name(node: Any, type_name: str) -> str:
    name = re.sub(r"[^\w./-]", "_", node.name or "").strip("_")
    return name or type_name


def _attribute(onnx: Any, attribute: Any) -> Any:
    value = onnx.helper.get_attribute_value(attribute)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
    return value


def _constant(node: Any, numpy_helper: Any) -> Any:
    for attribute in node.attribute:
        if attribute.name == "value":
            array = numpy_helper.to_array(attribute.t)
            return array.tolist() if array.size <= 64 else None
        if attribute.name in ("value_int", "value_float"):
            return attribute.i if attribute.name == "value_int" else attribute.f
        if attribute.name == "value_ints":
            return list(attribute.ints)
    return None


def _split(node: Any, operands: list[Value], attrs: dict[str, Any], values: dict[str, Value],
           shapes: dict[str, tuple[int, ...]], layers: list[Layer], scopes: tuple[str, ...], where: str) -> None:
    """Split along channels: one `slice` layer per output that is used."""
    x = operands[0]
    axis = attrs.get("axis", 0)
    if (axis + len(x.shape) if axis < 0 else axis) != 1:
        raise Unsupported(f"{where}: Split along axis {axis}; convaudit slices channels")
    start = 0
    for output in node.output:
        size = shapes.get(output, (0, 0))[1]
        layer = Layer(name=f"#{len(layers)}", type="slice", params={"start": start, "end": start + size},
                      inputs=(x.layer,), scopes=scopes, shape=shapes[output][1:], op="Split")
        layers.append(layer)
        values[output] = Value("act", shapes[output], layer=layer.name)
        start += size


def _fold_constant(op: str, operands: list[Value]) -> Any:
    """The value of shape arithmetic on constants, where it is a plain pass-through or concatenation."""
    first = operands[0].constant
    if op in ("Reshape", "Cast", "Identity", "Squeeze", "Unsqueeze", "Flatten"):
        return _flat(first) if isinstance(first, list) else first
    if op == "Concat" and all(v.constant is not None for v in operands):
        return [item for v in operands for item in (_flat(v.constant) if isinstance(v.constant, list)
                                                    else [v.constant])]
    return None


def _flat(value: Any) -> list[Any]:
    return [item for part in value for item in (_flat(part) if isinstance(part, list) else [part])]


def _sequence(operands: list[Value], attrs: dict[str, Any], where: str) -> Value:
    """SplitToSequence along channels (torch's chunk and split): the channel range of each piece."""
    x = operands[0]
    axis = attrs.get("axis", 0)
    if (axis + len(x.shape) if axis < 0 else axis) != 1 or not attrs.get("keepdims", 1):
        raise Unsupported(f"{where}: SplitToSequence other than along channels")
    total = x.shape[1]
    split = operands[1].constant if len(operands) > 1 else 1
    if isinstance(split, list):
        sizes = [int(s) for s in _flat(split)]
    elif isinstance(split, int) and split > 0:
        sizes = [min(split, total - start) for start in range(0, total, split)]
    else:
        raise Unsupported(f"{where}: SplitToSequence with split sizes that are not constants")
    parts, start = [], 0
    for size in sizes:
        parts.append((start, start + size))
        start += size
    return Value("parts", x.shape, parts=tuple(parts), source=x)
