"""Sliding-window layers: convolution, pooling, LeNet's subsampling, and the transposed convolution.

The window arithmetic along one axis is `WindowAxis` (core/windows.py); these types apply it per axis.
"""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from convaudit.core.fields import Bool, ConnectionTable, Field, Int, Size, per_axis
from convaudit.core.layers.base import (
    BIAS,
    FOLLOWS_INPUT,
    LOWER_PRECISION,
    Autocast,
    Explained,
    LayerProblem,
    LayerType,
    NewStorage,
    Outcome,
    Parameterless,
    Params,
    Placement,
    References,
    Saved,
    SavesInput,
    SavesNothing,
    Saving,
    Shape,
    elements,
    feature_map,
    register,
    spread,
)
from convaudit.core.layers.splitting import ColumnSplit, not_split_by_channels
from convaudit.core.windows import Resize, WindowAxis, axis_names

if TYPE_CHECKING:
    from convaudit.core.analysis import LayerResult
    from convaudit.core.model import LayerSpec

INDEX_BYTES = 8  # int64 indices of max-pooling


def slide(spatial: tuple[int, ...], params: Params, ceil: bool = False) -> tuple[WindowAxis, ...]:
    """The window division along each spatial axis; refuses a kernel larger than the padded input."""
    n = len(spatial)
    kernel, stride = spread(params, "kernel", n), spread(params, "stride", n)
    padding = spread(params, "padding", n) if "padding" in params else (0,) * n
    dilation = spread(params, "dilation", n) if "dilation" in params else (1,) * n
    axes = tuple(WindowAxis(axis, size, kernel[i], stride[i], padding[i], dilation[i], ceil)
                 for i, (axis, size) in enumerate(zip(axis_names(n), spatial, strict=True)))
    for axis in axes:
        if not axis.fits:
            raise LayerProblem(
                "kernel-too-large",
                f"output {axis.axis} would be {axis.formula()}, rounded to {axis.out}: the kernel "
                f"({axis.effective_kernel}) is larger than the padded input ({axis.size} + 2·{axis.padding} = "
                f"{axis.padded})",
                "kernel",
            )
    return axes


def torch_class(lib: Any, name: str, axes: int) -> Any:
    """torch.nn's class for this many spatial axes: Conv1d, Conv2d, Conv3d …"""
    return getattr(lib.nn, f"{name}{axes}d")


KERNEL = Field("kernel", Size(), "window size: an int, or one per spatial axis such as [h, w]", required=True)
PADDING = Field("padding", Size(0), "zero padding on each side: an int, or one per spatial axis", default=(0,))
DILATION = Field("dilation", Size(), "spacing between kernel taps: an int, or one per spatial axis", default=(1,))
CEIL = Field("ceil", Bool(), "round the output size up (Caffe's pooling rule) instead of down", default=False)
def pool_stride(params: Params) -> tuple[int, ...]:
    return params["stride"] if params.get("stride") is not None else params["kernel"]


