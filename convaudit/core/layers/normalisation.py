"""Normalisation and learned scaling: LRN, batchnorm, layernorm, layer scale."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from convaudit.core.fields import Bool, Choice, Field, Int, Number
from convaudit.core.layers.base import (
    FP32_LIST,
    FP32_STATISTICS,
    OVER,
    Autocast,
    Explained,
    KeepsStrides,
    LayerType,
    NewStorage,
    Outcome,
    Params,
    Placement,
    References,
    Saved,
    SavesInput,
    Saving,
    Shape,
    elements,
    feature_map,
    full_shape,
    normalised_dim,
    register,
)
from convaudit.core.layers.splitting import no_parameters, not_split_by_channels
from convaudit.core.strides import Strided, contiguous

if TYPE_CHECKING:
    from convaudit.core.analysis import LayerResult
    from convaudit.core.model import LayerSpec


class _Scales:
    """A learned scale (and shift) per channel or feature: weights, but no multiply-adds."""

    def explain(self, layer: LayerResult) -> Explained:
        return Explained(f"{layer.weights:,} scales" if layer.weights else None)


@register
class LRN(NewStorage, _Scales, LayerType):
    type_name = "lrn"
    autocast = Autocast(output="fp32", extras="fp32")  # its avg_pool3d of the squares: the CPU's fp32 list
    batch_rule = "leading"
    prefix = "lrn"
    category = "norm"
    plan_role = "follow"
    receptive = "along-first"
    size_rule = "pointwise"
    references = References()
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

    def saved(self, layer: LayerResult, saving: Saving) -> list[Saved]:
        c, *spatial = layer.input_shapes[0]
        padded = (c + layer.spec.params["size"] - 1) * math.prod(spatial) * saving.batch  # squares, padded on C
        return saving.inputs()[:1] + [saving.extra("terms", 2 * layer.activations), saving.extra("squares", padded)]

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        p = layer.params
        return lib.nn.LocalResponseNorm(p["size"], float(p["alpha"]), float(p["beta"]), float(p["k"]))
    # split plans
    split_notes = (("channels", "LRN normalises over the maps on its own device (as the paper's GPUs did)"),)
    column_split = not_split_by_channels
    parameter_shapes = no_parameters


@register
class BatchNorm(NewStorage, _Scales, LayerType):
    type_name = "batchnorm"
    autocast = FP32_STATISTICS
    batch_rule = "leading"
    prefix = "bn"
    category = "norm"
    plan_role = "follow"
    receptive = "pointwise"
    size_rule = "pointwise"
    references = References("other-ops")
    doc = "batch normalisation (inference form), over channels (any number of spatial axes) or features"
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

    def saved(self, layer: LayerResult, saving: Saving) -> list[Saved]:
        return saving.inputs()[:1] + [saving.extra("stats", 2 * layer.output_shape[0])]  # mean, 1/std per channel

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        # [F] and [C, L]: BatchNorm1d; [C, H, W]: BatchNorm2d; [C, D, H, W]: BatchNorm3d
        norm = getattr(lib.nn, f"BatchNorm{max(1, len(inputs[0]) - 1)}d")
        return norm(inputs[0][0], affine=layer.params["affine"])
    # split plans
    split_notes = (("batch", "batchnorm statistics are per device (not synchronised)"),)
    column_split = not_split_by_channels

    def parameter_shapes(self, inputs: list[Shape], params: Params) -> tuple[Shape, ...]:
        return ((inputs[0][0],), (inputs[0][0],)) if params["affine"] else ()  # γ and β per channel


@register
class Scale(SavesInput, KeepsStrides, _Scales, LayerType):
    type_name = "scale"
    autocast = Autocast(output="fp32")  # x times the fp32 scale promotes
    prefix = "scale"
    category = "other"
    plan_role = "whole"
    receptive = "pointwise"
    size_rule = "pointwise"
    references = References(elementwise_gaps=True)
    doc = ("multiply by a learned vector along one dimension (ConvNeXt's layer scale, a [C, 1, 1] parameter "
           "on a [C, H, W] map)")
    other_ops_rule = "1 multiply per element"
    fields = (Field("over", Choice(*reversed(OVER)), "the dimension scaled: channels (C of [C, H, W], the first) "
                                                     "or last (D of [N, D] tokens, C of an [H, W, C] map)",
                    default="channels"),)

    def batch_rule(self, params: Params) -> str:
        return "any" if params["over"] == "last" else "leading"

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        shape = inputs[0]
        return Outcome(shape=shape, weights=normalised_dim(shape, params["over"]), other_ops=elements(shape))

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        return lib.Scale(inputs[0], layer.params["over"])
    # split plans
    split_notes = ()
    column_split = not_split_by_channels

    def parameter_shapes(self, inputs: list[Shape], params: Params) -> tuple[Shape, ...]:
        shape, size = inputs[0], normalised_dim(inputs[0], params["over"])
        # [C, 1, 1] to broadcast over a [C, H, W] map; a plain vector along the last dimension
        return ((size,) + (1,) * (len(shape) - 1),) if params["over"] == "channels" else ((size,),)


@register
class LayerNorm(_Scales, LayerType):
    type_name = "layernorm"
    autocast = Autocast(extras="fp32", cuda=FP32_LIST)  # layer_norm is on CUDA's fp32 list
    prefix = "ln"
    category = "norm"
    plan_role = "whole"
    size_rule = "pointwise"
    references = References("layernorm", elementwise_gaps=True)
    doc = ("layer normalisation over one dimension, with a learned scale and shift: over the last dimension "
           "like nn.LayerNorm, or over: channels for C at every position of a [C, H, W] map (ConvNeXt's "
           "LayerNorm2d)")
    other_ops_rule = ("per vector of N normalised: 6·N + 2 = mean N (N − 1 adds, a divide), subtract N, square N, "
                      "variance N, add ε and rsqrt 2, multiply by it N, scale N and shift N (4·N + 2 without affine; "
                      "5·N + 2 with a scale but no shift)")
    fields = (
        Field("over", Choice(*OVER), "last: the last dimension (nn.LayerNorm); channels: C of a [C, H, W] map",
              default="last"),
        Field("affine", Bool(), "learn a scale and shift per normalised element", default=True),
        Field("bias", Bool(), "with affine: learn the shift too (nn.LayerNorm(bias=False): a scale alone)",
              default=True),
    )

    def batch_rule(self, params: Params) -> str:
        return "any" if params["over"] == "last" else "leading"

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        shape = inputs[0]
        size = normalised_dim(shape, params["over"])
        vectors = elements(shape) // size
        affine, shift = params["affine"], params["affine"] and params["bias"]
        per_vector = (4 + affine + shift) * size + 2
        return Outcome(shape=shape, weights=size if affine else 0, biases=size if shift else 0,
                       other_ops=per_vector * vectors)

    def receptive(self, params: Params) -> str:
        return "mix-last" if params["over"] == "last" else "mix-first"

    def saved(self, layer: LayerResult, saving: Saving) -> list[Saved]:
        shape = layer.input_shapes[0]
        vectors = elements(shape) // normalised_dim(shape, layer.spec.params["over"])
        return saving.inputs()[:1] + [saving.extra("stats", 2 * vectors * saving.batch)]  # mean, 1/std per vector

    def storage(self, layer: LayerResult, inputs: list[Strided]) -> Strided:
        shape = full_shape(layer)
        if layer.spec.params["over"] == "channels" and len(shape) > 2:
            moved = contiguous(shape[:1] + shape[2:] + shape[1:2])  # normalised with C last, then moved back
            return Strided(shape, (moved[0], moved[-1]) + moved[1:-1], layer.name)
        return NewStorage.storage(self, layer, inputs)

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        shape, affine, bias = inputs[0], layer.params["affine"], layer.params["bias"]
        if layer.params["over"] == "channels" and len(shape) > 1:
            return lib.ChannelsLayerNorm(shape[0], elementwise_affine=affine, bias=bias)
        return lib.nn.LayerNorm(shape[-1], elementwise_affine=affine, bias=bias)
    # split plans
    split_notes = ()
    column_split = not_split_by_channels

    def parameter_shapes(self, inputs: list[Shape], params: Params) -> tuple[Shape, ...]:
        size = inputs[0][0] if params["over"] == "channels" and len(inputs[0]) > 1 else inputs[0][-1]
        return ((size,), (size,)) if params["affine"] else ()  # nn.LayerNorm's weight and bias
