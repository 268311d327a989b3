"""Tensor operators: what a model written in ordinary tensor code does between its modules, counted by one formula
per operator family, as torch/utils/flop_counter.py counts them. The importer maps every ATen operator it can read
into a readable layer type where the pattern is clean (conv, linear, norms, pools) and into one of these otherwise.

    matmul     torch.matmul on any ranks (mm, bmm, an einsum that contracts one index): MACs = the broadcast batch
               dimensions · n · k · m
    sdpa       scaled dot-product attention: MACs = the batch dimensions · (L·S·E for Q·Kᵀ + L·S·Ev for A·V)
    pointwise  an element-wise operator (torch.Tag.pointwise): `ops` other ops per output element, inputs broadcast
    reduce     a reduction over sample dimensions: `ops` other ops per input element
    groupnorm, rmsnorm  the normalisations that have no module type of their own here
    gather     indexing whose positions come from a tensor: no arithmetic; its output shape is the traced one
    uncounted  an operator convaudit cannot count, kept only with --partial: named in every total, never zero

Dimensions in these layers are sample dimensions (the batch left out, its place in `Placement`), as everywhere.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from convaudit.core.fields import Bool, Choice, Field, Int, Text
from convaudit.core.layers.base import (
    FOLLOWS_INPUT,
    FP32_LIST,
    LOWER_PRECISION,
    Autocast,
    Explained,
    IntList,
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
    SavesNothing,
    Saving,
    Shape,
    Tensor,
    describe_shape,
    elements,
    full_dim,
    full_shape,
    register,
)
from convaudit.core.layers.batch import BATCH, broadcast_tensors, from_symbolic, symbolic, without
from convaudit.core.layers.splitting import not_split_by_channels
from convaudit.core.strides import Strided, contiguous

if TYPE_CHECKING:
    from convaudit.core.analysis import LayerResult
    from convaudit.core.model import LayerSpec

WEIGHT = Field("weight", IntList(1, "the parameter operand's shape, such as [768, 3072]"),
               "the shape of a parameter operand (its elements are the layer's weights), as the model holds it")
NUMEL = Field("numel", Int(0), "the parameter's own elements where the operand is made from fewer (a relative "
                               "position bias indexed from its table, a token expanded)")
BUFFERS = Field("buffers", Int(0), "buffer elements (not trained) the operand is made from (rotary sin and cos "
                                   "tables)", default=0)
SAVES = Field("saves", Choice("inputs", "output", "nothing"), "what autograd keeps for backward: the activation "
                                                               "inputs, the output, or nothing", default="inputs")


def _per_sample(size: Any) -> int:
    """A symbolic size for one sample: the batch counts 1, a folded B·n counts n."""
    if size == BATCH:
        return 1
    return size[1] if isinstance(size, tuple) else size


def _operands(inputs: list[Tensor], params: Params) -> list[Tensor]:
    """The activation inputs, with the parameter operand (no batch) where `weight` gives one."""
    if params.get("weight") is None:
        return list(inputs)
    weight = Tensor(tuple(params["weight"]), Placement(None))
    return [weight, *inputs] if params.get("weight_first") else [*inputs, weight]


def _weight_numel(params: Params) -> int:
    """The parameter elements of the operand: `numel` where given, else its shape's (none for a buffer alone)."""
    if params.get("weight") is None:
        return 0
    if params.get("numel") is not None:
        return params["numel"]
    return 0 if params.get("buffers") else math.prod(params["weight"])


class _Operator(Parameterless, LayerType):
    """A tensor operator: it places the batch itself and reads positions this model does not follow."""

    category = "other"
    plan_role = "whole"
    receptive = "opaque"
    size_rule = "none"
    batch_rule = "own"
    autocast = FOLLOWS_INPUT


