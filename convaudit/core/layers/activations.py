"""Element-wise activations, softmax and dropout.

Element-wise functions count one op per arithmetic step or elementary function (exp, erf, tanh, sigmoid) they
take per element, as written in their formula.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar

from convaudit.core.fields import Field, Int, Number
from convaudit.core.layers.base import (
    FOLLOWS_INPUT,
    Autocast,
    KeepsStrides,
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
    SavesOutput,
    Saving,
    Shape,
    TorchModule,
    elements,
    full_dim,
    register,
)
from convaudit.core.layers.splitting import no_parameters, not_split_by_channels
from convaudit.core.strides import Strided

if TYPE_CHECKING:
    from convaudit.core.analysis import LayerResult
    from convaudit.core.model import LayerSpec

MASK_BYTES = 1  # dropout's bool mask on CUDA (fused native_dropout); the CPU keeps it at the activation dtype


class _Elementwise(KeepsStrides, Parameterless, LayerType):
    """A function applied to each element alone: it keeps the shape, reads one position, saves its input or its
    output (each type says which)."""

    ops_per_element: ClassVar[int] = 1
    autocast = FOLLOWS_INPUT
    receptive = "pointwise"
    size_rule = "pointwise"

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        return Outcome(shape=inputs[0], other_ops=self.ops_per_element * elements(inputs[0]))

    # split plans (every element-wise function: no parameters; follows or runs whole, as its plan_role says)
    split_notes = ()
    column_split = not_split_by_channels
    parameter_shapes = no_parameters


@register
class ReLU(TorchModule, SavesOutput, _Elementwise):
    type_name = "relu"
    batch_rule = "any"
    prefix = "relu"
    category = "act"
    plan_role = "follow"
    references = References()
    torch_module = "nn.ReLU"
    doc = "max(0, x)"
    other_ops_rule = "1 per element (a comparison)"


@register
class Tanh(TorchModule, SavesOutput, _Elementwise):
    type_name = "tanh"
    batch_rule = "any"
    prefix = "tanh"
    category = "act"
    plan_role = "follow"
    references = References()
    torch_module = "nn.Tanh"
    doc = "hyperbolic tangent"
    other_ops_rule = "1 per element"


@register
class ScaledTanh(_Elementwise):
    type_name = "scaledtanh"
    batch_rule = "any"
    prefix = "tanh"
    category = "act"
    plan_role = "follow"
    references = References()
    doc = "LeNet-5's squashing function: amplitude · tanh(slope · x)"
    other_ops_rule = "3 per element: scale, tanh, scale"
    ops_per_element = 3
    fields = (
        Field("amplitude", Number(exclusive_minimum=True, minimum=0), "A in A·tanh(S·x)", default=Fraction("1.7159")),
        Field("slope", Number(exclusive_minimum=True, minimum=0), "S in A·tanh(S·x)", default=Fraction(2, 3)),
    )

    def saved(self, layer: LayerResult, saving: Saving) -> list[Saved]:
        return [saving.extra("tanh", layer.activations)]  # A·tanh(S·x): tanh keeps its own result, before the A

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        return lib.ScaledTanh(layer.params["amplitude"], layer.params["slope"])


@register
class Sigmoid(TorchModule, SavesOutput, _Elementwise):
    type_name = "sigmoid"
    batch_rule = "any"
    prefix = "sigmoid"
    category = "act"
    plan_role = "follow"
    references = References()
    torch_module = "nn.Sigmoid"
    doc = "logistic sigmoid"
    other_ops_rule = "1 per element"


@register
class GELU(TorchModule, SavesInput, _Elementwise):
    type_name = "gelu"
    batch_rule = "any"
    prefix = "gelu"
    category = "act"
    plan_role = "whole"
    references = References(elementwise_gaps=True)
    torch_module = "nn.GELU"
    doc = "Gaussian error linear unit, exact form: x·Φ(x) = x · ½(1 + erf(x/√2)) (nn.GELU)"
    other_ops_rule = "5 per element: scale by 1/√2, erf, add 1, halve, multiply by x"
    ops_per_element = 5


@register
class SiLU(TorchModule, SavesInput, _Elementwise):
    type_name = "silu"
    batch_rule = "any"
    prefix = "silu"
    category = "act"
    plan_role = "whole"
    references = References(elementwise_gaps=True)
    torch_module = "nn.SiLU"
    doc = "SiLU (Swish): x·sigmoid(x) (nn.SiLU)"
    other_ops_rule = "2 per element: sigmoid, multiply by x"
    ops_per_element = 2


@register
class Swish(SiLU):
    type_name = "swish"
    batch_rule = "any"
    prefix = "swish"
    category = "act"
    plan_role = "whole"
    references = References(elementwise_gaps=True)
    torch_module = "nn.SiLU"
    doc = "Swish, the same function as silu: x·sigmoid(x) (nn.SiLU)"


@register
class ReLU6(TorchModule, SavesInput, _Elementwise):
    type_name = "relu6"
    batch_rule = "any"
    prefix = "relu"
    category = "act"
    plan_role = "whole"
    references = References(elementwise_gaps=True)
    torch_module = "nn.ReLU6"
    doc = "min(max(0, x), 6) (nn.ReLU6, MobileNet)"
    other_ops_rule = "2 per element: two comparisons"
    ops_per_element = 2


@register
class Hardsigmoid(TorchModule, SavesInput, _Elementwise):
    type_name = "hardsigmoid"
    batch_rule = "any"
    prefix = "hsigmoid"
    category = "act"
    plan_role = "whole"
    references = References(elementwise_gaps=True)
    torch_module = "nn.Hardsigmoid"
    doc = "relu6(x + 3)/6 (nn.Hardsigmoid, MobileNetV3's squeeze-excite gate)"
    other_ops_rule = "4 per element: add 3, two comparisons, divide by 6"
    ops_per_element = 4


@register
class Hardswish(TorchModule, SavesInput, _Elementwise):
    type_name = "hardswish"
    batch_rule = "any"
    prefix = "hswish"
    category = "act"
    plan_role = "whole"
    references = References(elementwise_gaps=True)
    torch_module = "nn.Hardswish"
    doc = "x·relu6(x + 3)/6 (nn.Hardswish, MobileNetV3)"
    other_ops_rule = "5 per element: add 3, two comparisons, divide by 6, multiply by x"
    ops_per_element = 5


@register
class Softmax(SavesOutput, NewStorage, Parameterless, LayerType):
    type_name = "softmax"
    autocast = Autocast(cuda=Autocast(output="fp32", extras="fp32"))  # CUDA's fp32 list: softmax in fp32
    batch_rule = "any"
    prefix = "softmax"
    category = "act"
    plan_role = "whole-free"
    size_rule = "pointwise"
    references = References()
    doc = ("softmax along a sample dimension: the features, or the channels at each position of a feature map (dim 0, "
           "the default); attention's scores along their last dimension")
    other_ops_rule = "3·N − 1 per vector of N: N exps, N − 1 adds, N divides"
    fields = (Field("dim", Int(0), "the sample dimension normalised (batch excluded; 0: features or channels)",
                    default=0),)

    def receptive(self, params: Params) -> str:
        return "mix-first" if params["dim"] == 0 else "opaque"

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        shape, dim = inputs[0], params["dim"]
        if dim >= len(shape):
            raise LayerProblem("rank", f"dim {dim} is past the input's {len(shape)} sample dimensions", "dim")
        n = shape[dim]
        return Outcome(shape=shape, other_ops=(3 * n - 1) * (elements(shape) // n))

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        return lib.nn.Softmax(dim=full_dim(layer.params["dim"], placements[0]))

    # split plans
    split_notes = ()
    column_split = not_split_by_channels
    parameter_shapes = no_parameters


@register
class Dropout(Parameterless, LayerType):
    type_name = "dropout"
    autocast = FOLLOWS_INPUT
    batch_rule = "any"
    prefix = "dropout"
    category = "other"
    plan_role = "follow"
    receptive = "pointwise"
    size_rule = "pointwise"
    references = References()
    doc = "dropout: identity at inference"
    other_ops_rule = "0 (identity at inference)"
    fields = (Field("p", Number(minimum=0, maximum=1, exclusive_maximum=True), "drop probability",
                    default=Fraction(1, 2)),)

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        return Outcome(shape=inputs[0])

    def saved(self, layer: LayerResult, saving: Saving) -> list[Saved]:
        if layer.spec.params["p"] == 0:
            return []  # the input passed through: nothing recorded
        return [saving.extra("mask", layer.activations, MASK_BYTES if saving.cuda else None)]

    def storage(self, layer: LayerResult, inputs: list[Strided]) -> Strided:
        if layer.spec.params["p"] == 0:
            return inputs[0]  # aten's dropout returns its input tensor itself
        return KeepsStrides.storage(self, layer, inputs)

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        return lib.nn.Dropout(float(layer.params["p"]))
    # split plans
    split_notes = ()
    column_split = not_split_by_channels
    parameter_shapes = no_parameters
