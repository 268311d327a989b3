"""Layers that join, split, reshape or carry tensors: merges, views, tokens.
"""

from __future__ import annotations

import math

from convaudit.core.fields import Field, Int
from convaudit.core.layers.base import (
    IntList,
    LayerProblem,
    LayerType,
    Outcome,
    Params,
    Shape,
    broadcast,
    describe_shape,
    elements,
    register,
    tokens,
)
from convaudit.core.layers.splitting import no_parameters, not_split_by_channels


@register
class Concat(LayerType):
    type_name = "concat"
    prefix = "concat"
    category = "merge"
    plan_role = "concat"
    doc = "concatenate feature maps along channels; spatial sizes must match"
    min_inputs = 2
    max_inputs = None

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        ranks = {len(shape) for shape in inputs}
        if ranks != {3} and ranks != {1}:
            raise LayerProblem("merge", "concat needs inputs that are all feature maps or all vectors")
        spatial = {shape[1:] for shape in inputs}
        if len(spatial) > 1:
            raise LayerProblem("merge", "spatial sizes differ")
        return Outcome(shape=(sum(shape[0] for shape in inputs),) + inputs[0][1:])

    # split plans
    split_notes = ()
    column_split = not_split_by_channels
    parameter_shapes = no_parameters


@register
class Add(LayerType):
    type_name = "add"
    prefix = "add"
    category = "merge"
    plan_role = "add"
    doc = "element-wise sum of inputs of identical shape (a residual connection)"
    other_ops_rule = "(inputs − 1) adds per element"
    min_inputs = 2
    max_inputs = None

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
class Mul(LayerType):
    type_name = "mul"
    prefix = "mul"
    category = "merge"
    plan_role = "whole"
    doc = ("element-wise product, broadcasting dimensions of size 1 (the squeeze-excite gate: "
           "[C, H, W] × [C, 1, 1] → [C, H, W])")
    other_ops_rule = "(inputs − 1) multiplies per output element"
    min_inputs = 2
    max_inputs = None

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        shape = broadcast(inputs)
        return Outcome(shape=shape, other_ops=(len(inputs) - 1) * elements(shape))

    # split plans
    split_notes = ()
    column_split = not_split_by_channels
    parameter_shapes = no_parameters


@register
class Flatten(LayerType):
    type_name = "flatten"
    prefix = "flatten"
    category = "other"
    plan_role = "follow"
    doc = "reshape [C, H, W] to [C·H·W]"

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        return Outcome(shape=(elements(inputs[0]),))

    # split plans
    split_notes = ()
    column_split = not_split_by_channels
    parameter_shapes = no_parameters


@register
class Slice(LayerType):
    type_name = "slice"
    prefix = "slice"
    category = "other"
    plan_role = "whole"
    doc = "channels start to end − 1 (dim 0, end exclusive): a view, no arithmetic (ShuffleNet's chunk)"
    fields = (
        Field("start", Int(0), "first channel kept", default=0),
        Field("end", Int(), "one past the last channel kept", required=True),
    )

    def static_problems(self, params: Params) -> list[tuple[str, str]]:
        if params["end"] <= params["start"]:
            return [("end", f"end {params['end']} must be greater than start {params['start']} (end is exclusive)")]
        return []

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        shape, end = inputs[0], params["end"]
        if end > shape[0]:
            raise LayerProblem("slice", f"end {end} is past the input's {shape[0]} channels", "end")
        return Outcome(shape=(end - params["start"],) + shape[1:])

    # split plans
    split_notes = ()
    column_split = not_split_by_channels
    parameter_shapes = no_parameters


@register
class Shuffle(LayerType):
    type_name = "shuffle"
    prefix = "shuffle"
    category = "other"
    plan_role = "whole"
    doc = ("channel shuffle (ShuffleNet): view C as [groups, C/groups], transpose, flatten; counted as a view "
           "(data movement only, no arithmetic)")
    fields = (Field("groups", Int(), "groups the channels are interleaved from", required=True),)

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        shape, groups = inputs[0], params["groups"]
        if shape[0] % groups:
            raise LayerProblem("groups", f"channels {shape[0]} are not divisible by groups {groups}", "groups")
        return Outcome(shape=shape)

    # split plans
    split_notes = ()
    column_split = not_split_by_channels
    parameter_shapes = no_parameters


