"""The layer-type registry: one class per layer type, declaring everything the analyses need to know about it.

A layer type computes, from its input shapes and hyper-parameters alone, its output shape, parameter counts,
MACs and "other ops" (`apply`). Everything is an exact integer; divisions that may not be whole go through
`WindowAxis` as Fractions. Beside its formulas, every type declares each trait in `TRAITS`; `register` refuses
a type that leaves one undeclared, so no analysis ever falls back to a default for a type it does not know.

Counting conventions (also in the README):
  MACs      multiply-accumulates of conv, linear, subsample, RBF and attention layers only
  FLOPs     2·MACs
  other ops everything else, each type's rule in `other_ops_rule`
Shapes leave out the batch: [C, H, W] for feature maps, [F] for vectors, [N, D] for N tokens of D features.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from convaudit.core.fields import Bool, Field, FieldKind, Int
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


# What every layer type declares, and what each value means. A type inherits a trait only from a family base
# class that declares it for all its members (the pools, the element-wise functions); LayerType itself declares
# none, so a new type that forgets one is refused when it is registered.
TRAITS: dict[str, str] = {
    "category": "its family in drawings and charts: conv, dense, pool, norm, act, merge or other",
    "plan_role": "how `split` divides it across devices: columns (weights split by output channel), follow (reads "
                 "only the channels a device holds), concat, add, whole-free (parameter-free, reads every channel: "
                 "runs whole on every device) or whole (runs whole after gathering its input)",
    "column_split": "column_split(inputs, params): how a split by channels divides it (a ColumnSplit: which input "
                    "channels each output reads), or None when it is not divided by output channels",
    "parameter_shapes": "parameter_shapes(inputs, params): its parameter tensors' shapes as the PyTorch module holds "
                        "them, in parameters() order (fsdp and zero shard each along dimension 0)",
    "split_notes": "(strategy kind, note) pairs `split` adds when a plan holds this type: 'channels' for columns "
                   "and model, 'batch' for data, fsdp, zero1 and zero2",
}
CATEGORIES = ("conv", "dense", "pool", "norm", "act", "merge", "other")
PLAN_ROLES = ("columns", "follow", "concat", "add", "whole-free", "whole")
TRAIT_VALUES: dict[str, tuple[str, ...]] = {"category": CATEGORIES, "plan_role": PLAN_ROLES}


def undeclared_traits(cls: type) -> list[str]:
    """The traits `cls` neither declares nor inherits from a family base class (never from LayerType)."""
    missing = []
    for trait in TRAITS:
        owner = next((klass for klass in cls.__mro__ if trait in vars(klass)), None)
        if owner is None or owner is LayerType:
            missing.append(trait)
        elif trait in TRAIT_VALUES and getattr(cls, trait) not in TRAIT_VALUES[trait]:
            missing.append(f"{trait} (got {getattr(cls, trait)!r}; one of {', '.join(TRAIT_VALUES[trait])})")
    return missing


def register(cls: type[LayerType]) -> type[LayerType]:
    missing = undeclared_traits(cls)
    if missing:
        raise TypeError(f"layer type {cls.__name__} ('{getattr(cls, 'type_name', '?')}') does not declare: "
                        f"{', '.join(missing)}")
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
    # traits (see TRAITS): declared by every registered type, never defaulted here
    category: ClassVar[str]
    plan_role: ClassVar[str]
    split_notes: ClassVar[tuple[tuple[str, str], ...]]
    # and the methods column_split(inputs, params) and parameter_shapes(inputs, params)

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


BIAS = Field("bias", Bool(), "whether the layer adds a learned bias", default=True)
IN_PIN = Field("in", Int(), "input features the source states; a different flattened input is an error finding")


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


OVER = ("last", "channels")


def normalised_dim(shape: Shape, over: str) -> int:
    """The size of the dimension a per-channel or per-feature operation runs along."""
    return shape[0] if over == "channels" else shape[-1]


