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
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol

from convaudit.core.fields import MAX_SPATIAL_AXES, Bool, Field, FieldKind, Int, per_axis
from convaudit.core.layers.splitting import no_parameters
from convaudit.core.strides import Strided, fresh, kept
from convaudit.core.windows import Resize, WindowAxis

if TYPE_CHECKING:
    from convaudit.core.analysis import LayerResult

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
class Placement:
    """Where the batch sits in a tensor. Shapes leave the batch out; most tensors have it as their first dimension
    (`dim` 0 of the full tensor). Tensor code moves it: ViT's qkv.reshape(B, N, 3, h, d).permute(2, 0, 3, 1, 4)
    puts it at dimension 1; a window partition folds it into a sample dimension as its outer factor (`folded`:
    dimension `dim` of the sample shape holds B·n elements in the full tensor, Swin's B·nW windows); a tensor no
    sample owns has none (`dim` None)."""

    dim: int | None = 0
    folded: bool = False

    def full(self, shape: Shape, batch: int) -> Shape:
        """The full tensor's shape at this batch size."""
        if self.dim is None:
            return shape
        if self.folded:
            return shape[:self.dim] + (shape[self.dim] * batch,) + shape[self.dim + 1:]
        return shape[:self.dim] + (batch,) + shape[self.dim:]

    def describe(self, shape: Shape) -> str:
        """'3×B×12×197×64', 'B·64×49×96': the batch shown where it is not first (B), or the shape as usual."""
        if self.dim is None or (self.dim == 0 and not self.folded):
            return describe_shape(shape)
        sizes = [str(size) for size in shape]
        if self.folded:
            sizes[self.dim] = f"B·{shape[self.dim]}"
        else:
            sizes.insert(self.dim, "B")
        return "×".join(sizes)


LEADING = Placement()


def full_dim(dim: int, placement: Placement) -> int:
    """The full tensor's dimension that holds sample dimension `dim` (one further on past an unfolded batch)."""
    if placement.dim is None or placement.folded or dim < placement.dim:
        return dim
    return dim + 1


