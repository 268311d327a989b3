"""Read an .onnx file into convaudit layers with the `onnx` package: no runtime, no torch.

Shapes come from `onnx.shape_inference.infer_shapes`; each node goes through one entry of `table.ONNX`.
Files written by torch.onnx.export carry each node's module path (`pkg.torch.onnx.name_scopes`), so layers
get the same names as a PyTorch import (`layer1.0.conv1`); other files name layers after their nodes.

The file is checked before anything is counted (`onnx_bounds`): its size and node count from the header,
every tensor's data against its declared size, every node against its operator's schema, the graph for
undefined inputs, cycles and unproduced outputs; control flow is refused. The graph is read at the input
size it was exported with; a symbolic batch dimension counts as 1 (the spec says so), and a symbolic height or
width needs --input. What cannot be counted stops the import with one line naming the node.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from convaudit.errors import SpecError
from convaudit.importers.graph import Imported, Layer
from convaudit.importers.onnx_bounds import (
    SMALL_TENSOR,
    STANDARD_DOMAINS,
    ModelFolder,
    check_node,
    check_operands,
    check_tensor,
    graph_order,
    scan_header,
    shown,
)
from convaudit.importers.operator_table import ONNX, Alias, Call, Unsupported, Value
from convaudit.importers.tidy import consumers, fuse_shuffles, name_layers

BUFFER_INPUTS = {"BatchNormalization": (3, 4)}  # running mean and variance: buffers, not parameters
SETTING_INPUTS = {"Clip": (1, 2)}  # bounds, stored as float initializers by some tools: settings, not weights
INTEGER_TYPES = {2, 3, 4, 5, 6, 7, 9, 12, 13}  # onnx.TensorProto's (u)int8 … (u)int64 and bool
NON_WEIGHTS = INTEGER_TYPES | {8}  # and strings: constants, never counted as parameters
SCOPES, CLASSES = "pkg.torch.onnx.name_scopes", "pkg.torch.onnx.class_hierarchy"
MAX_METADATA = 100_000  # characters of one metadata value worth parsing; longer ones are ignored
SPATIAL = ("height", "width")


def load_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise SpecError("reading .onnx files needs the onnx package: pip install 'convaudit[torch]' "
                        "(or pip install onnx)") from None
    return onnx


def dims(type_proto: Any) -> tuple[int, ...] | None:
    """A tensor's shape when every dimension is a number; None when any is symbolic or unknown."""
    tensor = type_proto.tensor_type
    if not tensor.HasField("shape") or not all(d.HasField("dim_value") for d in tensor.shape.dim):
        return None
    return tuple(d.dim_value for d in tensor.shape.dim)


def scopes_of(node: Any) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """(module paths, class names) from the exporter's metadata, outermost first, root and op left out.

    None where the node has no such metadata, or it is not a list of strings (a hostile or foreign file):
    the node is then named after itself."""
    meta = {p.key: p.value for p in node.metadata_props if p.key in (SCOPES, CLASSES)}
    if SCOPES not in meta:
        return None
    scopes, classes = _strings(meta[SCOPES]), _strings(meta.get(CLASSES, "[]"))
    if scopes is None:
        return None
    if len(scopes) < 2:
        return (), ()
    paths = tuple(s for s in scopes[1:-1] if s)
    kinds = tuple(c.rsplit(".", 1)[-1] for c in (classes or [])[1:1 + len(paths)])
    return paths, kinds


def _strings(text: str) -> list[str] | None:
    if len(text) > MAX_METADATA:
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return None
    return value


def node_label(node: Any, index: int, scopes: tuple[str, ...]) -> str:
    """'node conv1 (Conv)', with the module path where the exporter recorded one."""
    name = shown(node.name) if node.name else f"#{index}"
    module = f" in module {shown(scopes[-1])}" if scopes else ""
    return f"node {name} ({shown(node.op_type, 40)}){module}"