def pool_padding_problems(params: Params) -> list[tuple[str, str]]:
    # PyTorch refuses padding above half the (undilated) kernel: P ≤ ⌊K/2⌋ on each axis.
    kernel, padding = params["kernel"], params["padding"]
    axes = max(len(kernel), len(padding), 2)  # one value stands for every axis; shown as for a 2-D input
    kernel, padding = per_axis(kernel, axes), per_axis(padding, axes)
    if kernel is None or padding is None:
        return []  # the counts differ: refused once the input's axes are known
    if any(p > k // 2 for k, p in zip(kernel, padding, strict=True)):
        return [("padding", f"padding {list(padding)} is more than half the kernel {list(kernel)}; "
                            "PyTorch allows at most ⌊K/2⌋")]
    return []


@register
class Conv(NewStorage, LayerType):
    type_name = "conv"
    autocast = LOWER_PRECISION
    batch_rule = "leading"
    prefix = "conv"
    category = "conv"
    plan_role = "columns"
    receptive = "window"
    size_rule = "window"
    references = References("macs", flop_counter=True)
    padding_at_most_half_kernel = False
    doc = "convolution over 1, 2 or 3 spatial axes ([C, L], [C, H, W] or [C, D, H, W], as nn.Conv1d/2d/3d)"
    has_macs = True
    other_ops_rule = "bias adds: Cout per output position, Cout·Hout·Wout in 2-D (0 without bias)"
    fields = (
        Field("out", Int(), "output channels", required=True),
        KERNEL,
        Field("stride", Size(), "step between windows: an int, or one per spatial axis", default=(1,)),
        PADDING,
        DILATION,
        Field("groups", Int(), "split channels into this many independent groups (AlexNet's two GPUs: 2)", default=1),
        BIAS,
        Field("connections", ConnectionTable(), "sparse connection table: for each output map, the input maps it "
                                                "reads (LeNet-5's C3); replaces the full connection"),
    )

    def static_problems(self, params: Params) -> list[tuple[str, str]]:
        out, groups, table = params["out"], params["groups"], params.get("connections")
        if out % groups:
            return [("groups", f"output channels {out} are not divisible by groups {groups}")]
        if table is not None:
            if groups != 1:
                return [("connections", "a connection table replaces groups; leave groups at 1")]
            if len(table) != out:
                return [("connections", f"the table has {len(table)} rows but the layer has {out} output maps")]
        return []

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        c, spatial = feature_map(inputs[0], "conv")
        groups, table = params["groups"], params.get("connections")
        if c % groups:
            raise LayerProblem("groups", f"input channels {c} are not divisible by groups {groups}", "groups")
        if table is not None and max(max(row) for row in table) >= c:
            raise LayerProblem("connections", f"the table names input map {max(max(r) for r in table)}, "
                                              f"but the input has only {c} maps (0–{c - 1})", "connections")
        windows = slide(spatial, params)
        out = params["out"]
        # Weights: each output map reads Cin/g input maps (grouped) or its table row (sparse), Kh·Kw taps each.
        inputs_read = sum(len(row) for row in table) if table is not None else out * (c // groups)
        weights = inputs_read * math.prod(spread(params, "kernel", len(spatial)))
        positions = math.prod(window.out for window in windows)
        bias_terms = out * positions if params["bias"] else 0
        return Outcome(
            shape=(out, *(window.out for window in windows)),
            weights=weights,
            biases=out if params["bias"] else 0,
            macs=weights * positions,  # Cout·(Cin/g)·Kh·Kw·Hout·Wout
            other_ops=bias_terms,
            windows=windows,
            connections=weights * positions + bias_terms,  # LeNet's C1: (25 + 1)·6·28·28 = 122,304
        )

    def saved(self, layer: LayerResult, saving: Saving) -> list[Saved]:
        table = layer.spec.params.get("connections")
        if table is None:
            return saving.inputs()[:1]
        # The PyTorch module gathers each output map's inputs into a copy; the indices are buffers made once.
        positions = math.prod(layer.input_shapes[0][1:])
        return [saving.extra("gathered", sum(len(row) for row in table) * positions * saving.batch)]

    def explain(self, layer: LayerResult) -> Explained:
        p, c_in = layer.spec.params, layer.input_shapes[0][0]
        taps = "·".join(map(str, spread(p, "kernel", len(layer.input_shapes[0]) - 1)))
        outputs = elements(layer.output_shape)
        if p.get("connections") is not None:
            reads = sum(len(row) for row in p["connections"])
            weights = f"{reads} table reads·{taps} = {layer.weights:,} weights"
            connections = (f"{layer.macs // layer.batch:,} table multiply-adds + {outputs:,} bias terms = "
                           f"{layer.connections:,}")
        else:
            weights = f"{p['out']}·{c_in // p['groups']}·{taps} = {layer.weights:,} weights" + (
                f" (Cin/groups = {c_in}/{p['groups']})" if p["groups"] > 1 else "")
            bias = " + 1 bias" if layer.biases else ""
            connections = (f"({layer.weights // layer.output_shape[0]:,} inputs{bias}) × {outputs:,} outputs = "
                           f"{layer.connections:,}")
        positions = "·".join(map(str, layer.output_shape[1:]))
        return Explained(weights, f"{layer.weights:,} weights × {positions} positions = {layer.macs // layer.batch:,}",
                         connections)

    # split plans
    split_notes = ()

    def column_split(self, inputs: list[Shape], params: Params) -> ColumnSplit:
        return ColumnSplit(groups=params["groups"], table=params.get("connections"))

    def parameter_shapes(self, inputs: list[Shape], params: Params) -> tuple[Shape, ...]:
        # nn.ConvNd: weight [Cout, Cin/g, *K], bias [Cout]; a table: one Conv2d(|row j|, 1) per output map
        kernel = spread(params, "kernel", len(inputs[0]) - 1)
        table = params.get("connections")
        if table is not None:
            return tuple(shape for row in table
                         for shape in (((1, len(row), *kernel), (1,)) if params["bias"] else ((1, len(row), *kernel),)))
        out = params["out"]
        weight = (out, inputs[0][0] // params["groups"], *kernel)
        return (weight, (out,)) if params["bias"] else (weight,)

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        p, n = layer.params, len(inputs[0]) - 1
        kernel, stride, padding, dilation = (spread(p, key, n) for key in ("kernel", "stride", "padding", "dilation"))
        if p.get("connections") is not None:
            return lib.SparseConv(p["connections"], kernel, stride, padding, dilation, p["bias"])
        return torch_class(lib, "Conv", n)(inputs[0][0], p["out"], kernel, stride, padding, dilation,
                                           groups=p["groups"], bias=p["bias"])


def pool_autocast(self: Any, layer: LayerResult) -> Autocast:
    """3-D pooling (max_pool3d, avg_pool3d, adaptive_avg_pool3d) is on autocast's CPU fp32 list, not CUDA's."""
    return Autocast("fp32", "fp32", "fp32", cuda=FOLLOWS_INPUT) if len(layer.input_shapes[0]) == 4 else FOLLOWS_INPUT


class _Pool(NewStorage, Parameterless, LayerType):
    prefix = "pool"
    autocast = pool_autocast
    # split plans (every pool: no parameters, follows its input's channels)
    split_notes = ()
    column_split = not_split_by_channels
    receptive = "window"
    size_rule = "window"
    padding_at_most_half_kernel = True  # PyTorch refuses pool padding above ⌊K/2⌋
    fields = (
        KERNEL,
        Field("stride", Size(), "step between windows; defaults to the kernel", default_from="kernel"),
        PADDING,
        CEIL,
    )

    def static_problems(self, params: Params) -> list[tuple[str, str]]:
        return pool_padding_problems(params)

    def windows(self, inputs: list[Shape], params: Params) -> tuple[int, tuple[WindowAxis, ...]]:
        c, spatial = feature_map(inputs[0], self.type_name)
        return c, slide(spatial, {**params, "stride": pool_stride(params)}, ceil=params["ceil"])

    def window_size(self, params: Params, axes: int) -> int:
        return math.prod(spread(params, "kernel", axes))

    def pool_arguments(self, layer: LayerSpec, inputs: tuple[Shape, ...]) -> tuple[tuple[int, ...], ...]:
        n = len(inputs[0]) - 1
        return (spread(layer.params, "kernel", n), spread({"stride": pool_stride(layer.params)}, "stride", n),
                spread(layer.params, "padding", n))


@register
class MaxPool(_Pool):
    type_name = "maxpool"
    batch_rule = "leading"
    category = "pool"
    plan_role = "follow"
    references = References()
    doc = "max pooling"
    other_ops_rule = "comparisons: (Kh·Kw − 1) per output element (the window's size less one)"
    fields = _Pool.fields + (DILATION,)

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        c, windows = self.windows(inputs, params)
        shape = (c, *(window.out for window in windows))
        return Outcome(shape=shape, other_ops=(self.window_size(params, len(windows)) - 1) * elements(shape),
                       windows=windows)

    def saved(self, layer: LayerResult, saving: Saving) -> list[Saved]:
        return saving.inputs()[:1] + [saving.extra("indices", layer.activations, INDEX_BYTES)]

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        kernel, stride, padding = self.pool_arguments(layer, inputs)
        dilation = spread(layer.params, "dilation", len(kernel))
        return torch_class(lib, "MaxPool", len(kernel))(kernel, stride, padding, dilation,
                                                         ceil_mode=layer.params["ceil"])


@register
class AvgPool(SavesInput, _Pool):
    type_name = "avgpool"
    batch_rule = "leading"
    category = "pool"
    plan_role = "follow"
    references = References()
    doc = "average pooling"
    other_ops_rule = "Kh·Kw per output element: Kh·Kw − 1 adds and one divide (the window's size)"

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        c, windows = self.windows(inputs, params)
        for window in windows if len(windows) == 3 else ():
            if window.size < window.kernel:  # avg_pool3d alone checks the unpadded input against the kernel
                raise LayerProblem("kernel-too-large", f"{window.axis}: the input's {window.size} is smaller than the "
                                                       f"kernel's {window.kernel}, which PyTorch's 3-D average pooling "
                                                       "refuses whatever the padding or rounding", "kernel")
        shape = (c, *(window.out for window in windows))
        return Outcome(shape=shape, other_ops=self.window_size(params, len(windows)) * elements(shape),
                       windows=windows)

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        kernel, stride, padding = self.pool_arguments(layer, inputs)
        return torch_class(lib, "AvgPool", len(kernel))(kernel, stride, padding, ceil_mode=layer.params["ceil"])


def adaptive_windows(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling windows: [⌊i·W/O⌋, ⌈(i+1)·W/O⌉) for i < O."""
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


@register
class AdaptiveAvgPool(NewStorage, Parameterless, LayerType):
    split_notes = ()
    column_split = not_split_by_channels
    type_name = "adaptiveavgpool"
    autocast = pool_autocast
    batch_rule = "leading"
    prefix = "pool"
    category = "pool"
    plan_role = "follow"
    receptive = "adaptive"
    size_rule = "fixed"
    references = References("input-elements")
    doc = "adaptive average pooling to a fixed output size (torchvision's AlexNet and VGG)"
    other_ops_rule = "window elements per output element (window − 1 adds, one divide), windows as PyTorch sizes them"
    fields = (Field("output", Size(), "output size: an int, or one per spatial axis such as [h, w]", required=True),)

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        c, spatial = feature_map(inputs[0], self.type_name)
        output = spread(params, "output", len(spatial))
        # Summing window sizes per axis and multiplying counts every (row window × column window) pair.
        reads = math.prod(sum(end - start for start, end in adaptive_windows(size, out))
                          for size, out in zip(spatial, output, strict=True))
        return Outcome(shape=(c, *output), other_ops=c * reads)

    def saved(self, layer: LayerResult, saving: Saving) -> list[Saved]:
        if all(size == 1 for size in layer.output_shape[1:]):
            return []  # aten pools to 1 × 1 as input.mean((-1, -2)), whose backward keeps only sizes
        return saving.inputs()[:1]

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        n = len(inputs[0]) - 1
        return torch_class(lib, "AdaptiveAvgPool", n)(spread(layer.params, "output", n))


@register
class AdaptiveMaxPool(AdaptiveAvgPool):
    type_name = "adaptivemaxpool"
    references = References(elementwise_gaps=True)  # fvcore has no rule for adaptive_max_pool: it counts none
    doc = "adaptive max pooling to a fixed output size (BoTNet's and BAT's attention pooling in timm)"
    other_ops_rule = "window elements − 1 comparisons per output element, windows as PyTorch sizes them"

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        outcome = AdaptiveAvgPool.apply(self, inputs, params)
        # a window of n elements takes n − 1 comparisons: every read but the first of each output
        return replace(outcome, other_ops=outcome.other_ops - elements(outcome.shape))

    def saved(self, layer: LayerResult, saving: Saving) -> list[Saved]:
        return saving.inputs()[:1] + [saving.extra("indices", layer.activations, INDEX_BYTES)]

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        n = len(inputs[0]) - 1
        return torch_class(lib, "AdaptiveMaxPool", n)(spread(layer.params, "output", n))


@register
class GlobalAvgPool(SavesNothing, NewStorage, Parameterless, LayerType):
    split_notes = ()
    column_split = not_split_by_channels
    type_name = "globalavgpool"
    autocast = pool_autocast
    batch_rule = "leading"
    prefix = "pool"
    category = "pool"
    plan_role = "follow"
    receptive = "global"
    size_rule = "fixed"
    references = References("input-elements")
    doc = "average over each whole feature map, to [C, 1, 1] (one 1 per spatial axis)"
    other_ops_rule = "H·W per channel: H·W − 1 adds and one divide (the map's positions)"

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        c, spatial = feature_map(inputs[0], "globalavgpool")
        return Outcome(shape=(c, *(1 for _ in spatial)), other_ops=c * math.prod(spatial))

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        return torch_class(lib, "AdaptiveAvgPool", len(inputs[0]) - 1)(1)


@register
class Subsample(NewStorage, LayerType):
    type_name = "subsample"
    autocast = Autocast(output="fp32")  # the window sum at the input's dtype, times an fp32 coefficient
    batch_rule = "leading"
    prefix = "subsample"
    category = "conv"
    plan_role = "follow"
    receptive = "window"
    size_rule = "window"
    references = References()
    padding_at_most_half_kernel = True
    doc = ("LeNet-5's trainable subsampling: per map, sum a window, multiply by one trainable coefficient, "
           "add one trainable bias")
    has_macs = True
    other_ops_rule = "window adds: (Kh·Kw − 1) per output element"
    fields = (
        Field("kernel", Size(), "window size: an int, or one per spatial axis such as [h, w]", default=(2,)),
        Field("stride", Size(), "step between windows; defaults to the kernel", default_from="kernel"),
    )

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        c, spatial = feature_map(inputs[0], "subsample")
        windows = slide(spatial, {**params, "stride": pool_stride(params)})
        taps = math.prod(spread(params, "kernel", len(spatial)))
        shape = (c, *(window.out for window in windows))
        # coefficient·(window sum) + bias is one multiply-accumulate per output element.
        # LeNet counts (K·K + 1) connections per unit: the window and the bias (S2: 5·6·14·14 = 5,880).
        return Outcome(shape=shape, weights=c, biases=c, macs=elements(shape),
                       other_ops=(taps - 1) * elements(shape), windows=windows,
                       connections=(taps + 1) * elements(shape))

    def saved(self, layer: LayerResult, saving: Saving) -> list[Saved]:
        return saving.inputs()[:1] + [saving.extra("sum", layer.activations)]

    def explain(self, layer: LayerResult) -> Explained:
        taps = "·".join(map(str, spread(layer.spec.params, "kernel", len(layer.input_shapes[0]) - 1)))
        outputs = elements(layer.output_shape)
        return Explained(f"{layer.weights} coefficients (one per map)",
                         f"one per output: {'·'.join(map(str, layer.output_shape))} = {layer.macs // layer.batch:,}",
                         f"({taps} window + 1 bias) × {outputs:,} outputs = {layer.connections:,}")

    # split plans
    split_notes = ()
    column_split = not_split_by_channels

    def parameter_shapes(self, inputs: list[Shape], params: Params) -> tuple[Shape, ...]:
        return (inputs[0][0],), (inputs[0][0],)  # a coefficient and a bias per map

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        n = len(inputs[0]) - 1
        return lib.Subsample(inputs[0][0], spread(layer.params, "kernel", n),
                             spread({"stride": pool_stride(layer.params)}, "stride", n))


@register
class ConvTranspose(NewStorage, SavesInput, LayerType):
    type_name = "convtranspose"
    autocast = LOWER_PRECISION
    batch_rule = "leading"
    prefix = "upconv"
    category = "conv"
    plan_role = "whole"
    receptive = "transposed"
    size_rule = "resize"
    references = References("macs", flop_counter=True)
    doc = ("transposed convolution over 1, 2 or 3 spatial axes (nn.ConvTranspose1d/2d/3d; U-Net's up-convolution): "
           "out = (W − 1)·S − 2P + D·(K − 1) + output_padding + 1 per axis")
    has_macs = True
    other_ops_rule = "bias adds: Cout per output position (0 without bias)"
    convention = ("Transposed conv: output (W − 1)·S − 2P + D·(K − 1) + output_padding + 1 per axis; MACs "
                  "Cin·(Cout/groups)·K per input position, as torch counts them (each input value is scattered into a "
                  "K-window of every output map), so FLOPs = 2 × MACs as for conv.")
    fields = (
        Field("out", Int(), "output channels", required=True),
        KERNEL,
        Field("stride", Size(), "step between the input's windows in the output: an int, or one per spatial axis",
              default=(1,)),
        PADDING,
        Field("output_padding", Size(0), "extra size added on one side of each output axis: an int, or one per "
                                         "spatial axis; must be smaller than the stride or the dilation", default=(0,)),
        DILATION,
        Field("groups", Int(), "split channels into this many independent groups", default=1),
        BIAS,
    )

    def static_problems(self, params: Params) -> list[tuple[str, str]]:
        if params["out"] % params["groups"]:
            return [("groups", f"output channels {params['out']} are not divisible by groups {params['groups']}")]
        return []

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        c, spatial = feature_map(inputs[0], "convtranspose")
        n, groups, out = len(spatial), params["groups"], params["out"]
        if c % groups:
            raise LayerProblem("groups", f"input channels {c} are not divisible by groups {groups}", "groups")
        kernel, stride, padding, extra, dilation = (
            spread(params, key, n) for key in ("kernel", "stride", "padding", "output_padding", "dilation"))
        resizes = []
        for axis, size, k, s, p, op, d in zip(axis_names(n), spatial, kernel, stride, padding, extra, dilation,
                                              strict=True):
            if op >= s and op >= d:  # PyTorch: output padding must be smaller than either stride or dilation
                raise LayerProblem("output-padding", f"{axis}: output_padding {op} is not smaller than the stride "
                                                     f"{s} or the dilation {d}", "output_padding")
            offset = d * (k - 1) - 2 * p + op + 1 - s  # (W − 1)·S − 2P + D·(K − 1) + op + 1 = S·W + offset
            size_out = s * size + offset
            if size_out < 1:
                raise LayerProblem("kernel-too-large", f"output {axis} would be ({size} − 1)·{s} − 2·{p} + "
                                                       f"{d}·({k} − 1) + {op} + 1 = {size_out}", "padding")
            resizes.append(Resize(axis, size, size_out, "transposed", Fraction(s), offset))
        # Weights [Cin, Cout/g, K…]; torch counts Cin·(Cout/g)·K MACs at every input position (flop_counter's
        # conv_flop_count with transposed=True): each input value is scattered into a K-window of every output map.
        weights = c * (out // groups) * math.prod(kernel)
        positions_in, positions_out = math.prod(spatial), math.prod(r.out for r in resizes)
        bias_terms = out * positions_out if params["bias"] else 0
        return Outcome(shape=(out, *(r.out for r in resizes)), weights=weights,
                       biases=out if params["bias"] else 0, macs=weights * positions_in, other_ops=bias_terms,
                       resizes=tuple(resizes), connections=weights * positions_in + bias_terms)

    def explain(self, layer: LayerResult) -> Explained:
        p, c_in = layer.spec.params, layer.input_shapes[0][0]
        taps = "·".join(map(str, spread(p, "kernel", len(layer.input_shapes[0]) - 1)))
        positions = "·".join(map(str, layer.input_shapes[0][1:]))
        macs = layer.macs // layer.batch
        bias = f" + {elements(layer.output_shape):,} bias terms" if layer.biases else ""
        return Explained(f"{c_in}·{p['out'] // p['groups']}·{taps} = {layer.weights:,} weights",
                         f"{layer.weights:,} weights × {positions} input positions = {macs:,}",
                         f"{macs:,} multiply-adds{bias} = {layer.connections:,}")

    # split plans: it runs whole (weights [Cin, Cout/g, *K] would split along their input channels)
    split_notes = ()
    column_split = not_split_by_channels

    def parameter_shapes(self, inputs: list[Shape], params: Params) -> tuple[Shape, ...]:
        # nn.ConvTransposeNd: weight [Cin, Cout/g, *K], bias [Cout]
        weight = (inputs[0][0], params["out"] // params["groups"], *spread(params, "kernel", len(inputs[0]) - 1))
        return (weight, (params["out"],)) if params["bias"] else (weight,)

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        p, n = layer.params, len(inputs[0]) - 1
        kernel, stride, padding, extra, dilation = (
            spread(p, key, n) for key in ("kernel", "stride", "padding", "output_padding", "dilation"))
        return torch_class(lib, "ConvTranspose", n)(inputs[0][0], p["out"], kernel, stride, padding, extra,
                                                    groups=p["groups"], bias=p["bias"], dilation=dilation)
