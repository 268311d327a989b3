"""ATen's views and data movement, read into layers: reshapes, permutes, slices, concatenations, pads, up-sampling
and gathers (importers/aten.py holds the other families and the registry these join)."""

from __future__ import annotations

import math
from typing import Any

from convaudit.importers import opgraph as g
from convaudit.importers.aten import batch_first, compact, handles, leading, plain, sample_dim
from convaudit.importers.reader import Act, Const, Decline, Learned, Reader

# ------------------------------------------------------------------ views and data movement

@handles("view", "reshape", "_unsafe_view", "flatten", "unflatten", "squeeze", "unsqueeze", "view_as", "reshape_as",
         "_reshape_alias")
def reshape(reader: Reader, node: g.OpNode) -> None:
    x = reader.act(node.args.get("self", node.args.get("input")))
    out = reader.out(node)
    before, after = reader.sample(x.rec), reader.sample(out)
    if before == after and reader.placement(x.rec) == reader.placement(out):
        reader.alias(node, x)
        return
    if leading(reader, x) and out.batch_dim == 0 and not out.batch_folded and len(after) == 1 and len(before) > 1:
        reader.emit(node, "flatten", {}, [x])
        return
    if out.batch_dim is None and x.rec.batch_dim is not None:
        raise Decline  # a reshape that loses the batch
    params: dict[str, Any] = {"shape": list(after) or [1]}
    if out.batch_dim is None:  # a tensor no sample owns (a position table) keeps owning none
        reader.emit(node, "reshape", params, [x])
        return
    if out.batch_dim != 0 or out.batch_folded:
        params.update(batch=out.batch_dim, fold=out.batch_folded)
    reader.emit(node, "reshape", params, [x])


@handles("permute", "transpose", "t", "movedim", "swapaxes", "swapdims", "numpy_T")
def permute(reader: Reader, node: g.OpNode) -> None:
    a = node.args
    x = reader.act(a.get("self", a.get("input")))
    rank = len(x.rec.shape)
    order = list(range(rank))
    if node.packet == "permute":
        order = [d % rank for d in a["dims"]]
    elif node.packet in ("transpose", "swapaxes", "swapdims", "t"):
        first, second = (a.get("dim0", 0) % rank, a.get("dim1", 1) % rank) if node.packet != "t" else (0, rank - 1)
        order[first], order[second] = order[second], order[first]
    elif node.packet == "movedim":
        source, destination = a["source"], a["destination"]
        source = [s % rank for s in (source if isinstance(source, list) else [source])]
        destination = [d % rank for d in (destination if isinstance(destination, list) else [destination])]
        rest = [d for d in range(rank) if d not in source]
        order = [0] * rank
        for s, d in zip(source, destination, strict=True):
            order[d] = s
        free = iter(rest)
        order = [order[i] if i in destination else next(free) for i in range(rank)]
    else:
        raise Decline
    if order == sorted(order):
        reader.alias(node, x)
        return
    batch, folded = x.rec.batch_dim, x.rec.batch_folded
    if batch is None or folded:
        sample_order = order
        out_batch = None
    else:
        sample_order = [d if d < batch else d - 1 for d in order if d != batch]
        out_batch = order.index(batch)
    params: dict[str, Any] = {"order": sample_order}
    if out_batch:
        params["batch"] = out_batch
    reader.emit(node, "permute", params, [x])


@handles("expand", "expand_as", "broadcast_to")
def expand(reader: Reader, node: g.OpNode) -> None:
    x = reader.act(node.args["self"])
    out = reader.out(node)
    if reader.sample(out) == reader.sample(x.rec):
        reader.alias(node, x)
        return
    if len(out.shape) != len(x.rec.shape) or out.batch_dim != x.rec.batch_dim:
        raise Decline
    reader.emit(node, "expand", {"shape": list(reader.sample(out))}, [x])


@handles("slice", "narrow")
def slice_(reader: Reader, node: g.OpNode) -> None:
    a = node.args
    x = reader.act(a.get("self", a.get("input")))
    rank = len(x.rec.shape)
    dim = a.get("dim", 0) % rank
    size = x.rec.shape[dim]
    if node.packet == "narrow":
        start, end, step = a["start"] % size, a["start"] % size + a["length"], 1
    else:
        start, end, step = a.get("start") or 0, a.get("end"), a.get("step", 1)
        start = max(0, start + size if start < 0 else start)
        end = size if end is None else min(size, end + size if end < 0 else end)
    if (start, end, step) == (0, size, 1):
        reader.alias(node, x)
        return
    if end <= start:  # an empty slice (x[..., :0], prefix tokens when there are none): no data, no layer
        reader.values[reader.out(node).id] = Const(reader.out(node))
        return
    params = {"start": start, "end": end, "dim": sample_dim(reader, x, dim)}
    if step != 1:
        params["step"] = step
    reader.emit(node, "slice", params, [x])