@dataclass(frozen=True)
class Tensor:
    """What a type whose batch rule is 'own' sees of each input: its sample shape and where the batch sits."""

    shape: Shape
    placement: Placement = LEADING


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
    windows: tuple[WindowAxis, ...] = ()  # the divisions of a sliding-window layer, one per spatial axis
    resizes: tuple[Resize, ...] = ()  # how a resampling layer's sizes follow its input's, one per spatial axis
    placement: Placement = LEADING  # where the batch sits in the output (types whose batch rule is 'own')
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
# A trait is a value, or a method of the layer's hyper-parameters returning one (`trait_of`), or (saved, storage,
# explain) a method of the analysed layer.
TRAITS: dict[str, str] = {
    "category": "its family in drawings and charts: conv, dense, pool, norm, act, merge or other",
    "plan_role": "how `split` divides it across devices: columns (weights split by output channel), follow (reads "
                 "only the channels a device holds), concat, add, whole-free (parameter-free, reads every channel: "
                 "runs whole on every device) or whole (runs whole after gathering its input)",
    "receptive": "how each output position reads its input's positions (core/receptive.py): window, adaptive, "
                 "global, flatten, pointwise, mix-first, mix-last, mix-all, along-first, permute, reshape, select, "
                 "prepend, merge, transposed, upsample, shuffle, unshuffle, pad, crop, attention (every query reads "
                 "every key and value along the token dimension), or opaque (positions this model does not follow: "
                 "named, never guessed)",
    "size_rule": "how its output's spatial size follows from its input's, for the exact-input search (core/checks.py): "
                 "window, pointwise, concat, fixed, vector, flatten, resize (the outcome's `resizes`) or none (the "
                 "search falls back to trying sizes)",
    "saved": "saved(layer, saving): the tensors autograd keeps for backward, as (key, bytes) (core/memory.py)",
    "storage": "storage(layer, inputs): how its output sits in memory: new, the input's strides, or a view "
               "(core/strides.py)",
    "explain": "explain(layer): the arithmetic behind its weights, MACs and connections, for `audit --explain`",
    "module": "module(lib, layer, input_shapes): the torch module that computes it (verify, bench), built from "
              "the namespace pytorch/modules.py hands in (torch.nn, F and convaudit's own modules): the core never "
              "imports torch",
    "references": "References: how fvcore and FlopCounterMode count it, in their conventions (verify converts)",
    "batch_rule": "where it needs the batch: leading (the batch must be the first dimension: convolutions, pools, "
                  "anything indexed by channel), any (it acts along sample dimensions alone, the batch may sit "
                  "anywhere and stays where it is: element-wise functions, a last-dimension linear) or own (it "
                  "places its output's batch itself: views, merges, tensor operators; `apply_tensors`)",
    "column_split": "column_split(inputs, params): how a split by channels divides it (a ColumnSplit: which input "
                    "channels each output reads), or None when it is not divided by output channels",
    "parameter_shapes": "parameter_shapes(inputs, params): its parameter tensors' shapes as the PyTorch module holds "
                        "them, in parameters() order (fsdp and zero shard each along dimension 0)",
    "split_notes": "(strategy kind, note) pairs `split` adds when a plan holds this type: 'channels' for columns "
                   "and model, 'batch' for data, fsdp, zero1 and zero2",
    "autocast": "what it does under torch.autocast (--amp, core/memory.py): an Autocast, or a method of the analysed "
                "layer giving one: the dtype it casts its inputs to, its output's and its own saved tensors' dtypes, "
                "per autocast's CPU op lists (and where CUDA's lists differ, theirs)",
}
CATEGORIES = ("conv", "dense", "pool", "norm", "act", "merge", "other")
PLAN_ROLES = ("columns", "follow", "concat", "add", "whole-free", "whole")
RECEPTIVE_RULES = ("window", "adaptive", "global", "flatten", "pointwise", "mix-first", "mix-last", "mix-all",
                   "along-first", "permute", "reshape", "select", "prepend", "merge", "transposed", "upsample",
                   "shuffle", "unshuffle", "pad", "crop", "attention", "opaque")
SIZE_RULES = ("window", "pointwise", "concat", "fixed", "vector", "flatten", "resize", "none")
BATCH_RULES = ("leading", "any", "own")
TRAIT_VALUES: dict[str, tuple[str, ...]] = {"category": CATEGORIES, "plan_role": PLAN_ROLES,
                                            "receptive": RECEPTIVE_RULES, "size_rule": SIZE_RULES,
                                            "batch_rule": BATCH_RULES}
FVCORE_RULES = ("macs", "other-ops", "input-elements", "output-elements", "layernorm", "nothing")


class References(NamedTuple):
    """How the reference tools count one layer, each in its own convention (pytorch/verify.py converts).

    fvcore: what fvcore's FlopCountAnalysis gives: macs (one per multiply-add), other-ops (our other ops:
            batchnorm at inference), input-elements (one per input element: adaptive pooling), output-elements
            (`per_output` per output element: up-sampling), layernorm (its estimate, 5 per element with affine, 4
            without) or nothing (it counts none, or cannot see them)
    elementwise_gaps: the operators fvcore leaves uncounted for it are element-wise only (other ops in our
            convention), so its count of the MACs still compares
    flop_counter: FlopCounterMode counts its MACs (it counts convolutions and matrix products only)
    """

    fvcore: str = "nothing"
    elementwise_gaps: bool = False
    flop_counter: bool = False
    per_output: int = 0


AUTOCAST_DTYPES = ("half", "fp32", "input")


