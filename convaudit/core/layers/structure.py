"""Layers that join, split, reshape or carry tensors: merges, views, tokens.

Merges and views place the batch themselves (batch rule 'own'): tensor code moves it (ViT's qkv permute, Swin's
window partitions), and their dimensions are sample dimensions, the batch left out.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from convaudit.core.fields import Bool, Field, Int
from convaudit.core.layers.base import (
    FOLLOWS_INPUT,
    Autocast,
    Explained,
    IntList,
    KeepsStrides,
    LayerProblem,
    LayerType,
    NewStorage,
    Outcome,
    Parameterless,
    Params,
    Placement,
    References,
    SavesInputs,
    SavesNothing,
    Shape,
    Tensor,
    TorchModule,
    describe_shape,
    elements,
    full_dim,
    full_shape,
    register,
    tokens,
)
from convaudit.core.layers.batch import broadcast_tensors, without
from convaudit.core.strides import Strided, reshaped

if TYPE_CHECKING:
    from convaudit.core.analysis import LayerResult
    from convaudit.core.model import LayerSpec
from convaudit.core.layers.splitting import no_parameters, not_split_by_channels


@register
class Concat(TorchModule, SavesNothing, NewStorage, Parameterless, LayerType):
    type_name = "concat"
    autocast = FOLLOWS_INPUT
    prefix = "concat"
    category = "merge"
    plan_role = "concat"
    receptive = "merge"
    size_rule = "concat"
    references = References()
    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        return lib.Concat(full_dim(layer.params["dim"], placements[0]))
    batch_rule = "own"
    doc = "concatenate along a sample dimension (dim 0: channels, the default); the other sizes must match"
    min_inputs = 2
    max_inputs = None
    fields = (Field("dim", Int(0), "the sample dimension joined (batch excluded; 0: channels)", default=0),)

    def apply_tensors(self, inputs: list[Tensor], params: Params) -> Outcome:
        if len({tensor.placement for tensor in inputs}) > 1:
            raise LayerProblem("merge", "the inputs hold the batch in different dimensions")
        shapes, dim = [tensor.shape for tensor in inputs], params["dim"]
        ranks = {len(shape) for shape in shapes}
        if len(ranks) > 1:
            raise LayerProblem("merge", "concat needs inputs of one rank: all feature maps with the same spatial axes, "
                                        "or all vectors")
        if dim >= ranks.pop():
            raise LayerProblem("rank", f"dim {dim} is past the inputs' {len(shapes[0])} sample dimensions", "dim")
        if len({shape[:dim] + shape[dim + 1:] for shape in shapes}) > 1:
            raise LayerProblem("merge", "spatial sizes differ" if dim == 0 else f"sizes outside dimension {dim} differ")
        joined = sum(shape[dim] for shape in shapes)
        return Outcome(shape=shapes[0][:dim] + (joined,) + shapes[0][dim + 1:], placement=inputs[0].placement)

    # split plans
    split_notes = ()
    column_split = not_split_by_channels
    parameter_shapes = no_parameters


@register
class Add(TorchModule, SavesNothing, KeepsStrides, Parameterless, LayerType):
    type_name = "add"
    autocast = FOLLOWS_INPUT
    prefix = "add"
    category = "merge"
    plan_role = "add"
    receptive = "merge"
    size_rule = "pointwise"
    references = References()
    torch_module = "Add"
    batch_rule = "own"
    doc = "element-wise sum of inputs of identical shape (a residual connection)"
    other_ops_rule = "(inputs − 1) adds per element"
    min_inputs = 2
    max_inputs = None

    def apply_tensors(self, inputs: list[Tensor], params: Params) -> Outcome:
        if len({tensor.placement for tensor in inputs}) > 1:
            raise LayerProblem("merge", "the inputs hold the batch in different dimensions")
        return replace(self.apply([tensor.shape for tensor in inputs], params), placement=inputs[0].placement)

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        if len(set(inputs)) > 1:
            raise LayerProblem("merge", "shapes differ")
        return Outcome(shape=inputs[0], other_ops=(len(inputs) - 1) * elements(inputs[0]))

    # split plans
    split_notes = ()
    column_split = not_split_by_channels
    parameter_shapes = no_parameters


# ------------------------------------------------------------------ the operators of modern CNNs and ViT

@register
class Mul(TorchModule, SavesInputs, KeepsStrides, Parameterless, LayerType):
    type_name = "mul"
    autocast = FOLLOWS_INPUT
    prefix = "mul"
    category = "merge"
    plan_role = "whole"
    receptive = "merge"
    size_rule = "pointwise"
    references = References(elementwise_gaps=True)
    torch_module = "Mul"
    doc = ("element-wise product, broadcasting dimensions of size 1 (the squeeze-excite gate: "
           "[C, H, W] × [C, 1, 1] → [C, H, W])")
    other_ops_rule = "(inputs − 1) multiplies per output element"
    batch_rule = "own"
    min_inputs = 2
    max_inputs = None

    def apply_tensors(self, inputs: list[Tensor], params: Params) -> Outcome:
        result = broadcast_tensors(inputs)
        return Outcome(shape=result.shape, other_ops=(len(inputs) - 1) * elements(result.shape),
                       placement=result.placement)

    # split plans
    split_notes = ()
    column_split = not_split_by_channels
    parameter_shapes = no_parameters


@register
class Flatten(TorchModule, SavesNothing, Parameterless, LayerType):
    type_name = "flatten"
    autocast = FOLLOWS_INPUT
    batch_rule = "leading"
    prefix = "flatten"
    category = "other"
    plan_role = "follow"
    receptive = "flatten"
    size_rule = "flatten"
    references = References()
    torch_module = "nn.Flatten"
    doc = "reshape [C, H, W] to [C·H·W]"

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        return Outcome(shape=(elements(inputs[0]),))

    def storage(self, layer: LayerResult, inputs: list[Strided]) -> Strided:
        return reshaped(inputs[0], full_shape(layer), layer.name)
    # split plans
    split_notes = ()
    column_split = not_split_by_channels
    parameter_shapes = no_parameters


@register
class Slice(SavesNothing, Parameterless, LayerType):
    type_name = "slice"
    autocast = FOLLOWS_INPUT
    prefix = "slice"
    category = "other"
    plan_role = "whole"
    receptive = "along-first"
    size_rule = "pointwise"
    references = References(elementwise_gaps=True)
    batch_rule = "own"
    doc = ("entries start to end − 1 of a sample dimension (dim 0, channels, by default; end exclusive): a view, no "
           "arithmetic (ShuffleNet's chunk)")
    fields = (
        Field("start", Int(0), "first channel kept", default=0),
        Field("end", Int(), "one past the last channel kept", required=True),
        Field("dim", Int(0), "the sample dimension sliced (batch excluded; 0: channels)", default=0),
        Field("step", Int(), "keep every step-th entry (x[..., ::2]: 2)", default=1),
    )

    def static_problems(self, params: Params) -> list[tuple[str, str]]:
        if params["end"] <= params["start"]:
            return [("end", f"end {params['end']} must be greater than start {params['start']} (end is exclusive)")]
        return []

    def apply_tensors(self, inputs: list[Tensor], params: Params) -> Outcome:
        shape, placement, end, dim = inputs[0].shape, inputs[0].placement, params["end"], params["dim"]
        if dim >= len(shape):
            raise LayerProblem("rank", f"dim {dim} is past the input's {len(shape)} sample dimensions", "dim")
        if placement.folded and placement.dim == dim:
            raise LayerProblem("batch", f"dimension {dim} holds the batch folded in: slicing it mixes samples", "dim")
        if end > shape[dim]:
            what = "channels" if dim == 0 else f"entries along dimension {dim}"
            raise LayerProblem("slice", f"end {end} is past the input's {shape[dim]} {what}", "end")
        kept = -(-(end - params["start"]) // params["step"])  # ⌈(end − start)/step⌉ entries
        return Outcome(shape=shape[:dim] + (kept,) + shape[dim + 1:], placement=placement)

    def storage(self, layer: LayerResult, inputs: list[Strided]) -> Strided:
        """A view: the same strides, the sliced dimension's times the step."""
        first, step = inputs[0], layer.spec.params["step"]
        dim = full_dim(layer.spec.params["dim"], layer.placements[0])
        strides = tuple(stride * step if i == dim else stride for i, stride in enumerate(first.strides))
        return Strided(full_shape(layer), strides, first.base)

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        p = layer.params
        return lib.Slice(p["start"], p["end"], full_dim(p["dim"], placements[0]), p["step"])

    # split plans
    split_notes = ()
    column_split = not_split_by_channels
    parameter_shapes = no_parameters


