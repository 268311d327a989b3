"""Walk a network spec and compute every layer's shape, parameters, operations and memory.

Pure Python: no torch anywhere on this path. All counts are exact integers.
Per-layer operation and activation counts cover the whole batch; parameters
do not depend on it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property
from operator import attrgetter

from convaudit.core.layers import REGISTRY, LayerProblem, Outcome, Shape, describe_shape, elements
from convaudit.core.layers.base import LEADING, Placement, Tensor, trait_of
from convaudit.core.layers.batch import require_leading
from convaudit.core.model import INPUT, LayerSpec, NetworkSpec
from convaudit.core.units import DTYPE_BYTES
from convaudit.core.windows import WindowAxis
from convaudit.errors import ConvauditError

CONVENTIONS = {
    "macs": "multiply-accumulates of conv, linear, subsample, RBF and attention layers (one multiply plus one add); "
            "attention's are its Q, K, V and output projections plus its weightless Q·Kᵀ and A·V products",
    "flops": "FLOPs = 2 × MACs (conv, linear, subsample, RBF and attention layers only)",
    "other_ops": "bias adds, activations, pooling, LRN, softmax, batchnorm, layernorm, element-wise products (mul, "
                 "scale), position embeddings and merges, counted apart from MACs (rules in the README)",
    "rounding": "output sizes use floor((W − K' + 2P)/S) + 1 with K' = D·(K − 1) + 1, as PyTorch does; "
                "layers with ceil: true round up (Caffe pooling), dropping a last window that would start in the "
                "right padding",
    "params": "params = weights + biases, as sum(p.numel() for p in model.parameters()); non-trainable = "
              "fixed RBF centres (parameters with requires_grad=False)",
    "buffers": "buffers = floating-point state, such as batchnorm's running mean and variance, counted apart from "
               "params (as torchinfo and Keras); integer buffers (num_batches_tracked, position indices) are not "
               "counted",
    "backward": "backward FLOPs = 2 × (weight-gradient MACs + input-gradient MACs), each equal to the forward "
                "MACs; no input gradient before the first trained layer; attention's weightless Q·Kᵀ and A·V "
                "each take two gradient products of their size",
    "batch": "MACs, FLOPs, other ops and activations are for the whole batch; parameters are not",
    "neurons": "output units of the layers that do multiply-adds (conv, linear, subsample, RBF, attention), per "
               "sample; normalisation, scale and embedding weights make no neurons",
    "connections": "multiply-adds plus bias terms, per sample (subsampling: window plus bias per unit)",
    "memory": "parameters and every layer's output held at once (input excluded), at the chosen dtype",
}


@dataclass(frozen=True)
class LayerResult:
    spec: LayerSpec
    input_shapes: tuple[Shape, ...]
    outcome: Outcome
    batch: int
    dtype_bytes: int
    inexact_upstream: tuple[str, ...]  # floor-rounded inexact layers up to and including this one
    needs_input_grad: bool = False  # something upstream is trainable, so backward computes dL/dinput
    input_placements: tuple[Placement, ...] = ()  # where each input holds the batch (empty: all first)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def placements(self) -> tuple[Placement, ...]:
        """Where each input holds the batch."""
        return self.input_placements or (LEADING,) * len(self.input_shapes)

    @property
    def type(self) -> str:
        return self.spec.type

    @property
    def output_shape(self) -> Shape:
        return self.outcome.shape

    @property
    def windows(self) -> tuple[WindowAxis, ...]:
        return self.outcome.windows

    @property
    def exact(self) -> bool:
        return all(axis.is_exact for axis in self.outcome.windows)

    @property
    def shares(self) -> bool:
        """It uses another layer's weights (a module called twice): they are counted there, once."""
        return self.spec.shares is not None

    @property
    def weights(self) -> int:
        return 0 if self.shares else self.outcome.weights

    @property
    def biases(self) -> int:
        return 0 if self.shares else self.outcome.biases

    @property
    def params(self) -> int:
        """What PyTorch's sum(p.numel() for p in model.parameters()) counts: weights and biases, trained or fixed."""
        return self.weights + self.biases

    @property
    def buffers(self) -> int:
        """Running statistics (batchnorm mean and variance): state, not parameters."""
        return 0 if self.shares else self.outcome.stats

    @property
    def trainable_params(self) -> int:
        return 0 if self.outcome.fixed else self.weights + self.biases

    @property
    def learns(self) -> bool:
        """Its weights (its own, or those it shares) are trained: backward computes their gradient here."""
        return not self.outcome.fixed and self.outcome.weights + self.outcome.biases > 0

    @property
    def non_trainable_params(self) -> int:
        return self.params - self.trainable_params

    @property
    def runs(self) -> int:
        """How many times it runs per batch: once per sample, or once in all where nothing it reads or makes
        belongs to a sample (a position table computed from constants)."""
        placements = self.placements + (self.outcome.placement,)
        return self.batch if any(placement.dim is not None for placement in placements) else 1

    @property
    def macs(self) -> int:
        return self.outcome.macs * self.runs

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def backward_macs(self) -> int:
        """Backward of a MAC layer: the weight gradient (if trained) plus the input gradient (if needed).

        Each costs as many MACs as the forward: dW = x ⋆ dy and dx = dy ⋆ᵀ W run over the same
        Cout·(Cin/g)·Kh·Kw·Hout·Wout products (in·out for linear). The first trained layer needs no dx.
        A layer with products that hold no weights (attention's Q·Kᵀ and A·V) states its own split.
        """
        outcome = self.outcome
        weight_grad = outcome.macs if outcome.weight_grad_macs is None else outcome.weight_grad_macs
        input_grad = outcome.macs if outcome.input_grad_macs is None else outcome.input_grad_macs
        flows = self.learns or self.needs_input_grad
        return self.runs * ((weight_grad if self.learns else 0)
                             + (input_grad if self.needs_input_grad else 0)
                             + (outcome.inner_grad_macs if flows else 0))

    @property
    def backward_flops(self) -> int:
        return 2 * self.backward_macs

    @property
    def other_ops(self) -> int:
        return self.outcome.other_ops * self.runs

    @property
    def neurons(self) -> int:
        """Output units of a weight layer, per sample, as the papers count neurons."""
        return elements(self.output_shape) if REGISTRY[self.type].has_macs else 0

    @property
    def connections(self) -> int:
        """Multiply-adds plus bias terms, per sample, as the papers count connections."""
        return self.outcome.connections

    @property
    def activations(self) -> int:
        """Output elements for the whole batch (a tensor no sample owns is held once)."""
        return elements(self.output_shape) * (1 if self.outcome.placement.dim is None else self.batch)

    @property
    def param_bytes(self) -> int:
        """Parameters and buffers, as held in memory."""
        return (self.params + self.buffers) * self.dtype_bytes

    @property
    def activation_bytes(self) -> int:
        return self.activations * self.dtype_bytes