class Autocast(NamedTuple):
    """What a type does under torch.autocast (core/memory.py). Each field is 'half' (autocast's fp16 or bf16),
    'fp32', or 'input': the widest dtype of its inputs after any cast (type promotion, as aten's kernels and
    autocast's promote list give it).

    casts:  'half' for the ops of autocast's lower-precision list (convolutions, linear, matmul, attention: each
            fp32 input is copied to half, and so are its fp32 weights, the copies saved for backward), 'fp32' for
            its fp32 list (each half input copied to fp32), 'input' for everything else (no cast)
    output: the dtype of its output ('fp32' where an fp32 parameter joins a half input: x·scale, x + pos, cat)
    extras: the dtype of the tensors it saves of its own (normalisations keep their statistics in fp32)
    cuda:   the rule on CUDA where autocast's CUDA lists differ from the CPU's (None: the same)
    """

    casts: str = "input"
    output: str = "input"
    extras: str = "input"
    cuda: Autocast | None = None

    def on(self, cuda: bool) -> Autocast:
        return self.cuda if cuda and self.cuda is not None else self


FOLLOWS_INPUT = Autocast()  # no autocast list names it: it runs at its input's dtype
LOWER_PRECISION = Autocast("half", "half", "half")  # autocast's lower-precision list (both devices)
FP32_LIST = Autocast("fp32", "fp32", "fp32")  # autocast's fp32 list: inputs copied to fp32
# batchnorm, layernorm, groupnorm: half in, half out, statistics in fp32 (the CPU's mixed-type kernels); CUDA's
# fp32 list holds layer_norm and group_norm (their input copied to fp32), not batch_norm
FP32_STATISTICS = Autocast(extras="fp32")


def undeclared_traits(cls: type) -> list[str]:
    """The traits `cls` neither declares nor inherits from a family base class (never from LayerType)."""
    missing = []
    for trait in TRAITS:
        owner = next((klass for klass in cls.__mro__ if trait in vars(klass)), None)
        if owner is None or owner is LayerType:
            missing.append(trait)
        elif trait in TRAIT_VALUES and not callable(getattr(cls, trait)) \
                and getattr(cls, trait) not in TRAIT_VALUES[trait]:
            missing.append(f"{trait} (got {getattr(cls, trait)!r}; one of {', '.join(TRAIT_VALUES[trait])})")
        elif trait == "autocast" and not callable(cls.autocast) and (
                not isinstance(cls.autocast, Autocast)
                or any(value not in AUTOCAST_DTYPES for value in cls.autocast[:3])):
            missing.append(f"autocast (an Autocast of {', '.join(AUTOCAST_DTYPES)})")
        elif trait == "references" and not callable(cls.references) and (
                not isinstance(cls.references, References) or cls.references.fvcore not in FVCORE_RULES):
            missing.append(f"references (a References with fvcore one of {', '.join(FVCORE_RULES)})")
    return missing


def trait_of(layer_type: LayerType, trait: str, params: Params) -> str:
    """A trait's value for one layer: the type's value, or what its method gives for these hyper-parameters."""
    value = getattr(layer_type, trait)
    return value(params) if callable(value) else value


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
    crops_to_second: ClassVar[bool] = False  # a second input whose size it takes, and which may not exceed the first
    forward_copies: ClassVar[int] = 1  # its torch module's forward makes this many copies of the tensors it saves
    convention: ClassVar[str] = ""  # a convention of its own, stated under every output of a network that holds it
    counted: ClassVar[bool] = True  # False: its counts are unknown (an operator kept with --partial)
    # traits (see TRAITS): declared by every registered type, never defaulted here
    category: ClassVar[str]
    plan_role: ClassVar[str]
    receptive: ClassVar[str]
    size_rule: ClassVar[str]
    references: ClassVar[References]
    batch_rule: ClassVar[str]
    split_notes: ClassVar[tuple[tuple[str, str], ...]]
    autocast: ClassVar[Autocast]  # or a method of the analysed layer returning one
    # and the methods column_split(inputs, params) and parameter_shapes(inputs, params)

    def static_problems(self, params: Params) -> list[tuple[str, str]]:
        """(key, problem) pairs found from the hyper-parameters alone, before any shape is known."""
        return []

    def apply(self, inputs: list[Shape], params: Params) -> Outcome:
        raise NotImplementedError

    def apply_tensors(self, inputs: list[Tensor], params: Params) -> Outcome:
        """For batch rule 'own': the outcome from the inputs' sample shapes and batch placements."""
        raise NotImplementedError


