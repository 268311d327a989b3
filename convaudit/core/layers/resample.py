"""Layers that change a feature map's size without sliding a window: up-sampling, pixel shuffle, padding, cropping.

Each records, per spatial axis, how its output size follows its input's (`Resize`), for the checks and the
exact-input search.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from convaudit.core.fields import Bool, Choice, Field, FieldKind, Int, Size, describe, parse_number, per_axis
from convaudit.core.layers.base import (
    FOLLOWS_INPUT,
    Autocast,
    LayerProblem,
    LayerType,
    NewStorage,
    Outcome,
    Parameterless,
    Params,
    Placement,
    References,
    Saved,
    SavesNothing,
    Saving,
    Shape,
    elements,
    feature_map,
    full_shape,
    register,
    spread,
)
from convaudit.core.layers.splitting import not_split_by_channels
from convaudit.core.strides import Strided
from convaudit.core.windows import Resize, axis_names

if TYPE_CHECKING:
    from convaudit.core.analysis import LayerResult
    from convaudit.core.model import LayerSpec


class Scales(FieldKind):
    """A positive number for every spatial axis, or one per axis: an up-sampling factor such as 2 or 1.5."""

    description = "a positive number, or one per spatial axis such as [2, 2]"
    spreads = True

    def parse(self, value: Any) -> tuple[Fraction, ...]:
        items = value if isinstance(value, list) else [value]
        try:
            if not 1 <= len(items) <= 3:
                raise ValueError
            numbers = tuple(parse_number(item) for item in items)
        except ValueError:
            raise ValueError(f"expected {self.description}, got {describe(value)}") from None
        if any(number <= 0 for number in numbers):
            raise ValueError(f"expected {self.description}, got {describe(value)}")
        return numbers

    def schema(self) -> dict[str, Any]:
        number = {"type": ["number", "string"], "exclusiveMinimum": 0}
        return {"oneOf": [number, {"type": "array", "items": number, "minItems": 1, "maxItems": 3}]}


# Other ops per output element, (2·taps − 1): the taps it weighs and adds (the weights themselves depend only on
# positions and are made once per axis). nearest copies.
INTERPOLATION_OPS = {"nearest": 0, "nearest-exact": 0, "linear": 3, "bilinear": 7, "trilinear": 15, "bicubic": 31}
# The modes that interpolate along every axis of a 1-, 2- or 3-D map (PyTorch refuses the others).
MODE_AXES = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}
FVCORE_UPSAMPLE = {("nearest", 2): 1, ("bilinear", 2): 4}  # fvcore's upsample_nearest2d and upsample_bilinear2d


def upsampled_size(size: int, scale: Fraction) -> tuple[int, Fraction]:
    """PyTorch's output size for a scale factor: floor(float(size) · scale) computed in double precision
    (F.interpolate's _interp_output_size), so 100 × 0.57 gives 56 as it does. Returns the size and the product
    it floored, exactly (the double product is a binary fraction)."""
    product = float(size) * float(scale)  # torch's own arithmetic, reproduced exactly: IEEE double
    return math.floor(product), Fraction(product)


@register
class Upsample(SavesNothing, NewStorage, Parameterless, LayerType):
    split_notes = ()
    column_split = not_split_by_channels
    type_name = "upsample"
    autocast = FOLLOWS_INPUT
    batch_rule = "leading"
    prefix = "up"
    category = "pool"
    plan_role = "follow"
    receptive = "upsample"
    size_rule = "resize"
    doc = ("up-sampling by a scale factor, to a size, or to the spatial size of a second input (from: [x, like], as "
           "F.interpolate(x, size=like.shape[-2:]) in FCN and DeepLabV3): nearest, linear (1-D), bilinear or bicubic "
           "(2-D), trilinear (3-D); a fractional factor floors floor(in·scale) as PyTorch does")
    other_ops_rule = ("per output element, the taps weighed and added (2·taps − 1): nearest 0, linear 3, bilinear 7, "
                      "trilinear 15, bicubic 31")
    convention = ("Upsample: output floor(in × scale) computed in double precision as PyTorch does (100 × 0.57 gives "
                  "56), or the size given; other ops per output element 2·taps − 1: nearest 0, linear 3, bilinear 7, "
                  "trilinear 15, bicubic 31.")
    fields = (
        Field("scale", Scales(), "the factor per spatial axis (give scale, size, or a second input)"),
        Field("size", Size(), "the output size per spatial axis (give scale, size, or a second input)"),
        Field("mode", Choice(*INTERPOLATION_OPS), "how values are interpolated", default="nearest"),
        Field("align_corners", Bool(), "linear modes: align the corner pixels' centres (PyTorch's align_corners)",
              default=False),
    )

    def references(self, params: Params) -> References:
        per_output = FVCORE_UPSAMPLE.get((params["mode"], MODE_AXES.get(params["mode"], 2)))
        return References("output-elements", per_output=per_output) if per_output else \
            References(elementwise_gaps=True)

    max_inputs = 2  # the second, when given, sets the size

    def static_problems(self, params: Params) -> list[tuple[str, str]]:
        if params.get("scale") is not None and params.get("size") is not None:
            return [("scale", "give scale or size, not both")]
        if params["align_corners"] and params["mode"] not in MODE_AXES:
            return [("align_corners", f"align_corners applies to linear modes, not {params['mode']} "
                                      "(PyTorch refuses it)")]
        return []

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        c, spatial = feature_map(inputs[0], "upsample")
        n, mode = len(spatial), params["mode"]
        if MODE_AXES.get(mode, n) != n:
            raise LayerProblem("mode", f"mode {mode} interpolates {MODE_AXES[mode]} spatial axes, the input has {n}",
                               "mode")
        if len(inputs) > 1 or params.get("size") is not None:
            if len(inputs) > 1 and (params.get("size") is not None or params.get("scale") is not None):
                raise LayerProblem("scale", "a second input sets the size: leave out scale and size", "from")
            target = feature_map(inputs[1], "upsample")[1] if len(inputs) > 1 else spread(params, "size", n)
            if len(target) != n:
                raise LayerProblem("merge", f"the second input has {len(target)} spatial axes, the first {n}")
            resizes = [Resize(axis, size, out, "fixed")
                       for axis, size, out in zip(axis_names(n), spatial, target, strict=True)]
        elif params.get("scale") is None:
            raise LayerProblem("scale", "give scale, size, or a second input whose size to take", "scale")
        else:
            scales = per_axis(params["scale"], n)
            if scales is None:
                raise LayerProblem("rank", f"scale gives {len(params['scale'])} factors but the input has {n} spatial "
                                           "axes", "scale")
            resizes = []
            for axis, size, scale in zip(axis_names(n), spatial, scales, strict=True):
                out, product = upsampled_size(size, scale)
                if out < 1:
                    raise LayerProblem("non-positive-output", f"output {axis} would be floor({size} × {scale}) = {out}",
                                       "scale")
                resizes.append(Resize(axis, size, out, "scale", scale, product=product))
        shape = (c, *(r.out for r in resizes))
        return Outcome(shape=shape, other_ops=INTERPOLATION_OPS[mode] * elements(shape), resizes=tuple(resizes))

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        p, n = layer.params, len(inputs[0]) - 1
        if len(inputs) > 1:
            return lib.UpsampleLike(p["mode"], p["align_corners"] if p["mode"] in MODE_AXES else None)
        size = spread(p, "size", n) if p.get("size") is not None else None
        scale = tuple(float(s) for s in per_axis(p["scale"], n) or ()) if p.get("scale") is not None else None
        return lib.nn.Upsample(size=size, scale_factor=scale, mode=p["mode"],
                               align_corners=p["align_corners"] if p["mode"] in MODE_AXES else None)


class _Shuffle(SavesNothing, NewStorage, Parameterless, LayerType):
    """Moves r × r blocks of H and W into channels and back (2-D maps only, as PyTorch's)."""
    autocast = FOLLOWS_INPUT
    split_notes = ()
    column_split = not_split_by_channels

    category = "other"
    plan_role = "whole"
    size_rule = "resize"
    references = References(elementwise_gaps=True)
    other_ops_rule = "0 (data movement only)"
    fields = (Field("factor", Int(), "r: the block side moved between H, W and channels", required=True),)

    def map_of(self, inputs: list[Shape]) -> tuple[int, int, int]:
        c, spatial = feature_map(inputs[0], self.type_name)
        if len(spatial) != 2:
            raise LayerProblem("rank", f"{self.type_name} works on [C, H, W] maps, got "
                                       f"[{', '.join(map(str, inputs[0]))}]")
        return c, spatial[0], spatial[1]


@register
class PixelShuffle(_Shuffle):
    type_name = "pixelshuffle"
    batch_rule = "leading"
    prefix = "shuffle"
    receptive = "shuffle"
    doc = "[C·r², H, W] → [C, H·r, W·r] (nn.PixelShuffle: sub-pixel up-sampling)"
    convention = "Pixel shuffle and unshuffle move r × r blocks between H, W and channels: no arithmetic."

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        c, h, w = self.map_of(inputs)
        r = params["factor"]
        if c % (r * r):
            raise LayerProblem("factor", f"channels {c} are not divisible by r² = {r * r}", "factor")
        resizes = tuple(Resize(axis, size, size * r, "shuffle", Fraction(r)) for axis, size in (("H", h), ("W", w)))
        return Outcome(shape=(c // (r * r), h * r, w * r), resizes=resizes)

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        return lib.nn.PixelShuffle(layer.params["factor"])


@register
class PixelUnshuffle(_Shuffle):
    type_name = "pixelunshuffle"
    batch_rule = "leading"
    prefix = "unshuffle"
    receptive = "unshuffle"
    doc = "[C, H, W] → [C·r², H/r, W/r] (nn.PixelUnshuffle); H and W must divide by r"
    convention = "Pixel shuffle and unshuffle move r × r blocks between H, W and channels: no arithmetic."

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        c, h, w = self.map_of(inputs)
        r = params["factor"]
        for axis, size in (("H", h), ("W", w)):
            if size % r:
                raise LayerProblem("factor", f"{axis} {size} is not divisible by r = {r} (PyTorch refuses it)",
                                   "factor")
        resizes = tuple(Resize(axis, size, size // r, "unshuffle", Fraction(1, r))
                        for axis, size in (("H", h), ("W", w)))
        return Outcome(shape=(c * r * r, h // r, w // r), resizes=resizes)

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        return lib.nn.PixelUnshuffle(layer.params["factor"])


PAD_MODULES = {"zeros": "ConstantPad", "reflect": "ReflectionPad", "replicate": "ReplicationPad",
               "circular": "CircularPad"}


@register
class Pad(NewStorage, Parameterless, LayerType):
    split_notes = ()
    column_split = not_split_by_channels
    type_name = "pad"

    def autocast(self, layer: LayerResult) -> Autocast:
        # reflection_pad1d/2d and replication_pad1d/2d/3d are on autocast's CPU fp32 list (not CUDA's)
        mode, axes = layer.spec.params["mode"], len(layer.input_shapes[0]) - 1
        if mode == "replicate" or (mode == "reflect" and axes < 3):
            return Autocast("fp32", "fp32", "fp32", cuda=FOLLOWS_INPUT)
        return FOLLOWS_INPUT
    batch_rule = "leading"
    prefix = "pad"
    category = "other"
    plan_role = "follow"
    receptive = "pad"
    size_rule = "resize"
    references = References(elementwise_gaps=True)
    doc = ("pad each spatial axis by `before` and `after` (nn.ZeroPad2d, ReflectionPad, ReplicationPad, "
           "CircularPad): out = in + before + after")
    other_ops_rule = "0 (data movement only)"
    convention = "Pad: output in + before + after per axis; no arithmetic."
    fields = (
        Field("before", Size(0), "positions added before each axis (top, left): an int, or one per spatial axis",
              default=(0,)),
        Field("after", Size(0), "positions added after each axis (bottom, right): an int, or one per spatial axis",
              default=(0,)),
        Field("mode", Choice(*PAD_MODULES), "what the new positions hold", default="zeros"),
    )

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        c, spatial = feature_map(inputs[0], "pad")
        n, mode = len(spatial), params["mode"]
        before, after = spread(params, "before", n), spread(params, "after", n)
        resizes = []
        for axis, size, b, a in zip(axis_names(n), spatial, before, after, strict=True):
            if (mode == "reflect" and max(b, a) >= size) or (mode == "circular" and max(b, a) > size):
                limit = "less than" if mode == "reflect" else "at most"
                raise LayerProblem("padding", f"{axis}: {mode} padding {b} before and {a} after must be {limit} the "
                                              f"input's {size} (PyTorch refuses it)", "before")
            resizes.append(Resize(axis, size, size + b + a, "pad", Fraction(1), b + a))
        return Outcome(shape=(c, *(r.out for r in resizes)), resizes=tuple(resizes))

    def saved(self, layer: LayerResult, saving: Saving) -> list[Saved]:
        # zeros and circular pad by copying slices (their backward slices the gradient); reflect and replicate
        # keep the input for their backward kernels
        return saving.inputs()[:1] if layer.spec.params["mode"] in ("reflect", "replicate") else []

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        p, n = layer.params, len(inputs[0]) - 1
        before, after = spread(p, "before", n), spread(p, "after", n)
        pads = tuple(amount for b, a in zip(reversed(before), reversed(after), strict=True) for amount in (b, a))
        made = getattr(lib.nn, f"{PAD_MODULES[p['mode']]}{n}d")
        return made(pads, 0.0) if p["mode"] == "zeros" else made(pads)


@register
class Crop(SavesNothing, Parameterless, LayerType):
    split_notes = ()
    column_split = not_split_by_channels
    type_name = "crop"
    autocast = FOLLOWS_INPUT
    batch_rule = "leading"
    prefix = "crop"
    category = "other"
    plan_role = "follow"
    receptive = "crop"
    size_rule = "resize"
    references = References(elementwise_gaps=True)
    doc = ("centre-crop the first input to the spatial size of the second (U-Net's copy and crop): offset "
           "⌊(in − out)/2⌋ on each axis; a view, no arithmetic")
    other_ops_rule = "0 (a view)"
    convention = "Crop: the first input's centre, offset ⌊(in − out)/2⌋ per axis, at the second input's size; a view."
    min_inputs = 2
    max_inputs = 2
    crops_to_second = True

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        (c, spatial), (_, target) = feature_map(inputs[0], "crop"), feature_map(inputs[1], "crop")
        if len(spatial) != len(target):
            raise LayerProblem("merge", f"crop of a map with {len(spatial)} spatial axes to one with {len(target)}")
        for axis, size, out in zip(axis_names(len(spatial)), spatial, target, strict=True):
            if out > size:
                raise LayerProblem("merge", f"{axis}: cannot crop {size} to a larger {out}")
        resizes = tuple(Resize(axis, size, out, "fixed")
                        for axis, size, out in zip(axis_names(len(spatial)), spatial, target, strict=True))
        return Outcome(shape=(c, *target), resizes=resizes)

    def storage(self, layer: LayerResult, inputs: list[Strided]) -> Strided:
        return Strided(full_shape(layer), inputs[0].strides, inputs[0].base)  # a view: the same strides

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        return lib.CenterCrop()