@register
class SDPA(NewStorage, _Operator):
    receptive = "attention"
    type_name = "sdpa"
    autocast = LOWER_PRECISION
    split_notes = ()
    column_split = not_split_by_channels
    prefix = "sdpa"
    category = "dense"
    references = References(flop_counter=True)  # fvcore cannot count the fused kernel
    doc = ("scaled dot-product attention (F.scaled_dot_product_attention): softmax(Q·Kᵀ/√E + mask)·V from Q [..., L, "
           "E], K [..., S, E], V [..., S, Ev], an optional additive mask as a fourth input")
    has_macs = True
    other_ops_rule = ("per row of the batch dimensions: L·E to scale Q, L·(3·S − 1) for the softmax, L·S to add a "
                      "mask (given, or causal)")
    convention = ("SDPA: MACs = the batch dimensions · (L·S·E + L·S·Ev), Q·Kᵀ and A·V as torch's FlopCounterMode "
                  "counts them; scaling, softmax and masking are other ops.")
    min_inputs = 3
    max_inputs = 4
    fields = (Field("causal", Bool(), "a causal mask (is_causal=True)", default=False),)

    def apply_tensors(self, inputs: list[Tensor], params: Params) -> Outcome:
        q, k, v = inputs[:3]
        if min(len(q.shape), len(k.shape), len(v.shape)) < 2 or q.shape[-1] != k.shape[-1] \
                or k.shape[-2] != v.shape[-2]:
            shown = ", ".join(describe_shape(t.shape) for t in (q, k, v))
            raise LayerProblem("merge", f"sdpa needs Q [..., L, E], K [..., S, E], V [..., S, Ev]: got {shown}")
        lead = broadcast_tensors([replace(t, shape=t.shape[:-2]) for t in (q, k, v)])
        (length, e), (source, ev) = q.shape[-2:], v.shape[-2:]
        rows = elements(lead.shape)
        macs = rows * length * source * (e + ev)
        masked = len(inputs) > 3 or params["causal"]
        other = rows * (length * e + length * (3 * source - 1) + (length * source if masked else 0))
        out = from_symbolic(symbolic(lead) + [length, ev])
        return Outcome(shape=out.shape, macs=macs, other_ops=other, connections=macs, placement=out.placement,
                       in_features=e, inner_grad_macs=2 * macs, input_grad_macs=0, weight_grad_macs=0)

    def saved(self, layer: LayerResult, saving: Saving) -> list[Saved]:
        # the CPU flash kernel keeps Q, K, V, its output and the log-sum-exp of every row (fp32)
        rows = elements(layer.output_shape[:-1])
        return saving.inputs()[:3] + saving.output() + [saving.extra("logsumexp", rows * saving.batch, 4)]

    def explain(self, layer: LayerResult) -> Explained:
        macs = layer.macs // layer.batch
        return Explained(None, f"Q·Kᵀ and A·V over {describe_shape(layer.output_shape)} = {macs:,}",
                         f"{macs:,} multiply-adds = {layer.connections:,}")

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        return lib.SDPA(layer.params["causal"])


@register
class Pointwise(KeepsStrides, _Operator):
    type_name = "pointwise"

    def autocast(self, layer: LayerResult) -> Autocast:
        return Autocast(output="fp32") if layer.spec.params.get("weight") is not None else FOLLOWS_INPUT
    split_notes = ()
    column_split = not_split_by_channels
    prefix = "op"
    receptive = "pointwise"
    references = References(elementwise_gaps=True)
    doc = ("an element-wise operator (torch.Tag.pointwise: div, sub, neg, pow, rsqrt, addcmul …) over broadcast "
           "inputs and an optional parameter operand")
    other_ops_rule = "`ops` per output element (its arithmetic steps: div 1, addcmul 2 …)"
    max_inputs = None
    fields = (Field("op", Text(), "the ATen operator, for the reader", required=True),
              Field("ops", Int(0), "other ops per output element", default=1), WEIGHT, NUMEL, BUFFERS,
              Field("weight_first", Bool(), "the parameter is the first operand", default=False), SAVES)

    def apply_tensors(self, inputs: list[Tensor], params: Params) -> Outcome:
        result = broadcast_tensors(_operands(inputs, params))
        return Outcome(shape=result.shape, weights=_weight_numel(params), stats=params["buffers"],
                       other_ops=params["ops"] * elements(result.shape), placement=result.placement)

    def saved(self, layer: LayerResult, saving: Saving) -> list[Saved]:
        what = layer.spec.params["saves"]
        return saving.inputs() if what == "inputs" else saving.output() if what == "output" else []

    def explain(self, layer: LayerResult) -> Explained:
        return Explained(f"{layer.weights:,} weights" if layer.weights else None)

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        p = layer.params
        return lib.Pointwise(p["op"], p.get("weight"), p["weight_first"], p.get("numel"), p.get("buffers") or 0)