@dataclass(frozen=True)
class Halt:
    """The layer where analysis had to stop, and why."""

    layer: LayerSpec
    input_shapes: tuple[Shape, ...]
    problem: LayerProblem
    inexact_upstream: tuple[str, ...]


@dataclass(frozen=True)
class Totals:
    params: int
    trainable_params: int
    non_trainable_params: int
    buffers: int
    weights: int
    biases: int
    macs: int
    flops: int
    backward_flops: int
    other_ops: int
    neurons: int
    connections: int
    activations: int
    param_bytes: int
    activation_bytes: int


TOTAL_FIELDS = tuple(Totals.__dataclass_fields__)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cycle collector for a pass that allocates many objects and makes no reference cycles
    (parsing, analysing, writing a deep network): each collection would walk every object made so far, which
    made a 10,000-layer chain's summary a third slower. Cycles made meanwhile are collected once it resumes."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def totals_of(layers: tuple[LayerResult, ...] | list[LayerResult]) -> Totals:
    return Totals(**{name: sum(map(attrgetter(name), layers)) for name in TOTAL_FIELDS})


@dataclass(frozen=True)
class Report:
    spec: NetworkSpec
    batch: int
    dtype: str
    layers: tuple[LayerResult, ...]
    halted: Halt | None = None

    @property
    def input(self) -> tuple[int, int, int]:
        return self.spec.input

    @cached_property
    def totals(self) -> Totals:
        """Summed once: renderers ask for it on every row (the report is frozen, so it cannot go stale)."""
        return totals_of(self.layers)

    @cached_property
    def by_name(self) -> dict[str, LayerResult]:
        return {layer.name: layer for layer in self.layers}

    def layer(self, name: str) -> LayerResult:
        return self.by_name[name]


def not_counted(report: Report) -> list[LayerResult]:
    """Layers whose type has no counting rule (an operator kept by `import --partial`): their costs are unknown."""
    return [layer for layer in report.layers if not REGISTRY[layer.type].counted]


def is_partial(report: Report) -> bool:
    """The totals leave something out: layers with no counting rule, or what an imported model's trace never
    reached (`untraced:`)."""
    return report.spec.untraced is not None or bool(not_counted(report))


def conventions(report: Report) -> dict[str, str]:
    """The counting conventions, with the lines of the layer types this network holds that state their own
    (a transposed convolution's output rule and MACs, up-sampling's rounding)."""
    present = {layer.type for layer in report.layers}
    own: dict[str, str] = {}
    for name, kind in REGISTRY.items():
        if name in present and kind.convention and kind.convention not in own.values():
            own[name] = kind.convention
    return {**CONVENTIONS, **own}


def dtype_bytes(dtype: str) -> int:
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise ConvauditError(f"unknown dtype '{dtype}'; choose one of {', '.join(DTYPE_BYTES)}") from None


def analyze(spec: NetworkSpec, batch: int = 1, dtype: str = "fp32") -> Report:
    """Compute every layer in graph order; stop at the first layer that cannot be computed."""
    with gc_paused():
        return _analyze(spec, batch, dtype)


