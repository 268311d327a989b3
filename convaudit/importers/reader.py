"""Read a traced model (an OpGraph of ATen operators) into convaudit layers.

Each operator the model called goes to one handler of its family (importers/aten.py), which makes a readable
layer where the pattern is clean (a convolution, a linear layer, a norm) and a tensor operator otherwise (matmul,
pointwise, reduce …). A composite operator no handler takes is read through its parts (einsum through its bmm
and views). What nothing can count is collected, every operator with its count and module paths, and refused all
at once; with `partial` each becomes an `uncounted` layer of its traced shape, and every total says so.

Values: a tensor is an activation (a layer's output or the network input), something learned (parameters and
buffers, and arithmetic on them alone: a class token expanded over the batch), or a constant (arange, a mask).
Shapes here are sample shapes: the batch dimension the tracer found is taken out and kept as a `Placement`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from convaudit.core.layers.base import Placement
from convaudit.core.model import INPUT
from convaudit.importers import opgraph as g
from convaudit.importers.graph import Layer
from convaudit.importers.operator_table import Unsupported


class Decline(Exception):
    """A handler that cannot read this use of its operator: the reader goes on to the operator's parts."""


@dataclass(frozen=True)
class Act:
    """An activation: the layer that made it (or the network input) and its traced record."""

    layer: str
    rec: g.TensorRec


@dataclass(frozen=True)
class Learned:
    """Parameters and buffers, or a tensor computed from them alone: the names it comes from."""

    rec: g.TensorRec
    names: tuple[str, ...]
    buffer: bool = False


@dataclass(frozen=True)
class Const:
    """A tensor that depends on no input and nothing learned (arange, a causal mask, a tensor attribute)."""

    rec: g.TensorRec


Value = Act | Learned | Const
# The operand that carries the data (not the weights) of the operators with multiply-adds
MAC_DATA_OPERAND = {**dict.fromkeys(("conv1d", "conv2d", "conv3d", "convolution", "_convolution", "conv_transpose1d",
                                     "conv_transpose2d", "conv_transpose3d", "linear"), "input"),
                    "mm": "self", "bmm": "self", "matmul": "self", "mv": "self", "addmm": "mat1", "baddbmm": "batch1",
                    "addmv": "mat"}  # einsum's operands are a list: a constant one is read through its parts
Handler = Callable[["Reader", g.OpNode], None]
LOOPED = ("run once per sample in a Python loop over the batch: their tensors hold no batch dimension, so their "
          "cost at another batch cannot be followed")


@dataclass
class Problem:
    op: str
    modules: list[str] = field(default_factory=list)
    count: int = 0
    reason: str = ""