@register
class Reduce(NewStorage, _Operator):
    type_name = "reduce"
    split_notes = ()
    column_split = not_split_by_channels
    prefix = "reduce"
    references = References(elementwise_gaps=True)
    doc = "a reduction (sum, mean, amax, var, norm …) over sample dimensions, keeping them as 1 or dropping them"
    other_ops_rule = "`ops` per input element read (sum and mean 1, var 3)"
    fields = (Field("op", Text(), "the ATen operator, for the reader", required=True),
              Field("dims", IntList(0, "sample dimensions such as [1, 2]"), "the sample dimensions reduced",
                    required=True),
              Field("keepdim", Bool(), "keep each reduced dimension as size 1", default=False),
              Field("ops", Int(0), "other ops per input element", default=1),
              Field("saves", Choice("inputs", "output", "nothing"), "what autograd keeps for backward",
                    default="nothing"))

    def apply_tensors(self, inputs: list[Tensor], params: Params) -> Outcome:
        tensor, dims = inputs[0], set(params["dims"])
        if any(dim >= len(tensor.shape) for dim in dims):
            raise LayerProblem("rank", f"dims {sorted(dims)} reach past the input's {len(tensor.shape)} sample "
                                       "dimensions", "dims")
        if params["keepdim"]:
            shape = tuple(1 if i in dims else size for i, size in enumerate(tensor.shape))
            placement = tensor.placement
            if placement.folded and placement.dim in dims:
                raise LayerProblem("batch", "the reduction runs over the batch folded into its dimension")
        else:
            shape = tuple(size for i, size in enumerate(tensor.shape) if i not in dims)
            placement = without(tensor, dims)
        return Outcome(shape=shape, other_ops=params["ops"] * elements(tensor.shape), placement=placement)

    def saved(self, layer: LayerResult, saving: Saving) -> list[Saved]:
        what = layer.spec.params["saves"]
        return saving.inputs()[:1] if what == "inputs" else saving.output() if what == "output" else []

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        dims = tuple(full_dim(d, placements[0]) for d in layer.params["dims"])
        return lib.Reduce(layer.params["op"], dims, layer.params["keepdim"])


class _Norm(LayerType):
    category = "norm"
    autocast = Autocast(extras="fp32", cuda=FP32_LIST)  # group_norm is on CUDA's fp32 list
    plan_role = "whole"
    receptive = "opaque"
    size_rule = "pointwise"
    references = References(elementwise_gaps=True)

    def explain(self, layer: LayerResult) -> Explained:
        return Explained(f"{layer.weights:,} scales" if layer.weights else None)


@register
class GroupNorm(NewStorage, _Norm):
    type_name = "groupnorm"
    split_notes = ()
    column_split = not_split_by_channels
    prefix = "gn"
    batch_rule = "leading"
    doc = ("group normalisation (nn.GroupNorm): channels in `groups` groups, each normalised over its channels and "
           "positions")
    other_ops_rule = "per group of N elements 4·N + 2, plus 2 per element with affine (layernorm's rule)"
    fields = (Field("groups", Int(), "channel groups", required=True),
              Field("affine", Bool(), "a learned scale and shift per channel", default=True))

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        shape, groups = inputs[0], params["groups"]
        if shape[0] % groups:
            raise LayerProblem("groups", f"channels {shape[0]} are not divisible by groups {groups}", "groups")
        size = elements(shape) // groups
        affine = params["affine"]
        return Outcome(shape=shape, weights=shape[0] if affine else 0, biases=shape[0] if affine else 0,
                       other_ops=groups * (4 * size + 2) + (2 * elements(shape) if affine else 0))

    def saved(self, layer: LayerResult, saving: Saving) -> list[Saved]:
        groups = layer.spec.params["groups"]  # the input, and a mean and 1/std per (sample, group)
        return saving.inputs()[:1] + [saving.extra("stats", 2 * groups * saving.batch)]

    def parameter_shapes(self, inputs: list[Shape], params: Params) -> tuple[Shape, ...]:
        return ((inputs[0][0],), (inputs[0][0],)) if params["affine"] else ()  # nn.GroupNorm's weight and bias

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        return lib.nn.GroupNorm(layer.params["groups"], inputs[0][0], affine=layer.params["affine"])


