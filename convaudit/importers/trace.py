"""Trace a model into an OpGraph: a forward pass on the meta device under a TorchDispatchMode.

    trace(model, input_shape) -> OpGraph     input_shape per sample: (3, 224, 224), (1, 16000), (3, 16, 112, 112)

Nothing the size of a weight or an activation is allocated. A model on the meta device runs as it is; a model
with real weights runs through `torch.func.functional_call` with meta stand-ins for its parameters and buffers
(`torch.empty_like(..., device="meta")`: no copy of any weight). Every other real tensor the forward meets (a
plain tensor attribute) is replaced by a meta tensor of its shape, and factories (`torch.zeros(...)`) are sent
to meta, except small constants (SMALL): shape arithmetic done with tensors runs for real on the CPU, so that a
detection transform's `torch.tensor(image.shape[-2:])` ... `.item()` keeps its values.

Every ATen operator that runs is recorded, as a tree (level "composite", the default): the run is under
torch.inference_mode(), where operators reach the recorder as the model called them (linear,
scaled_dot_product_attention, layer_norm, einsum, reshape); a composite one (with a C++
CompositeImplicitAutograd kernel) is then run through that kernel with the recorder active, as FlopCounterMode
decomposes, so its parts are recorded as its children (linear -> view, t, addmm, view); the recurrent ones (lstm,
gru, rnn_tanh, rnn_relu) stay whole, their outputs made by importers.recurrent. The leaves are the
operators autograd's decomposition gives, which FlopCounterMode counts (matmul aside, which may fold into expand +
bmm instead of mm in inference mode). Level "aten" runs under torch.no_grad() instead, where autograd decomposes
composite operators before the recorder sees them: a flat list.
Module paths come from global forward pre/post hooks, removed afterwards whatever happens. The model is traced
at batch 1; where every operator has a known batch rule (importers.batchdims.propagate: convolutions, norms,
pooling, element-wise, flatten, linear...) the rules give each tensor's batch dimension; otherwise the model is
traced again at batch 2, and aligning the two runs gives it (inside a composite
operator whose parts differ between the two batches, reshape's view against clone, those parts' tensors are
listed as unknown). Meta kernels' answers are remembered (importers.metacache); a call not remembered is answered,
where that answer is certain, by an exact rule for its output metadata instead of torch's Python meta kernel
(importers.fastmeta: element-wise operators, norms, matrix products, reductions, softmax, roll, convolution).
Whatever the forward caches on the model (TinyViT's attention biases) is undone after each run.

A model that cannot run on meta (data-dependent shapes or Python values, an operator with no meta kernel and no
decomposition, a shape error at this input) is refused with TraceRefused, naming each operator and module path;
with `partial`, a stop the model itself would run past keeps what ran before it (importers.cut).
"""

from __future__ import annotations

import contextlib
import gc
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from convaudit.importers import opgraph as g
from convaudit.importers.batchdims import propagate, with_batch_dims
from convaudit.importers.cut import snapshot
from convaudit.importers.metacache import MetaCache
from convaudit.importers.modulestack import ModuleStack, ModuleState
from convaudit.importers.operator_table import Unsupported
from convaudit.importers.opinfo import INFO, OpInfo, dtype_name, op_info, plain
from convaudit.importers.recurrent import LAYER_TYPES as RECURRENT
from convaudit.importers.recurrent import meta_outputs as recurrent_outputs

LEVELS = ("composite", "aten")
# The largest real tensor a run makes, in elements. Shape arithmetic done with tensors (torchvision's
# detection transform: torch.tensor(image.shape[-2:]), a min, then .item()) runs on the CPU while every tensor it
# reads is real and the inputs together hold at most this many elements; the result is a constant. Everything else,
# factories above this size included, runs on meta.
SMALL = 4096


class TraceRefused(Unsupported):
    """The model cannot be traced on the meta device; `problems` names every operator found."""

    def __init__(self, problems: list[g.TraceProblem], input_shapes: tuple[tuple[int, ...], ...]):
        self.problems = tuple(problems)
        shown = "; ".join(p.line() for p in self.problems)
        size = " and ".join(str(list(shape)) for shape in input_shapes)
        hint = " (--partial counts what runs before it)" if all(p.partial_ok for p in self.problems) else ""
        super().__init__(f"cannot trace the model at input {size} on the meta device: {shown}{hint}")