@register
class Shuffle(SavesNothing, NewStorage, Parameterless, LayerType):
    type_name = "shuffle"
    autocast = FOLLOWS_INPUT
    batch_rule = "leading"
    prefix = "shuffle"
    category = "other"
    plan_role = "whole"
    receptive = "along-first"
    size_rule = "pointwise"
    references = References(elementwise_gaps=True)
    doc = ("channel shuffle (ShuffleNet): view C as [groups, C/groups], transpose, flatten; counted as a view "
           "(data movement only, no arithmetic)")
    fields = (Field("groups", Int(), "groups the channels are interleaved from", required=True),)

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        shape, groups = inputs[0], params["groups"]
        if shape[0] % groups:
            raise LayerProblem("groups", f"channels {shape[0]} are not divisible by groups {groups}", "groups")
        return Outcome(shape=shape)

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        return lib.ChannelShuffle(layer.params["groups"])
    # split plans
    split_notes = ()
    column_split = not_split_by_channels
    parameter_shapes = no_parameters


@register
class Permute(SavesNothing, Parameterless, LayerType):
    type_name = "permute"
    autocast = FOLLOWS_INPUT
    prefix = "permute"
    category = "other"
    plan_role = "whole"
    receptive = "permute"
    size_rule = "none"
    references = References(elementwise_gaps=True)
    batch_rule = "own"
    doc = "reorder the sample dimensions (batch excluded): order [1, 2, 0] turns [C, H, W] into [H, W, C]; a view"
    fields = (Field("order", IntList(0, "a permutation of the sample dimensions such as [1, 2, 0]"),
                    "the input dimension each output dimension takes", required=True),
              Field("batch", Int(0), "the dimension of the full tensor that holds the batch afterwards (0: the "
                                     "first; ViT's qkv.permute(2, 0, 3, 1, 4) puts it at 1)", default=0))

    def static_problems(self, params: Params) -> list[tuple[str, str]]:
        order = params["order"]
        if sorted(order) != list(range(len(order))):
            return [("order", f"order {list(order)} is not a permutation of 0–{len(order) - 1}")]
        return []

    def apply_tensors(self, inputs: list[Tensor], params: Params) -> Outcome:
        (shape, placement), order = (inputs[0].shape, inputs[0].placement), params["order"]
        if len(order) != len(shape):
            raise LayerProblem("rank", f"order {list(order)} has {len(order)} entries but the input "
                                       f"[{', '.join(map(str, shape))}] has {len(shape)} dimensions", "order")
        if placement.dim is None:
            after = placement
        elif placement.folded:  # the batch stays folded into the dimension it is in, wherever that goes
            after = Placement(order.index(placement.dim), True)
        else:
            if params["batch"] > len(shape):
                raise LayerProblem("rank", f"batch {params['batch']} is past the output's {len(shape) + 1} "
                                           "dimensions", "batch")
            after = Placement(params["batch"])
        return Outcome(shape=tuple(shape[i] for i in order), placement=after)

    def storage(self, layer: LayerResult, inputs: list[Strided]) -> Strided:
        """A view: each output dimension takes the stride of the input dimension it comes from."""
        first, order = inputs[0], layer.spec.params["order"]
        before, after = layer.placements[0], layer.outcome.placement
        sources = [full_dim(i, before) for i in order]
        if after.dim is not None and not after.folded:
            sources.insert(after.dim, before.dim)
        return Strided(full_shape(layer), tuple(first.strides[source] for source in sources), first.base)

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        before = placements[0]
        after = self.apply_tensors([Tensor(inputs[0], before)], layer.params).placement
        order = [full_dim(i, before) for i in layer.params["order"]]
        if after.dim is not None and not after.folded:
            order.insert(after.dim, before.dim)
        return lib.Permute(order)

    # split plans
    split_notes = ()
    column_split = not_split_by_channels
    parameter_shapes = no_parameters


