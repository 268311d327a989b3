"""Where the spatial axes live in each tensor, and how every layer reads its inputs along each of them.

A `Layout` records, per tensor, which sample dimensions hold the N spatial axes (L; H, W; D, H, W: they follow a
permute's order), or that a dimension lists tokens over an H × W grid (a reshape that joins H and W in order;
grids of tokens exist for 2-D maps only, and a reshape that joins the axes of a 1-D or 3-D map loses them). A
`Step` says, per input and per axis, how the layer reads it (`AxisOp`); core/receptive/fields.py turns that into
fields and core/receptive/supports.py into exact supports.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from convaudit.core.analysis import LayerResult, Report
from convaudit.core.fields import per_axis
from convaudit.core.layers import REGISTRY
from convaudit.core.layers.base import spread, trait_of
from convaudit.core.model import INPUT
from convaudit.core.receptive.resampling import Padded, Reads, Repeated, Transposed, Upsampled
from convaudit.core.windows import WindowAxis, axis_names, joined

# Rules that slide over, or resample, the spatial dimensions 1 … N of a [C, *spatial] map, in place. They read their
# first input; a second (a crop's, an up-sampling's to another map's size) gives the size only and is not read.
SPATIAL_RULES = ("window", "adaptive", "global", "transposed", "upsample", "shuffle", "unshuffle", "pad", "crop")


class Layout(NamedTuple):
    """Which sample dimensions of a tensor are spatial, so that fields follow permutes, reshapes and tokens.

    map:     `dims` are the dimensions holding the spatial axes ([C, H, W]: (1, 2); after permute [1, 2, 0]:
             (0, 1)); None for an axis every entry of the tensor shares (a vector, a mixed-away axis): size 1
    tokens:  dimension `token` lists `extra` leading tokens (class tokens; True: reads the whole input, False:
             reads nothing) and then an H × W grid, row by row (2-D maps only)
    lost:    a reshape moved the spatial axes into other dimensions: its elements are those of a tensor of
             `sizes`, so what no element reads (Unseen px) is still exact, but per-position fields are not
    unknown: an operation mixed elements of a lost tensor in a way this model does not follow
    """

    kind: str
    sizes: tuple[int, ...]  # per axis: the positions that have their own support
    dims: tuple[int | None, ...] = ()
    token: int = 0
    extra: tuple[bool, ...] = ()


class AxisOp(NamedTuple):
    """How one input is read along one axis:

    window   a sliding window (`window`)            adaptive  PyTorch's adaptive windows
    whole    every position                          point     the same position
    pick     position `index` alone                  empty     nothing (a class token before any attention)
    shift    position p + `index` (zero padding: −before; a crop: its offset)
    reads    positions `reads` names (transposed convolutions, up-sampling, pixel shuffle, reflect padding…)
    unread   none at all: a crop's second input only gives the size
    """

    kind: str
    n: int  # the input's size on this axis
    window: WindowAxis | None = None
    index: int = 0
    reads: Reads | None = None


class Step(NamedTuple):
    layout: Layout
    ops: tuple[tuple[AxisOp, ...], ...]  # per input, per axis
    notes: tuple[str, ...] = ()


def map_dims(rank: int) -> tuple[int, ...]:
    """[C, *spatial]: the spatial axes are dimensions 1 … N."""
    return tuple(range(1, rank + 1))


def layouts(report: Report) -> dict[str, Step]:
    """For each layer, the layout of its output and how each input is read along each spatial axis."""
    spatial = tuple(report.input[1:])
    steps = {INPUT: Step(Layout("map", spatial, map_dims(len(spatial))), ())}
    for layer in report.layers:
        sources = [steps[source].layout for source in layer.spec.inputs]
        if not sources:  # a source (a learned tensor used directly) reads no pixel
            steps[layer.name] = Step(Layout("map", (1,) * len(spatial), (None,) * len(spatial)), ())
            continue
        steps[layer.name] = _step(layer, sources)
    return steps


def _same(layout: Layout) -> tuple[AxisOp, ...]:
    return tuple(AxisOp("point", size) for size in layout.sizes)


def _all(kind: str, layout: Layout) -> tuple[AxisOp, ...]:
    return tuple(AxisOp(kind, size) for size in layout.sizes)


def _unknown(layer: LayerResult, sources: list[Layout], why: str) -> Step:
    rank = len(sources[0].sizes)
    ops = tuple(_all("whole", source) for source in sources)
    notes = () if any(s.kind == "unknown" for s in sources) else \
        (f"{why}: receptive fields are not followed from here (RF, jump and start are the input's; no Unseen px)",)
    return Step(Layout("unknown", (1,) * rank, (None,) * rank), ops, notes)


def _mixed(layout: Layout, shape_out: tuple[int, ...], mixed: set[int]) -> Step:
    """An operation that keeps the rank and reads, along each dimension in `mixed`, every entry."""
    if layout.kind == "map":
        ops = tuple(AxisOp("whole" if dim in mixed else "point", size)
                    for dim, size in zip(layout.dims, layout.sizes, strict=True))
        sizes = tuple(1 if dim is None else shape_out[dim] for dim in layout.dims)
        return Step(layout._replace(sizes=sizes), (ops,))
    # tokens: mixing the token dimension reads every token
    if layout.token not in mixed:
        return Step(layout, (_same(layout),))
    ops = _all("whole", layout)
    if shape_out[layout.token] == len(layout.extra) + math.prod(layout.sizes):
        return Step(layout._replace(extra=tuple(True for _ in layout.extra)), (ops,))
    return Step(Layout("map", (1,) * len(layout.sizes), (None,) * len(layout.sizes)), (ops,))  # features now


def _spatial_dims(layout: Layout) -> set[int]:
    if layout.kind == "tokens":
        return {layout.token}
    return {dim for dim in layout.dims if dim is not None}


def _step(layer: LayerResult, sources: list[Layout]) -> Step:
    rule = trait_of(REGISTRY[layer.type], "receptive", layer.spec.params)
    shape_in, shape_out = layer.input_shapes[0], layer.output_shape
    layout = sources[0]
    read = sources[:1] if rule in SPATIAL_RULES else sources
    if any(source.kind == "unknown" for source in read):
        return _unknown(layer, sources, "")
    if rule == "attention":  # every output position reads every key and value along the token dimension
        step = _mixed(layout, shape_out, {len(shape_in) - 2})
        return step._replace(ops=step.ops + tuple(_all("whole", source) for source in sources[1:]))
    if len(read) > 1 and rule in ("merge", "pointwise"):  # an element-wise operator of several inputs merges them
        return _merge(layer, sources)
    if rule == "reshape":
        return _reshape(layout, shape_in, shape_out)
    if rule == "permute":
        order = layer.spec.params["order"]
        if layout.kind == "map":
            dims = tuple(None if dim is None else order.index(dim) for dim in layout.dims)
            return Step(layout._replace(dims=dims), (_same(layout),))
        if layout.kind == "tokens":
            return Step(layout._replace(token=order.index(layout.token)), (_same(layout),))
        return Step(layout, (_same(layout),))
    if layout.kind == "lost":
        if rule == "flatten":
            return Step(Layout("map", (1,) * len(layout.sizes), (None,) * len(layout.sizes)),
                        (_all("whole", layout),))
        if rule == "pointwise" and shape_out == shape_in:
            return Step(layout, (_same(layout),))  # element-wise
        return _unknown(layer, sources, f"{layer.type} mixes elements of a tensor whose {_names(layout)} a reshape "
                                        "moved")
    spatial = _spatial_dims(layout)
    if rule in SPATIAL_RULES:
        dims = map_dims(len(layout.sizes))
        if layout.kind != "map" or layout.dims != dims:
            verb = "slides over" if rule in ("window", "adaptive", "global") else "resamples"
            return _unknown(layer, sources, f"{layer.type} {verb} dimensions {joined([str(d) for d in dims])}, "
                                            f"which are not {_names(layout)} here")
        unread = tuple(tuple(AxisOp("unread", n) for n in shape[1:]) for shape in layer.input_shapes[1:])
        return Step(layout._replace(sizes=tuple(shape_out[1:])), (_spatial_ops(layer, rule, layout),) + unread)
    if rule == "flatten":  # every output reads every element
        ops = tuple(AxisOp("point" if layout.kind == "map" and dim is None else "whole", size)
                    for dim, size in zip(layout.dims, layout.sizes, strict=True))
        return Step(Layout("map", (1,) * len(layout.sizes), (None,) * len(layout.sizes)), (ops,))
    if rule == "mix-last":  # reads every entry along the last dimension, features or not
        return _mixed(layout, shape_out, {len(shape_in) - 1})
    if rule == "mix-first":
        return _mixed(layout, shape_out, {0})
    if rule == "mix-all":  # every output reads every token and every feature
        return _mixed(layout, shape_out, {0, 1})
    along = layer.spec.params.get("dim", 0)  # the sample dimension it acts along (a slice's dim; else channels)
    if rule == "along-first" and along in spatial:
        return _unknown(layer, sources, f"{layer.type} acts along dimension {along}, which holds positions here")
    if rule == "prepend":
        if layout.kind == "tokens" and layout.token == 0:
            return Step(layout._replace(extra=(False,) + layout.extra), (_same(layout),),
                        ("class token prepended: positions, jump and RF start refer to the patch tokens",))
        if 0 in spatial:
            return _unknown(layer, sources, f"{layer.type} prepends along dimension 0, which holds positions here")
        return Step(layout, (_same(layout),))
    if rule == "select":
        return _select(layer, layout)
    if rule in ("pointwise", "along-first"):  # along-first: the dimension it acts along holds no positions here
        return Step(layout, (_same(layout),))
    return _unknown(layer, sources, f"receptive fields through {layer.type} are not followed")


def _names(layout: Layout) -> str:
    """'H and W' for a 2-D map, as the notes have always said; 'L', 'D, H and W' for the others."""
    return joined(list(axis_names(len(layout.sizes))))


def _spatial_ops(layer: LayerResult, rule: str, layout: Layout) -> tuple[AxisOp, ...]:
    """How a layer over the map's own spatial dimensions reads its first input along each axis."""
    params, sizes, outs = layer.spec.params, layout.sizes, layer.output_shape[1:]
    rank, names = len(sizes), axis_names(len(sizes))
    if rule == "window":
        return tuple(AxisOp("window", n, w) for n, w in zip(sizes, layer.windows, strict=True))
    if rule in ("adaptive", "global"):  # adaptive windows, or one window over the whole map
        return _all("adaptive" if rule == "adaptive" else "whole", layout)
    if rule == "unshuffle":  # every channel of a block together reads the r × r block: a window r at stride r
        r = params["factor"]
        return tuple(AxisOp("window", n, WindowAxis(name, n, r, r, 0)) for name, n in zip(names, sizes, strict=True))
    if rule == "crop":  # output p is input p + ⌊(in − out)/2⌋
        return tuple(AxisOp("shift", n, index=(n - out) // 2) for n, out in zip(sizes, outs, strict=True))
    if rule == "pad" and params["mode"] == "zeros":  # output p is input p − before, or a zero
        return tuple(AxisOp("shift", n, index=-before)
                     for n, before in zip(sizes, spread(params, "before", rank), strict=True))
    reads: list[Reads]
    if rule == "pad":
        reads = [Padded(n, out, before, params["mode"])
                 for n, out, before in zip(sizes, outs, spread(params, "before", rank), strict=True)]
    elif rule == "transposed":
        per_axis = zip(sizes, outs, *(spread(params, key, rank) for key in ("kernel", "stride", "padding", "dilation")),
                       strict=True)
        reads = [Transposed(n, out, k, s, p, d) for n, out, k, s, p, d in per_axis]
    elif rule == "shuffle":
        reads = [Repeated(n, out, params["factor"]) for n, out in zip(sizes, outs, strict=True)]
    else:  # upsample
        scales = _scales(params, rank)
        copy = params["mode"] == "bicubic" and tuple(sizes) == tuple(outs)  # PyTorch's bicubic copies then
        reads = [Upsampled(n, out, params["mode"], params["align_corners"], scale, copy)
                 for n, out, scale in zip(sizes, outs, scales, strict=True)]
    return tuple(AxisOp("reads", n, reads=r) for n, r in zip(sizes, reads, strict=True))


def _scales(params: dict, rank: int) -> tuple:
    """The scale factor PyTorch's kernels receive per axis (None when a size was given: they use in/out)."""
    if params.get("scale") is None:
        return (None,) * rank
    return per_axis(params["scale"], rank)


def _select(layer: LayerResult, layout: Layout) -> Step:
    index, picked = layer.spec.params["index"], layer.spec.params.get("dim", 0)
    shift = {None: None} | {dim: dim - (dim > picked) for dim in range(8)}
    if layout.kind == "tokens":
        if layout.token != picked:
            return Step(layout._replace(token=shift[layout.token]), (_same(layout),))
        if index < len(layout.extra):  # a class token: everything after attention, nothing before
            read = "whole" if layout.extra[index] else "empty"
            notes = () if layout.extra[index] else ("a class token no attention has reached reads no pixel",)
            return Step(Layout("map", (1, 1), (None, None)), (_all(read, layout),), notes)
        row, column = divmod(index - len(layout.extra), layout.sizes[1])
        ops = (AxisOp("pick", layout.sizes[0], index=row), AxisOp("pick", layout.sizes[1], index=column))
        return Step(Layout("map", (1, 1), (None, None)), (ops,))
    ops = tuple(AxisOp("pick", size, index=index) if dim == picked else AxisOp("point", size)
                for dim, size in zip(layout.dims, layout.sizes, strict=True))
    dims = tuple(None if dim == picked else shift[dim] for dim in layout.dims)
    sizes = tuple(1 if dim == picked else size for dim, size in zip(layout.dims, layout.sizes, strict=True))
    return Step(layout._replace(dims=dims, sizes=sizes), (ops,))


def _shared(layout: Layout) -> bool:
    """Every position of the map shares its one entry (a source, which reads no pixel; a vector)."""
    return layout.kind == "map" and all(dim is None for dim in layout.dims) and set(layout.sizes) == {1}


def _merge(layer: LayerResult, sources: list[Layout]) -> Step:
    """add, concat, mul: position by position, a [C, 1, 1] side of a mul broadcast over the whole map."""
    reading = [s for s in sources if not _shared(s)] or sources
    widest = max(reading, key=lambda s: math.prod(s.sizes))
    if any(s.kind != widest.kind or s.dims != widest.dims or s.token != widest.token for s in reading):
        return _unknown(layer, sources, f"{layer.type} of inputs whose {_names(widest)} lie in different dimensions")
    joined_along = layer.spec.params.get("dim", 0)
    if trait_of(REGISTRY[layer.type], "size_rule", layer.spec.params) == "concat" \
            and joined_along in _spatial_dims(widest):
        return _unknown(layer, sources, f"{layer.type} along dimension {joined_along}, which holds positions here")
    ops = []
    for source in sources:
        if source not in reading:  # one entry for every position (a source, a pooled vector): broadcast
            ops.append(_all("whole", source))
            continue
        per_axis = []
        for size, out in zip(source.sizes, widest.sizes, strict=True):
            if size == out:
                per_axis.append(AxisOp("point", size))
            elif size == 1:  # broadcast: every position reads the one entry
                per_axis.append(AxisOp("whole", size))
            else:
                return _unknown(layer, sources, f"{layer.type} of inputs with different positions")
        ops.append(tuple(per_axis))
    extra = tuple(any(whole) for whole in zip(*(s.extra for s in sources), strict=True)) if widest.extra else ()
    if widest.kind == "tokens" and any(len(s.extra) != len(widest.extra) for s in sources):
        return _unknown(layer, sources, f"{layer.type} of token lists with different class tokens")
    return Step(widest._replace(extra=extra), tuple(ops))


def _keeps(shape: tuple[int, ...], target: tuple[int, ...], dim: int) -> int | None:
    """The target dimension that holds source dimension `dim` index for index (row-major order), if any."""
    inner = math.prod(shape[dim + 1:])
    for k, size in enumerate(target):
        if size == shape[dim] and math.prod(target[k + 1:]) == inner:
            return k
    return None


def _reshape(layout: Layout, shape: tuple[int, ...], target: tuple[int, ...]) -> Step:
    same = (_same(layout),)
    rank = len(layout.sizes)
    lost = Step(Layout("lost", layout.sizes, (None,) * rank), same,
                (f"reshape {list(shape)} → {list(target)} moves {_names(layout)} into other dimensions: RF, jump and "
                 f"start from here are those of the elements it moves (Unseen px stays exact)",))
    if layout.kind == "lost":
        return Step(layout, same)
    if layout.kind == "map":
        if all(dim is None for dim in layout.dims):  # every element alike: a map again if the target is one
            whole = tuple(AxisOp("whole", 1) for _ in range(rank))
            if len(target) == rank + 1:
                return Step(Layout("map", tuple(target[1:]), map_dims(rank)), (whole,))
            return Step(layout, (whole,))
        kept = [None if dim is None else _keeps(shape, target, dim) for dim in layout.dims]
        if all(k is not None for k, dim in zip(kept, layout.dims, strict=True) if dim is not None):
            return Step(layout._replace(dims=tuple(kept)), same)
        if rank == 2:  # H and W joined, in order: tokens over the grid
            h, w = layout.dims
            if h is not None and w == h + 1:
                inner = math.prod(shape[w + 1:])
                for k, size in enumerate(target):
                    if size == shape[h] * shape[w] and math.prod(target[k + 1:]) == inner:
                        return Step(Layout("tokens", layout.sizes, (None, None), token=k), same)
        return lost
    k = _keeps(shape, target, layout.token)
    if k is not None:
        return Step(layout._replace(token=k), same)
    inner = math.prod(shape[layout.token + 1:])
    rows, columns = layout.sizes
    if not layout.extra:  # the grid split back into H and W
        for k in range(len(target) - 1):
            if (target[k], target[k + 1]) == (rows, columns) and math.prod(target[k + 2:]) == inner:
                return Step(Layout("map", layout.sizes, (k, k + 1)), same)
    return lost