class _Stop(BaseException):
    """Ends a run that cannot go on; a BaseException, so a model's own `except Exception` lets it through."""


class _Recorder:
    """Everything one run saw: tensors as lists (made records once the run is over) and nodes."""

    def __init__(self, modules: ModuleStack, cache: MetaCache):
        import torch

        self.torch = torch
        self.cache = cache
        self.modules = modules
        self.keys: dict[int, int] = {}  # id(tensor object) -> its current TensorRec id
        self.objects: dict[int, Any] = {}  # id -> every tensor object seen, kept so no id() is reused in the run
        self.tensors: list[tuple[Any, ...]] = []  # TensorRec's fields after the id, until the batch
        self.refs: list[g.TensorRef] = []  # TensorRef(id) for each, made once
        self.members: dict[int, dict[int, None]] = {}  # storage -> ids of the objects that view it (a set, ordered)
        # (info, args, outputs, module stack, writes, extra tags, parent): OpNode's fields, as a tuple until the end
        self.nodes: list[Any] = []
        self.parents: list[int] = []  # the composite operators being decomposed, innermost last
        self.decompose = True  # record composite operators' parts (level "composite")
        self.mode: Any = None
        self.stand_ins: dict[int, Any] = {}  # id(real tensor) -> its meta stand-in
        self.problems: list[g.TraceProblem] = []
        self.outputs: list[tuple[str, int]] = []
        self.tied: dict[str, str] = {}  # a parameter's second name -> its first
        self.partial, self.cut = False, None  # keep what ran before a stop the model would run past: importers.cut

    # ---------------------------------------------------------------- tensors

    def add(self, t: Any, kind: str, name: str = "", producer: int | None = None,
            version_of: int | None = None) -> int:
        key = id(t)
        self.objects[key] = t
        try:
            storage = t.untyped_storage()._cdata
        except (RuntimeError, NotImplementedError):  # a tensor without storage
            storage = key
        tid = len(self.tensors)
        self.tensors.append((tuple(t.shape), dtype_name(t.dtype), kind, name, producer, version_of, storage))
        self.refs.append(g.TensorRef(tid))
        self.keys[key] = tid
        self.members.setdefault(storage, {})[key] = None
        return tid

    def read(self, t: Any) -> g.TensorRef:
        tid = self.keys.get(id(t))
        if tid is None:
            tid = self.add(t, g.CONSTANT)
        return self.refs[tid]

    def meta(self, t: Any) -> Any:
        """A real tensor met during the run, as a meta tensor of its shape (the same one each time)."""
        stand_in = self.stand_ins.get(id(t))
        if stand_in is None:
            stand_in = self.torch.empty_strided(tuple(t.shape), t.stride(), dtype=t.dtype, device="meta")
            self.stand_ins[id(t)] = stand_in
            self.objects[id(t)] = t
            self.objects[id(stand_in)] = stand_in
            if id(t) in self.keys:  # a recorded constant: its stand-in is the same tensor
                self.keys[id(stand_in)] = self.keys[id(t)]
        return stand_in

    def value(self, v: Any, refs: list[g.TensorRef]) -> Any:
        """An argument as recorded; the tensors it reads are added to `refs`, in order."""
        if type(v) in _PLAIN:
            return v
        if isinstance(v, self.torch.Tensor):
            ref = self.read(v)
            refs.append(ref)
            return ref
        if isinstance(v, (list, tuple)):
            return [x if type(x) in _PLAIN else self.value(x, refs) for x in v]
        return plain(v)

    # ---------------------------------------------------------------- operators

    def call(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        info = INFO.get(func) or op_info(func)
        torch = self.torch
        args, kwargs = self._place(func, info, args, kwargs)
        named = {}
        refs: list[g.TensorRef] = []
        for position, name in enumerate(info.names):  # schema order, defaults filled in
            if position < len(args):
                named[name] = self.value(args[position], refs)
            elif name in kwargs:
                named[name] = self.value(kwargs[name], refs)
            else:
                named[name] = info.defaults.get(name)
        reads = [self.tensors[ref.id] for ref in refs]
        constant = all(t[2] == g.CONSTANT for t in reads)
        index = len(self.nodes)
        self.nodes.append(named)  # reserved (its arguments until it returns): a composite comes before its parts
        parent = self.parents[-1] if self.parents else None
        extra: set[str] = set()
        known = len(self.tensors)
        try:
            if info.composite and self.decompose and info.packet in RECURRENT:  # one operator, not its steps
                out = recurrent_outputs(torch, info.overload, info.names, args, kwargs)
                if isinstance(out, str):
                    self.stop(info.overload, out)
            elif info.composite and self.decompose:
                self.parents.append(index)
                try:
                    with self.mode:  # the C++ kernel, as autograd runs it (not torch._decomp's Python one)
                        out = func._op_dk(self.torch._C.DispatchKey.CompositeImplicitAutograd, *args, **kwargs)
                finally:
                    self.parents.pop()
            elif info.cacheable:
                out = self.cache.run(func, args, kwargs)
            else:
                out = func(*args, **kwargs)
        except _Stop:
            raise
        except Exception as error:
            out = self._recover(func, info, args, kwargs, error)
            extra.add(g.NO_META)
        writes: list[int] = []
        if info.written and not any(n[4] for n in self.nodes[index + 1:]):  # parts that wrote made the versions
            for name in info.written:
                position = info.names.index(name)
                written = args[position] if position < len(args) else kwargs.get(name)
                if isinstance(written, torch.Tensor):
                    writes += self._new_versions(written, index)
        kind = g.CONSTANT if constant else g.ACTIVATION
        outputs = tuple(self._output(o, index, kind) for o in (out if isinstance(out, tuple) else (out,)))
        if not writes and len(self.tensors) == known and any(isinstance(o, g.TensorRef) for o in outputs):
            extra |= {g.RETURNS_INPUT}  # dropout in eval, `to` the same dtype, contiguous on a contiguous tensor
        if not writes and reads and {t[6] for t in reads} & {self.tensors[r.id][6] for r in g.refs_in(outputs)}:
            extra.add(g.VIEW)  # as it ran: reshape that copied is not a view, _unsafe_view and unsafe_split are
        tags = (info.tags - _VIEW) | extra
        self.nodes[index] = (info, named, outputs, self.modules.current, tuple(writes), tags, parent)
        return out

    def _place(self, func: Any, info: OpInfo, args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Where the operator runs: on meta, except arithmetic on small real constants (see SMALL)."""
        torch = self.torch
        if not info.device and not _any_real(torch.Tensor, args) and not _any_real(torch.Tensor, kwargs.values()):
            return args, kwargs  # the common case: every tensor on meta, no device asked
        tensors = [a for a in _flat(args, kwargs) if isinstance(a, torch.Tensor)]
        real = [t for t in tensors if not t.is_meta]
        device = kwargs.get("device") if info.device else None
        if tensors:
            on_cpu = len(real) == len(tensors) and sum(t.numel() for t in real) <= SMALL and all(
                t.device.type == "cpu" for t in real)
            if real and not on_cpu:
                args, kwargs = self._to_meta(args, kwargs)
        else:  # a factory: on meta, unless it asks for a small tensor on the CPU
            on_cpu = device is not None and device.type == "cpu" and _numel(
                func(*args, **{**kwargs, "device": torch.device("meta")})) <= SMALL
        if device is not None and device.type != ("cpu" if on_cpu else "meta"):
            kwargs = {**kwargs, "device": torch.device("cpu" if on_cpu else "meta")}
        return args, kwargs

    def _output(self, o: Any, index: int, kind: str) -> Any:
        """An output's record: new (a constant when every tensor the operator read was one), or an argument
        returned as it is (its current version)."""
        if isinstance(o, self.torch.Tensor):
            tid = self.keys.get(id(o))
            if tid is None:
                tid = self.add(o, kind, producer=index)
            return self.refs[tid]
        if isinstance(o, (list, tuple)):
            return [self._output(x, index, kind) for x in o]
        return plain(o)

    def _new_versions(self, written: Any, index: int) -> list[int]:
        """An operator wrote `written`: every tensor viewing its storage gets a new version."""
        storage = self.tensors[self.keys[id(written)]][6]
        made = []
        for key in list(self.members.get(storage, {id(written): None})):
            old = self.keys[key]
            made.append(self.add(self.objects[key], g.ACTIVATION, self.tensors[old][3], producer=index,
                                 version_of=old))
        return made

    def _to_meta(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        from torch.utils._pytree import tree_map

        swap = lambda a: self.meta(a) if isinstance(a, self.torch.Tensor) and not a.is_meta else a  # noqa: E731
        return tree_map(swap, args), tree_map(swap, kwargs)

    def _recover(self, func: Any, info: OpInfo, args: tuple[Any, ...], kwargs: dict[str, Any],
                 error: Exception) -> Any:
        """An operator failed on meta: a decomposition or broadcasting may still give its shape; else stop."""
        message = _first_line(error)
        if g.DYNAMIC_SHAPE in info.tags or g.DATA_DEPENDENT in info.tags:
            self.stop(info.overload, f"data-dependent ({_DATA_DEPENDENT.get(info.packet, 'its output')}): it needs "
                                     "tensor values, which the meta device does not have", partial_ok=True)
        if not _no_meta_kernel(error, message):
            self.stop(info.overload, f"{type(error).__name__}: {message}")
        from torch._decomp import decomposition_table

        decomposition = decomposition_table.get(func)
        if decomposition is not None:
            with contextlib.suppress(Exception):
                return decomposition(*args, **kwargs)
        if g.POINTWISE in info.tags:
            tensors = [a for a in _flat(args, kwargs) if isinstance(a, self.torch.Tensor)]
            with contextlib.suppress(Exception):
                shape = self.torch.broadcast_shapes(*(t.shape for t in tensors))
                dtype = self.torch.result_type(*tensors[:2]) if len(tensors) > 1 else tensors[0].dtype
                return self.torch.empty(shape, dtype=dtype, device="meta")
        self.stop(info.overload, "has no meta kernel (and no decomposition), so its output shape is unknown",
                  partial_ok=True)

    def stop(self, op: str, reason: str, partial_ok: bool = False) -> None:  # partial_ok: the model would go on
        self.problems.append(g.TraceProblem(op, self.modules.path, reason, partial_ok))
        if self.partial and partial_ok:  # now, while the model's frames still hold what the rest of it would read
            self.cut = snapshot(self)
        raise _Stop

    def python_error(self, error: BaseException) -> None:
        """An error raised by the model's Python code (not by an operator): named with its source line."""
        where = ""
        for frame in reversed(traceback.extract_tb(error.__traceback__)):
            if "/torch/" not in frame.filename and not frame.filename.endswith("trace.py"):
                where = f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} ({frame.name})"
                break
        op = f"Python code at {where}" if where else "Python code"
        self.problems.append(g.TraceProblem(op, self.modules.path, f"{type(error).__name__}: {_first_line(error)}"))

    def output(self, value: Any, name: str = "") -> None:
        """Record the forward's result: every tensor in it, dict keys and positions as names."""
        torch = self.torch
        if isinstance(value, torch.Tensor):
            self.outputs.append((name or "output", self.read(value).id))
        elif isinstance(value, dict):
            for key, item in value.items():
                self.output(item, f"{name}.{key}" if name else str(key))
        elif isinstance(value, (list, tuple)):
            fields = getattr(value, "_fields", None)
            for position, item in enumerate(value):
                key = fields[position] if fields else str(position)
                self.output(item, f"{name}.{key}" if name else key)


_VIEW = frozenset({g.VIEW})
_PLAIN = {int, float, bool, str, type(None)}  # recorded as they are (opinfo.plain)
_DATA_DEPENDENT = {  # what the model's code did, for the operators it shows up as
    "_local_scalar_dense": "a tensor read as a Python number: .item(), int(), bool(), an `if` on a tensor",
    "nonzero": "nonzero's output size: torch.where with one argument, or boolean-mask indexing",
    "index": "boolean-mask indexing: its output size",
    "masked_select": "masked_select's output size",
    "_unique2": "unique's output size",
}


def _flat(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Iterator[Any]:
    for a in (*args, *kwargs.values()):
        if isinstance(a, (list, tuple)):
            yield from a
        else:
            yield a


def _any_real(Tensor: type, values: Any) -> bool:
    """Whether a tensor in `values` (or in a list among them, as _flat reads them) is not on meta."""
    for a in values:
        if isinstance(a, Tensor):
            if not a.is_meta:
                return True
        elif isinstance(a, (list, tuple)) and any(isinstance(x, Tensor) and not x.is_meta for x in a):
            return True
    return False


def _numel(value: Any) -> int:
    tensors = value if isinstance(value, (list, tuple)) else [value]
    return sum(t.numel() for t in tensors if hasattr(t, "numel"))


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]


def _no_meta_kernel(error: Exception, message: str) -> bool:
    return isinstance(error, NotImplementedError) and ("meta" in message.lower() or "fake impl" in message.lower())


def _mode(recorder: _Recorder) -> Any:
    from torch.utils._python_dispatch import TorchDispatchMode

    class Recording(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                               kwargs: dict[str, Any] | None = None) -> Any:
            if not hasattr(func, "_schema"):  # a higher-order operator (cond, flex_attention): no schema to read
                recorder.stop(str(func), "a higher-order operator, which the tracer does not follow")
            return recorder.call(func, args, kwargs or {})

    # TorchDispatchMode wraps every subclass's __torch_dispatch__ in torch._disable_dynamo, which imports
    # torch._dynamo on the first call (1-2 s, the longest part of a first trace) and then adds a wrapper to every
    # operator. Nothing here runs under torch.compile, so the wrapper is told it has nothing to disable.
    wrapped = getattr(Recording.__dict__["__torch_dispatch__"], "__wrapped__", None)
    if wrapped is not None:
        wrapped.__dynamo_disable = wrapped
    recorder.mode = Recording()
    return recorder.mode


# -------------------------------------------------------------------- one run, two runs, the graph


def trace(model: Any, input_shape: Sequence[int] | Sequence[Sequence[int]], *, level: str = "composite",
          batch_dims: bool = True, dtype: Any = None, partial: bool = False) -> g.OpGraph:
    """The operators `model` runs on one batch of `input_shape` (per sample), traced on the meta device.

    `input_shape` is one shape, (3, 224, 224), or one per positional input of the forward, ((3, 520, 960),
    (3, 520, 960)) for RAFT's two frames. With `batch_dims`, each tensor's batch dimension comes from the
    batch rules (batchdims.propagate) or, where an operator has none, from a second run at batch 2; shapes are
    at batch 1. `dtype` is the inputs' (default: torch's default float type). The model is
    left as it was: training flags, and whatever its forward cached on itself. With `partial`, a data-dependent
    operator (or one with no meta kernel) ends the graph there, `stopped` saying where and why (importers.cut).
    """
    import torch

    if level not in LEVELS:
        raise ValueError(f"level is one of {', '.join(LEVELS)}, not {level!r}")
    shapes = _input_shapes(input_shape)
    state = ModuleState(model)
    model.eval()
    collecting = gc.isenabled()
    gc.disable()  # a trace makes many small records and frees none: collections would only rescan them
    try:
        forward, named = _meta_forward(model)
        dtype = dtype or torch.get_default_dtype()
        cache = MetaCache(torch)  # kernels' answers, shared by both runs and later traces
        first = _run(model, forward, named, shapes, 1, level, dtype, cache, partial)
        state.restore(training=False)  # what the run cached on the model (TinyViT's attention biases) is undone
        if first.problems and first.cut is None:
            raise TraceRefused(first.problems, shapes)
        graph = _graph(model, first, shapes, 1, level)
        if batch_dims:
            known = propagate(graph)  # every operator's batch rule is known: no second run
            if known is not None:
                return known
            second = _run(model, forward, named, shapes, 2, level, dtype, cache, partial)
            if second.problems and (second.cut is None or second.problems != first.problems):  # runs at batch 1 only
                return replace(graph, batch_unknown=tuple(t.id for t in graph.tensors))
            graph = with_batch_dims(graph, _graph(model, second, shapes, 2, level))
        return graph
    finally:
        state.restore()
        if collecting:
            gc.enable()


def _input_shapes(given: Sequence[int] | Sequence[Sequence[int]]) -> tuple[tuple[int, ...], ...]:
    if all(isinstance(d, int) for d in given):
        return (tuple(int(d) for d in given),)  # type: ignore[arg-type]
    return tuple(tuple(int(d) for d in shape) for shape in given)  # type: ignore[union-attr]


def _meta_forward(model: Any) -> tuple[Callable[..., Any], list[tuple[str, Any, str]]]:
    """The forward to run, and every parameter and buffer as the run will see it: [(name, tensor, kind)].

    A model already on meta runs itself. Otherwise `functional_call` swaps in meta stand-ins of the same
    shapes for the duration of the call (`empty_like` on meta: nothing copied); tied parameters share one.
    """
    import torch

    named = [(name, t, g.PARAMETER) for name, t in model.named_parameters(remove_duplicate=False)]
    named += [(name, t, g.BUFFER) for name, t in model.named_buffers(remove_duplicate=False)]
    if all(t.is_meta for _, t, _ in named):
        return model, named
    stand_ins: dict[int, Any] = {}
    for _, t, _ in named:
        if id(t) not in stand_ins:
            stand_ins[id(t)] = t if t.is_meta else torch.empty_like(t, device="meta")
    state = {name: stand_ins[id(t)] for name, t, _ in named}
    forward = lambda *xs: torch.func.functional_call(model, state, xs, strict=False)  # noqa: E731
    return forward, [(name, stand_ins[id(t)], kind) for name, t, kind in named]


def _run(model: Any, forward: Callable[..., Any], named: list[tuple[str, Any, str]],
         input_shapes: tuple[tuple[int, ...], ...], batch: int, level: str, dtype: Any, cache: MetaCache,
         partial: bool = False) -> _Recorder:
    import torch
    from torch.nn.modules import module as nn_module

    modules = ModuleStack(model)
    recorder = _Recorder(modules, cache)
    recorder.decompose = level == "composite"
    recorder.partial = partial
    xs = [torch.empty((batch, *shape), dtype=dtype, device="meta") for shape in input_shapes]
    for position, x in enumerate(xs):
        recorder.add(x, g.INPUT, "input" if len(xs) == 1 else f"input{position}")
    for name, t, kind in named:
        if id(t) in recorder.keys:
            recorder.tied[name] = recorder.tensors[recorder.keys[id(t)]][3]
        else:
            recorder.add(t, kind, name)
    handles = [nn_module.register_module_forward_pre_hook(modules.pre),
               nn_module.register_module_forward_hook(modules.post)]
    grad = torch.inference_mode() if level == "composite" else torch.no_grad()
    try:
        with grad, _mode(recorder):
            result = forward(*xs)
        recorder.output(result)
    except _Stop:
        pass
    except Exception as error:  # raised by the model's Python code, not by an operator
        recorder.python_error(error)
    finally:
        for handle in handles:
            handle.remove()
    if recorder.cut is not None:
        recorder.cut.apply(recorder)
    return recorder


def _graph(model: Any, run: _Recorder, input_shapes: tuple[tuple[int, ...], ...], batch: int,
           level: str) -> g.OpGraph:
    storages: dict[int, int] = {}  # torch's storage address -> a small number, in order of appearance
    tensors = tuple(g.TensorRec(tid, *fields[:6], storages.setdefault(fields[6], len(storages)))
                    for tid, fields in enumerate(run.tensors))
    nodes = tuple(g.OpNode(index, info.overload, info.packet, named, outputs, tags, stack, writes, parent)
                  for index, (info, named, outputs, stack, writes, tags, parent) in enumerate(run.nodes))
    modules = {path: type(m).__name__ for path, m in model.named_modules()}
    modules.update(run.modules.seen)
    outputs = tuple(g.GraphOutput(name, tid) for name, tid in run.outputs)
    inputs = tuple(range(len(input_shapes)))  # registered first
    graph = g.OpGraph(tensors, nodes, inputs, outputs, input_shapes, batch, False, level, modules, run.tied)
    return run.cut.stopped(graph, run.problems[0], run.modules.seen) if run.cut is not None else graph