def read_onnx(path: Path, input_size: tuple[int, int] | None = None) -> Imported:
    if not path.is_file():
        raise SpecError(f"no such file: {path}")
    try:
        scan_header(path)  # before onnx is even imported: a file too large is refused in milliseconds
        return _read(load_onnx(), path, input_size)
    except Unsupported as error:  # every refusal names the file once, first
        raise Unsupported(f"{path}: {error.message}") from None


def _read(onnx: Any, path: Path, input_size: tuple[int, int] | None) -> Imported:
    try:
        model = onnx.load(str(path), load_external_data=False)  # external weights are checked, never read
    except Exception as error:  # onnx raises DecodeError, ValidationError, …
        raise Unsupported(f"not a readable ONNX model ({type(error).__name__}: "
                          f"{(str(error).splitlines() or [''])[0][:200]})") from None
    graph, folder = model.graph, ModelFolder(path.parent)
    opsets = [o.version for o in model.opset_import if o.domain in STANDARD_DOMAINS]
    if not opsets:
        raise Unsupported("the model declares no ai.onnx opset")
    if len(graph.sparse_initializer):
        raise Unsupported(f"sparse initializer {shown(graph.sparse_initializer[0].values.name)}: "
                          "convaudit does not read sparse tensors")
    scopes = [scopes_of(node) for node in graph.node]
    labels = [node_label(node, i, (scopes[i] or ((), ()))[0]) for i, node in enumerate(graph.node)]
    reader_of = {name: labels[i] for i in reversed(range(len(graph.node))) for name in graph.node[i].input}
    numel: dict[str, int] = {}
    for tensor in graph.initializer:
        read_by = f" (read by {reader_of[tensor.name]})" if tensor.name in reader_of else ""
        numel[tensor.name] = check_tensor(tensor, f"initializer {shown(tensor.name)!r}{read_by}", folder)
        if numel[tensor.name] > SMALL_TENSOR:  # inference needs only its dims: copy no weights into it
            tensor.ClearField("raw_data")
    attributes = [check_node(onnx, node, opsets[0], labels[i], folder) for i, node in enumerate(graph.node)]
    order = graph_order(list(graph.node), set(numel) | {i.name for i in graph.input},
                        [o.name for o in graph.output], labels)
    input_name, input_shape, notes = _fix_input(graph, set(numel), input_size)
    reader = _Reader(model.graph, _infer(onnx, model), numel, labels, scopes, attributes)
    reader.values[input_name] = Value("act", input_shape, layer="input")
    for index in order:
        reader.read(index)
    return reader.imported(path, input_shape, notes)