@register
class Reshape(SavesNothing, Parameterless, LayerType):
    type_name = "reshape"
    autocast = FOLLOWS_INPUT
    prefix = "reshape"
    category = "other"
    plan_role = "whole"
    receptive = "reshape"
    size_rule = "none"
    references = References(elementwise_gaps=True)
    batch_rule = "own"
    doc = "reshape the sample dimensions (batch excluded); one entry may be −1 (inferred); no arithmetic"
    fields = (Field("shape", IntList(-1, "a list of positive sizes, at most one −1, such as [196, 768]"),
                    "the output's sample dimensions", required=True),
              Field("batch", Int(0), "the dimension of the full tensor that holds the batch afterwards (0: the "
                                     "first)", default=0),
              Field("fold", Bool(), "the batch multiplies sample dimension `batch` instead of standing alone (a "
                                    "window partition: view(-1, ws, ws, C) gives B·nW windows)", default=False))

    def static_problems(self, params: Params) -> list[tuple[str, str]]:
        shape = params["shape"]
        if 0 in shape or shape.count(-1) > 1:
            return [("shape", f"shape {list(shape)} may hold positive sizes and at most one −1")]
        return []

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        source, target = inputs[0], params["shape"]
        total, known = elements(source), math.prod(size for size in target if size != -1)
        if -1 in target:
            if total % known:
                raise LayerProblem("reshape", f"{describe_shape(source)} = {total} elements do not divide into "
                                              f"{list(target)}: {total} is not a multiple of {known}", "shape")
            target = tuple(total // known if size == -1 else size for size in target)
        elif known != total:
            raise LayerProblem("reshape", f"{describe_shape(source)} = {total} elements cannot become "
                                          f"{describe_shape(target)} = {known}", "shape")
        return Outcome(shape=tuple(target))

    def apply_tensors(self, inputs: list[Tensor], params: Params) -> Outcome:
        outcome = self.apply([inputs[0].shape], params)
        if inputs[0].placement.dim is None:
            return replace(outcome, placement=inputs[0].placement)
        batch, fold = params["batch"], params["fold"]
        if batch > len(outcome.shape) - (1 if fold else 0):
            raise LayerProblem("rank", f"batch {batch} is past the output's dimensions", "batch")
        return replace(outcome, placement=Placement(batch, fold))

    def storage(self, layer: LayerResult, inputs: list[Strided]) -> Strided:
        return reshaped(inputs[0], full_shape(layer), layer.name)

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        target = self.apply([inputs[0]], layer.params).shape  # −1 resolved
        if placements and placements[0].dim is None:  # no sample owns it: no batch to place
            return lib.Reshape(target, None, False)
        return lib.Reshape(target, layer.params["batch"], layer.params["fold"])
    # split plans
    split_notes = ()
    column_split = not_split_by_channels
    parameter_shapes = no_parameters


@register
class ClassToken(SavesNothing, NewStorage, LayerType):
    type_name = "classtoken"
    autocast = Autocast(output="fp32")  # cat is on autocast's promote list: the fp32 token widens it
    batch_rule = "leading"
    prefix = "cls"
    category = "other"
    plan_role = "whole"
    receptive = "prepend"
    size_rule = "none"
    references = References(elementwise_gaps=True)
    doc = "prepend a learned token to [N, D] tokens, giving [N + 1, D] (ViT's class token)"

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        n, d = tokens(inputs[0], "classtoken")
        return Outcome(shape=(n + 1, d), weights=d)

    def explain(self, layer: LayerResult) -> Explained:
        return Explained(f"D = {layer.weights:,} class-token weights")

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        return lib.ClassToken(inputs[0][-1])
    # split plans
    split_notes = ()
    column_split = not_split_by_channels

    def parameter_shapes(self, inputs: list[Shape], params: Params) -> tuple[Shape, ...]:
        return ((1, 1, inputs[0][-1]),)  # one token of D, shaped to broadcast over the batch


@register
class PosEmbedding(SavesNothing, KeepsStrides, LayerType):
    type_name = "posembedding"
    autocast = Autocast(output="fp32")  # x + the fp32 embedding promotes
    batch_rule = "leading"
    prefix = "pos"
    category = "other"
    plan_role = "whole"
    receptive = "pointwise"
    size_rule = "none"
    references = References(elementwise_gaps=True)
    doc = "add a learned position embedding of the input's shape (ViT: [N, D])"
    other_ops_rule = "1 add per element"

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        return Outcome(shape=inputs[0], weights=elements(inputs[0]), other_ops=elements(inputs[0]))

    def explain(self, layer: LayerResult) -> Explained:
        return Explained(f"{'·'.join(map(str, layer.output_shape))} = {layer.weights:,} position embeddings")

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        return lib.PosEmbedding(inputs[0])
    # split plans
    split_notes = ()
    column_split = not_split_by_channels

    def parameter_shapes(self, inputs: list[Shape], params: Params) -> tuple[Shape, ...]:
        return ((1, *inputs[0]),)  # the input's shape, with a batch dimension of 1 to broadcast


@register
class Select(SavesNothing, Parameterless, LayerType):
    type_name = "select"
    autocast = FOLLOWS_INPUT
    prefix = "select"
    category = "other"
    plan_role = "whole"
    receptive = "select"
    size_rule = "none"
    references = References(elementwise_gaps=True)
    batch_rule = "own"
    doc = ("pick one entry of a sample dimension (the first by default): token `index` of [N, D] gives [D] (ViT's "
           "class token output)")
    fields = (Field("index", Int(0), "which token (0: the first)", default=0),
              Field("dim", Int(0), "the sample dimension indexed (batch excluded; 0: the first)", default=0))

    def apply_tensors(self, inputs: list[Tensor], params: Params) -> Outcome:
        shape, index, dim = inputs[0].shape, params["index"], params["dim"]
        if len(shape) < 2:
            raise LayerProblem("rank", f"select needs at least two dimensions, got [{shape[0]}]")
        if dim >= len(shape):
            raise LayerProblem("rank", f"dim {dim} is past the input's {len(shape)} sample dimensions", "dim")
        if index >= shape[dim]:
            raise LayerProblem("select", f"index {index} is past the input's {shape[dim]} entries "
                                         f"(0–{shape[dim] - 1})", "index")
        return Outcome(shape=shape[:dim] + shape[dim + 1:], placement=without(inputs[0], {dim}))

    def storage(self, layer: LayerResult, inputs: list[Strided]) -> Strided:
        first = inputs[0]
        dropped = full_dim(layer.spec.params["dim"], layer.placements[0])
        return Strided(full_shape(layer), first.strides[:dropped] + first.strides[dropped + 1:], first.base)

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        return lib.Select(layer.params["index"], full_dim(layer.params["dim"], placements[0]))

    # split plans
    split_notes = ()
    column_split = not_split_by_channels
    parameter_shapes = no_parameters
