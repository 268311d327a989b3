"""Normalisation and learned scaling: LRN, batchnorm, layernorm, layer scale.
"""

from __future__ import annotations

from fractions import Fraction

from convaudit.core.fields import Bool, Choice, Field, Int, Number
from convaudit.core.layers.base import (
    OVER,
    LayerType,
    Outcome,
    Params,
    Shape,
    elements,
    feature_map,
    normalised_dim,
    register,
)
from convaudit.core.layers.splitting import no_parameters, not_split_by_channels


@register
class LRN(LayerType):
    type_name = "lrn"
    prefix = "lrn"
    category = "norm"
    plan_role = "follow"
    doc = ("local response normalisation across channels, as PyTorch and Caffe define it: "
           "b = a / (k + alpha/size · Σ a²)^beta")
    other_ops_rule = "(2·size + 3) per element: size squares, size − 1 adds, scale, add k, power, divide"
    fields = (
        Field("size", Int(), "number of neighbouring channels summed", required=True),
        Field("alpha", Number(minimum=0), "scale (divided by size, as in PyTorch and Caffe)",
              default=Fraction(1, 10000)),
        Field("beta", Number(minimum=0), "exponent", default=Fraction(3, 4)),
        Field("k", Number(minimum=0), "additive constant", default=1),
    )

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        feature_map(inputs[0], "lrn")
        return Outcome(shape=inputs[0], other_ops=(2 * params["size"] + 3) * elements(inputs[0]))

    # split plans
    split_notes = (("channels", "LRN normalises over the maps on its own device (as the paper's GPUs did)"),)
    column_split = not_split_by_channels
    parameter_shapes = no_parameters


@register
class BatchNorm(LayerType):
    type_name = "batchnorm"
    prefix = "bn"
    category = "norm"
    plan_role = "follow"
    doc = "batch normalisation (inference form), over channels or features"
    other_ops_rule = "2 per element once folded: x·scale + shift (1 without affine)"
    fields = (Field("affine", Bool(), "learn a scale and shift per channel", default=True),)

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        channels = inputs[0][0]
        affine = params["affine"]
        return Outcome(
            shape=inputs[0],
            weights=channels if affine else 0,
            biases=channels if affine else 0,
            stats=2 * channels,  # running mean and variance
            other_ops=(2 if affine else 1) * elements(inputs[0]),
        )

    # split plans
    split_notes = (("batch", "batchnorm statistics are per device (not synchronised)"),)
    column_split = not_split_by_channels

    def parameter_shapes(self, inputs: list[Shape], params: Params) -> tuple[Shape, ...]:
        return ((inputs[0][0],), (inputs[0][0],)) if params["affine"] else ()  # γ and β per channel


@register
class Scale(LayerType):
    type_name = "scale"
    prefix = "scale"
    category = "other"
    plan_role = "whole"
    doc = ("multiply by a learned vector along one dimension (ConvNeXt's layer scale, a [C, 1, 1] parameter "
           "on a [C, H, W] map)")
    other_ops_rule = "1 multiply per element"
    fields = (Field("over", Choice(*reversed(OVER)), "the dimension scaled: channels (C of [C, H, W], the first) "
                                                     "or last (D of [N, D] tokens, C of an [H, W, C] map)",
                    default="channels"),)

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        shape = inputs[0]
        return Outcome(shape=shape, weights=normalised_dim(shape, params["over"]), other_ops=elements(shape))

    # split plans
    split_notes = ()
    column_split = not_split_by_channels

    def parameter_shapes(self, inputs: list[Shape], params: Params) -> tuple[Shape, ...]:
        shape, size = inputs[0], normalised_dim(inputs[0], params["over"])
        # [C, 1, 1] to broadcast over a [C, H, W] map; a plain vector along the last dimension
        return ((size,) + (1,) * (len(shape) - 1),) if params["over"] == "channels" else ((size,),)


@register
class LayerNorm(LayerType):
    type_name = "layernorm"
    prefix = "ln"
    category = "norm"
    plan_role = "whole"
    doc = ("layer normalisation over one dimension, with a learned scale and shift: over the last dimension "
           "like nn.LayerNorm, or over: channels for C at every position of a [C, H, W] map (ConvNeXt's "
           "LayerNorm2d)")
    other_ops_rule = ("per vector of N normalised: 6·N + 2 = mean N (N − 1 adds, a divide), subtract N, square N, "
                      "variance N, add ε and rsqrt 2, multiply by it N, scale N and shift N (4·N + 2 without affine)")
    fields = (
        Field("over", Choice(*OVER), "last: the last dimension (nn.LayerNorm); channels: C of a [C, H, W] map",
              default="last"),
        Field("affine", Bool(), "learn a scale and shift per normalised element", default=True),
    )

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        shape = inputs[0]
        size = normalised_dim(shape, params["over"])
        vectors = elements(shape) // size
        affine = params["affine"]
        per_vector = (6 if affine else 4) * size + 2
        return Outcome(shape=shape, weights=size if affine else 0, biases=size if affine else 0,
                       other_ops=per_vector * vectors)

    # split plans
    split_notes = ()
    column_split = not_split_by_channels

    def parameter_shapes(self, inputs: list[Shape], params: Params) -> tuple[Shape, ...]:
        size = inputs[0][0] if params["over"] == "channels" and len(inputs[0]) > 1 else inputs[0][-1]
        return ((size,), (size,)) if params["affine"] else ()  # nn.LayerNorm's weight and bias