@handles("select")
def select(reader: Reader, node: g.OpNode) -> None:
    x = reader.act(node.args["self"])
    dim = node.args["dim"] % len(x.rec.shape)
    index = node.args["index"] % x.rec.shape[dim]
    reader.emit(node, "select", {"index": index, "dim": sample_dim(reader, x, dim)}, [x])


@handles("unbind")
def unbind(reader: Reader, node: g.OpNode) -> None:
    x = reader.act(node.args["self"])
    dim = node.args.get("dim", 0) % len(x.rec.shape)
    parts = node.outputs[0]
    sample = sample_dim(reader, x, dim)
    for index, ref in enumerate(parts):
        reader.emit(node, "select", {"index": index, "dim": sample}, [x], out=reader.graph.tensor(ref))


@handles("split", "split_with_sizes", "chunk", "unsafe_split", "unsafe_chunk", "tensor_split")
def split(reader: Reader, node: g.OpNode) -> None:
    x = reader.act(node.args["self"])
    dim = node.args.get("dim", 0) % len(x.rec.shape)
    sample, start = sample_dim(reader, x, dim), 0
    for ref in node.outputs[0]:
        rec = reader.graph.tensor(ref)
        length = rec.shape[dim]
        reader.emit(node, "slice", {"start": start, "end": start + length, "dim": sample}, [x], out=rec)
        start += length


@handles("contiguous", "clone")
def copy(reader: Reader, node: g.OpNode) -> None:
    x = reader.act(node.args["self"])
    reader.emit(node, "copy", {"always": True} if node.packet == "clone" else {}, [x])


@handles("dropout", "feature_dropout", "alpha_dropout", "native_dropout", "feature_alpha_dropout")
def dropout(reader: Reader, node: g.OpNode) -> None:
    """Kept as a layer although eval returns its input: training keeps its mask (the memory estimate counts it)."""
    x = reader.act(node.args.get("input", node.args.get("self")))
    reader.emit(node, "dropout", {"p": float(node.args.get("p", 0.5))}, [x])


@handles("alias", "detach", "lift_fresh", "_to_copy", "to", "type_as", "float")
def identity(reader: Reader, node: g.OpNode) -> None:
    reader.alias(node, reader.act(node.args.get("self", node.args.get("input"))))


@handles("cat", "concat", "concatenate")
def cat(reader: Reader, node: g.OpNode) -> None:
    values = [v for v in (reader.value(ref) for ref in node.args["tensors"]) if v is not None and 0 not in v.rec.shape]
    acts = [v for v in values if isinstance(v, Act)]  # empty tensors (no prefix tokens) join nothing
    out = reader.out(node)
    dim = node.args.get("dim", 0) % len(out.shape)
    if len(values) == 1:
        reader.alias(node, values[0])
        return
    learned = [v for v in values if isinstance(v, Learned)]
    if len(values) == 2 and len(learned) == 1 and values[0] is learned[0] and len(acts) == 1 \
            and plain(reader, learned[0]) \
            and leading(reader, acts[0]) and len(reader.sample(acts[0].rec)) == 2 and dim == 1 \
            and math.prod(learned[0].rec.shape) == reader.sample(acts[0].rec)[1]:
        reader.emit(node, "classtoken", {}, acts, (learned[0],), named_after=learned[0].names[0])
        return
    inputs = [reader.as_act(node, v) for v in values]
    placements = {(a.rec.batch_dim, a.rec.batch_folded) for a in inputs}
    if len(placements) > 1:
        raise Decline
    reader.emit(node, "concat", {"dim": sample_dim(reader, inputs[0], dim)}, inputs)


@handles("stack")
def stack(reader: Reader, node: g.OpNode) -> None:
    values = [reader.as_act(node, reader.value(ref)) for ref in node.args["tensors"]]
    out = reader.out(node)
    dim = node.args.get("dim", 0) % len(out.shape)
    lifted = []
    for act in values:  # each input gains the stacked dimension (size 1), then they are joined along it
        rec = g.TensorRec(-1 - len(reader.layers), out.shape[:dim] + (1,) + out.shape[dim + 1:], act.rec.dtype,
                          g.ACTIVATION, batch_dim=out.batch_dim, batch_folded=out.batch_folded)
        shape = list(reader.sample(rec))
        params: dict[str, Any] = {"shape": shape}
        if out.batch_dim not in (0, None) or out.batch_folded:
            params.update(batch=out.batch_dim, fold=out.batch_folded)
        lifted.append(reader.emit(node, "reshape", params, [act], out=rec, op=f"{node.overload} (unsqueeze)"))
    reader.emit(node, "concat", {"dim": sample_dim(reader, Act("", out), dim)}, lifted)


