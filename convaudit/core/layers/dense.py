"""Layers that multiply by a weight matrix over whole vectors: linear, LeNet's RBF, attention.
"""

from __future__ import annotations

from convaudit.core.fields import Bool, Field, Int
from convaudit.core.layers.base import (
    BIAS,
    IN_PIN,
    LayerProblem,
    LayerType,
    Outcome,
    Params,
    Shape,
    elements,
    register,
    tokens,
)
from convaudit.core.layers.splitting import ColumnSplit, not_split_by_channels


@register
class Linear(LayerType):
    type_name = "linear"
    prefix = "fc"
    category = "dense"
    plan_role = "columns"
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

    # split plans
    split_notes = ()

    def column_split(self, inputs: list[Shape], params: Params) -> ColumnSplit | None:
        # a flattening linear splits by output features; on the last dimension of tokens it runs whole
        return ColumnSplit(in_pinned="in") if params.get("flatten", True) else None

    def parameter_shapes(self, inputs: list[Shape], params: Params) -> tuple[Shape, ...]:
        # nn.Linear: weight [out, in], bias [out]; `in` as the model is built (a pinned `in:` wins)
        features = params.get("in") or (elements(inputs[0]) if params.get("flatten", True) else inputs[0][-1])
        out = params["out"]
        return ((out, features), (out,)) if params["bias"] else ((out, features),)


@register
class RBF(LayerType):
    type_name = "rbf"
    prefix = "rbf"
    category = "dense"
    plan_role = "columns"
    doc = "Euclidean radial basis units: y_i = Σ_j (x_j − w_ij)², with fixed (non-trainable) centres w"
    has_macs = True
    other_ops_rule = "subtractions: in·out"
    fields = (Field("out", Int(), "number of units", required=True), IN_PIN)

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        features, out = elements(inputs[0]), params["out"]
        # (x_j − w_ij)² accumulated over j: one multiply-accumulate and one subtraction per term.
        return Outcome(shape=(out,), weights=features * out, fixed=True, macs=features * out,
                       other_ops=features * out, in_features=features, connections=features * out)

    # split plans
    split_notes = ()

    def column_split(self, inputs: list[Shape], params: Params) -> ColumnSplit:
        # a row split divides the subtractions x_j − w_ij with the input features j
        return ColumnSplit(other_ops_per_input=True, in_pinned="in")

    def parameter_shapes(self, inputs: list[Shape], params: Params) -> tuple[Shape, ...]:
        return ((params["out"], params.get("in") or elements(inputs[0])),)  # the centres, fixed


@register
class Attention(LayerType):
    type_name = "attention"
    prefix = "attn"
    category = "dense"
    plan_role = "whole"
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

    # split plans
    split_notes = ()
    column_split = not_split_by_channels

    def parameter_shapes(self, inputs: list[Shape], params: Params) -> tuple[Shape, ...]:
        # nn.MultiheadAttention's parameters() order: in_proj_weight [3D, D], in_proj_bias [3D],
        # out_proj.weight [D, D], out_proj.bias [D] (no biases without bias)
        d = inputs[0][-1]
        if params["bias"]:
            return (3 * d, d), (3 * d,), (d, d), (d,)
        return (3 * d, d), (d, d)
