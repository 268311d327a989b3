"""Sliding-window layers: convolution, pooling and LeNet's subsampling.

The window arithmetic along one axis is `WindowAxis` (core/windows.py); these types apply it per axis.
"""

from __future__ import annotations

from fractions import Fraction  # noqa: F401

from convaudit.core.fields import Bool, ConnectionTable, Field, Int, Size
from convaudit.core.layers.base import (
    BIAS,
    LayerProblem,
    LayerType,
    Outcome,
    Params,
    Shape,
    elements,
    feature_map,
    register,
)
from convaudit.core.layers.splitting import ColumnSplit, no_parameters, not_split_by_channels
from convaudit.core.windows import WindowAxis


def slide(h: int, w: int, params: Params, ceil: bool = False) -> tuple[WindowAxis, WindowAxis]:
    """The two window divisions of a layer; refuses a kernel larger than the padded input."""
    kernel, stride = params["kernel"], params["stride"]
    padding, dilation = params.get("padding", (0, 0)), params.get("dilation", (1, 1))
    axes = tuple(
        WindowAxis(axis, size, kernel[i], stride[i], padding[i], dilation[i], ceil)
        for i, (axis, size) in enumerate((("H", h), ("W", w)))
    )
    for axis in axes:
        if not axis.fits:
            raise LayerProblem(
                "kernel-too-large",
                f"output {axis.axis} would be {axis.formula()}, rounded to {axis.out}: the kernel "
                f"({axis.effective_kernel}) is larger than the padded input ({axis.size} + 2·{axis.padding} = "
                f"{axis.padded})",
                "kernel",
            )
    return axes  # type: ignore[return-value]


KERNEL = Field("kernel", Size(), "window size: an int or [h, w]", required=True)
PADDING = Field("padding", Size(0), "zero padding on each side: an int or [h, w]", default=(0, 0))
DILATION = Field("dilation", Size(), "spacing between kernel taps: an int or [h, w]", default=(1, 1))
CEIL = Field("ceil", Bool(), "round the output size up (Caffe's pooling rule) instead of down", default=False)
def pool_stride(params: Params) -> tuple[int, int]:
    return params["stride"] if params.get("stride") is not None else params["kernel"]