@register
class Permute(LayerType):
    type_name = "permute"
    prefix = "permute"
    category = "other"
    plan_role = "whole"
    doc = "reorder the sample dimensions (batch excluded): order [1, 2, 0] turns [C, H, W] into [H, W, C]; a view"
    fields = (Field("order", IntList(0, "a permutation of the sample dimensions such as [1, 2, 0]"),
                    "the input dimension each output dimension takes", required=True),)

    def static_problems(self, params: Params) -> list[tuple[str, str]]:
        order = params["order"]
        if sorted(order) != list(range(len(order))):
            return [("order", f"order {list(order)} is not a permutation of 0–{len(order) - 1}")]
        return []

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        shape, order = inputs[0], params["order"]
        if len(order) != len(shape):
            raise LayerProblem("rank", f"order {list(order)} has {len(order)} entries but the input "
                                       f"[{', '.join(map(str, shape))}] has {len(shape)} dimensions", "order")
        return Outcome(shape=tuple(shape[i] for i in order))

    # split plans
    split_notes = ()
    column_split = not_split_by_channels
    parameter_shapes = no_parameters


@register
class Reshape(LayerType):
    type_name = "reshape"
    prefix = "reshape"
    category = "other"
    plan_role = "whole"
    doc = "reshape the sample dimensions (batch excluded); one entry may be −1 (inferred); no arithmetic"
    fields = (Field("shape", IntList(-1, "a list of positive sizes, at most one −1, such as [196, 768]"),
                    "the output's sample dimensions", required=True),)

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

    # split plans
    split_notes = ()
    column_split = not_split_by_channels
    parameter_shapes = no_parameters


@register
class ClassToken(LayerType):
    type_name = "classtoken"
    prefix = "cls"
    category = "other"
    plan_role = "whole"
    doc = "prepend a learned token to [N, D] tokens, giving [N + 1, D] (ViT's class token)"

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        n, d = tokens(inputs[0], "classtoken")
        return Outcome(shape=(n + 1, d), weights=d)

    # split plans
    split_notes = ()
    column_split = not_split_by_channels

    def parameter_shapes(self, inputs: list[Shape], params: Params) -> tuple[Shape, ...]:
        return ((1, 1, inputs[0][-1]),)  # one token of D, shaped to broadcast over the batch


@register
class PosEmbedding(LayerType):
    type_name = "posembedding"
    prefix = "pos"
    category = "other"
    plan_role = "whole"
    doc = "add a learned position embedding of the input's shape (ViT: [N, D])"
    other_ops_rule = "1 add per element"

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        return Outcome(shape=inputs[0], weights=elements(inputs[0]), other_ops=elements(inputs[0]))

    # split plans
    split_notes = ()
    column_split = not_split_by_channels

    def parameter_shapes(self, inputs: list[Shape], params: Params) -> tuple[Shape, ...]:
        return ((1, *inputs[0]),)  # the input's shape, with a batch dimension of 1 to broadcast


@register
class Select(LayerType):
    type_name = "select"
    prefix = "select"
    category = "other"
    plan_role = "whole"
    doc = "pick one entry of the first dimension: token `index` of [N, D] gives [D] (ViT's class token output)"
    fields = (Field("index", Int(0), "which token (0: the first)", default=0),)

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        shape, index = inputs[0], params["index"]
        if len(shape) < 2:
            raise LayerProblem("rank", f"select needs at least two dimensions, got [{shape[0]}]")
        if index >= shape[0]:
            raise LayerProblem("select", f"index {index} is past the input's {shape[0]} entries "
                                         f"(0–{shape[0] - 1})", "index")
        return Outcome(shape=shape[1:])

    # split plans
    split_notes = ()
    column_split = not_split_by_channels
    parameter_shapes = no_parameters