class Reader:
    def __init__(self, graph: g.OpGraph, handlers: dict[str, Handler], collapse: dict[str, Callable], partial: bool):
        if not graph.batch_known:
            raise Unsupported("the model's operators differ between batch 1 and batch 2, so where the batch sits in "
                              "each tensor cannot be followed: convaudit counts per sample and cannot read it")
        self.graph, self.handlers, self.collapse, self.partial = graph, handlers, collapse, partial
        self.values: dict[int, Value] = {}
        self.layers: list[Layer] = []
        self.claimed: dict[str, int] = {}  # parameter (or buffer) name -> elements, each counted once
        self.owner: dict[str, str] = {}  # parameter name -> the layer that counts it
        self.problems: dict[str, Problem] = {}
        self.kids = graph.children()
        parents = {path[:i] for path in graph.modules for i, c in enumerate(path) if c == "."}  # every "a" of "a.b"
        self.childless = set(graph.modules) - parents
        self.learned = {t.name: t for t in graph.tensors if t.kind in (g.PARAMETER, g.BUFFER)}  # name -> first
        self.types: dict[str, str] = {}  # layer name -> its type
        self.done: set[int] = set()
        self.looped = set(graph.batch_looped)
        for tensor in graph.tensors:
            if tensor.kind == g.INPUT:
                self.values[tensor.id] = Act(INPUT, tensor)
            elif tensor.kind == g.BUFFER and not tensor.dtype.startswith(("float", "bfloat", "complex")):
                self.values[tensor.id] = Const(tensor)  # an index or a mask: positions, not state
            elif tensor.kind in (g.PARAMETER, g.BUFFER):
                self.values[tensor.id] = Learned(tensor, (graph.tied.get(tensor.name, tensor.name),),
                                                 tensor.kind == g.BUFFER)
            elif tensor.kind == g.CONSTANT and tensor.producer is None:
                self.values[tensor.id] = Const(tensor)

    # -------------------------------------------------------------- shapes and values

    def sample(self, rec: g.TensorRec) -> tuple[int, ...]:
        """The sample shape: the traced shape without its batch dimension (a folded one divided by the batch)."""
        shape, dim = rec.shape, rec.batch_dim
        if dim is None:
            return tuple(shape)
        if rec.batch_folded:
            return shape[:dim] + (shape[dim] // self.graph.batch,) + shape[dim + 1:]
        return shape[:dim] + shape[dim + 1:]

    @staticmethod
    def placement(rec: g.TensorRec) -> Placement:
        return Placement(rec.batch_dim, rec.batch_folded)

    def value(self, ref: Any) -> Value | None:
        return self.values.get(ref.id) if isinstance(ref, g.TensorRef) else None

    def act(self, ref: Any) -> Act:
        found = self.value(ref)
        if not isinstance(found, Act):
            raise Decline
        return found

    def operands(self, node: g.OpNode, strict: bool = True) -> list[Value]:
        """The values of the tensors a call reads; every one is known once the calls before it are read (a region
        looks ahead at its members' operands: `strict` off, the unknown ones, made inside it, are left out)."""
        found = []
        for ref in g.refs_in(node.args.values()):
            value = self.values.get(ref.id)
            if value is None and not strict:
                continue
            if value is None:  # every tensor is an input, learned, a constant, or made by an operator read earlier
                raise RuntimeError(f"{node.overload} in '{node.module}' reads tensor {ref.id}, which no operator "
                                   "read so far made")
            found.append(value)
        return found

    def out(self, node: g.OpNode, index: int = 0) -> g.TensorRec:
        ref = node.outputs[index]
        if isinstance(ref, list):
            ref = ref[0]
        return self.graph.tensor(ref)

    # -------------------------------------------------------------- making layers

    def emit(self, node: g.OpNode, type_name: str, params: dict[str, Any], inputs: list[Act],
             learned: tuple[Learned | None, ...] = (), out: g.TensorRec | None = None, named_after: str | None = None,
             op: str | None = None, stack: tuple[g.Frame, ...] | None = None) -> Act:
        """One layer for (part of) an operator call; its output becomes the value of `out` (the call's first)."""
        out = out if out is not None else self.out(node)
        learned_now = [item for item in learned if item is not None]
        owner = self.shared_owner(learned_now, type_name)
        if owner is not None:  # a module called again: its weights are counted at its first call
            params = {**params, "shares": owner}
        weights, buffers = self.claim(learned_now)
        stack = [frame for frame in (node.stack if stack is None else stack) if frame.path]
        layer = Layer(
            name=f"#{len(self.layers)}", type=type_name, params=params, inputs=tuple(a.layer for a in inputs),
            scopes=tuple(frame.path for frame in stack), shape=self.sample(out), weights=weights, buffers=buffers,
            op=op or f"aten.{node.packet}", named_after=named_after,
            leaf=bool(stack) and stack[-1].path in self.childless and named_after is None,
            call=stack[-1].call if stack else None)
        layer.placement = (out.batch_dim, out.batch_folded)
        for item in learned_now:
            for name in item.names:
                self.owner.setdefault(name, layer.name)
        self.layers.append(layer)
        self.types[layer.name] = type_name
        made = Act(layer.name, out)
        self.values[out.id] = made
        return made

    def as_act(self, node: g.OpNode, value: Value) -> Act:
        """An operand as an activation: something learned or constant becomes a `parameter` layer of its own."""
        if isinstance(value, Act):
            return value
        rec = value.rec
        params: dict[str, Any] = {"shape": list(self.sample(rec)) or [1]}
        learned: tuple[Learned, ...] = ()
        if isinstance(value, Learned):
            numel = sum(self.numel(name) for name in value.names)
            if numel != _prod(self.sample(rec)):
                params["numel"] = numel
            if value.buffer:
                params["trainable"] = False
            learned = (value,)
        else:
            params.update(numel=0, trainable=False)
        if rec.batch_dim is not None:
            params["batch"] = rec.batch_dim
            if rec.batch_folded:
                params["fold"] = True
        # named after what it holds: a parameter's name, or the constant of the module that makes it
        named = value.names[0] if isinstance(value, Learned) else f"{node.module}.constant" if node.module \
            else "constant"
        return self.emit(node, "parameter", params, [], learned, out=rec, named_after=named, op="parameter")

    def shared_owner(self, learned: list[Learned], type_name: str) -> str | None:
        """The earlier layer of this type that claimed every one of these parameters, if one did."""
        names = [name for item in learned for name in item.names]
        owners = {self.owner.get(name) for name in names}
        if not names or None in owners or len(owners) != 1:
            return None
        owner = owners.pop()
        return owner if self.types.get(owner) == type_name else None

    def numel(self, name: str) -> int:
        tensor = self.learned.get(name)
        return _prod(tensor.shape) if tensor else 0

    def claim(self, learned: list[Learned]) -> tuple[int, int]:
        """(parameter, buffer) elements not yet given to a layer: each is counted once."""
        weights = buffers = 0
        for item in learned:
            for name in item.names:
                if name in self.claimed:
                    continue
                numel = 0 if name.endswith("num_batches_tracked") else self.numel(name)
                self.claimed[name] = numel
                if item.buffer or self.is_buffer(name):
                    buffers += numel
                else:
                    weights += numel
        return weights, buffers

    def is_buffer(self, name: str) -> bool:
        tensor = self.learned.get(name)
        return tensor is not None and tensor.kind == g.BUFFER

    def alias(self, node: g.OpNode, value: Value) -> None:
        for ref in g.refs_in(node.outputs):
            self.values[ref.id] = value

    # -------------------------------------------------------------- the walk

    def walk(self) -> None:
        for node in self.graph.top():
            self.visit(node)

    def visit(self, node: g.OpNode) -> None:
        if node.index in self.done:
            return
        self.dispatch(node)
        self.written(node)

    def written(self, node: g.OpNode) -> None:
        """An in-place write makes new versions of every view of the storage it wrote (ConViT's
        rel_indices[:, :, :, 2] = … changes rel_indices): each one not yet known is its old version with the
        write applied: data movement of its traced shape, reading the old version and what was written."""
        for tensor_id in node.writes:
            if tensor_id in self.values or tensor_id not in self.used_ids:
                continue  # known, or never read again: no layer
            rec = self.graph.tensor(tensor_id)
            sources = [self.values[i] for i in (rec.version_of,) if i is not None and i in self.values]
            sources += [self.values[ref.id] for ref in g.refs_in(node.outputs) if ref.id in self.values]
            acts = [v for v in sources if isinstance(v, Act)]
            if not acts:
                names = tuple(dict.fromkeys(n for v in sources if isinstance(v, Learned) for n in v.names))
                self.values[tensor_id] = Learned(rec, names, all(v.buffer for v in sources
                                                                 if isinstance(v, Learned))) if names else Const(rec)
                continue
            self.traced(node, "gather", f"{node.packet} (written)", rec, acts)

    def dispatch(self, node: g.OpNode) -> None:
        if not g.refs_in(node.outputs) and not node.writes:
            return  # a query (cudnn_is_acceptable, an assert): no tensor made, nothing computed
        if self.looped and self.looped.intersection(
                [ref.id for ref in g.refs_in([node.args.values(), node.outputs])] + list(node.writes)):
            self.refuse(node, LOOPED)
            return
        region = self.region(node)
        if region is not None:
            return
        values = self.operands(node)
        packet = node.packet.rstrip("_") if node.packet.endswith("_") and not node.packet.startswith("_") \
            else node.packet
        if not any(isinstance(v, Act) for v in values):
            data = node.args.get(MAC_DATA_OPERAND.get(packet, ""))
            if not isinstance(data, g.TensorRef):
                self.learned_only(node, values)
                return
            # multiply-adds on parameters and constants alone (a Fourier position encoding's conv, a relative-
            # position MLP) run in every forward: their data operand becomes a source layer, and they are counted
            self.values[data.id] = self.as_act(node, self.values[data.id])
        handler = self.handlers.get(packet)
        declined = ""
        if handler is not None:
            try:
                handler(self, node)
                return
            except Decline as decline:
                declined = str(decline)
        if g.RETURNS_INPUT in node.tags:
            self.alias(node, next(v for v in values if isinstance(v, Act)))
            return
        parts = self.kids.get(node.index)
        if parts:
            for index in parts:
                self.visit(self.graph.nodes[index])
            return
        self.generic(node, packet, declined)

    def learned_only(self, node: g.OpNode, values: list[Value]) -> None:
        """Arithmetic on parameters and constants alone (a class token expanded, a bias table indexed): its
        results are learned values of the same names, or constants; no layer."""
        names = tuple(dict.fromkeys(name for v in values if isinstance(v, Learned) for name in v.names))
        buffer = all(v.buffer for v in values if isinstance(v, Learned))
        for ref in g.refs_in(node.outputs):
            rec = self.graph.tensor(ref)
            self.values[ref.id] = Learned(rec, names, buffer) if names else Const(rec)

    def generic(self, node: g.OpNode, packet: str, declined: str = "") -> None:
        fallback = self.handlers.get("#pointwise" if g.POINTWISE in node.tags else
                                     "#reduction" if g.REDUCTION in node.tags else "")
        if fallback is not None:
            try:
                fallback(self, node)
                return
            except Decline as decline:
                declined = declined or str(decline)
        self.refuse(node, declined or f"aten.{packet} has no counting rule")

    def refuse(self, node: g.OpNode, reason: str) -> None:
        """An operator nothing can count: recorded (all of them are named at the end); with `partial`, an
        `uncounted` layer of its traced shape keeps the rest of the network readable."""
        problem = self.problems.setdefault(node.overload, Problem(node.overload, reason=reason))
        problem.count += 1
        if node.module not in problem.modules:
            problem.modules.append(node.module or "the model's forward")
        outputs = [self.graph.tensor(ref) for ref in g.refs_in(node.outputs)]
        used = [rec for rec in outputs if rec.id in self.used_ids]  # sort's indices, unread, make no layer
        acts = [v for v in self.operands(node) if isinstance(v, Act)]
        for rec in used or outputs[:1]:
            self.traced(node, "uncounted", node.overload, rec, acts, traced_from=False)

    def traced(self, node: g.OpNode, type_name: str, op: str, rec: g.TensorRec, acts: list[Act],
               traced_from: bool = True) -> Act:
        """A layer known by its traced output (a gather, an uncounted operator): its shape, where the batch sits
        (nowhere: batchless), and for a gather the input shape it was traced from."""
        params: dict[str, Any] = {"op": op, "shape": list(self.sample(rec)) or [1]}
        if traced_from:
            params["traced_from"] = list(self.sample(acts[0].rec)) or [1]
        if rec.batch_dim is None:
            params["batchless"] = True
        elif rec.batch_dim != 0 or rec.batch_folded:
            params.update(batch=rec.batch_dim, fold=rec.batch_folded)
        return self.emit(node, type_name, params, acts[:1], out=rec)

    @cached_property
    def readers(self) -> dict[int, list[int]]:
        """tensor id -> indices of the nodes that read it (computed once: regions ask for it often)."""
        return self.graph.readers()

    @cached_property
    def used_ids(self) -> set[int]:
        """Tensors some operator reads or the model returns."""
        return set(self.readers) | {out.tensor for out in self.graph.outputs}

    @cached_property
    def collapsible(self) -> dict[tuple[int, g.Frame], list[g.OpNode]]:
        """(depth, frame) -> the top-level operators inside that module call, for the modules read as one layer."""
        found: dict[tuple[int, g.Frame], list[g.OpNode]] = {}
        for node in self.graph.top():
            for depth, frame in enumerate(node.stack):
                if frame.kind in self.collapse:
                    found.setdefault((depth, frame), []).append(node)
        return found

    def region(self, node: g.OpNode) -> list[g.OpNode] | None:
        """A module read as one layer (nn.MultiheadAttention, torchvision's LayerNorm2d): its operators are
        handled together, once."""
        for depth, frame in enumerate(node.stack):
            make = self.collapse.get(frame.kind)
            if make is None:
                continue
            members = self.collapsible[depth, frame]
            self.done |= {n.index for n in members}
            if not make(self, members, frame, depth):
                self.done -= {n.index for n in members}
                continue
            return members
        return None

    def problems_text(self) -> str:
        """Every operator that cannot be counted, with its count; operators refused for one reason share it."""
        by_reason: dict[str, list[Problem]] = {}
        for problem in self.problems.values():
            by_reason.setdefault(problem.reason, []).append(problem)
        parts = []
        for reason, problems in by_reason.items():
            modules = list(dict.fromkeys(module for problem in problems for module in problem.modules))
            shown = ", ".join(modules[:3]) + (f" and {len(modules) - 3} more" if len(modules) > 3 else "")
            ops = ", ".join(f"{problem.op} ×{problem.count}" for problem in problems)
            parts.append(f"{ops} ({reason}; in {shown})")
        count = sum(p.count for p in self.problems.values())
        return (f"{count} operator call{'s' if count > 1 else ''} cannot be counted: " + "; ".join(parts)
                + " (import --partial counts the rest and names these)")

    def finish(self) -> None:
        if self.problems and not self.partial:
            raise Unsupported(self.problems_text())


def _prod(values: Any) -> int:
    result = 1
    for value in values:
        result *= value
    return result