def pool_padding_problems(params: Params) -> list[tuple[str, str]]:
    # PyTorch refuses padding above half the (undilated) kernel: P ≤ ⌊K/2⌋ on each axis.
    kernel, padding = params["kernel"], params["padding"]
    if any(p > k // 2 for k, p in zip(kernel, padding, strict=True)):
        return [("padding", f"padding {list(padding)} is more than half the kernel {list(kernel)}; "
                            "PyTorch allows at most ⌊K/2⌋")]
    return []


@register
class Conv(LayerType):
    type_name = "conv"
    prefix = "conv"
    category = "conv"
    plan_role = "columns"
    doc = "2-D convolution"
    has_macs = True
    other_ops_rule = "bias adds: Cout·Hout·Wout (0 without bias)"
    fields = (
        Field("out", Int(), "output channels", required=True),
        KERNEL,
        Field("stride", Size(), "step between windows: an int or [h, w]", default=(1, 1)),
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
        c, h, w = feature_map(inputs[0], "conv")
        groups, table = params["groups"], params.get("connections")
        if c % groups:
            raise LayerProblem("groups", f"input channels {c} are not divisible by groups {groups}", "groups")
        if table is not None and max(max(row) for row in table) >= c:
            raise LayerProblem("connections", f"the table names input map {max(max(r) for r in table)}, "
                                              f"but the input has only {c} maps (0–{c - 1})", "connections")
        rows, cols = slide(h, w, params)
        kh, kw = params["kernel"]
        out = params["out"]
        # Weights: each output map reads Cin/g input maps (grouped) or its table row (sparse), Kh·Kw taps each.
        inputs_read = sum(len(row) for row in table) if table is not None else out * (c // groups)
        weights = inputs_read * kh * kw
        positions = rows.out * cols.out
        bias_terms = out * positions if params["bias"] else 0
        return Outcome(
            shape=(out, rows.out, cols.out),
            weights=weights,
            biases=out if params["bias"] else 0,
            macs=weights * positions,  # Cout·(Cin/g)·Kh·Kw·Hout·Wout
            other_ops=bias_terms,
            windows=(rows, cols),
            connections=weights * positions + bias_terms,  # LeNet's C1: (25 + 1)·6·28·28 = 122,304
        )

    # split plans
    split_notes = ()

    def column_split(self, inputs: list[Shape], params: Params) -> ColumnSplit:
        return ColumnSplit(groups=params["groups"], table=params.get("connections"))

    def parameter_shapes(self, inputs: list[Shape], params: Params) -> tuple[Shape, ...]:
        # nn.Conv2d: weight [Cout, Cin/g, Kh, Kw], bias [Cout]; a table: one Conv2d(|row j|, 1) per output map
        kh, kw = params["kernel"]
        table = params.get("connections")
        if table is not None:
            return tuple(shape for row in table
                         for shape in (((1, len(row), kh, kw), (1,)) if params["bias"] else ((1, len(row), kh, kw),)))
        out = params["out"]
        weight = (out, inputs[0][0] // params["groups"], kh, kw)
        return (weight, (out,)) if params["bias"] else (weight,)


class _Pool(LayerType):
    prefix = "pool"
    fields = (
        KERNEL,
        Field("stride", Size(), "step between windows; defaults to the kernel"),
        PADDING,
        CEIL,
    )

    def static_problems(self, params: Params) -> list[tuple[str, str]]:
        return pool_padding_problems(params)

    def windows(self, inputs: list[Shape], params: Params) -> tuple[int, tuple[WindowAxis, WindowAxis]]:
        c, h, w = feature_map(inputs[0], self.type_name)
        return c, slide(h, w, {**params, "stride": pool_stride(params)}, ceil=params["ceil"])

    # split plans (every pool: no parameters, follows its input's channels)
    split_notes = ()
    column_split = not_split_by_channels
    parameter_shapes = no_parameters


@register
class MaxPool(_Pool):
    type_name = "maxpool"
    category = "pool"
    plan_role = "follow"
    doc = "max pooling"
    other_ops_rule = "comparisons: (Kh·Kw − 1) per output element"
    fields = _Pool.fields + (DILATION,)

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        c, (rows, cols) = self.windows(inputs, params)
        kh, kw = params["kernel"]
        shape = (c, rows.out, cols.out)
        return Outcome(shape=shape, other_ops=(kh * kw - 1) * elements(shape), windows=(rows, cols))


@register
class AvgPool(_Pool):
    type_name = "avgpool"
    category = "pool"
    plan_role = "follow"
    doc = "average pooling"
    other_ops_rule = "Kh·Kw per output element: Kh·Kw − 1 adds and one divide"

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        c, (rows, cols) = self.windows(inputs, params)
        kh, kw = params["kernel"]
        shape = (c, rows.out, cols.out)
        return Outcome(shape=shape, other_ops=kh * kw * elements(shape), windows=(rows, cols))


def adaptive_windows(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling windows: [⌊i·W/O⌋, ⌈(i+1)·W/O⌉) for i < O."""
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


@register
class AdaptiveAvgPool(LayerType):
    type_name = "adaptiveavgpool"
    prefix = "pool"
    category = "pool"
    plan_role = "follow"
    doc = "adaptive average pooling to a fixed output size (torchvision's AlexNet and VGG)"
    other_ops_rule = "window elements per output element (window − 1 adds, one divide), windows as PyTorch sizes them"
    fields = (Field("output", Size(), "output size: an int or [h, w]", required=True),)

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        c, h, w = feature_map(inputs[0], "adaptiveavgpool")
        oh, ow = params["output"]
        # Summing window sizes per axis and multiplying counts every (row window × column window) pair.
        rows = sum(end - start for start, end in adaptive_windows(h, oh))
        cols = sum(end - start for start, end in adaptive_windows(w, ow))
        return Outcome(shape=(c, oh, ow), other_ops=c * rows * cols)

    # split plans
    split_notes = ()
    column_split = not_split_by_channels
    parameter_shapes = no_parameters


@register
class GlobalAvgPool(LayerType):
    type_name = "globalavgpool"
    prefix = "pool"
    category = "pool"
    plan_role = "follow"
    doc = "average over each whole feature map, to [C, 1, 1]"
    other_ops_rule = "H·W per channel: H·W − 1 adds and one divide"

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        c, h, w = feature_map(inputs[0], "globalavgpool")
        return Outcome(shape=(c, 1, 1), other_ops=c * h * w)

    # split plans
    split_notes = ()
    column_split = not_split_by_channels
    parameter_shapes = no_parameters


@register
class Subsample(LayerType):
    type_name = "subsample"
    prefix = "subsample"
    category = "conv"
    plan_role = "follow"
    doc = ("LeNet-5's trainable subsampling: per map, sum a window, multiply by one trainable coefficient, "
           "add one trainable bias")
    has_macs = True
    other_ops_rule = "window adds: (Kh·Kw − 1) per output element"
    fields = (
        Field("kernel", Size(), "window size: an int or [h, w]", default=(2, 2)),
        Field("stride", Size(), "step between windows; defaults to the kernel"),
    )

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        c, h, w = feature_map(inputs[0], "subsample")
        rows, cols = slide(h, w, {**params, "stride": pool_stride(params)})
        kh, kw = params["kernel"]
        shape = (c, rows.out, cols.out)
        # coefficient·(window sum) + bias is one multiply-accumulate per output element.
        # LeNet counts (K·K + 1) connections per unit: the window and the bias (S2: 5·6·14·14 = 5,880).
        return Outcome(shape=shape, weights=c, biases=c, macs=elements(shape),
                       other_ops=(kh * kw - 1) * elements(shape), windows=(rows, cols),
                       connections=(kh * kw + 1) * elements(shape))

    # split plans
    split_notes = ()
    column_split = not_split_by_channels

    def parameter_shapes(self, inputs: list[Shape], params: Params) -> tuple[Shape, ...]:
        return (inputs[0][0],), (inputs[0][0],)  # a coefficient and a bias per map
