"""The records of a traced model: ATen operators on tensors of any rank, as the tracer saw them run.

Torch-free (importers.trace fills them). One `OpGraph` holds every tensor (`TensorRec`, indexed by its id)
and every operator call (`OpNode`, in execution order). Data flow is SSA-style: a tensor record is written
once; an in-place operator (`relu_`, `add_`, `copy_`) makes a new record, a new version of what it
mutates, and later readers read that version. Shapes include the batch dimension, at `OpGraph.batch`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from convaudit.core.model import in_module

# Tensor kinds
INPUT, PARAMETER, BUFFER, CONSTANT, ACTIVATION = "input", "parameter", "buffer", "constant", "activation"

# Tags an OpNode may carry. torch's own (torch.Tag) keep their names; the others are derived from the
# operator's schema and its call.
POINTWISE = "pointwise"  # element-wise: one output element from the matching input elements
REDUCTION = "reduction"
INPLACE_VIEW = "inplace_view"  # changes a tensor's metadata in place (t_, squeeze_, as_strided_)
DATA_DEPENDENT = "data_dependent_output"  # a Python number from tensor values (item)
DYNAMIC_SHAPE = "dynamic_output_shape"  # output shape depends on values (nonzero, unique, masked_select)
RANDOM = "nondeterministic_seeded"  # draws random numbers in training (dropout); in eval it may return its input
VIEW = "view"  # as it ran, an output shares storage with an input, nothing written (view, permute, slice, expand,
# unbind, _unsafe_view; reshape only when it did not copy; contiguous and dropout when they returned their input)
INPLACE = "inplace"  # writes one of its tensor arguments (relu_, add_, copy_, an out= variant)
FACTORY = "factory"  # no tensor arguments (arange, zeros, empty, full)
NO_META = "no_meta_kernel"  # torch has no meta kernel: the shape came from a decomposition or broadcasting
RETURNS_INPUT = "returns_input"  # made no tensor: returned an argument as it is (dropout in eval, to() the same dtype)


@dataclass(frozen=True, slots=True)
class TensorRef:
    """An operator argument or output that is a tensor: the id of its TensorRec."""

    id: int


@dataclass(frozen=True, slots=True)
class TensorRec:
    id: int  # index in OpGraph.tensors
    shape: tuple[int, ...]
    dtype: str  # torch's name without the prefix: "float32", "int64", "bool"
    kind: str  # input | parameter | buffer | activation | constant (depends on none of them: arange, an attribute)
    name: str = ""  # dotted name of a parameter or buffer; "input" (or input0, input1, ...) for the graph inputs
    producer: int | None = None  # index of the OpNode that made it (activations, new versions, factory constants)
    version_of: int | None = None  # the tensor an in-place operator overwrote to make this version
    storage: int = 0  # numbered as met; tensors with the same storage alias one buffer (views, versions)
    batch_dim: int | None = None  # the dimension that scales with the batch; None: none does (a parameter)
    batch_folded: bool = False  # that dimension is B·k with k > 1 (Swin's windows: (B·nW, ws·ws, C))


@dataclass(frozen=True, slots=True)
class Frame:
    """One module call on the stack: `blocks.3.attn`, its class name, and which of its calls this is."""

    path: str  # "" for the model itself
    kind: str  # the module's class name
    call: int  # 0 for its first call in the forward, 1 for the second (weight sharing), ...


@dataclass(frozen=True, slots=True)
class OpNode:
    index: int
    overload: str  # "aten.convolution.default"
    packet: str  # "convolution"
    args: dict[str, Any]  # by schema name, defaults filled in; tensors as TensorRef, lists of them as lists
    outputs: tuple[Any, ...]  # one per schema return: TensorRef, a list of them, or a plain value
    tags: frozenset[str]
    stack: tuple[Frame, ...]  # outermost first: the model itself, then its children inwards
    writes: tuple[int, ...] = ()  # new versions this call made: the tensor it wrote and the views sharing its storage
    parent: int | None = None  # the composite operator this one is a part of (linear for its addmm)
    batch_args: frozenset[str] = frozenset()  # arguments whose value changes with the batch (a view's sizes)

    @property
    def module(self) -> str:
        """The innermost module path ("" at the model itself)."""
        return self.stack[-1].path if self.stack else ""


@dataclass(frozen=True, slots=True)
class GraphOutput:
    name: str  # "output" for a bare tensor; dict keys and list positions joined by dots: "out", "aux", "0.boxes"
    tensor: int


@dataclass(frozen=True, slots=True)
class TraceProblem:
    """Why (part of) a model could not run on the meta device."""

    op: str  # "aten.nonzero.default", or "Python code at model.py:17 (forward)" for an error raised by the model
    module: str  # the innermost module path at the call, "" for the model itself
    reason: str  # one line
    partial_ok: bool = False  # the model would run on past it (only the tracer cannot): import --partial keeps
    # what ran before it (data-dependent operators, operators with no meta kernel; not the model's own errors)

    def line(self) -> str:
        return f"{self.op} {in_module(self.module)}: {self.reason}"


@dataclass(frozen=True)
class OpGraph:
    tensors: tuple[TensorRec, ...]
    nodes: tuple[OpNode, ...]
    inputs: tuple[int, ...]
    outputs: tuple[GraphOutput, ...]
    input_shapes: tuple[tuple[int, ...], ...]  # one per positional input, per sample (without the batch)
    batch: int  # the batch the shapes are at
    batch_known: bool  # batch_dim/batch_folded were found by a second trace at another batch
    level: str  # "aten" (after autograd: composite operators decomposed) or "composite" (as called)
    modules: dict[str, str] = field(default_factory=dict)  # every module path -> class name
    tied: dict[str, str] = field(default_factory=dict)  # a parameter's second name -> the name its tensor has
    batch_irregular: tuple[int, ...] = ()  # tensors whose shape changed with the batch other than B·k in one dim
    batch_unknown: tuple[int, ...] = ()  # tensors made inside a composite operator whose parts differ by batch
    # tensors made once per sample in a Python loop over the batch (a detection transform's `for image in images`):
    # their shape holds no batch dimension, and the two runs were paired by aligning their operators (batchdims)
    batch_looped: tuple[int, ...] = ()
    stopped: TraceProblem | None = None  # where a partial trace stopped (importers.cut): the graph is what ran before
    unreached: tuple[str, ...] = ()  # with `stopped`: the outermost modules that had not run when it stopped

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.input_shapes[0]

    def tensor(self, ref: TensorRef | int) -> TensorRec:
        return self.tensors[ref.id if isinstance(ref, TensorRef) else ref]

    def named(self, kind: str) -> list[TensorRec]:
        """The parameters (or buffers) in registration order, used or not."""
        return [t for t in self.tensors if t.kind == kind]

    def children(self) -> dict[int | None, list[int]]:
        """node index (None: the top level) -> the indices of its parts, in order."""
        found: dict[int | None, list[int]] = {None: []}
        for node in self.nodes:
            found.setdefault(node.parent, []).append(node.index)
        return found

    def leaves(self) -> list[OpNode]:
        """The operators with no recorded parts: what runs after every decomposition. These are autograd's
        decomposition (what FlopCounterMode counts), except that matmul may fold differently in inference mode
        (expand + bmm where autograd runs mm: the same multiply-adds) and that no-op calls are kept (dropout in
        eval, `to` the same dtype: tagged returns_input)."""
        parents = {node.parent for node in self.nodes}
        return [node for node in self.nodes if node.index not in parents]

    def top(self) -> list[OpNode]:
        """The operators as the model called them (at level "aten": after autograd's decompositions)."""
        return [node for node in self.nodes if node.parent is None]

    def readers(self) -> dict[int, list[int]]:
        """tensor id -> indices of the nodes that read it."""
        found: dict[int, list[int]] = {}
        for node in self.nodes:
            for ref in refs_in(node.args.values()):
                found.setdefault(ref.id, []).append(node.index)
        return found


def refs_in(values: Any) -> list[TensorRef]:
    """Every TensorRef in a value (an argument, an output, a list or dict view of them), in order."""
    if isinstance(values, TensorRef):
        return [values]
    found: list[TensorRef] = []
    if not isinstance(values, _SCALARS) and hasattr(values, "__iter__"):
        _collect(values, found)
    return found


_SCALARS = (str, bytes, int, float, type(None))
_SCALAR_TYPES = {str, bytes, int, float, bool, type(None)}


def _collect(values: Any, found: list[TensorRef]) -> None:
    for value in values:  # on the tracer's hot path: lists, numbers and None, the common values, decided at once
        kind = type(value)
        if kind is TensorRef:
            found.append(value)
        elif kind is list or kind is tuple:
            _collect(value, found)
        elif kind not in _SCALAR_TYPES:
            if isinstance(value, TensorRef):
                found.append(value)
            elif not isinstance(value, _SCALARS) and hasattr(value, "__iter__"):
                _collect(value, found)
