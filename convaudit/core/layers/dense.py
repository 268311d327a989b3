"""Layers that multiply by a weight matrix over whole vectors: linear, LeNet's RBF, attention."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from convaudit.core.fields import Bool, Field, Int
from convaudit.core.layers.base import (
    BIAS,
    IN_PIN,
    LOWER_PRECISION,
    Autocast,
    Explained,
    LayerProblem,
    LayerType,
    NewStorage,
    Outcome,
    Params,
    Placement,
    References,
    Saved,
    Saving,
    Shape,
    elements,
    register,
    tokens,
)
from convaudit.core.strides import Strided, view_strides

if TYPE_CHECKING:
    from convaudit.core.analysis import LayerResult
    from convaudit.core.model import LayerSpec
from convaudit.core.layers.splitting import ColumnSplit, not_split_by_channels


@register
class Linear(NewStorage, LayerType):
    type_name = "linear"
    autocast = LOWER_PRECISION
    prefix = "fc"
    category = "dense"
    plan_role = "columns"
    size_rule = "vector"
    references = References("macs", flop_counter=True)
    doc = ("fully connected layer; a feature map input is flattened first, or with flatten: false it maps the "
           "last dimension of any input, as nn.Linear does")
    has_macs = True
    other_ops_rule = "bias adds: out per output vector (0 without bias)"
    fields = (Field("out", Int(), "output features", required=True), BIAS, IN_PIN,
              Field("flatten", Bool(), "flatten the input first (false: apply to the last dimension, like "
                                       "nn.Linear on [N, D] tokens or an [H, W, C] map)", default=True))

    def batch_rule(self, params: Params) -> str:
        return "leading" if params.get("flatten", True) else "any"  # flatten: false maps the last dimension alone

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

    def receptive(self, params: Params) -> str:
        return "flatten" if params.get("flatten", True) else "mix-last"

    def saved(self, layer: LayerResult, saving: Saving) -> list[Saved]:
        """The input, or the copy it multiplies where it cannot be viewed as a matrix."""
        source = saving.storage(layer.spec.inputs[0])
        if layer.spec.params.get("flatten", True):
            matrix = (layer.batch, elements(layer.input_shapes[0]))
        else:
            matrix = (elements(source.shape) // source.shape[-1], source.shape[-1])
        if len(source.shape) > 2 and view_strides(source.shape, source.strides, matrix) is None:
            return [saving.extra("matrix", elements(layer.input_shapes[0]) * saving.batch)]
        return saving.inputs()[:1]

    def explain(self, layer: LayerResult) -> Explained:
        features, macs = layer.outcome.in_features, layer.macs // layer.batch
        weights = f"{features:,}·{layer.spec.params['out']} = {layer.weights:,} weights"
        if layer.spec.params.get("flatten", True):
            bias = f" + {layer.biases:,} biases" if layer.biases else ""
            return Explained(weights, f"{features:,}·{layer.output_shape[0]} = {macs:,}",
                             f"{features:,}·{layer.output_shape[0]}{bias} = {layer.connections:,}")
        shape, out = layer.input_shapes[0], layer.output_shape[-1]
        vectors = elements(shape) // features
        positions = f"{vectors:,} positions ({'·'.join(map(str, shape))} / {features})"
        bias = f" + {vectors:,}·{out} bias terms" if layer.biases else ""
        return Explained(weights, f"{positions} × {features:,}·{out} = {macs:,}",
                         f"{positions} × {features:,}·{out}{bias} = {layer.connections:,}")

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        p = layer.params
        if not p.get("flatten", True):  # nn.Linear itself: the last dimension
            return lib.nn.Linear(p.get("in") or inputs[0][-1], p["out"], bias=p["bias"])
        # a pinned `in:` is what the model is built with
        return lib.FlattenLinear(p.get("in") or elements(inputs[0]), p["out"], bias=p["bias"])
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
class RBF(NewStorage, LayerType):
    type_name = "rbf"
    autocast = Autocast(output="fp32", extras="fp32")  # x − w: the fp32 centres promote
    batch_rule = "leading"
    prefix = "rbf"
    category = "dense"
    plan_role = "columns"
    receptive = "flatten"
    size_rule = "vector"
    references = References()
    forward_copies = 2  # x − W and its square, B × out × in each
    doc = "Euclidean radial basis units: y_i = Σ_j (x_j − w_ij)², with fixed (non-trainable) centres w"
    has_macs = True
    other_ops_rule = "subtractions: in·out"
    fields = (Field("out", Int(), "number of units", required=True), IN_PIN)

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        features, out = elements(inputs[0]), params["out"]
        # (x_j − w_ij)² accumulated over j: one multiply-accumulate and one subtraction per term.
        return Outcome(shape=(out,), weights=features * out, fixed=True, macs=features * out,
                       other_ops=features * out, in_features=features, connections=features * out)

    def saved(self, layer: LayerResult, saving: Saving) -> list[Saved]:
        return [saving.extra("differences", layer.outcome.in_features * layer.output_shape[0] * saving.batch)]

    def explain(self, layer: LayerResult) -> Explained:
        features, out = layer.outcome.in_features, layer.output_shape[0]
        return Explained(f"{features:,}·{layer.spec.params['out']} = {layer.weights:,} weights",
                         f"{features:,}·{out} = {layer.macs // layer.batch:,}",
                         f"{features:,}·{out} = {layer.connections:,}")

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        return lib.RBF(layer.params.get("in") or elements(inputs[0]), layer.params["out"])
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
    autocast = LOWER_PRECISION
    batch_rule = "leading"
    prefix = "attn"
    category = "dense"
    plan_role = "whole"
    receptive = "mix-all"
    size_rule = "none"
    references = References("macs", elementwise_gaps=True, flop_counter=True)
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

    def saved(self, layer: LayerResult, saving: Saving) -> list[Saved]:
        """The input (copied where [N, B, D] cannot be viewed as an (N·B) × D matrix: any batch above one), the
        packed Q, K, V, the scaled Q, the heads × N × N attention weights and the joined heads."""
        (n, d), heads, batch = layer.input_shapes[0], layer.spec.params["heads"], saving.batch
        source = saving.storage(layer.spec.inputs[0])
        transposed = ((n, batch, d), (source.strides[1], source.strides[0], source.strides[2]))
        inputs = saving.inputs()
        if view_strides(*transposed, (n * batch, d)) is None:
            inputs = [saving.extra("input", n * d * batch)]
        return inputs[:1] + [saving.extra("qkv", 3 * n * d * batch), saving.extra("q", n * d * batch),
                             saving.extra("weights", heads * n * n * batch), saving.extra("context", n * d * batch)]

    def storage(self, layer: LayerResult, inputs: list[Strided]) -> Strided:
        n, d = layer.output_shape  # batch_first: computed as [N, B, D] and transposed back
        return Strided((layer.batch, n, d), (d, layer.batch * d, 1), layer.name)

    def explain(self, layer: LayerResult) -> Explained:
        n, d = layer.output_shape
        macs = layer.macs // layer.batch
        bias = f" + 4·{n}·{d} bias terms" if layer.biases else ""
        return Explained(f"4·{d}² = {layer.weights:,} weights (Q, K, V and output projections)",
                         f"projections 4·{n}·{d}² = {4 * n * d * d:,} + Q·Kᵀ and A·V 2·{n}²·{d} = {2 * n * n * d:,} "
                         f"= {macs:,}",
                         f"{macs:,} multiply-adds{bias} = {layer.connections:,}")

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        return lib.SelfAttention(inputs[0][-1], layer.params["heads"], layer.params["bias"])
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