def _analyze(spec: NetworkSpec, batch: int, dtype: str) -> Report:
    if batch < 1:
        raise ConvauditError(f"batch must be a positive integer, got {batch}")
    size = dtype_bytes(dtype)
    shapes: dict[str, Shape] = {INPUT: spec.input}
    placements: dict[str, Placement] = {INPUT: LEADING}
    inexact: dict[str, tuple[str, ...]] = {INPUT: ()}
    trained_upstream: dict[str, bool] = {INPUT: False}  # does this output depend on trainable parameters?
    results: list[LayerResult] = []
    for layer in spec.layers:
        input_shapes = tuple(shapes[source] for source in layer.inputs)
        input_placements = tuple(placements[source] for source in layer.inputs)
        if len(layer.inputs) == 1:
            upstream = inexact[layer.inputs[0]]  # shared, not copied: a chain stays linear
        else:
            upstream = tuple(dict.fromkeys(name for source in layer.inputs for name in inexact[source]))
        try:
            outcome = apply_layer(layer, input_shapes, input_placements)
            if layer.shares is not None:
                _check_shared(layer, outcome, results)
        except LayerProblem as problem:
            if problem.kind == "merge":
                problem = _name_branches(problem, layer, input_shapes)
            return Report(spec, batch, dtype, tuple(results), Halt(layer, input_shapes, problem, upstream))
        if any(axis.truncated for axis in outcome.windows):
            upstream = upstream + (layer.name,)
        needs_input_grad = any(trained_upstream[source] for source in layer.inputs)
        moved = () if all(placement is LEADING for placement in input_placements) else input_placements
        result = LayerResult(layer, input_shapes, outcome, batch, size, upstream, needs_input_grad, moved)
        results.append(result)
        shapes[layer.name] = outcome.shape
        placements[layer.name] = outcome.placement
        inexact[layer.name] = upstream
        trained_upstream[layer.name] = needs_input_grad or result.learns
    return Report(spec, batch, dtype, tuple(results))


def _check_shared(layer: LayerSpec, outcome: Outcome, results: list[LayerResult]) -> None:
    """A layer that shares another's weights: an earlier layer of its type with weights of the same size."""
    owner = next((result for result in results if result.name == layer.shares), None)
    if owner is None or owner.type != layer.type:
        raise LayerProblem("shares", f"shares: '{layer.shares}' is no earlier {layer.type} layer", "shares")
    if (owner.outcome.weights, owner.outcome.biases) != (outcome.weights, outcome.biases):
        raise LayerProblem("shares", f"shares the weights of '{layer.shares}' ({owner.outcome.weights:,} + "
                                     f"{owner.outcome.biases:,}), but its own would be {outcome.weights:,} + "
                                     f"{outcome.biases:,}", "shares")


def apply_layer(layer: LayerSpec, shapes: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Outcome:
    """One layer's outcome by its type's batch rule: 'own' types place the batch themselves; 'any' types act on
    sample dimensions alone and leave the batch where it is; 'leading' types need it first."""
    kind = REGISTRY[layer.type]
    rule = trait_of(kind, "batch_rule", layer.params)
    if rule == "own":
        return kind.apply_tensors([Tensor(shape, placement) for shape, placement in zip(shapes, placements,
                                                                                        strict=True)], layer.params)
    if rule == "leading" and placements and all(runs_first(placement) for placement in placements) \
            and len(set(placements)) == 1 and all(len(shape) > 1 and shape[0] == shapes[0][0] for shape in shapes):
        outcome = unbatched(kind.apply([shape[1:] for shape in shapes], layer.params), shapes[0][0])
        return replace(outcome, placement=placements[0])
    if rule == "leading" or len(set(placements)) > 1:
        require_leading(layer.type, [Tensor(shape, placement) for shape, placement in zip(shapes, placements,
                                                                                         strict=True)])
    outcome = kind.apply(list(shapes), layer.params)
    return outcome if placements[0] is LEADING else replace(outcome, placement=placements[0])


def runs_first(placement: Placement) -> bool:
    """A tensor whose first dimension is all a layer that needs the batch first can take as one: it has no batch
    (a [k, C, H, W] made from constants and parameters), or the batch folded into it (B·k windows)."""
    return placement.dim is None or (placement.dim == 0 and placement.folded)


def unbatched(outcome: Outcome, runs: int) -> Outcome:
    """A layer that needs the batch first, on a tensor whose first dimension is k times its own batch: k runs,
    each on the rest of the shape (times the batch too where it is folded into that dimension)."""
    def times(value: int | None) -> int | None:
        return None if value is None else value * runs

    return replace(outcome, shape=(runs, *outcome.shape), placement=Placement(None), macs=outcome.macs * runs,
                   other_ops=outcome.other_ops * runs, connections=outcome.connections * runs,
                   weight_grad_macs=times(outcome.weight_grad_macs), input_grad_macs=times(outcome.input_grad_macs),
                   inner_grad_macs=outcome.inner_grad_macs * runs)


def _name_branches(problem: LayerProblem, layer: LayerSpec, shapes: tuple[Shape, ...]) -> LayerProblem:
    pairs = zip(layer.inputs, shapes, strict=True)
    branches = ", ".join(f"'{source}' gives {describe_shape(shape)}" for source, shape in pairs)
    return LayerProblem("merge", f"{layer.type} of mismatched inputs: {problem.message}: {branches}", "from")
