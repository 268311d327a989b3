"""Products of two operands: matmul (mm, bmm, matmul, addmm's product) and einsum, one formula each for the
contraction (einsum reads MViTv2's relative positions, 'byhwc,hkc->byhwk', where reading it through the bmm it
becomes would scatter the batch across dimensions)."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from convaudit.core.fields import Bool, Field, Text
from convaudit.core.layers.base import (
    LOWER_PRECISION,
    Explained,
    LayerProblem,
    NewStorage,
    Outcome,
    Params,
    Placement,
    References,
    Saved,
    Saving,
    Shape,
    Tensor,
    describe_shape,
    elements,
    register,
)
from convaudit.core.layers.batch import BATCH, broadcast_tensors, from_symbolic, symbolic
from convaudit.core.layers.operators import BUFFERS, NUMEL, WEIGHT, _operands, _Operator, _per_sample, _weight_numel
from convaudit.core.layers.splitting import not_split_by_channels

if TYPE_CHECKING:
    from convaudit.core.analysis import LayerResult
    from convaudit.core.model import LayerSpec

WEIGHT_FIRST = Field("weight_first", Bool(), "the parameter is the left operand", default=False)


class _Product(NewStorage, _Operator):
    """A product of two operands (matmul, einsum): an activation and another, or a parameter operand held as
    weights. Its backward keeps both operands and costs the forward once per activation operand."""

    autocast = LOWER_PRECISION
    split_notes = ()
    column_split = not_split_by_channels
    category = "dense"
    references = References("macs", flop_counter=True)
    has_macs = True
    other_ops_rule = "0"
    max_inputs = 2

    def saved(self, layer: LayerResult, saving: Saving) -> list[Saved]:
        # mm's backward: dA = dC·Bᵀ keeps B, dB = Aᵀ·dC keeps A; a parameter operand is resident anyway
        return saving.inputs()

    def explain(self, layer: LayerResult) -> Explained:
        macs = layer.macs // layer.runs
        weights = f"{layer.weights:,} weights" if layer.weights else None
        return Explained(weights, f"{describe_shape(layer.output_shape)} outputs × {layer.outcome.in_features:,} "
                                  f"= {macs:,}", f"{macs:,} multiply-adds = {layer.connections:,}")


@register
class MatMul(_Product):
    type_name = "matmul"
    prefix = "matmul"
    doc = ("matrix product as torch.matmul: [..., n, k] @ [..., k, m] → [..., n, m], the leading dimensions "
           "broadcast; a 1-D operand is a vector (aten mm, bmm, matmul; an einsum that contracts one index)")
    convention = ("Matmul: MACs = the broadcast leading dimensions · n · k · m, as torch's FlopCounterMode counts mm "
                  "and bmm.")
    fields = (WEIGHT, NUMEL, BUFFERS, WEIGHT_FIRST)

    def apply_tensors(self, inputs: list[Tensor], params: Params) -> Outcome:
        a, b = _operands(inputs, params)
        left, right = symbolic(a), symbolic(b)
        if not left or not right:
            raise LayerProblem("rank", "matmul needs operands of at least one dimension")
        vector_left, vector_right = len(left) == 1, len(right) == 1
        left = [1, *left] if vector_left else left
        right = [*right, 1] if vector_right else right
        if not isinstance(left[-1], int) or not isinstance(right[-2], int):
            raise LayerProblem("batch", "matmul contracts over the batch dimension: samples would mix")
        if left[-1] != right[-2]:
            raise LayerProblem("merge", f"matmul of {a.placement.describe(a.shape)} and {b.placement.describe(b.shape)}"
                                        f": inner sizes {left[-1]} and {right[-2]} differ")
        batch = broadcast_tensors([from_symbolic(left[:-2]), from_symbolic(right[:-2])])
        out = symbolic(batch) + ([] if vector_left else [left[-2]]) + ([] if vector_right else [right[-1]])
        result = from_symbolic(out)
        n, k, m = _per_sample(left[-2]), left[-1], _per_sample(right[-1])
        macs = elements(tuple(_per_sample(size) for size in symbolic(batch))) * n * k * m
        # backward: each activation operand's gradient costs the forward's MACs (dA = dC·Bᵀ, dB = Aᵀ·dC)
        return Outcome(shape=result.shape, weights=_weight_numel(params), stats=params["buffers"], macs=macs,
                       connections=macs, placement=result.placement, in_features=k,
                       input_grad_macs=macs * len(inputs))

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        p = layer.params
        return lib.MatMul(p.get("weight"), p["weight_first"], p.get("numel"), p.get("buffers") or 0)


EQUATION = re.compile(r"([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]*)")


def parse_equation(equation: str) -> tuple[str, str, str]:
    """'bhwc,hkc->bhwk' as its two inputs' and its output's subscripts (explicit output, no '...')."""
    match = EQUATION.fullmatch(equation.replace(" ", ""))
    if not match:
        raise LayerProblem("equation", f"einsum '{equation}': convaudit reads two operands with an explicit output "
                                       "('ij,jk->ik'), without '...'", "equation")
    left, right, out = match.groups()
    if len(set(out)) != len(out) or not set(out) <= set(left + right):
        raise LayerProblem("equation", f"einsum '{equation}': each output index once, and only indices of the "
                                       "inputs", "equation")
    return left, right, out


@register
class Einsum(_Product):
    type_name = "einsum"
    prefix = "einsum"
    doc = ("torch.einsum of two operands with an explicit output ('byhwc,hkc->byhwk'): each output sums, over the "
           "indices it does not keep, the products of the two")
    convention = ("Einsum: MACs = the product of every index's size (each index once), the bmm torch runs and "
                  "FlopCounterMode counts.")
    min_inputs = 1
    fields = (Field("equation", Text(), "the subscripts, as torch.einsum takes them: 'ij,jk->ik'", required=True),
              WEIGHT, NUMEL, BUFFERS, WEIGHT_FIRST)

    def apply_tensors(self, inputs: list[Tensor], params: Params) -> Outcome:
        subscripts = parse_equation(params["equation"])
        operands = _operands(inputs, params)
        if len(operands) != 2:
            raise LayerProblem("inputs", f"einsum '{params['equation']}' takes two operands, got {len(operands)}")
        sizes: dict[str, Any] = {}
        for letters, tensor in zip(subscripts[:2], operands, strict=True):
            full = symbolic(tensor)
            if len(full) != len(letters):
                raise LayerProblem("rank", f"einsum '{params['equation']}': '{letters}' names {len(letters)} "
                                           f"dimensions of a tensor of {len(full)} "
                                           f"({tensor.placement.describe(tensor.shape)})", "equation")
            for letter, size in zip(letters, full, strict=True):
                if isinstance(size, tuple):
                    raise LayerProblem("batch", "einsum of a tensor whose batch is folded into a dimension")
                known = sizes.setdefault(letter, size)
                if known != size and 1 not in (known, size):  # torch broadcasts a size-1 dimension
                    raise LayerProblem("merge", f"einsum '{params['equation']}': index {letter} is {known} and "
                                                f"{size}", "equation")
                if known == 1:
                    sizes[letter] = size
        batch = [letter for letter, size in sizes.items() if size == BATCH]
        if batch and batch[0] not in subscripts[2]:
            raise LayerProblem("batch", f"einsum '{params['equation']}' sums over the batch ({batch[0]}): samples "
                                        "would mix")
        result = from_symbolic([sizes[letter] for letter in subscripts[2]])
        # every index once: the products one output sums, times the outputs (the batch counts 1 per sample)
        macs = math.prod(1 if size == BATCH else size for size in sizes.values())
        contracted = math.prod(size for letter, size in sizes.items() if letter not in subscripts[2])
        # backward: each activation operand's gradient is one more contraction of the same size
        return Outcome(shape=result.shape, weights=_weight_numel(params), stats=params["buffers"], macs=macs,
                       connections=macs, placement=result.placement, in_features=contracted,
                       input_grad_macs=macs * len(inputs))

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        p = layer.params
        return lib.Einsum(p["equation"], p.get("weight"), p["weight_first"], p.get("numel"), p.get("buffers") or 0)


__all__ = ["Einsum", "MatMul", "parse_equation"]
