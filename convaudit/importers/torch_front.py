"""Read an nn.Module into convaudit layers with torch.export.

The module is traced on the meta device where possible (a 100M-parameter model allocates nothing),
in eval mode. Every ATen node carries `meta["nn_module_stack"]`, the module path it came from, which
names the layers (`layer3.1.conv2`). Each operator goes through one entry of `table.ATEN`; a few
modules whose insides are not layers of their own (nn.MultiheadAttention, torchvision's LayerNorm2d)
become one layer each. Parameters the graph reads outside any module (a class token, a position
embedding, a layer scale) belong to the layer that uses them, named after the parameter.

Imported only when a target is imported; torch is imported inside the functions.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

from convaudit.importers.graph import Imported, Layer
from convaudit.importers.table import ATEN, Alias, Call, Make, Unsupported, Value
from convaudit.importers.tidy import fuse_shuffles, name_layers

# Modules read as one layer: class name -> (layer type, fields from the module).
COLLAPSE: dict[str, Callable[[Any], tuple[str, dict[str, Any]]]] = {
    "MultiheadAttention": lambda m: ("attention", {"heads": m.num_heads, "bias": m.in_proj_bias is not None}),
    "LayerNorm2d": lambda m: ("layernorm", {"over": "channels"}),
}


def export(model: Any, input_shape: tuple[int, int, int]) -> Any:
    """torch.export of `model` in eval mode on one sample of `input_shape`; the training flag is restored."""
    import torch

    parameter = next(iter(model.parameters()), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    x = torch.empty((1, *input_shape), device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return torch.export.export(model, (x,))
    except Exception as error:
        first = (str(error).strip().splitlines() or [""])[0]
        raise Unsupported(f"torch.export could not trace the model at input {list(input_shape)}: "
                          f"{type(error).__name__}: {first}") from None
    finally:
        model.train(was_training)


def arguments(node: Any) -> dict[str, Any]:
    """The node's arguments by schema name, defaults filled in."""
    schema = getattr(node.target, "_schema", None)
    if schema is None:
        return {f"arg{i}": arg for i, arg in enumerate(node.args)} | dict(node.kwargs)
    values = {}
    for index, argument in enumerate(schema.arguments):
        if index < len(node.args):
            values[argument.name] = node.args[index]
        elif argument.name in node.kwargs:
            values[argument.name] = node.kwargs[argument.name]
        elif argument.has_default_value():
            values[argument.name] = argument.default_value
        else:
            values[argument.name] = None
    return values


def shape_of(node: Any) -> tuple[int, ...] | None:
    value = node.meta.get("val") if hasattr(node, "meta") else None
    if value is None or not hasattr(value, "shape"):
        return None
    return tuple(int(d) for d in value.shape)


def stack_of(node: Any) -> list[tuple[str, str]]:
    """[(module path, class name)] from the root's children inwards."""
    stack = node.meta.get("nn_module_stack") or {}
    found = []
    for path, kind in stack.values():
        if path:
            found.append((path, kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))))
    return [(path, kind.rsplit(".", 1)[-1]) for path, kind in found]


