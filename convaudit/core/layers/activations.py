"""Element-wise activations, softmax and dropout.

Element-wise functions count one op per arithmetic step or elementary function (exp, erf, tanh, sigmoid) they
take per element, as written in their formula.
"""

from __future__ import annotations

from fractions import Fraction
from typing import ClassVar

from convaudit.core.fields import Field, Number
from convaudit.core.layers.base import LayerType, Outcome, Params, Shape, elements, register
from convaudit.core.layers.splitting import no_parameters, not_split_by_channels


class _Elementwise(LayerType):
    ops_per_element: ClassVar[int] = 1

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        return Outcome(shape=inputs[0], other_ops=self.ops_per_element * elements(inputs[0]))

    # split plans (every element-wise function: no parameters; follows or runs whole, as its plan_role says)
    split_notes = ()
    column_split = not_split_by_channels
    parameter_shapes = no_parameters


@register
class ReLU(_Elementwise):
    type_name = "relu"
    prefix = "relu"
    category = "act"
    plan_role = "follow"
    doc = "max(0, x)"
    other_ops_rule = "1 per element (a comparison)"


@register
class Tanh(_Elementwise):
    type_name = "tanh"
    prefix = "tanh"
    category = "act"
    plan_role = "follow"
    doc = "hyperbolic tangent"
    other_ops_rule = "1 per element"


@register
class ScaledTanh(_Elementwise):
    type_name = "scaledtanh"
    prefix = "tanh"
    category = "act"
    plan_role = "follow"
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
    category = "act"
    plan_role = "follow"
    doc = "logistic sigmoid"
    other_ops_rule = "1 per element"


@register
class GELU(_Elementwise):
    type_name = "gelu"
    prefix = "gelu"
    category = "act"
    plan_role = "whole"
    doc = "Gaussian error linear unit, exact form: x·Φ(x) = x · ½(1 + erf(x/√2)) (nn.GELU)"
    other_ops_rule = "5 per element: scale by 1/√2, erf, add 1, halve, multiply by x"
    ops_per_element = 5


@register
class SiLU(_Elementwise):
    type_name = "silu"
    prefix = "silu"
    category = "act"
    plan_role = "whole"
    doc = "SiLU (Swish): x·sigmoid(x) (nn.SiLU)"
    other_ops_rule = "2 per element: sigmoid, multiply by x"
    ops_per_element = 2


@register
class Swish(SiLU):
    type_name = "swish"
    prefix = "swish"
    category = "act"
    plan_role = "whole"
    doc = "Swish, the same function as silu: x·sigmoid(x) (nn.SiLU)"


@register
class ReLU6(_Elementwise):
    type_name = "relu6"
    prefix = "relu"
    category = "act"
    plan_role = "whole"
    doc = "min(max(0, x), 6) (nn.ReLU6, MobileNet)"
    other_ops_rule = "2 per element: two comparisons"
    ops_per_element = 2


@register
class Hardsigmoid(_Elementwise):
    type_name = "hardsigmoid"
    prefix = "hsigmoid"
    category = "act"
    plan_role = "whole"
    doc = "relu6(x + 3)/6 (nn.Hardsigmoid, MobileNetV3's squeeze-excite gate)"
    other_ops_rule = "4 per element: add 3, two comparisons, divide by 6"
    ops_per_element = 4


@register
class Hardswish(_Elementwise):
    type_name = "hardswish"
    prefix = "hswish"
    category = "act"
    plan_role = "whole"
    doc = "x·relu6(x + 3)/6 (nn.Hardswish, MobileNetV3)"
    other_ops_rule = "5 per element: add 3, two comparisons, divide by 6, multiply by x"
    ops_per_element = 5


@register
class Softmax(LayerType):
    type_name = "softmax"
    prefix = "softmax"
    category = "act"
    plan_role = "whole-free"
    doc = "softmax over the features (over channels at each position of a feature map)"
    other_ops_rule = "3·N − 1 per vector of N: N exps, N − 1 adds, N divides"

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        shape = inputs[0]
        n, positions = shape[0], elements(shape[1:])
        return Outcome(shape=shape, other_ops=(3 * n - 1) * positions)

    # split plans
    split_notes = ()
    column_split = not_split_by_channels
    parameter_shapes = no_parameters


@register
class Dropout(LayerType):
    type_name = "dropout"
    prefix = "dropout"
    category = "other"
    plan_role = "follow"
    doc = "dropout: identity at inference"
    other_ops_rule = "0 (identity at inference)"
    fields = (Field("p", Number(minimum=0, maximum=1, exclusive_maximum=True), "drop probability",
                    default=Fraction(1, 2)),)

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        return Outcome(shape=inputs[0])

    # split plans
    split_notes = ()
    column_split = not_split_by_channels
    parameter_shapes = no_parameters
