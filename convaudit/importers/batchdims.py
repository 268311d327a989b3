"""Each tensor's batch dimension: by rule from one trace, or from two traces of one model at batch 1 and batch 2.

Torch-free. `propagate` reads one trace at batch 1 when every operator in it is one whose batch behaviour is
known for certain (convolutions, norms, pooling, element-wise operators, reductions, flatten, linear, cat,
permute): the batch starts at the input's dimension 0 and each rule says where it goes, so the second trace is
not needed. Any other operator (a reshape written by the model, whose sizes may hold the batch or a constant,
expand, a factory) returns None, and the two traces decide (`with_batch_dims`).

The two graphs are paired operator by operator, from the top level down: two calls pair when
they are the same overload at the same place, and a composite operator's parts pair only when both runs
decomposed it into the same sequence (reshape is a view at batch 1 and clone + _unsafe_view at batch 2 when a
size-1 dimension made the view possible; those parts' tensors are then `batch_unknown`). Paired calls pair
their tensors; a dimension that doubled from batch 1 to 2 is the batch dimension, folded (B·k) when it was
k > 1 at batch 1.

A model that loops over its samples in Python (a detection transform's `for image in images`) runs more operators
at batch 2: the two top levels are then aligned instead of paired one to one, each call at batch 1 with the next
call at batch 2 of the same overload and module path whose tensor arguments are the pairs of its own (the loop's
first sample pairs with the first sample). The tensors of such a loop are one sample each, with no batch dimension
in their shape (`batch_looped`): those made by a call that takes one sample (an unbind over the batch, which gives
more items at batch 2, or a select along it), those the alignment leaves unpaired, and those that kept their shape
from batch 1 to 2 while made from a looped one. A loop's result written or joined into a tensor whose batch
dimension doubled is not looped.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from convaudit.importers.opgraph import OpGraph, TensorRef, refs_in


def with_batch_dims(one: OpGraph, two: OpGraph) -> OpGraph:
    """`one` (at batch 1) with batch_dim/batch_folded found against `two` (the same model at batch 2)."""
    pairs = _pair_nodes(one, two)
    aligned = pairs is None
    if aligned:
        pairs = _pair_nodes(one, two, align=True)
    if pairs is None or len(one.inputs) != len(two.inputs):
        return replace(one, batch_known=False, batch_unknown=tuple(t.id for t in one.tensors))
    tensor_pairs = dict(zip(one.inputs, two.inputs, strict=True))
    for t in one.tensors:
        if t.producer is None and t.kind != "constant":
            tensor_pairs[t.id] = t.id  # the input, parameters and buffers: registered first, in the same order
    moved: dict[int, frozenset[str]] = {}
    for a, b in pairs:
        node_a, node_b = one.nodes[a], two.nodes[b]
        for ids_a, ids_b in ((_ids(node_a.args.values()), _ids(node_b.args.values())),
                             (_ids(node_a.outputs), _ids(node_b.outputs)), (node_a.writes, node_b.writes)):
            if len(ids_a) == len(ids_b):
                for x, y in zip(ids_a, ids_b, strict=True):
                    tensor_pairs.setdefault(x, y)
        changed = frozenset(k for k, v in node_a.args.items() if not _same_value(v, node_b.args.get(k)))
        if changed:
            moved[a] = changed
    tensors, irregular, unknown, unchanged = [], [], [], set()
    for t in one.tensors:
        other = tensor_pairs.get(t.id)
        if other is None:
            unknown.append(t.id)
            tensors.append(t)
            continue
        dim = _batch_dim(t.shape, two.tensors[other].shape)
        if dim == -1:
            irregular.append(t.id)
            tensors.append(t)
        elif dim is None:
            unchanged.add(t.id)
            tensors.append(t)
        else:
            tensors.append(replace(t, batch_dim=dim, batch_folded=t.shape[dim] > 1))  # B·k at B = 1 is k
    nodes = tuple(replace(n, batch_args=moved[n.index]) if n.index in moved else n for n in one.nodes)
    looped = _looped(replace(one, tensors=tuple(tensors)), two, pairs, set(tensor_pairs), unchanged) if aligned else ()
    return replace(one, tensors=tuple(tensors), nodes=nodes, batch_known=True,
                   batch_irregular=tuple(irregular), batch_unknown=tuple(unknown), batch_looped=looped)


def _looped(one: OpGraph, two: OpGraph, pairs: list[tuple[int, int]], paired: set[int],
            unchanged: set[int]) -> tuple[int, ...]:
    """The tensors made once per sample in a Python loop (module docstring), in the order made (`one` with its
    batch dimensions). A loop starts at a call that takes one sample: it gave more tensors at batch 2 (an unbind
    over the batch), or it selects along the batch dimension (`images[i]`)."""
    takes_a_sample = {a for a, b in pairs if len(_ids(one.nodes[a].outputs)) != len(_ids(two.nodes[b].outputs))}
    for node in one.top():
        data = node.args.get("self")
        if node.packet in ("select", "unbind") and isinstance(data, TensorRef):
            rec = one.tensor(data)
            if rec.batch_dim is not None and not rec.batch_folded and \
                    node.args.get("dim", 0) % len(rec.shape) == rec.batch_dim:
                takes_a_sample.add(node.index)
    looped: dict[int, None] = {}
    for node in one.top():
        reads = node.index in takes_a_sample or any(ref.id in looped for ref in refs_in(node.args.values()))
        for tensor in (*_ids(node.outputs), *node.writes):
            if one.tensors[tensor].kind != "constant" and (
                    tensor not in paired or (reads and tensor in unchanged)):
                looped[tensor] = None
    return tuple(looped)


def _ids(values: Any) -> list[int]:
    return [ref.id for ref in refs_in(values)]


def _batch_dim(one: tuple[int, ...], two: tuple[int, ...]) -> int | None:
    """The one dimension that doubled, None when none changed, -1 for any other change."""
    if one == two:
        return None
    if len(one) != len(two):
        return -1
    changed = [d for d in range(len(one)) if one[d] != two[d]]
    if len(changed) == 1 and two[changed[0]] == 2 * one[changed[0]]:
        return changed[0]
    return -1


def _pair_nodes(one: OpGraph, two: OpGraph, align: bool = False) -> list[tuple[int, int]] | None:
    """(node at batch 1, node at batch 2) for every call both runs made alike; None when the top levels differ
    (with `align`, the top-level calls the alignment pairs, and their parts)."""
    kids_one, kids_two = one.children(), two.children()
    top_one, top_two = kids_one[None], kids_two[None]
    if align:
        todo = _aligned(one, two, top_one, top_two)
    elif _alike(one, two, top_one, top_two):
        todo = list(zip(top_one, top_two, strict=True))
    else:
        return None
    pairs: list[tuple[int, int]] = []
    while todo:
        a, b = todo.pop()
        pairs.append((a, b))
        parts_a, parts_b = kids_one.get(a, []), kids_two.get(b, [])
        if _alike(one, two, parts_a, parts_b):
            todo.extend(zip(parts_a, parts_b, strict=True))
    return sorted(pairs)


def _key(node: Any) -> tuple[str, tuple[str, ...]]:
    return node.overload, tuple(frame.path for frame in node.stack)


ALIGN_WINDOW = 4096  # calls at batch 2 searched for the partner of one call at batch 1


def _aligned(one: OpGraph, two: OpGraph, top_one: list[int], top_two: list[int]) -> list[tuple[int, int]]:
    """Top-level calls paired in order (module docstring); tensors pair as their calls do, lists of unequal length
    (an unbind over the batch: 1 item, then 2) item by item from the first."""
    tensors = {t.id: t.id for t in one.tensors if t.producer is None and t.kind != "constant"}  # registered first
    pairs: list[tuple[int, int]] = []
    start = 0
    for a in top_one:
        node = one.nodes[a]
        reads = _ids(node.args.values())
        for position in range(start, min(len(top_two), start + ALIGN_WINDOW)):
            other = two.nodes[top_two[position]]
            if _key(other) != _key(node):
                continue
            other_reads = _ids(other.args.values())
            if any(tensors.get(x, y) != y for x, y in zip(reads, other_reads, strict=False)):
                continue  # reads something else than the pairs of what the call at batch 1 reads
            pairs.append((a, top_two[position]))
            start = position + 1
            for mine, theirs in ((reads, other_reads), (_ids(node.outputs), _ids(other.outputs)),
                                 (node.writes, other.writes)):
                for x, y in zip(mine, theirs, strict=False):
                    tensors.setdefault(x, y)
            break
    return pairs


def _alike(one: OpGraph, two: OpGraph, a: list[int], b: list[int]) -> bool:
    return len(a) == len(b) and all(one.nodes[i].overload == two.nodes[j].overload for i, j in zip(a, b, strict=False))


def _same_value(a: Any, b: Any) -> bool:
    """Argument values equal, tensors aside (paired tensors count as the same argument)."""
    if isinstance(a, TensorRef) or isinstance(b, TensorRef):
        return isinstance(a, TensorRef) and isinstance(b, TensorRef)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)



# ---------------------------------------------------------------------------------------------- by rule

Batch = tuple[int, bool] | None  # (dimension, folded) or None: no dimension scales with the batch


class _Unknown(Exception):
    """An operator outside the rules, or one whose arguments the rules do not cover: trace at batch 2."""


_CONVOLUTIONS = {"convolution", "_convolution", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                 "conv_transpose3d"}
_BATCH_NORMS = {"batch_norm", "_batch_norm_impl_index", "native_batch_norm", "_native_batch_norm_legit_no_training",
                "_native_batch_norm_legit", "instance_norm"}
_POOLS = {"max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices", "max_pool3d_with_indices",
          "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
          "adaptive_avg_pool3d", "_adaptive_avg_pool2d", "_adaptive_avg_pool3d", "adaptive_max_pool1d",
          "adaptive_max_pool2d", "adaptive_max_pool3d"}
_ELEMENTWISE = {"dropout", "dropout_", "feature_dropout", "feature_dropout_", "alpha_dropout", "contiguous", "clone",
                "_to_copy", "to", "detach", "alias", "hardswish", "hardswish_", "hardsigmoid", "hardsigmoid_",
                "relu", "relu_", "relu6", "silu", "silu_", "gelu", "gelu_", "sigmoid", "sigmoid_", "tanh", "tanh_",
                "hardtanh", "hardtanh_", "elu", "elu_", "leaky_relu", "leaky_relu_", "mish", "mish_"}
_REDUCTIONS = {"mean", "sum", "amax", "amin"}
_SOFTMAXES = {"softmax", "_softmax", "log_softmax", "_log_softmax"}
_RESHAPES = {"view", "_unsafe_view", "reshape"}  # only as parts of flatten or linear, which compute their sizes
_SIZED_BY_PARENT = {"flatten", "linear", "adaptive_avg_pool2d", "adaptive_avg_pool3d"}


def propagate(graph: OpGraph) -> OpGraph | None:
    """`graph` (one trace at batch 1) with every tensor's batch dimension found by rule, or None when an operator
    falls outside the rules. Equal to what `with_batch_dims` finds from a second trace wherever it answers."""
    if graph.batch != 1:
        return None
    batch: dict[int, Batch] = {t.id: None for t in graph.tensors if t.producer is None and t.kind != "input"}
    for tid in graph.inputs:
        batch[tid] = (0, False)
    moved: dict[int, frozenset[str]] = {}
    try:
        for node in graph.nodes:
            parent = graph.nodes[node.parent].packet if node.parent is not None else None
            made, args = _rule(graph, node, parent, batch)
            outputs = _ids(node.outputs)
            if len(made) != len(outputs):
                raise _Unknown(node.overload)
            for tid, found in zip(outputs, made, strict=True):
                if batch.setdefault(tid, found) != found:  # a composite's output is also its last part's
                    raise _Unknown(node.overload)
            for tid in node.writes:  # an in-place write's new versions: the same tensors, the same batch
                batch[tid] = batch[graph.tensors[tid].version_of]  # type: ignore[index]
            if args:
                moved[node.index] = args
    except (_Unknown, KeyError, IndexError, TypeError):
        return None
    if any(t.id not in batch for t in graph.tensors):
        return None
    tensors = tuple(t if batch[t.id] is None else replace(t, batch_dim=batch[t.id][0],  # type: ignore[index]
                                                          batch_folded=batch[t.id][1])  # type: ignore[index]
                    for t in graph.tensors)
    nodes = tuple(replace(n, batch_args=moved[n.index]) if n.index in moved else n for n in graph.nodes)
    return replace(graph, tensors=tensors, nodes=nodes, batch_known=True, batch_irregular=(), batch_unknown=())


def _rule(graph: OpGraph, node: Any, parent: str | None,
          batch: dict[int, Batch]) -> tuple[list[Batch], frozenset[str]]:
    """The batch of each tensor output, and the arguments whose value would change with the batch."""
    packet, args = node.packet, node.args
    outputs = [graph.tensors[tid] for tid in _ids(node.outputs)]
    ins = {name: batch[ref.id] for name, ref in args.items() if isinstance(ref, TensorRef)}
    listed = [batch[ref.id] for value in args.values() if isinstance(value, list) for ref in refs_in(value)]
    batched = {b for b in [*ins.values(), *listed] if b is not None}
    if not batched:  # arithmetic on parameters and constants: sizes that could hold the batch are refused
        if packet in {"t", "_to_copy", "to", "contiguous", "clone", "detach", "alias"} or (
                "pointwise" in node.tags and not any(isinstance(v, list) for v in args.values())):
            return [None] * len(outputs), frozenset()
        if packet == "empty" and parent in _BATCH_NORMS:  # the reserve tensor: size [0]
            return [None] * len(outputs), frozenset()
        raise _Unknown(node.overload)
    if len(batched) != 1:
        raise _Unknown(node.overload)
    dim, folded = next(iter(batched))
    rank = len(graph.tensors[_first(args)].shape)
    same = [(dim, folded)] * len(outputs)
    if packet in _ELEMENTWISE or "pointwise" in node.tags:
        _broadcasts(graph, node, batch, dim, outputs)
        return same, frozenset()
    if packet in _CONVOLUTIONS or packet in _POOLS:
        _only_batched(args, ins, "input", "self")
        if (dim, folded) != (0, False):
            raise _Unknown(node.overload)
        return same, frozenset()
    if packet in _BATCH_NORMS:
        _only_batched(args, ins, "input")
        return [(0, False) if position == 0 else None for position in range(len(outputs))], frozenset()
    if packet in {"layer_norm", "native_layer_norm"}:
        _only_batched(args, ins, "input")
        if dim >= rank - len(args["normalized_shape"]):
            raise _Unknown(node.overload)
        return same, frozenset()  # the mean and 1/std keep the leading dimensions
    if packet in {"group_norm", "native_group_norm"}:
        _only_batched(args, ins, "input")
        return same, frozenset()
    if packet in _REDUCTIONS:
        reduced = _dims(args.get("dim"), rank)
        if reduced is None or dim in reduced:
            raise _Unknown(node.overload)
        kept = dim if args.get("keepdim") else dim - sum(1 for d in reduced if d < dim)
        return [(kept, folded)], frozenset()
    if packet in _SOFTMAXES:
        if _dims([args["dim"]], rank) == {dim}:
            raise _Unknown(node.overload)
        return same, frozenset()
    if packet == "flatten":
        start, end = _dims([args["start_dim"]], rank), _dims([args["end_dim"]], rank)
        if start is None or end is None or dim >= min(start):
            raise _Unknown(node.overload)
        return same, frozenset()
    if packet == "linear" or packet in {"addmm", "mm"} and parent == "linear":
        _only_batched(args, ins, "input", "mat1", "self" if packet == "mm" else "input")
        if dim != 0:
            raise _Unknown(node.overload)
        return same, frozenset()
    if packet in _RESHAPES and parent in _SIZED_BY_PARENT and dim == 0:
        # flatten(start ≥ 1) and linear's folding keep the batch leading: B·k rows when k = rows at batch 1 > 1
        return [(0, out.shape[0] > 1) for out in outputs], frozenset({"size" if "size" in args else "shape"})
    if packet == "as_strided_" and parent in _SIZED_BY_PARENT and dim == 0:
        return same, frozenset({"size"})  # adaptive pooling's 1×1 view of its mean: its sizes hold the batch
    if packet == "cat":
        tensors = args["tensors"]
        if any(batch[ref.id] is None for ref in tensors) or _dims([args["dim"]], rank) == {dim}:
            raise _Unknown(node.overload)
        return same, frozenset()
    if packet == "permute":
        return [(list(_dims_ordered(args["dims"], rank)).index(dim), folded)], frozenset()
    if packet == "transpose":
        first, second = _dims_ordered([args["dim0"], args["dim1"]], rank)
        return [(second if dim == first else first if dim == second else dim, folded)], frozenset()
    raise _Unknown(node.overload)


def _first(args: dict[str, Any]) -> int:
    """The id of the operator's first tensor argument (its input)."""
    for value in args.values():
        refs = refs_in(value)
        if refs:
            return refs[0].id
    raise _Unknown("no tensor argument")


