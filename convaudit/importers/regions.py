"""Modules read as one readable layer, when their insides are not layers of their own: nn.MultiheadAttention as
`attention`, torchvision's LayerNorm2d as a `layernorm` over channels. A region that does not fit its layer
(cross-attention, a mask, a batch that is not first) is read operator by operator instead."""

from __future__ import annotations

from collections.abc import Callable

from convaudit.importers import opgraph as g
from convaudit.importers.reader import Act, Learned, Reader


def boundary(reader: Reader, members: list[g.OpNode]) -> tuple[list[Act], list[g.TensorRec], list[Learned]]:
    """The activations a region reads from outside, the tensors it gives to the rest of the network, and what it
    learns (its parameters)."""
    made = {ref.id for node in members for ref in g.refs_in(node.outputs)} | {
        tid for node in members for tid in node.writes}
    inside = {node.index for node in members}
    inputs: dict[int, Act] = {}
    learned: dict[int, Learned] = {}
    for node in members:
        for value in reader.operands(node, strict=False):
            if isinstance(value, Act) and value.rec.id not in made:
                inputs.setdefault(value.rec.id, value)
            elif isinstance(value, Learned):
                learned.setdefault(value.rec.id, value)
    readers = reader.readers
    graph_outputs = {output.tensor for output in reader.graph.outputs}
    outputs = [reader.graph.tensor(tid) for tid in sorted(made)
               if tid in graph_outputs or any(user not in inside and reader.graph.nodes[user].parent is None
                                                  for user in readers.get(tid, []))]
    return list(inputs.values()), outputs, list(learned.values())


def multihead_attention(reader: Reader, members: list[g.OpNode], frame: g.Frame, depth: int) -> bool:
    inputs, outputs, learned = boundary(reader, members)
    if len(inputs) != 1 or len(outputs) != 1 or inputs[0].rec.batch_dim != 0 or inputs[0].rec.batch_folded:
        return False
    x = inputs[0]
    if len(reader.sample(x.rec)) != 2:
        return False
    heads = None
    for node in members:
        for part in [node, *(reader.graph.nodes[i] for i in reader.kids.get(node.index, []))]:
            if "scaled_dot_product_attention" in part.packet:
                query = reader.graph.tensor(part.args["query"])
                heads = query.shape[-3] if len(query.shape) >= 3 else None
            elif part.packet == "_native_multi_head_attention":
                heads = int(part.args["num_head"])
    if heads is None:
        return False
    bias = any(name.endswith("in_proj_bias") for item in learned for name in item.names)
    reader.emit(members[0], "attention", {"heads": heads, "bias": bias}, [x], tuple(learned), out=outputs[0],
                op=frame.kind, stack=members[0].stack[:depth + 1])
    reader.layers[-1].leaf = True
    return True


def layernorm_over_channels(reader: Reader, members: list[g.OpNode], frame: g.Frame, depth: int) -> bool:
    inputs, outputs, learned = boundary(reader, members)
    if len(inputs) != 1 or len(outputs) != 1 or inputs[0].rec.batch_dim != 0 or len(reader.sample(inputs[0].rec)) < 2:
        return False
    affine = bool(learned)
    shift = any(name.endswith("bias") for item in learned for name in item.names)
    params: dict = {"over": "channels"}
    if not affine:
        params["affine"] = False
    elif not shift:
        params["bias"] = False
    reader.emit(members[0], "layernorm", params, inputs,
                tuple(learned), out=outputs[0], op=frame.kind, stack=members[0].stack[:depth + 1])
    reader.layers[-1].leaf = True
    return True


COLLAPSE: dict[str, Callable[[Reader, list[g.OpNode], g.Frame, int], bool]] = {
    "MultiheadAttention": multihead_attention,
    "LayerNorm2d": layernorm_over_channels,  # torchvision's and timm's
    "LayerNorm2dNoBias": layernorm_over_channels,  # timm's MetaFormer
}