@handles("constant_pad_nd", "pad", "reflection_pad1d", "reflection_pad2d", "reflection_pad3d", "replication_pad1d",
         "replication_pad2d", "replication_pad3d", "_pad_circular")
def pad(reader: Reader, node: g.OpNode) -> None:
    a = node.args
    x = reader.act(a.get("self", a.get("input")))
    amounts = list(a.get("pad", a.get("padding")) or [])
    spatial = len(reader.sample(x.rec)) - 1
    mode = "reflect" if node.packet.startswith("reflection") else "replicate" if node.packet.startswith(
        "replication") else "circular" if node.packet == "_pad_circular" else "zeros"
    if node.packet == "pad":
        mode = {"constant": "zeros", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}.get(
            a.get("mode", "constant"))
    if not leading(reader, x) or len(amounts) > 2 * spatial or len(amounts) % 2 or any(v < 0 for v in amounts) \
            or mode is None or (mode == "zeros" and a.get("value") not in (None, 0, 0.0)):
        gather(reader, node)  # padding of other dimensions (tokens, channels), or cropping: data movement
        return
    pairs = [(amounts[i], amounts[i + 1]) for i in range(0, len(amounts), 2)][::-1]  # torch: last axis first
    pairs = [(0, 0)] * (spatial - len(pairs)) + pairs
    params: dict[str, Any] = {"before": compact([b for b, _ in pairs]), "after": compact([e for _, e in pairs])}
    if mode != "zeros":
        params["mode"] = mode
    reader.emit(node, "pad", params, [x])


@handles("upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "upsample_linear1d",
         "upsample_bilinear2d", "upsample_bicubic2d", "upsample_trilinear3d", "_upsample_nearest_exact1d",
         "_upsample_nearest_exact2d", "_upsample_nearest_exact3d")
def upsample(reader: Reader, node: g.OpNode) -> None:
    x = reader.act(node.args.get("input", node.args.get("self")))
    if not batch_first(reader, x):
        raise Decline
    mode = node.packet.removeprefix("_").removeprefix("upsample_").rsplit("d", 1)[0][:-1].replace("_", "-")
    sample_in, sample_out = reader.sample(x.rec), reader.sample(reader.out(node))
    params: dict[str, Any] = {"mode": mode}
    factors = [sample_out[i] // sample_in[i] for i in range(1, len(sample_in))]
    if all(f * size == out for f, size, out in zip(factors, sample_in[1:], sample_out[1:], strict=True)) and \
            node.args.get("output_size") is None:
        params["scale"] = compact(factors)
    else:
        params["size"] = compact(list(sample_out[1:]))
    if node.args.get("align_corners"):
        params["align_corners"] = True
    reader.emit(node, "upsample", params, [x])


@handles("pixel_shuffle", "pixel_unshuffle")
def pixel_shuffle(reader: Reader, node: g.OpNode) -> None:
    x = reader.act(node.args["self"])
    if not batch_first(reader, x):
        raise Decline
    factor = node.args.get("upscale_factor", node.args.get("downscale_factor"))
    reader.emit(node, node.packet.replace("_", ""), {"factor": int(factor)}, [x])


@handles("channel_shuffle", "native_channel_shuffle")
def channel_shuffle(reader: Reader, node: g.OpNode) -> None:
    reader.emit(node, "shuffle", {"groups": int(node.args["groups"])}, [reader.act(node.args["self"])])


@handles("index", "index_select", "gather", "embedding", "take", "take_along_dim", "roll", "flip", "index_put",
         "masked_select", "repeat", "tile", "repeat_interleave", "im2col", "col2im", "copy", "as_strided",
         "unfold", "#movement")
def gather(reader: Reader, node: g.OpNode) -> None:
    """Data movement whose positions come from a tensor or from arguments this model does not follow (a roll, a
    pad along tokens, an unfold): no arithmetic, its traced output shape kept."""
    acts = [v for v in reader.operands(node) if isinstance(v, Act)]
    out = reader.out(node)
    if out.batch_dim is None and any(a.rec.batch_dim is not None for a in acts):
        raise Decline
    reader.traced(node, "gather", node.packet, out, acts)