def _only_batched(args: dict[str, Any], ins: dict[str, Batch], *names: str) -> None:
    """The batch comes in through the data argument alone: weights, statistics and biases have none."""
    if any(b is not None for name, b in ins.items() if name not in names):
        raise _Unknown("a batch in a weight")


def _broadcasts(graph: OpGraph, node: Any, batch: dict[int, Batch], dim: int, outputs: list[Any]) -> None:
    """Element-wise: every tensor with the batch has the output's rank; one without it broadcasts along it."""
    if not outputs:
        raise _Unknown(node.overload)
    rank = len(outputs[0].shape)
    for ref in refs_in(list(node.args.values())):
        found, shape = batch[ref.id], graph.tensors[ref.id].shape
        if found is not None:
            if len(shape) != rank:
                raise _Unknown(node.overload)
            continue
        aligned = dim - (rank - len(shape))  # the batch's dimension, counted from the right as broadcasting aligns
        if len(shape) > rank or (aligned >= 0 and shape[aligned] != 1):
            raise _Unknown(node.overload)


def _dims(values: Any, rank: int) -> set[int] | None:
    if values is None or not isinstance(values, list) or not values:
        return None
    return set(_dims_ordered(values, rank))


def _dims_ordered(values: list[Any], rank: int) -> list[int]:
    if not all(isinstance(v, int) for v in values):
        raise _Unknown("dimensions that are not numbers")
    return [v + rank if v < 0 else v for v in values]