def feature_map(shape: Shape, layer: str) -> tuple[int, tuple[int, ...]]:
    """(channels, spatial sizes) of a feature map with 1, 2 or 3 spatial axes: [C, L], [C, H, W], [C, D, H, W]."""
    if not 2 <= len(shape) <= 1 + MAX_SPATIAL_AXES:
        raise LayerProblem("rank", f"{layer} needs a feature map [C, L], [C, H, W] or [C, D, H, W], got "
                                   f"[{', '.join(map(str, shape))}]")
    return shape[0], tuple(shape[1:])


def spread(params: Params, key: str, axes: int) -> tuple[int, ...]:
    """A Size hyper-parameter for `axes` spatial axes (one value spread over all, or one per axis)."""
    value = per_axis(params[key], axes)
    if value is None:
        raise LayerProblem("rank", f"{key} {list(params[key])} gives {len(params[key])} values but the input has "
                                   f"{axes} spatial axes", key)
    return value


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




# ------------------------------------------------------------------ memory: what a type saves, where its output lives

Saved = tuple[str, int]  # (tensor key, bytes): a tensor several layers save is counted once, by its key


class Saving(Protocol):
    """What core/memory.py hands a type's `saved`: the layer's tensors as keys and bytes."""

    batch: int
    size: int  # bytes per element at the analysis dtype
    cuda: bool

    def output(self) -> list[Saved]: ...  # the layer's own output

    def inputs(self) -> list[Saved]: ...  # each input's storage, whole

    def extra(self, what: str, elements: int, itemsize: int | None = None) -> Saved: ...  # a tensor of its own

    def storage(self, source: str) -> Strided: ...  # how an input sits in memory


def full_shape(layer: LayerResult) -> tuple[int, ...]:
    """The output tensor's shape with the batch where it sits."""
    return layer.outcome.placement.full(layer.output_shape, layer.batch)


class SavesNothing:
    def saved(self, layer: LayerResult, saving: Saving) -> list[Saved]:
        return []


class SavesInput:
    def saved(self, layer: LayerResult, saving: Saving) -> list[Saved]:
        return saving.inputs()[:1]


class SavesInputs:
    def saved(self, layer: LayerResult, saving: Saving) -> list[Saved]:
        return saving.inputs()


class SavesOutput:
    def saved(self, layer: LayerResult, saving: Saving) -> list[Saved]:
        return saving.output()


class NewStorage:
    """A new contiguous tensor."""

    def storage(self, layer: LayerResult, inputs: list[Strided]) -> Strided:
        return fresh(full_shape(layer), layer.name)


class KeepsStrides:
    """Element-wise: new storage laid out like the (first) input when it is dense and of the same shape."""

    def storage(self, layer: LayerResult, inputs: list[Strided]) -> Strided:
        return kept(inputs[0], full_shape(layer), layer.name)


# ------------------------------------------------------------------ `audit --explain`: the arithmetic of the counts

class Explained(NamedTuple):
    """The arithmetic behind a layer's counts; None where it has none of that kind (no parameters, no MACs)."""

    weights: str | None = None
    macs: str | None = None
    connections: str | None = None


class Parameterless:
    """No parameters, no multiply-adds, no connections."""

    parameter_shapes = no_parameters

    def explain(self, layer: LayerResult) -> Explained:
        return Explained()


# ------------------------------------------------------------------ the torch module (built by pytorch/builder.py)

class TorchModule:
    """A module made with no arguments: `torch_module` names it in the namespace pytorch/modules.py hands in
    ('nn.ReLU', or one of convaudit's own such as 'Concat')."""

    torch_module: ClassVar[str]

    def module(self, lib: Any, layer: Any, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        made = lib
        for part in self.torch_module.split("."):
            made = getattr(made, part)
        return made()