class Walker:
    def __init__(self, program: Any, model: Any):
        self.program = program
        self.model = model
        self.values: dict[Any, Value] = {}
        self.layers: list[Layer] = []
        signature = program.graph_signature
        self.param_names = {**signature.inputs_to_parameters, **signature.inputs_to_buffers}
        self.buffer_names = set(signature.inputs_to_buffers.values())
        self.numel_of: dict[str, int] = {}
        self.constants = set(getattr(signature, "inputs_to_lifted_tensor_constants", {}) or {})
        self.user_inputs = list(signature.user_inputs)
        self.used_params: dict[str, int] = {}
        self.regions: dict[Any, str] = {}  # node -> path of the collapsed module it belongs to
        self.region_done: dict[str, Value] = {}
        self.modules: dict[str, str] = {}  # module path -> class name

    # -------------------------------------------------------------- values

    def value(self, arg: Any) -> Value | None:
        if hasattr(arg, "op") and arg in self.values:
            return self.values[arg]
        return None

    def module(self, path: str) -> Any:
        try:
            return self.model.get_submodule(path)
        except (AttributeError, Exception):
            return None

    def placeholder(self, node: Any) -> Value:
        shape = shape_of(node) or ()
        if node.name in self.param_names:
            name = self.param_names[node.name]
            numel = 0 if name.endswith("num_batches_tracked") else math.prod(shape)
            self.numel_of[name] = numel
            return Value("param", shape, names=(name,), numel=numel)
        if node.name in self.constants:
            return Value("const", shape)
        if node.name in self.user_inputs:
            if len(shape) != 4:
                raise Unsupported(f"the model's input has shape {list(shape)}; convaudit reads models on "
                                  "[N, C, H, W] images")
            return Value("act", shape, layer="input")
        return Value("const", shape)

    # -------------------------------------------------------------- the walk

    def walk(self) -> tuple[list[Layer], tuple[str, ...]]:
        graph = self.program.graph
        self.find_regions(graph)
        outputs: tuple[str, ...] = ()
        for node in graph.nodes:
            if node.op == "placeholder":
                self.values[node] = self.placeholder(node)
            elif node.op == "call_function":
                self.call(node)
            elif node.op == "output":
                results = node.args[0] if isinstance(node.args[0], (list, tuple)) else (node.args[0],)
                outputs = tuple(v.layer for v in (self.value(r) for r in results) if v is not None and v.kind == "act")
        return self.layers, outputs

    def find_regions(self, graph: Any) -> None:
        for node in graph.nodes:
            for path, kind in stack_of(node) if node.op == "call_function" else []:
                self.modules.setdefault(path, kind)
                if kind in COLLAPSE:
                    self.regions[node] = path
                    break

    def tensor_operands(self, node: Any) -> list[Value]:
        found: list[Value] = []

        def visit(arg: Any) -> None:
            if isinstance(arg, (list, tuple)):
                for item in arg:
                    visit(item)
            else:
                value = self.value(arg)
                if value is not None:
                    found.append(value)

        for arg in list(node.args) + list(node.kwargs.values()):
            visit(arg)
        return found

    def where(self, node: Any, op: str) -> str:
        stack = stack_of(node)
        path = stack[-1][0] if stack else "the model's forward"
        return f"{path} ({op})"

    def call(self, node: Any) -> None:
        if node in self.regions:
            self.collapsed(node, self.regions[node])
            return
        operands = self.tensor_operands(node)
        if node.target is operator.getitem:
            self.getitem(node, operands)
            return
        name = getattr(getattr(node.target, "_overloadpacket", None), "__name__", None) or str(node.target)
        if name in ("chunk", "split", "split_with_sizes", "unsafe_split", "unsafe_chunk"):
            self.split(node, name, operands)
            return
        out = shape_of(node)
        if out is None and (name.startswith(("_assert", "sym_")) or not any(v.kind == "act" for v in operands)):
            return  # assertions and symbolic sizes: no tensor, nothing to count
        if not any(v.kind in ("act", "parts") for v in operands):  # parameter-only arithmetic (expand a token)
            params = [v for v in operands if v.kind == "param"]
            names = tuple(dict.fromkeys(n for v in params for n in v.names))
            self.values[node] = Value("param", out, names=names, numel=sum(v.numel for v in params))
            return
        entry = ATEN.get(name)
        if entry is None or out is None:  # never skipped: an operator left out would count as zero
            raise Unsupported(f"{self.where(node, 'aten.' + name)}: operator aten.{name} has no convaudit layer type")
        attrs = {key: value for key, value in arguments(node).items() if self.value(value) is None}
        result = entry(Call(name, operands, attrs, out, self.where(node, "aten." + name)))
        if isinstance(result, Alias):
            self.values[node] = result.value
            return
        self.emit(node, result, operands, out)

    def emit(self, node: Any, made: Make, operands: list[Value], out: tuple[int, ...]) -> None:
        inputs = made.inputs if made.inputs is not None else [v for v in operands if v.kind == "act"][:1]
        params = [v for v in operands if v.kind == "param"]
        weights, buffers = self.claim(params)
        stack = stack_of(node)
        made_list = [made, *made.extra]
        previous = [v.layer for v in inputs]
        for index, piece in enumerate(made_list):
            shape = out if index == len(made_list) - 1 else self.intermediate(out)
            layer = Layer(
                name="", type=piece.type, params=piece.params, inputs=tuple(previous),
                scopes=tuple(path for path, _ in stack), shape=tuple(shape[1:]), weights=weights if index == 0 else 0,
                buffers=buffers if index == 0 else 0,
                op=f"aten.{getattr(getattr(node.target, '_overloadpacket', None), '__name__', node.target)}")
            layer.named_after = piece.named_after
            layer.leaf = self.is_leaf(stack) and index == 0 and piece.named_after is None
            self.layers.append(layer)
            previous = [str(id(layer))]
            layer.name = str(id(layer))
        self.values[node] = Value("act", out, layer=self.layers[-1].name)

    def claim(self, params: list[Value]) -> tuple[int, int]:
        """(parameter, buffer) elements of `params` not yet given to a layer: each is counted once."""
        weights = buffers = 0
        for value in params:
            for param_name in value.names:
                share = self.numel_of.get(param_name, 0)
                if param_name in self.used_params:
                    continue
                self.used_params[param_name] = share
                if param_name in self.buffer_names:
                    buffers += share
                else:
                    weights += share
        return weights, buffers

    @staticmethod
    def intermediate(out: tuple[int, ...]) -> tuple[int, ...]:
        return (*out, 1, 1)  # mean without keepdim: the pooled [N, C, 1, 1] before it is flattened

    def is_leaf(self, stack: list[tuple[str, str]]) -> bool:
        if not stack:
            return False
        module = self.module(stack[-1][0])
        return module is not None and next(iter(module.children()), None) is None

    def getitem(self, node: Any, operands: list[Value]) -> None:
        source = operands[0] if operands else None
        index = node.args[1]
        if source is not None and source.kind == "parts":
            start, end = source.parts[index]
            out = shape_of(node) or ()
            made = Make("slice", {"start": start, "end": end})
            self.emit(node, made, [source.source], out)  # type: ignore[list-item]
            return
        if source is not None:
            self.values[node] = source  # a tuple output's first item (a collapsed module's, batch_norm's)

    def split(self, node: Any, name: str, operands: list[Value]) -> None:
        x = operands[0]
        args = arguments(node)
        axis = int(args.get("dim", 0))
        axis = axis + len(x.shape) if axis < 0 else axis
        if axis != 1:
            raise Unsupported(f"{self.where(node, 'aten.' + name)}: splitting along dimension {axis}; convaudit "
                              "slices channels")
        total = x.shape[1]
        if name in ("chunk", "unsafe_chunk"):
            size = -(-total // int(args["chunks"]))
            sizes = [min(size, total - start) for start in range(0, total, size)]
        elif name == "split_with_sizes":
            sizes = list(args["split_sizes"])
        else:
            size = args["split_size"]
            if isinstance(size, (list, tuple)):
                sizes = list(size)
            else:
                sizes = [min(int(size), total - start) for start in range(0, total, int(size))]
        parts, start = [], 0
        for size in sizes:
            parts.append((start, start + int(size)))
            start += int(size)
        self.values[node] = Value("parts", x.shape, parts=tuple(parts), source=x)

    def collapsed(self, node: Any, path: str) -> None:
        if path in self.region_done:
            self.values[node] = self.region_done[path]
            return
        members = [n for n, p in self.regions.items() if p == path]
        inside = set(members)
        external: list[Value] = []
        params: list[Value] = []
        for member in members:
            for arg in member.all_input_nodes:
                if arg in inside:
                    continue
                value = self.value(arg)
                if value is None:
                    continue
                if value.kind == "act" and all(v.layer != value.layer for v in external):
                    external.append(value)
                elif value.kind == "param" and value not in params:
                    params.append(value)
        last = next(m for m in reversed(members) if any(user not in inside for user in m.users))
        out = shape_of(last)
        if out is None:
            out = shape_of(next(m for m in reversed(members) if shape_of(m) is not None))
        module = self.module(path)
        kind = type(module).__name__
        type_name, fields = COLLAPSE[kind](module)
        stack = stack_of(node)
        depth = next(i for i, (p, _) in enumerate(stack) if p == path)
        trimmed = stack[:depth + 1]
        made = Make(type_name, fields, inputs=external[:1])
        before = len(self.layers)
        self.emit_collapsed(made, params, trimmed, out, kind)
        value = Value("act", out, layer=self.layers[before].name)
        self.region_done[path] = value
        for member in members:
            self.values[member] = value

    def emit_collapsed(self, made: Make, params: list[Value], stack: list[tuple[str, str]], out: tuple[int, ...],
                       kind: str) -> None:
        weights, buffers = self.claim(params)
        layer = Layer(name="", type=made.type, params=made.params, inputs=tuple(v.layer for v in made.inputs or []),
                      scopes=tuple(path for path, _ in stack), shape=tuple(out[1:]), weights=weights,
                      buffers=buffers, op=kind)
        layer.leaf = True
        layer.name = str(id(layer))
        self.layers.append(layer)


def read_module(model: Any, input_shape: tuple[int, int, int], name: str, origin: dict[str, Any],
                title: str = "") -> Imported:
    """Trace `model` at `input_shape` and read it into convaudit layers, named from module paths."""
    program = export(model, input_shape)
    walker = Walker(program, model)
    layers, outputs = walker.walk()
    layers, outputs = fuse_shuffles(layers, outputs)
    layers, outputs = name_layers(layers, outputs)
    used = set(walker.used_params)
    unused = sorted({param_name.rsplit(".", 1)[0] for param_name, _ in model.named_parameters()
                     if param_name not in used})
    return Imported(
        name=name, input=input_shape, layers=layers, outputs=outputs, origin=origin, title=title,
        modules=walker.modules,
        graph_params=sum(n for name, n in walker.used_params.items() if name not in walker.buffer_names),
        model_params=sum(p.numel() for p in model.parameters()),
        unused=tuple(unused),
    )
