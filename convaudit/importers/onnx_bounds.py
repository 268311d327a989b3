"""What an .onnx file must satisfy before convaudit counts it: bounded size, real data, a well-formed graph.

The checks, in the order the reader makes them:

    scan_header(path)                  the file's size and node count, from protobuf's wire format, before parsing
    check_tensor(tensor, name, folder) a tensor's declared element count against the bytes it holds
    check_node(onnx, node, ...)        a node against its operator's schema; control flow refused
    graph_order(nodes, ...)            every input defined, each name produced once, no cycle, outputs produced
    check_operands(op, inputs, ...)    what the table's entries take for granted: ranks, per-axis attributes,
                                       weights that are parameters, constants of the right form

A file that fails one is refused in one line naming the node, never half-read: no numpy array is ever made
from a declared shape (only from data already checked to match it), and nothing grows with a number the file
declares rather than the bytes it holds. Torch-free; uses onnx only through the module a caller passes in.
"""

from __future__ import annotations

import heapq
import mmap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from convaudit.core.fields import too_large
from convaudit.importers.operator_table import Unsupported, Value

MAX_FILE_BYTES = 2**31  # protobuf's own limit on one message: larger models keep their weights in external data
MAX_NODES = 20_000  # a spec's bound on layers; torch.onnx.export writes 1,910 for EfficientNet-B7, 447 for ResNet-50
MAX_DEPTH = 16  # subgraphs within subgraphs (protobuf's own parser stops at 100 nested messages)
MAX_FIELDS = 1_000_000  # protobuf fields the header scan reads before it gives up (a real 20,000-node file: ~300,000)
SMALL_TENSOR = 64  # elements: tensors up to this size are read as values (shapes, axes, split sizes)

# ModelProto.graph, ModelProto.functions, GraphProto.node, FunctionProto.node, NodeProto.attribute,
# AttributeProto.g and AttributeProto.graphs: the fields through which a file holds nodes (onnx.proto).
MODEL_GRAPH, MODEL_FUNCTIONS, GRAPH_NODE, FUNCTION_NODE, NODE_ATTRIBUTE, ATTRIBUTE_G, ATTRIBUTE_GRAPHS = \
    7, 25, 1, 7, 5, 6, 11

# Bits per element of each TensorProto.DataType, and the typed field that holds it when raw_data does not.
# Complex numbers take two entries per element; 4-bit types pack two elements in each int32_data entry.
BITS = {1: 32, 2: 8, 3: 8, 4: 16, 5: 16, 6: 32, 7: 64, 9: 8, 10: 16, 11: 64, 12: 32, 13: 64, 14: 64, 15: 128,
        16: 16, 17: 8, 18: 8, 19: 8, 20: 8, 21: 4, 22: 4, 23: 4, 24: 8}
TYPED_FIELD = {1: "float_data", 14: "float_data", 7: "int64_data", 11: "double_data", 15: "double_data",
               12: "uint64_data", 13: "uint64_data", 8: "string_data"}  # every other type: int32_data
STRING = 8
EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


class Malformed(Exception):
    """The bytes are not a protobuf message."""


def refused(why: str) -> Unsupported:
    return Unsupported(f"refused: {why}")


# ------------------------------------------------------------------ the header: size and node count

