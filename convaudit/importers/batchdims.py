"""Each tensor's batch dimension, from two traces of one model at batch 1 and batch 2.

Torch-free. The two graphs are paired operator by operator, from the top level down: two calls pair when
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