@register
class RMSNorm(KeepsStrides, _Norm):
    type_name = "rmsnorm"
    split_notes = ()
    column_split = not_split_by_channels
    prefix = "rms"
    batch_rule = "any"
    doc = "root-mean-square normalisation (nn.RMSNorm) over the last `dims` sample dimensions, with a learned scale"
    other_ops_rule = "per vector of N: 3·N + 2 (squares, sum, mean, ε and rsqrt, multiply), plus N with affine"
    fields = (Field("dims", Int(), "how many trailing dimensions are normalised together", default=1),
              Field("affine", Bool(), "a learned scale per normalised element", default=True))

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        shape, count = inputs[0], params["dims"]
        if count > len(shape):
            raise LayerProblem("rank", f"dims {count} is more than the input's {len(shape)} dimensions", "dims")
        size = math.prod(shape[len(shape) - count:])
        vectors = elements(shape) // size
        affine = params["affine"]
        return Outcome(shape=shape, weights=size if affine else 0,
                       other_ops=vectors * (3 * size + 2 + (size if affine else 0)))

    def saved(self, layer: LayerResult, saving: Saving) -> list[Saved]:
        size = math.prod(layer.output_shape[len(layer.output_shape) - layer.spec.params["dims"]:])
        return saving.inputs()[:1] + [saving.extra("rstd", layer.activations // size)]

    def parameter_shapes(self, inputs: list[Shape], params: Params) -> tuple[Shape, ...]:
        return (tuple(inputs[0][len(inputs[0]) - params["dims"]:]),) if params["affine"] else ()  # nn.RMSNorm

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        count = layer.params["dims"]
        return lib.nn.RMSNorm(tuple(inputs[0][len(inputs[0]) - count:]), elementwise_affine=layer.params["affine"])


@register
class Expand(SavesNothing, _Operator):
    type_name = "expand"
    split_notes = ()
    column_split = not_split_by_channels
    prefix = "expand"
    receptive = "pointwise"
    references = References(elementwise_gaps=True)
    doc = "broadcast sample dimensions of size 1 to a larger size (Tensor.expand): a view, no arithmetic"
    other_ops_rule = "0 (a view)"
    fields = (Field("shape", IntList(1, "a list of sample sizes"), "the output's sample shape", required=True),)

    def apply_tensors(self, inputs: list[Tensor], params: Params) -> Outcome:
        source, target = inputs[0].shape, tuple(params["shape"])
        if len(target) != len(source) or any(a != b and a != 1 for a, b in zip(source, target, strict=True)):
            raise LayerProblem("shape", f"{describe_shape(source)} does not expand to {describe_shape(target)}: each "
                                        "size must match or be 1", "shape")
        return Outcome(shape=target, placement=inputs[0].placement)

    def storage(self, layer: LayerResult, inputs: list[Strided]) -> Strided:
        first, shape = inputs[0], full_shape(layer)
        strides = tuple(0 if size != out else stride for size, out, stride in zip(first.shape, shape, first.strides,
                                                                                  strict=True))
        return Strided(shape, strides, first.base)

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        return lib.Expand(tuple(layer.params["shape"]), placements[0].dim, placements[0].folded)


@register
class Copy(SavesNothing, _Operator):
    type_name = "copy"
    split_notes = ()
    column_split = not_split_by_channels
    prefix = "copy"
    receptive = "pointwise"
    references = References(elementwise_gaps=True)
    doc = ("a copy into new contiguous memory (Tensor.contiguous of a tensor that is not, Tensor.clone): data "
           "movement, no arithmetic")
    other_ops_rule = "0 (data movement)"
    fields = (Field("always", Bool(), "copy even a contiguous tensor (clone); false: contiguous()", default=False),)

    def apply_tensors(self, inputs: list[Tensor], params: Params) -> Outcome:
        return Outcome(shape=inputs[0].shape, placement=inputs[0].placement)

    def storage(self, layer: LayerResult, inputs: list[Strided]) -> Strided:
        first, shape = inputs[0], full_shape(layer)
        if not layer.spec.params["always"] and first.strides == contiguous(first.shape):
            return first  # contiguous() of a contiguous tensor is the tensor itself
        return Strided(shape, contiguous(shape), layer.name)

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        return lib.Copy(layer.params["always"])


@register
class Parameter(SavesNothing, NewStorage, _Operator):
    type_name = "parameter"
    autocast = Autocast(output="fp32")  # an fp32 parameter itself
    split_notes = ()
    column_split = not_split_by_channels
    prefix = "param"
    receptive = "opaque"
    references = References(elementwise_gaps=True)
    doc = ("a learned tensor the model uses directly in its forward (a class token expanded over the batch, a bias "
           "table): its elements are the layer's weights; it reads no input")
    other_ops_rule = "0"
    min_inputs = 0
    max_inputs = 0
    fields = (Field("shape", IntList(1, "a list of sample sizes"), "the tensor's sample shape, as used",
                    required=True),
              Field("numel", Int(0), "the parameter's elements (less than the shape's when it is expanded)"),
              Field("batch", Int(0), "the full tensor's dimension that holds the batch, when it is expanded over it"),
              Field("fold", Bool(), "the batch is folded into sample dimension `batch` (B·n: per-image anchors "
                                    "concatenated over the images)", default=False),
              Field("trainable", Bool(), "a parameter (false: a buffer, not counted as weights)", default=True))

    def apply_tensors(self, inputs: list[Tensor], params: Params) -> Outcome:
        shape = tuple(params["shape"])
        numel = params.get("numel")
        numel = elements(shape) if numel is None else numel
        placement = Placement(params["batch"], params["fold"]) if params.get("batch") is not None else Placement(None)
        return Outcome(shape=shape, weights=numel if params["trainable"] else 0,
                       stats=0 if params["trainable"] else numel, placement=placement)

    def explain(self, layer: LayerResult) -> Explained:
        return Explained(f"{layer.weights:,} learned values" if layer.weights else None)

    def parameter_shapes(self, inputs: list[Shape], params: Params) -> tuple[Shape, ...]:
        if not params["trainable"]:
            return ()  # a buffer
        numel = params.get("numel")
        return ((elements(tuple(params["shape"])) if numel is None else numel,),)  # stored flat (pytorch Learned)

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        p = layer.params
        return lib.Learned(tuple(p["shape"]), p.get("numel"), p.get("batch"), p["trainable"], p["fold"])


class _Traced(SavesNothing, NewStorage, _Operator):
    """An operator whose output shape is the one the trace gave (its positions come from data, not arithmetic):
    analysed again at another input size it is refused rather than guessed."""

    fields = (Field("op", Text(), "the ATen operator", required=True),
              Field("shape", IntList(1, "a list of sample sizes"), "the output's sample shape, as traced",
                    required=True),
              Field("traced_from", IntList(1, "a list of sample sizes"), "the first input's sample shape when traced"),
              Field("batch", Int(0), "the full tensor's dimension that holds the batch", default=0),
              Field("fold", Bool(), "the batch multiplies sample dimension `batch`", default=False),
              Field("batchless", Bool(), "no sample owns the output (a table made from constants)", default=False))
    max_inputs = None
    min_inputs = 0

    def apply_tensors(self, inputs: list[Tensor], params: Params) -> Outcome:
        traced = params.get("traced_from")
        if traced is not None and inputs and tuple(inputs[0].shape) != tuple(traced):
            raise LayerProblem("traced", f"{params['op']} was traced with input {describe_shape(tuple(traced))}; at "
                                         f"{describe_shape(inputs[0].shape)} its output is not known: import the model "
                                         "again at this input", "shape")
        placement = Placement(None) if params["batchless"] else Placement(params["batch"], params["fold"])
        return Outcome(shape=tuple(params["shape"]), placement=placement)

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        p = layer.params
        return lib.Traced(tuple(p["shape"]), None if p["batchless"] else p["batch"], p["fold"])


@register
class Gather(_Traced):
    type_name = "gather"
    split_notes = ()
    column_split = not_split_by_channels
    prefix = "gather"
    references = References(elementwise_gaps=True)
    doc = ("indexing with positions held in a tensor (aten index, gather, index_select, embedding lookups): "
           "data movement, no arithmetic; the output shape is the traced one")
    other_ops_rule = "0 (data movement)"


@register
class Uncounted(_Traced):
    type_name = "uncounted"
    split_notes = ()
    column_split = not_split_by_channels
    prefix = "uncounted"
    references = References()
    doc = ("an operator convaudit cannot count (kept with `import --partial`): its shape is the traced one, its "
           "counts are unknown and every total that leaves it out says so")
    other_ops_rule = "not counted"
    counted = False

    def explain(self, layer: LayerResult) -> Explained:
        return Explained()


__all__ = ["Copy", "Expand", "GroupNorm", "Gather", "Parameter", "Pointwise", "RMSNorm", "Reduce", "SDPA",
           "Uncounted", "full_shape"]