def scan_header(path: Path) -> None:
    """Refuse a file over MAX_FILE_BYTES, or one holding more than MAX_NODES nodes (subgraphs and functions
    included), from protobuf's wire format: each field's key and length are read and its bytes skipped, so
    weights are never touched and the scan stops as soon as a limit is passed."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise refused(f"the file is {size:,} bytes; convaudit reads ONNX files up to {MAX_FILE_BYTES:,} "
                      "bytes (keep larger weights in external data)")
    if size == 0:
        raise refused("the file is empty")
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        try:
            for descend in (False, True):  # top-level nodes first: a 100,000-node file is refused in milliseconds
                counter = _Counter(data, descend)
                for field, start, end in counter.fields(0, size):
                    if field == MODEL_GRAPH:
                        counter.graph(start, end)
                    elif field == MODEL_FUNCTIONS:
                        counter.nodes_in(start, end, FUNCTION_NODE)
        except Malformed as error:
            raise Unsupported(f"not a readable ONNX model ({error})") from None


class _Counter:
    def __init__(self, data: mmap.mmap, descend: bool):
        self.data, self.descend, self.nodes, self.read = data, descend, 0, 0

    def graph(self, start: int, end: int, depth: int = 0) -> None:
        if depth > MAX_DEPTH:
            raise refused(f"subgraphs nest more than {MAX_DEPTH} deep")
        self.nodes_in(start, end, GRAPH_NODE, depth)

    def nodes_in(self, start: int, end: int, node_field: int, depth: int = 0) -> None:
        for field, node_start, node_end in self.fields(start, end):
            if field != node_field:
                continue
            self.nodes += 1
            if self.nodes > MAX_NODES:
                raise refused(f"the graph has more than {MAX_NODES:,} nodes (subgraphs included); "
                              f"convaudit reads ONNX graphs of up to {MAX_NODES:,} nodes")
            if not self.descend:
                continue
            for attribute, attr_start, attr_end in self.fields(node_start, node_end):
                if attribute == NODE_ATTRIBUTE:
                    for kind, graph_start, graph_end in self.fields(attr_start, attr_end):
                        if kind in (ATTRIBUTE_G, ATTRIBUTE_GRAPHS):
                            self.graph(graph_start, graph_end, depth + 1)

    def fields(self, start: int, end: int) -> Iterator[tuple[int, int, int]]:
        """(field number, start, end) of each length-delimited field in data[start:end]; others skipped."""
        data, position = self.data, start
        while position < end:
            self.read += 1
            if self.read > MAX_FIELDS:
                raise refused(f"the file holds more than {MAX_FIELDS:,} protobuf fields outside its "
                              "weights; convaudit reads graphs of real models' size")
            key = data[position]
            if key < 0x80:  # the usual one-byte key
                position += 1
            else:
                key, position = _varint(data, position, end)
            wire = key & 7
            if wire == 0:
                _, position = _varint(data, position, end)
                continue
            if wire == 2:
                length, position = _varint(data, position, end)
                stop = position + length
            elif wire in (1, 5):
                stop = position + (8 if wire == 1 else 4)
            else:
                raise Malformed(f"wire type {wire} at byte {position:,}")
            if stop > end:
                raise Malformed(f"a field runs past its message at byte {position:,}")
            if wire == 2:
                yield key >> 3, position, stop
            position = stop


def _varint(data: Any, position: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while shift < 70:
        if position >= end:
            raise Malformed(f"truncated at byte {position:,}")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
    raise Malformed(f"a number longer than 10 bytes at byte {position:,}")


# ------------------------------------------------------------------ tensors: declared size against data held

def check_tensor(tensor: Any, name: str, folder: ModelFolder) -> int:
    """The element count `tensor` declares, once its data is shown to hold exactly that many elements.
    `name` says which tensor it is, for messages: "initializer 'w' (read by node conv1 (Conv))".

    Data kept in an external file is checked against that file's size (never read), except a small tensor's,
    which is read into the tensor so that shape inference and constants see it.
    """
    dims = list(tensor.dims)
    if any(d < 0 for d in dims):
        raise Unsupported(f"{name} declares a negative dimension {dims}")
    count = 1
    for d in dims:
        count *= d
        if too_large(count):
            raise Unsupported(f"{name} declares more than 2^63 elements ({dims})")
    bits = BITS.get(tensor.data_type)
    if bits is None and tensor.data_type != STRING:
        raise Unsupported(f"{name} has data type {tensor.data_type}, which is not an ONNX tensor type")
    if tensor.HasField("segment"):
        raise Unsupported(f"{name} is stored in segments, which convaudit does not read")
    if tensor.data_location == EXTERNAL:
        _check_external(tensor, name, count, bits, folder)
        return count
    if tensor.HasField("raw_data") and tensor.data_type != STRING:
        held, wanted, unit = len(tensor.raw_data), (count * bits + 7) // 8, "bytes"  # type: ignore[operator]
    else:
        field = TYPED_FIELD.get(tensor.data_type, "int32_data")
        per = 2 if tensor.data_type in (14, 15) else 1  # complex: real and imaginary parts
        wanted = count * per if bits != 4 else (count + 1) // 2
        held, unit = len(getattr(tensor, field)), f"values in {field}"
    if held != wanted:
        raise Unsupported(f"{name} declares {count:,} elements {dims} but holds {held:,} {unit} "
                          f"({wanted:,} expected)")
    return count


def _check_external(tensor: Any, name: str, count: int, bits: int | None, folder: ModelFolder) -> None:
    entries = {entry.key: entry.value for entry in tensor.external_data}
    location = entries.get("location", "")
    if bits is None or not location:
        raise Unsupported(f"{name} names no external file for its data")
    try:
        offset = int(entries.get("offset", "0"))
        length = int(entries["length"]) if "length" in entries else None
    except ValueError:
        raise Unsupported(f"{name}: its external data offset or length is not a number") from None
    real, size = folder.file(location)
    if real is None:
        raise Unsupported(f"{name}: its external data file {shown(location)!r} is missing or outside the model's "
                          "folder")
    wanted = (count * bits + 7) // 8
    if length is not None and length != wanted:
        raise Unsupported(f"{name} declares {count:,} elements ({wanted:,} bytes) but its external data is "
                          f"{length:,} bytes long")
    if offset < 0 or offset + wanted > size:
        raise Unsupported(f"{name} declares {count:,} elements ({wanted:,} bytes) but its external data "
                          f"{shown(location)!r} holds {max(size - max(offset, 0), 0):,} bytes from offset {offset:,}")
    if count <= SMALL_TENSOR:  # a shape or axes: read its few bytes into the tensor
        with real.open("rb") as data:
            data.seek(offset)
            tensor.raw_data = data.read(wanted)
        del tensor.external_data[:]
        tensor.data_location = 0


class ModelFolder:
    """The model's folder, where its external data may live: each file named is resolved once (symlinks
    followed, then checked to be inside) and measured, never read whole."""

    def __init__(self, path: Path):
        self.path = path
        self.files: dict[str, tuple[Path | None, int]] = {}

    def file(self, location: str) -> tuple[Path | None, int]:
        """The file and its size; (None, -1) when it is missing or outside the folder."""
        if location not in self.files:
            self.files[location] = None, -1
            relative = Path(location)
            if not relative.is_absolute() and ".." not in relative.parts:
                try:
                    real, inside = (self.path / relative).resolve(strict=True), self.path.resolve()
                    if inside in real.parents and real.is_file():
                        self.files[location] = real, real.stat().st_size
                except (OSError, RuntimeError):
                    pass
        return self.files[location]


# ------------------------------------------------------------------ the graph: defined, produced once, acyclic

def graph_order(nodes: list[Any], defined: set[str], outputs: list[str], labels: list[str]) -> list[int]:
    """The nodes' positions in an order where each comes after what it reads: the file's own order when it is
    one (a heap of ready positions, smallest first).

    Refused: an input nothing defines, a name produced twice, a cycle (naming the nodes on it), an output
    nothing produces. `defined` holds the graph's inputs and initializers; `labels` name the nodes.
    """
    producer: dict[str, int] = {}
    for index, node in enumerate(nodes):
        for name in node.output:
            if not name:
                continue
            if name in defined or name in producer:
                first = labels[producer[name]] if name in producer else "a graph input or initializer"
                raise Unsupported(f"{labels[index]}: its output {shown(name)!r} is also produced by {first}; "
                                  "each name in an ONNX graph is produced once")
            producer[name] = index
    waiting = []
    readers: dict[int, list[int]] = {}
    for index, node in enumerate(nodes):
        sources = set()
        for name in node.input:
            if not name or name in defined:
                continue
            if name not in producer:
                raise Unsupported(f"{labels[index]}: its input {shown(name)!r} is produced by no node, graph "
                                  "input or initializer")
            sources.add(producer[name])
        waiting.append(len(sources))
        for source in sources:
            readers.setdefault(source, []).append(index)
    ready = [index for index, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for reader in readers.get(index, ()):
            waiting[reader] -= 1
            if waiting[reader] == 0:
                heapq.heappush(ready, reader)
    if len(order) < len(nodes):
        raise Unsupported(f"the graph has a cycle: {_cycle(nodes, waiting, producer, labels)}")
    for name in outputs:
        if name not in defined and name not in producer:
            raise Unsupported(f"graph output {shown(name)!r} is produced by no node, graph input or initializer")
    return order


def _cycle(nodes: list[Any], waiting: list[int], producer: dict[str, int], labels: list[str]) -> str:
    """The nodes of one cycle in data-flow order: from a node still waiting, follow a waiting producer until
    one repeats."""
    index = next(i for i, count in enumerate(waiting) if count)
    step: dict[int, int] = {}  # node -> its place in the walk
    while index not in step:
        step[index] = len(step)
        index = next(producer[name] for name in nodes[index].input if name in producer and waiting[producer[name]])
    walk = list(step)[step[index]:]  # consumer to producer, around the cycle once
    shown = [labels[i] for i in reversed(walk)]
    if len(shown) > 6:
        shown = shown[:5] + [f"{len(shown) - 5:,} more"]
    return " → ".join([*shown, shown[0]])


# ------------------------------------------------------------------ one node: against its operator's schema

STANDARD_DOMAINS = ("", "ai.onnx")
SUBGRAPH_TYPES = (5, 10)  # AttributeProto.GRAPH, GRAPHS: If's branches, Loop's and Scan's bodies
TENSOR_TYPES = (4, 9)  # AttributeProto.TENSOR, TENSORS: Constant's value, ConstantOfShape's fill
SPARSE_TYPES = (11, 12)  # AttributeProto.SPARSE_TENSOR(S)


def check_node(onnx: Any, node: Any, opset: int, label: str, folder: ModelFolder) -> dict[str, Any]:
    """Refuse a node its operator's schema (at the model's opset) rejects: an unknown operator or domain,
    too few or too many inputs, a required input left empty, an attribute of the wrong type or missing;
    and control flow, whose subgraphs convaudit does not read. Returns the node's attributes, by name, for
    those its schema declares (values as onnx.helper gives them; tensors checked by `check_tensor`)."""
    if node.domain not in STANDARD_DOMAINS:
        raise Unsupported(f"{label}: operator {shown(node.domain)}.{shown(node.op_type)} is not a standard ONNX "
                          "operator; convaudit reads the ai.onnx operators")
    subgraphs = [attribute for attribute in node.attribute if attribute.type in SUBGRAPH_TYPES]
    if subgraphs:
        names = ", ".join(shown(attribute.name, 40) for attribute in subgraphs)
        raise Unsupported(f"{label}: control flow is not counted: its subgraph{'s' if len(subgraphs) > 1 else ''} "
                          f"{names} hold{'' if len(subgraphs) > 1 else 's'} {_subgraph_work(subgraphs)}, which "
                          "would be left out of the count (export with the branch decided, or the loop unrolled)")
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, "")
    except Exception:  # onnx.defs.SchemaError
        raise Unsupported(f"{label}: {shown(node.op_type)} is not an ONNX operator at opset {opset}") from None
    if not schema.min_input <= len(node.input) <= schema.max_input:
        raise Unsupported(f"{label}: {node.op_type} takes {_count_range(schema.min_input, schema.max_input)} "
                          f"inputs, the node has {len(node.input)}")
    formal = list(schema.inputs)
    optional = onnx.defs.OpSchema.FormalParameterOption.Optional
    for index, name in enumerate(node.input):
        parameter = formal[min(index, len(formal) - 1)]
        if not name and parameter.option != optional:
            raise Unsupported(f"{label}: its input {index} ({parameter.name}) is required but empty")
    if not schema.min_output <= len(node.output) <= schema.max_output:
        raise Unsupported(f"{label}: {node.op_type} gives {_count_range(schema.min_output, schema.max_output)} "
                          f"outputs, the node lists {len(node.output)}")
    if not node.output[0]:
        raise Unsupported(f"{label}: its first output has no name")
    attributes: dict[str, Any] = {}
    for attribute in node.attribute:
        declared = schema.attributes.get(attribute.name)
        if declared is None:
            continue  # not one this operator reads at this opset
        if attribute.name in attributes:
            raise Unsupported(f"{label}: attribute {shown(attribute.name)} is given twice")
        if attribute.type != int(declared.type):
            raise Unsupported(f"{label}: attribute {shown(attribute.name)} is of type "
                              f"{_type_name(onnx, attribute.type)}; {node.op_type} takes "
                              f"{_type_name(onnx, int(declared.type))}")
        if attribute.type in SPARSE_TYPES:
            raise Unsupported(f"{label}: attribute {shown(attribute.name)} is a sparse tensor, "
                              "which convaudit does not read")
        for tensor in [attribute.t] if attribute.type == 4 else attribute.tensors if attribute.type == 9 else []:
            check_tensor(tensor, f"{label}: attribute {shown(attribute.name)}", folder)
        attributes[attribute.name] = _value(onnx, attribute)
    missing = [name for name, declared in schema.attributes.items() if declared.required and name not in attributes]
    if missing:
        raise Unsupported(f"{label}: {node.op_type} needs attribute {missing[0]}, which the node does not give")
    return attributes


def _count_range(low: int, high: int) -> str:
    return f"{low}" if low == high else f"{low} to {high}" if high < 2**31 - 1 else f"at least {low}"


def _value(onnx: Any, attribute: Any) -> Any:
    value = onnx.helper.get_attribute_value(attribute)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
    return value


def _type_name(onnx: Any, code: int) -> str:
    try:
        return str(onnx.AttributeProto.AttributeType.Name(code))
    except ValueError:
        return f"type {code}"


def _subgraph_work(attributes: list[Any]) -> str:
    """'3 nodes (Conv, Relu, …)': what control-flow attributes' subgraphs hold, nested ones included."""
    graphs = [g for attribute in attributes for g in ([attribute.g] if attribute.type == 5 else attribute.graphs)]
    ops = Counter[str]()
    while graphs:
        for node in graphs.pop().node:
            ops[node.op_type] += 1
            for inner in node.attribute:
                graphs.extend([inner.g] if inner.type == 5 else inner.graphs if inner.type == 10 else [])
    names = [shown(op, 40) for op, _ in ops.most_common(3)] + (["…"] if len(ops) > 3 else [])
    total = sum(ops.values())
    return f"{total:,} node{'s' if total != 1 else ''}" + (f" ({', '.join(names)})" if names else "")


