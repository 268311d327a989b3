"""Each tensor's batch dimension, from two traces of one model at batch 1 and batch 2.

Torch-free. The two graphs are paired operator by operator, from the top level down: two calls pair when
they are the same overload at the same place, and a composite operator's parts pair only when both runs
decomposed it into the same sequence (reshape is a view at batch 1 and clone + _unsafe_view at batch 2 when a
size-1 dimension made the view possible; those parts' tensors are then `batch_unknown`). Paired calls pair
their tensors; a dimension that doubled from batch 1 to 2 is the batch dimension, folded (B·k) when it was
k > 1 at batch 1.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from convaudit.importers.opgraph import OpGraph, TensorRef, refs_in


def with_batch_dims(one: OpGraph, two: OpGraph) -> OpGraph:
    """`one` (at batch 1) with batch_dim/batch_folded found against `two` (the same model at batch 2)."""
    pairs = _pair_nodes(one, two)
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
    tensors, irregular, unknown = [], [], []
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
            tensors.append(t)
        else:
            tensors.append(replace(t, batch_dim=dim, batch_folded=t.shape[dim] > 1))  # B·k at B = 1 is k
    nodes = tuple(replace(n, batch_args=moved[n.index]) if n.index in moved else n for n in one.nodes)
    return replace(one, tensors=tuple(tensors), nodes=nodes, batch_known=True,
                   batch_irregular=tuple(irregular), batch_unknown=tuple(unknown))


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


def _pair_nodes(one: OpGraph, two: OpGraph) -> list[tuple[int, int]] | None:
    """(node at batch 1, node at batch 2) for every call both runs made alike; None when the top levels differ."""
    kids_one, kids_two = one.children(), two.children()
    if not _alike(one, two, kids_one[None], kids_two[None]):
        return None
    pairs: list[tuple[int, int]] = []
    todo = list(zip(kids_one[None], kids_two[None], strict=True))
    while todo:
        a, b = todo.pop()
        pairs.append((a, b))
        parts_a, parts_b = kids_one.get(a, []), kids_two.get(b, [])
        if _alike(one, two, parts_a, parts_b):
            todo.extend(zip(parts_a, parts_b, strict=True))
    return sorted(pairs)


def _alike(one: OpGraph, two: OpGraph, a: list[int], b: list[int]) -> bool:
    return len(a) == len(b) and all(one.nodes[i].overload == two.nodes[j].overload for i, j in zip(a, b, strict=False))


def _same_value(a: Any, b: Any) -> bool:
    """Argument values equal, tensors aside (paired tensors count as the same argument)."""
    if isinstance(a, TensorRef) or isinstance(b, TensorRef):
        return isinstance(a, TensorRef) and isinstance(b, TensorRef)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)