def _infer(onnx: Any, model: Any) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape that inference gives from the graph alone; where it gives none (a size an exporter
    computed at run time, such as ReduceMean's axes from a Reshape), the shape inference gives with the shapes
    the file declares. The file's own shapes never override an inferred one: they may be wrong."""
    bare = onnx.ModelProto()
    bare.CopyFrom(model)  # cheap: the weights' bytes are already dropped
    bare.graph.ClearField("value_info")
    for output in bare.graph.output:
        output.type.tensor_type.ClearField("shape")
    try:
        shapes = _known_shapes(onnx.shape_inference.infer_shapes(bare, data_prop=True).graph)
    except Exception as error:  # onnx.shape_inference.InferenceError, or a model protobuf cannot hold
        raise Unsupported(f"shape inference failed ({type(error).__name__}: "
                          f"{(str(error).splitlines() or [''])[0][:200]})") from None
    if all(name in shapes for node in model.graph.node for name in node.output if name):
        return shapes
    try:
        declared = _known_shapes(onnx.shape_inference.infer_shapes(model, data_prop=True).graph)
    except Exception:  # the file's shapes contradict inference: what inference alone gave stands
        return shapes
    return declared | shapes


def _known_shapes(graph: Any) -> dict[str, tuple[int, ...]]:
    found = {}
    for info in [*graph.value_info, *graph.output]:
        shape = dims(info.type)
        if shape is not None:
            found[info.name] = shape
    return found


def _fix_input(graph: Any, initializers: set[str], input_size: tuple[int, int] | None) \
        -> tuple[str, tuple[int, ...], list[str]]:
    """The one image input, its dimensions made numbers: a symbolic batch becomes 1; a symbolic height or width
    becomes --input's, and is refused without it. Written into the graph for shape inference, and wherever the
    file's own shapes name the same symbol; a dimension written as any other symbol is left for inference."""
    inputs = [i for i in graph.input if i.name not in initializers]
    tensor = inputs[0].type.tensor_type if len(inputs) == 1 else None
    if tensor is None or not tensor.HasField("shape") or len(tensor.shape.dim) != 4:
        raise Unsupported("convaudit reads models with one [N, C, H, W] image input")
    name, dim, notes = inputs[0].name, list(tensor.shape.dim), []
    symbol = [None if d.HasField("dim_value") else d.dim_param or "?" for d in dim]
    if symbol[1] is not None:
        raise Unsupported(f"input {shown(name)}: its channel dimension is symbolic ('{shown(symbol[1], 40)}'); "
                          "export the model with a fixed number of channels")
    open_axes = [f"{axis} '{shown(symbol[2 + i], 40)}'" for i, axis in enumerate(SPATIAL) if symbol[2 + i]]
    if open_axes and input_size is None:
        raise Unsupported(f"input {shown(name)}: its {' and '.join(open_axes)} {'are' if len(open_axes) > 1 else 'is'}"
                          " symbolic; pass --input HxW to read the graph at that size")
    if input_size is not None and any(s is None and d.dim_value != size
                                      for s, d, size in zip(symbol[2:], dim[2:], input_size, strict=True)):
        exported = "×".join(str(d.dim_value) if s is None else f"'{shown(s, 40)}'"
                            for s, d in zip(symbol[2:], dim[2:], strict=True))
        raise Unsupported(f"the file was exported at {exported}; an ONNX graph with a fixed size is read at that size "
                          "(export it again with a symbolic height and width, or pass --input to the analysis "
                          "instead)")
    given: dict[str, int] = {}
    if symbol[0] is not None:
        given[symbol[0]] = 1
        notes.append(f"the file's batch dimension is symbolic ('{shown(symbol[0], 40)}'): counted as 1")
    for axis, size in zip(symbol[2:], input_size or (), strict=False):
        if axis is not None and given.setdefault(axis, size) != size:
            raise Unsupported(f"input {shown(name)}: dimensions that share the symbol '{shown(axis, 40)}' would "
                              "take different sizes")
    if given:
        for info in [inputs[0], *graph.value_info, *graph.output]:
            for d in info.type.tensor_type.shape.dim:
                if d.HasField("dim_param"):
                    if d.dim_param in given:
                        d.dim_value = given[d.dim_param]
                    else:  # an expression of the symbols, such as 'floor(h/2)': inference computes it
                        d.ClearField("dim_param")
    if any(d.dim_value < 1 for d in dim):
        raise Unsupported(f"input {shown(name)}: dimensions {[d.dim_value for d in dim]}, each must be at least 1")
    return name, tuple(d.dim_value for d in dim), notes


class _Reader:
    """The walk over the nodes, in graph order: each node's value, and the layers it makes."""

    def __init__(self, graph: Any, shapes: dict[str, tuple[int, ...]], numel: dict[str, int], labels: list[str],
                 scopes: list[tuple[tuple[str, ...], tuple[str, ...]] | None], attributes: list[dict[str, Any]]):
        from onnx import numpy_helper

        self.graph, self.shapes, self.numpy_helper, self.numel = graph, shapes, numpy_helper, numel
        self.labels, self.scopes, self.attributes = labels, scopes, attributes
        self.producer = {name: index for index, node in enumerate(graph.node) for name in node.output if name}
        self.read_names = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
        self.label_of: dict[str, str] = {}  # layer name -> the node it came from
        self.values: dict[str, Value] = {}
        for tensor in graph.initializer:
            count = numel[tensor.name]
            small = self._array(tensor) if count <= SMALL_TENSOR else None
            if tensor.data_type in NON_WEIGHTS:  # axes, shapes, indices: constants, not weights
                self.values[tensor.name] = Value("const", tuple(tensor.dims), constant=small)
            else:
                self.values[tensor.name] = Value("param", tuple(tensor.dims), names=(tensor.name,), numel=count,
                                                 constant=small if count <= 16 else None)
        self.layers: list[Layer] = []
        self.used: set[str] = set()
        self.buffers: set[str] = set()
        self.all_scopes: set[str] = set()
        self.modules: dict[str, str] = {}
        self.pending: list[tuple[Layer, tuple[str, ...]]] = []

    def _array(self, tensor: Any) -> Any:
        """A small tensor's values as Python numbers: only ever called once its data holds what it declares."""
        try:
            return self.numpy_helper.to_array(tensor).tolist()
        except Exception:  # a data type numpy has no dtype for: its values stay unknown
            return None

    def inputs_of(self, index: int) -> list[Value | None]:
        node, found = self.graph.node[index], []
        for name in node.input:
            if not name:
                found.append(None)
            elif name in self.values:
                found.append(self.values[name])
            else:  # defined (graph_order checked), but as an output this reader does not give
                source = self.producer[name]
                raise Unsupported(f"{self.labels[index]}: its input {shown(name)!r} is output "
                                  f"{list(self.graph.node[source].output).index(name)} of "
                                  f"{self.labels[source]}, which convaudit does not read")
        return found

    def read(self, index: int) -> None:
        node, label = self.graph.node[index], self.labels[index]
        if node.op_type == "Constant":
            self.values[node.output[0]] = Value("const", constant=self._constant(index))
            return
        inputs = self.inputs_of(index)
        if node.op_type in ("Shape", "Size", "ConstantOfShape"):  # sizes of things, never data
            self.values[node.output[0]] = Value("const")
            return
        if node.op_type == "CastLike":  # input 0 cast to input 1's type: input 1 only lends its type
            self.values[node.output[0]] = inputs[0] or Value("const")
            return
        operands = [v for v in inputs if v is not None]
        attrs = self.attributes[index]
        out = self.shapes.get(node.output[0])
        scopes, kinds = self.scopes[index] or ((), ())
        if not any(v.kind in ("act", "parts") for v in operands):  # shape arithmetic and parameter-only work
            self._fold(node, operands, out)
            return
        if any(v.kind == "parts" for v in operands) and node.op_type != "SequenceAt":
            raise Unsupported(f"{label}: it reads a sequence; convaudit counts only SequenceAt of a channel split")
        if node.op_type == "SplitToSequence":
            self.values[node.output[0]] = _sequence(operands, attrs, label)
            return
        if node.op_type in ("SequenceAt", "Split"):
            self._slices(node, operands, attrs, label, scopes)
            return
        entry = ONNX.get(node.op_type)
        if entry is None:
            raise Unsupported(f"{label}: ONNX operator {shown(node.op_type)} has no convaudit layer type")
        if out is None:
            raise Unsupported(f"{label}: shape inference gave no shape for {shown(node.output[0])!r} "
                              "(a size computed at run time, one past 2^63, or inputs that do not fit)")
        check_operands(node.op_type, inputs, attrs, label)
        result = entry(Call(node.op_type, operands, attrs, out, label))
        if isinstance(result, Alias):
            self.values[node.output[0]] = result.value
            return
        weights = buffer_count = 0
        for position, name in enumerate(node.input):
            value = self.values.get(name)
            if value is None or value.kind != "param" or position in SETTING_INPUTS.get(node.op_type, ()):
                continue
            for param in value.names:
                if param in self.used:
                    continue
                self.used.add(param)
                if position in BUFFER_INPUTS.get(node.op_type, ()):
                    self.buffers.add(param)
                    buffer_count += self.numel[param]
                else:
                    weights += self.numel[param]
        self.all_scopes.update(scopes)
        self.modules.update(zip(scopes, kinds, strict=False))
        made_list = [result, *result.extra]
        previous = [v.layer for v in (result.inputs if result.inputs is not None else
                                      [v for v in operands if v.kind == "act"][:1])]
        for position, piece in enumerate(made_list):
            shape = out if position == len(made_list) - 1 else (*out, 1, 1)
            layer = Layer(name=f"#{len(self.layers)}", type=piece.type, params=piece.params, inputs=tuple(previous),
                          scopes=scopes, shape=tuple(shape[1:]), weights=weights if position == 0 else 0,
                          buffers=buffer_count if position == 0 else 0, op=node.op_type,
                          named_after=piece.named_after)
            if self.scopes[index] is None:  # no module paths: named after the node
                layer.named_after = layer.named_after or _node_name(node, piece.type)
            self._add(layer, scopes, label)
            previous = [layer.name]
        self.values[node.output[0]] = Value("act", out, layer=self.layers[-1].name)

    def _fold(self, node: Any, operands: list[Value], out: tuple[int, ...] | None) -> None:
        """A node that reads no activation: constants stay constants, parameter work stays the parameters'."""
        if operands and all(v.kind == "const" for v in operands):
            self.values[node.output[0]] = Value("const", constant=_fold_constant(node.op_type, operands))
            return
        folded = [v for v in operands if v.kind == "param"]
        for output in node.output:
            self.values[output] = Value("param", out or (), names=tuple(n for v in folded for n in v.names),
                                        numel=sum(v.numel for v in folded),
                                        constant=folded[0].constant if len(folded) == 1 else None) \
                if folded else Value("const", out or ())

    def _slices(self, node: Any, operands: list[Value], attrs: dict[str, Any], label: str,
                scopes: tuple[str, ...]) -> None:
        """Channel ranges as `slice` layers: one per Split output, or the SequenceAt of a SplitToSequence."""
        if node.op_type == "SequenceAt":
            sequence, index = operands[0], operands[1].constant if len(operands) > 1 else None
            if sequence.kind != "parts" or isinstance(index, bool) or not isinstance(index, int):
                raise Unsupported(f"{label}: SequenceAt of something other than a channel split, or at a "
                                  "position that is not a constant")
            if not -len(sequence.parts) <= index < len(sequence.parts):
                raise Unsupported(f"{label}: SequenceAt position {index} of a sequence of "
                                  f"{len(sequence.parts)} parts")
            pieces, source = [(node.output[0], *sequence.parts[index])], sequence.source
        else:
            source = operands[0]
            axis = attrs.get("axis", 0)
            if source.kind != "act" or (axis + len(source.shape) if axis < 0 else axis) != 1:
                raise Unsupported(f"{label}: Split along axis {axis}; convaudit slices channels")
            pieces, start = [], 0
            for output in node.output:
                shape = self.shapes.get(output)
                if shape is None or len(shape) != len(source.shape):
                    raise Unsupported(f"{label}: the size of its output {shown(output)!r} is unknown (split sizes "
                                      "computed at run time are not counted)")
                if output in self.read_names:  # a piece nothing reads is no layer
                    pieces.append((output, start, start + shape[1]))
                start += shape[1]
            if start != source.shape[1]:
                raise Unsupported(f"{label}: its outputs hold {start} channels of {source.shape[1]}")
        for output, start, end in pieces:
            shape = self.shapes.get(output)
            if shape is None:
                raise Unsupported(f"{label}: shape inference gave no shape for {shown(output)!r}")
            layer = Layer(name=f"#{len(self.layers)}", type="slice", params={"start": start, "end": end},
                          inputs=(source.layer,), scopes=scopes, shape=shape[1:],  # type: ignore[union-attr]
                          op=node.op_type)
            self._add(layer, scopes, label)
            self.values[output] = Value("act", shape, layer=layer.name)

    def _add(self, layer: Layer, scopes: tuple[str, ...], label: str) -> None:
        self.label_of[layer.name] = label
        self.layers.append(layer)
        self.pending.append((layer, scopes))
        self.all_scopes.update(scopes)

    def _constant(self, index: int) -> Any:
        value = self.attributes[index]
        if "value" in value:
            tensor = value["value"]
            return self._array(tensor) if _count(tensor) <= SMALL_TENSOR else None
        for name in ("value_int", "value_float", "value_ints"):
            if name in value:
                return value[name]
        return None

    def imported(self, path: Path, input_shape: tuple[int, ...], notes: list[str]) -> Imported:
        parents = {scope[:i] for scope in self.all_scopes for i, ch in enumerate(scope) if ch == "."}
        for layer, scopes in self.pending:  # a leaf: a module path no other path extends ("a.b" extends "a")
            layer.leaf = bool(scopes) and scopes[-1] not in parents and not layer.named_after
        outputs = tuple(self.values[o.name].layer for o in self.graph.output
                        if self.values.get(o.name, Value("const")).kind == "act")
        if not outputs:
            raise Unsupported("no graph output depends on the network's input")
        read = consumers(self.layers, outputs)
        dead = next((layer for layer in self.layers if layer.name not in read), None)
        if dead is not None:
            raise Unsupported(f"{self.label_of[dead.name]}: its output is read by no node and is no graph output "
                              "(a dead branch); convaudit counts graphs whose every layer feeds an output")
        layers, outputs = fuse_shuffles(self.layers, outputs)
        layers, outputs = name_layers(layers, outputs)
        return Imported(name=re.sub(r"\W", "_", path.stem) or "model",
                        input=input_shape[1:],  # type: ignore[arg-type]
                        layers=layers, outputs=outputs, origin={"from": str(path)}, modules=self.modules,
                        source=f"{path.name}, read with onnx (shape inference)", notes=notes,
                        graph_params=sum(self.numel[p] for p in self.used - self.buffers))


def _count(tensor: Any) -> int:
    count = 1
    for d in tensor.dims:
        count *= d
    return count


def _node_name(node: Any, type_name: str) -> str:
    name = re.sub(r"[^\w./-]", "_", node.name or "").strip("_")
    return name or type_name


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


def _sequence(operands: list[Value], attrs: dict[str, Any], label: str) -> Value:
    """SplitToSequence along channels (torch's chunk and split): the channel range of each piece."""
    x = operands[0]
    axis = attrs.get("axis", 0)
    if x.kind != "act" or len(x.shape) < 2 or (axis + len(x.shape) if axis < 0 else axis) != 1 \
            or not attrs.get("keepdims", 1):
        raise Unsupported(f"{label}: SplitToSequence other than along channels")
    total = x.shape[1]
    split = operands[1].constant if len(operands) > 1 else 1
    if isinstance(split, list):
        sizes = _flat(split)
    elif isinstance(split, int) and not isinstance(split, bool) and split > 0:
        sizes = [min(split, total - start) for start in range(0, total, split)]
    else:
        raise Unsupported(f"{label}: SplitToSequence with split sizes that are not constants")
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in sizes) or sum(sizes) != total:
        raise Unsupported(f"{label}: SplitToSequence sizes {sizes[:8]} do not split {total} channels")
    parts, start = [], 0
    for size in sizes:
        parts.append((start, start + size))
        start += size
    return Value("parts", x.shape, parts=tuple(parts), source=x)
