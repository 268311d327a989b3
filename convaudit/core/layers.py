"""Layer formulas, one small class per layer type, in one registry.

Each type declares the YAML fields it takes and computes, from its input
shapes and hyper-parameters alone, its output shape, parameter counts, MACs
and "other ops". Everything is an exact integer; divisions that may not be
whole go through `WindowAxis` as Fractions.

Counting conventions (also in the README):
  MACs      multiply-accumulates of conv, linear, subsample, RBF and attention layers only
  FLOPs     2·MACs
  other ops everything else, each type's rule in `other_ops_rule`
Shapes leave out the batch: [C, H, W] for feature maps, [F] for vectors, [N, D] for N tokens of D features.
Element-wise functions count one op per arithmetic step or elementary function (exp, erf, tanh, sigmoid)
they take per element, as written in their formula.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

from convaudit.core.fields import Bool, Choice, ConnectionTable, Field, FieldKind, Int, Number, Size
from convaudit.core.windows import WindowAxis

Shape = tuple[int, ...]
Params = Mapping[str, Any]


class LayerProblem(Exception):
    """This layer cannot be computed at this input (an error finding: analysis stops here)."""

    def __init__(self, kind: str, message: str, key: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.key = key


@dataclass(frozen=True)
class Outcome:
    """What one layer does to one sample."""

    shape: Shape
    weights: int = 0
    biases: int = 0
    stats: int = 0  # running statistics: non-trainable buffers (batchnorm)
    fixed: bool = False  # weights and biases are set by hand, not trained (LeNet's RBF)
    macs: int = 0
    other_ops: int = 0
    windows: tuple[WindowAxis, ...] = ()  # the H and W divisions of a sliding-window layer
    in_features: int | None = None  # what a fully connected layer receives, flattened
    connections: int = 0  # as the papers count them: multiply-adds plus bias terms
    # Backward MACs where they differ from "weight gradient = input gradient = forward MACs" (attention):
    weight_grad_macs: int | None = None  # for the trainable weights' gradients (None: the forward MACs)
    input_grad_macs: int | None = None  # for the input's gradient (None: the forward MACs)
    inner_grad_macs: int = 0  # gradients of inner products with no weights, needed whenever any gradient flows


REGISTRY: dict[str, LayerType] = {}

# Names people write for our types (PyTorch, Keras, Caffe), offered as "did you mean".
SYNONYMS = {
    "convolution": "conv", "conv2d": "conv", "dense": "linear", "fc": "linear", "innerproduct": "linear",
    "fullyconnected": "linear", "pool": "maxpool", "maxpool2d": "maxpool", "avgpool2d": "avgpool",
    "adaptiveavgpool2d": "adaptiveavgpool", "globalaveragepooling2d": "globalavgpool", "bn": "batchnorm",
    "batchnorm2d": "batchnorm", "batchnormalization": "batchnorm", "localresponsenorm": "lrn",
    "localresponsenormalization": "lrn", "cat": "concat", "sum": "add", "eltwise": "add", "logistic": "sigmoid",
    "hardtanh": "relu6", "multiply": "mul", "layer_norm": "layernorm", "layernorm2d": "layernorm",
    "multiheadattention": "attention", "mha": "attention", "view": "reshape", "transpose": "permute",
    "channelshuffle": "shuffle", "narrow": "slice", "chunk": "slice", "layerscale": "scale",
}


def register(cls: type[LayerType]) -> type[LayerType]:
    REGISTRY[cls.type_name] = cls()
    return cls


def elements(shape: Shape) -> int:
    return math.prod(shape)


def describe_shape(shape: Shape) -> str:
    return "×".join(str(d) for d in shape)


class LayerType:
    """The formulas of one layer type."""

    type_name: ClassVar[str]
    prefix: ClassVar[str]  # default names: conv1, conv2, ...
    doc: ClassVar[str]
    other_ops_rule: ClassVar[str] = "0"
    fields: ClassVar[tuple[Field, ...]] = ()
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int | None] = 1
    has_macs: ClassVar[bool] = False  # counted in MACs (else only in other ops)

    def static_problems(self, params: Params) -> list[tuple[str, str]]:
        """(key, problem) pairs found from the hyper-parameters alone, before any shape is known."""
        return []

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        raise NotImplementedError


def feature_map(shape: Shape, layer: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise LayerProblem("rank", f"{layer} needs a [C, H, W] feature map, got [{', '.join(map(str, shape))}]")
    c, h, w = shape
    return c, h, w


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
BIAS = Field("bias", Bool(), "whether the layer adds a learned bias", default=True)
IN_PIN = Field("in", Int(), "input features the source states; a different flattened input is an error finding")


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


@register
class MaxPool(_Pool):
    type_name = "maxpool"
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


@register
class GlobalAvgPool(LayerType):
    type_name = "globalavgpool"
    prefix = "pool"
    doc = "average over each whole feature map, to [C, 1, 1]"
    other_ops_rule = "H·W per channel: H·W − 1 adds and one divide"

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        c, h, w = feature_map(inputs[0], "globalavgpool")
        return Outcome(shape=(c, 1, 1), other_ops=c * h * w)


@register
class Subsample(LayerType):
    type_name = "subsample"
    prefix = "subsample"
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


@register
class LRN(LayerType):
    type_name = "lrn"
    prefix = "lrn"
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


class _Elementwise(LayerType):
    ops_per_element: ClassVar[int] = 1

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        return Outcome(shape=inputs[0], other_ops=self.ops_per_element * elements(inputs[0]))


@register
class ReLU(_Elementwise):
    type_name = "relu"
    prefix = "relu"
    doc = "max(0, x)"
    other_ops_rule = "1 per element (a comparison)"


@register
class Tanh(_Elementwise):
    type_name = "tanh"
    prefix = "tanh"
    doc = "hyperbolic tangent"
    other_ops_rule = "1 per element"


@register
class ScaledTanh(_Elementwise):
    type_name = "scaledtanh"
    prefix = "tanh"
    doc = "LeNet-5's squashing function: amplitude · tanh(slope · x)"
    other_ops_rule = "3 per element: scale, tanh, scale"
    ops_per_element = 3
    fields = (
        Field("amplitude", Number(exclusive_minimum=True, minimum=0), "A in A·tanh(S·x)", default=Fraction("1.7159")),
        Field("slope", Number(exclusive_minimum=True, minimum=0), "S in A·tanh(S·x)", default=Fraction(2, 3)),
    )


@register
class Sigmoid(_Elementwise):
    type_name = "sigmoid"
    prefix = "sigmoid"
    doc = "logistic sigmoid"
    other_ops_rule = "1 per element"


@register
class Softmax(LayerType):
    type_name = "softmax"
    prefix = "softmax"
    doc = "softmax over the features (over channels at each position of a feature map)"
    other_ops_rule = "3·N − 1 per vector of N: N exps, N − 1 adds, N divides"

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        shape = inputs[0]
        n, positions = shape[0], elements(shape[1:])
        return Outcome(shape=shape, other_ops=(3 * n - 1) * positions)


@register
class Dropout(LayerType):
    type_name = "dropout"
    prefix = "dropout"
    doc = "dropout: identity at inference"
    other_ops_rule = "0 (identity at inference)"
    fields = (Field("p", Number(minimum=0, maximum=1, exclusive_maximum=True), "drop probability",
                    default=Fraction(1, 2)),)

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        return Outcome(shape=inputs[0])


@register
class Flatten(LayerType):
    type_name = "flatten"
    prefix = "flatten"
    doc = "reshape [C, H, W] to [C·H·W]"

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        return Outcome(shape=(elements(inputs[0]),))


@register
class BatchNorm(LayerType):
    type_name = "batchnorm"
    prefix = "bn"
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


@register
class Linear(LayerType):
    type_name = "linear"
    prefix = "fc"
    doc = ("fully connected layer; a feature map input is flattened first, or with flatten: false it maps the "
           "last dimension of any input, as nn.Linear does")
    has_macs = True
    other_ops_rule = "bias adds: out per output vector (0 without bias)"
    fields = (Field("out", Int(), "output features", required=True), BIAS, IN_PIN,
              Field("flatten", Bool(), "flatten the input first (false: apply to the last dimension, like "
                                       "nn.Linear on [N, D] tokens or an [H, W, C] map)", default=True))

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        if not params.get("flatten", True):
            return self.pointwise(inputs[0], params)
        features, out = elements(inputs[0]), params["out"]
        biases = out if params["bias"] else 0
        return Outcome(
            shape=(out,),
            weights=features * out,
            biases=biases,
            macs=features * out,  # in·out
            other_ops=biases,
            in_features=features,
            connections=features * out + biases,
        )

    @staticmethod
    def pointwise(shape: Shape, params: Params) -> Outcome:
        """nn.Linear on the last dimension: each of the elements/in vectors is mapped alone."""
        features, out = shape[-1], params["out"]
        vectors = elements(shape) // features
        bias_terms = vectors * out if params["bias"] else 0
        macs = vectors * features * out  # (elements / in)·in·out
        return Outcome(
            shape=shape[:-1] + (out,),
            weights=features * out,
            biases=out if params["bias"] else 0,
            macs=macs,
            other_ops=bias_terms,
            in_features=features,
            connections=macs + bias_terms,
        )


@register
class RBF(LayerType):
    type_name = "rbf"
    prefix = "rbf"
    doc = "Euclidean radial basis units: y_i = Σ_j (x_j − w_ij)², with fixed (non-trainable) centres w"
    has_macs = True
    other_ops_rule = "subtractions: in·out"
    fields = (Field("out", Int(), "number of units", required=True), IN_PIN)

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        features, out = elements(inputs[0]), params["out"]
        # (x_j − w_ij)² accumulated over j: one multiply-accumulate and one subtraction per term.
        return Outcome(shape=(out,), weights=features * out, fixed=True, macs=features * out,
                       other_ops=features * out, in_features=features, connections=features * out)


@register
class Concat(LayerType):
    type_name = "concat"
    prefix = "concat"
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


@register
class Add(LayerType):
    type_name = "add"
    prefix = "add"
    doc = "element-wise sum of inputs of identical shape (a residual connection)"
    other_ops_rule = "(inputs − 1) adds per element"
    min_inputs = 2
    max_inputs = None

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        if len(set(inputs)) > 1:
            raise LayerProblem("merge", "shapes differ")
        return Outcome(shape=inputs[0], other_ops=(len(inputs) - 1) * elements(inputs[0]))


# ------------------------------------------------------------------ the operators of modern CNNs and ViT

class IntList(FieldKind):
    """A list of integers, each at least `minimum` (a permutation, a target shape)."""

    def __init__(self, minimum: int, description: str):
        self.minimum = minimum
        self.description = description

    def parse(self, value: Any) -> tuple[int, ...]:
        if (not isinstance(value, list) or not value
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= self.minimum for v in value)):
            shown = f"list {value}" if isinstance(value, list) else repr(value)
            raise ValueError(f"expected {self.description}, got {shown}")
        return tuple(value)

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "integer", "minimum": self.minimum}, "minItems": 1}


def tokens(shape: Shape, layer: str) -> tuple[int, int]:
    if len(shape) != 2:
        raise LayerProblem("rank", f"{layer} needs [N, D] tokens, got [{', '.join(map(str, shape))}]"
                                   + (" (a feature map: flatten or reshape and permute it to tokens first)"
                                      if len(shape) == 3 else ""))
    n, d = shape
    return n, d


@register
class GELU(_Elementwise):
    type_name = "gelu"
    prefix = "gelu"
    doc = "Gaussian error linear unit, exact form: x·Φ(x) = x · ½(1 + erf(x/√2)) (nn.GELU)"
    other_ops_rule = "5 per element: scale by 1/√2, erf, add 1, halve, multiply by x"
    ops_per_element = 5


@register
class SiLU(_Elementwise):
    type_name = "silu"
    prefix = "silu"
    doc = "SiLU (Swish): x·sigmoid(x) (nn.SiLU)"
    other_ops_rule = "2 per element: sigmoid, multiply by x"
    ops_per_element = 2


@register
class Swish(SiLU):
    type_name = "swish"
    prefix = "swish"
    doc = "Swish, the same function as silu: x·sigmoid(x) (nn.SiLU)"


@register
class ReLU6(_Elementwise):
    type_name = "relu6"
    prefix = "relu"
    doc = "min(max(0, x), 6) (nn.ReLU6, MobileNet)"
    other_ops_rule = "2 per element: two comparisons"
    ops_per_element = 2


@register
class Hardsigmoid(_Elementwise):
    type_name = "hardsigmoid"
    prefix = "hsigmoid"
    doc = "relu6(x + 3)/6 (nn.Hardsigmoid, MobileNetV3's squeeze-excite gate)"
    other_ops_rule = "4 per element: add 3, two comparisons, divide by 6"
    ops_per_element = 4


@register
class Hardswish(_Elementwise):
    type_name = "hardswish"
    prefix = "hswish"
    doc = "x·relu6(x + 3)/6 (nn.Hardswish, MobileNetV3)"
    other_ops_rule = "5 per element: add 3, two comparisons, divide by 6, multiply by x"
    ops_per_element = 5


def broadcast(inputs: list[Shape]) -> Shape:
    """The shape of an element-wise result: equal ranks (each tensor has its batch dimension first, so torch
    aligns every sample dimension), each dimension equal or 1."""
    if len({len(shape) for shape in inputs}) > 1:
        raise LayerProblem("merge", "ranks differ")
    result = []
    for sizes in zip(*inputs, strict=True):
        wide = {size for size in sizes if size != 1}
        if len(wide) > 1:
            raise LayerProblem("merge", f"sizes {' and '.join(map(str, sorted(wide)))} do not broadcast "
                                        "(each dimension must match or be 1)")
        result.append(wide.pop() if wide else 1)
    return tuple(result)


@register
class Mul(LayerType):
    type_name = "mul"
    prefix = "mul"
    doc = ("element-wise product, broadcasting dimensions of size 1 (the squeeze-excite gate: "
           "[C, H, W] × [C, 1, 1] → [C, H, W])")
    other_ops_rule = "(inputs − 1) multiplies per output element"
    min_inputs = 2
    max_inputs = None

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        shape = broadcast(inputs)
        return Outcome(shape=shape, other_ops=(len(inputs) - 1) * elements(shape))


OVER = ("last", "channels")


def normalised_dim(shape: Shape, over: str) -> int:
    """The size of the dimension a per-channel or per-feature operation runs along."""
    return shape[0] if over == "channels" else shape[-1]


@register
class Scale(LayerType):
    type_name = "scale"
    prefix = "scale"
    doc = ("multiply by a learned vector along one dimension (ConvNeXt's layer scale, a [C, 1, 1] parameter "
           "on a [C, H, W] map)")
    other_ops_rule = "1 multiply per element"
    fields = (Field("over", Choice(*reversed(OVER)), "the dimension scaled: channels (C of [C, H, W], the first) "
                                                     "or last (D of [N, D] tokens, C of an [H, W, C] map)",
                    default="channels"),)

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        shape = inputs[0]
        return Outcome(shape=shape, weights=normalised_dim(shape, params["over"]), other_ops=elements(shape))


@register
class LayerNorm(LayerType):
    type_name = "layernorm"
    prefix = "ln"
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


@register
class Slice(LayerType):
    type_name = "slice"
    prefix = "slice"
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


@register
class Shuffle(LayerType):
    type_name = "shuffle"
    prefix = "shuffle"
    doc = ("channel shuffle (ShuffleNet): view C as [groups, C/groups], transpose, flatten; counted as a view "
           "(data movement only, no arithmetic)")
    fields = (Field("groups", Int(), "groups the channels are interleaved from", required=True),)

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        shape, groups = inputs[0], params["groups"]
        if shape[0] % groups:
            raise LayerProblem("groups", f"channels {shape[0]} are not divisible by groups {groups}", "groups")
        return Outcome(shape=shape)


@register
class Permute(LayerType):
    type_name = "permute"
    prefix = "permute"
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


@register
class Reshape(LayerType):
    type_name = "reshape"
    prefix = "reshape"
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


@register
class ClassToken(LayerType):
    type_name = "classtoken"
    prefix = "cls"
    doc = "prepend a learned token to [N, D] tokens, giving [N + 1, D] (ViT's class token)"

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        n, d = tokens(inputs[0], "classtoken")
        return Outcome(shape=(n + 1, d), weights=d)


@register
class PosEmbedding(LayerType):
    type_name = "posembedding"
    prefix = "pos"
    doc = "add a learned position embedding of the input's shape (ViT: [N, D])"
    other_ops_rule = "1 add per element"

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        return Outcome(shape=inputs[0], weights=elements(inputs[0]), other_ops=elements(inputs[0]))


@register
class Attention(LayerType):
    type_name = "attention"
    prefix = "attn"
    doc = ("multi-head self-attention over [N, D] tokens, as nn.MultiheadAttention(D, heads, batch_first=True) "
           "with query = key = value")
    has_macs = True
    other_ops_rule = ("N·D to scale Q by 1/√(D/heads) (as PyTorch does, before Q·Kᵀ); softmax over keys, 3·N − 1 "
                      "per query per head; bias adds 4·N·D (0 without bias)")
    fields = (
        Field("heads", Int(), "attention heads; must divide D", required=True),
        BIAS,
    )

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        n, d = tokens(inputs[0], "attention")
        heads = params["heads"]
        if d % heads:
            raise LayerProblem("heads", f"{heads} heads do not divide D = {d}", "heads")
        projections = 4 * n * d * d  # Q, K, V in-projections 3·N·D·D, out-projection N·D·D
        products = 2 * n * n * d  # Q·Kᵀ and A·V: heads · N·N·(D/heads) each
        bias_terms = 4 * n * d if params["bias"] else 0
        return Outcome(
            shape=(n, d),
            weights=4 * d * d,
            biases=4 * d if params["bias"] else 0,
            macs=projections + products,
            other_ops=n * d + heads * n * (3 * n - 1) + bias_terms,
            in_features=d,
            connections=projections + products + bias_terms,
            # Backward: dW of the four projections; dx of the in-projection; and whenever any gradient flows,
            # dx of the out-projection N·D·D plus two gradient products of N·N·D for each of Q·Kᵀ and A·V.
            weight_grad_macs=projections,
            input_grad_macs=3 * n * d * d,
            inner_grad_macs=n * d * d + 2 * products,
        )


@register
class Select(LayerType):
    type_name = "select"
    prefix = "select"
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