def shown(text: str, limit: int = 80) -> str:
    """A name from the file as a message shows it: at most `limit` characters (escaped later, when printed)."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


# ------------------------------------------------------------------ operands: what an entry may take for granted

WINDOWED = ("Conv", "MaxPool", "AveragePool")
MATRIX_OPS = ("Gemm", "MatMul")  # x · W: convaudit's linear layer
# Inputs an entry reads as constants, by position, and the form their value must have where it is known.
CONSTANT_INPUTS = {"ReduceMean": {1: "ints"}, "Clip": {1: "number", 2: "number"}, "Gather": {1: "int"}}
FORMS = {"int": "an integer", "ints": "a list of integers", "number": "a number"}


def check_operands(op: str, inputs: list[Value | None], attrs: dict[str, Any], label: str) -> None:
    """Refuse what the table's entries take for granted and a file may break: a window op's input of other
    than [N, C, H, W], per-axis attributes of the wrong length or sign, a weight that is not a parameter of
    the right rank, a bias computed from the input. `inputs` are the node's inputs by position (None: empty)."""
    for position, form in CONSTANT_INPUTS.get(op, {}).items():
        given = inputs[position] if position < len(inputs) else None
        if given is not None and given.constant is not None and not _has_form(given.constant, form):
            raise Unsupported(f"{label}: its input {position} is {_shape_of(given.constant)}; {op} is counted with "
                              f"{FORMS[form]} there")
    if op not in WINDOWED and op not in MATRIX_OPS:
        return
    x = inputs[0]
    if x is None or x.kind != "act":
        raise Unsupported(f"{label}: its input 0 does not come from the network's input")
    weight = inputs[1] if len(inputs) > 1 else None
    bias = inputs[2] if len(inputs) > 2 else None
    if bias is not None and bias.kind == "act":
        raise Unsupported(f"{label}: its bias is computed from the network's input; convaudit counts fixed biases")
    if op in MATRIX_OPS:
        if weight is None or weight.kind != "param":
            return  # a product of two activations: the entry refuses it by name
        if len(weight.shape) != 2:
            raise Unsupported(f"{label}: its weight {shown(weight.names[0])} has shape {list(weight.shape)}; "
                              "a linear layer's weight is a matrix")
        transposed = op == "Gemm" and bool(attrs.get("transB", 0))
        if not x.shape or x.shape[-1] != weight.shape[1 if transposed else 0]:
            raise Unsupported(f"{label}: its input has shape {list(x.shape)} and its weight "
                              f"{list(weight.shape)}{' (transposed)' if transposed else ''}: the features do not match")
        return
    if len(x.shape) != 4:
        raise Unsupported(f"{label}: its input has shape {list(x.shape)}; convaudit counts 2-D windows over "
                          "[N, C, H, W]")
    kernel = attrs.get("kernel_shape")
    if op == "Conv":
        if weight is None or weight.kind != "param":
            raise Unsupported(f"{label}: its weight is not a parameter of the model (a kernel computed at run "
                              "time is not counted)")
        if len(weight.shape) != 4 or kernel is not None and list(kernel) != list(weight.shape[2:]):
            raise Unsupported(f"{label}: its weight has shape {list(weight.shape)}, kernel_shape {kernel}; a 2-D "
                              "convolution's weight is [out, in/group, kH, kW]")
        groups = attrs.get("group", 1)
        if groups < 1 or x.shape[1] != weight.shape[1] * groups or weight.shape[0] % groups:
            raise Unsupported(f"{label}: group {groups} does not fit {x.shape[1]} input channels and a weight "
                              f"of shape {list(weight.shape)}")
        if bias is not None and bias.kind == "param" and tuple(bias.shape) != (weight.shape[0],):
            raise Unsupported(f"{label}: its bias has shape {list(bias.shape)}, not [{weight.shape[0]}]")
    for name, length, low in (("kernel_shape", 2, 1), ("strides", 2, 1), ("dilations", 2, 1), ("pads", 4, 0)):
        values = attrs.get(name)
        if values is not None and (len(values) != length or any(v < low for v in values)):
            raise Unsupported(f"{label}: {name} {list(values)}: a 2-D window takes {length} values, each at "
                              f"least {low}")


def _has_form(value: Any, form: str) -> bool:
    def integer(item: Any) -> bool:
        return isinstance(item, int) and not isinstance(item, bool)

    if form == "ints":
        return isinstance(value, list) and all(integer(item) for item in value)
    if form == "int":
        return integer(value)
    return integer(value) or isinstance(value, float)


def _shape_of(value: Any) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)} ({str(value)[:40]})"
    return f"the value {str(value)[:40]}"
