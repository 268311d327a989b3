"""Memory for training and inference, estimated from the analysis alone (pure: no torch).

Training holds parameters, their gradients, the optimizer's state (SGD none,
momentum one buffer, Adam two, per trainable parameter) and the tensors
autograd saves for backward. What each layer saves follows PyTorch's kernels:

    conv, linear       its input                      (for dW; the weight is a parameter)
    sparse conv        each output map's gathered inputs, Σ|row|·H·W (its index tensors are the module's buffers)
    average pools      their input (plain, and adaptive to any size but 1 × 1)
    global pools       nothing: adaptive pooling to 1 × 1 is aten's mean over H and W, which keeps only sizes
    subsample          its input and its window sum
    RBF                the B × out × in differences
    relu, tanh, sigmoid, softmax                      its output
    scaled tanh        the inner tanh's result (a tensor apart from its output)
    maxpool            its input and int64 indices, one per output
    batchnorm          its input, and a mean and inverse std per channel
    LRN                its input, two tensors of its size, and the squares padded to C + size − 1 channels
    dropout            a mask, one element per output at the activation dtype; on CUDA one byte (a bool mask);
                       at p = 0 nothing, its output being its input itself (aten returns the input)
    gelu, silu, relu6, hardswish, hardsigmoid, scale   its input
    mul                all its inputs
    layernorm          its input, and a mean and inverse std per normalised vector
    attention          its input (a copy where [N, B, D] cannot be viewed as a matrix: any batch above
                       one), the packed Q, K, V (3·N·D), the scaled Q (N·D), the attention weights
                       (heads·N·N, softmax's output and A·V's operand) and the heads' joined output (N·D)
    merges, flatten, views, classtoken, posembedding   nothing

Views hold no memory of their own: slice, select and permute always (dropout at
p = 0 is its input itself), reshape and flatten when PyTorch can view their input
(its strides are followed through the graph, with aten's own rule), and a saved
view counts its whole base tensor.
A reshape that cannot view copies; a linear layer whose input cannot be viewed
as a matrix saves the copy it multiplies. Element-wise layers keep a permuted
input's strides, layernorm over channels and attention (batch-first) hand back
transposed outputs; everything else is laid out contiguously.

A tensor several layers save (a ReLU's output, read by a conv and a pool) is
counted once, and only layers on a gradient path save anything. Inference peak:
the tensors alive at the worst step, each freed after its last reader.

Mixed precision (--amp fp16|bf16, torch.autocast): the parameters, their gradients and
the optimizer state stay fp32; each tensor takes the dtype autocast gives the op that
makes it, each type's `autocast` trait (core/layers/base.py's Autocast). A layer on the
lower-precision list (conv, linear, matmul, attention) copies each fp32 input to half and
saves the copy (autocast caches no activation casts: two such layers reading one tensor
make two copies), and saves half copies of its fp32 weights too (cached once per forward).

Activation checkpointing (--checkpoint, core/checkpoint.py's segments, as
torch.utils.checkpoint(use_reentrant=False) runs them): a checkpointed segment saves only
the tensors it reads from outside (its inputs, whole); its own saved tensors are made again
in the backward, one segment at a time, so the peak adds the largest segment's internals,
and the backward recomputes the segment's forward FLOPs.
"""

from __future__ import annotations

from dataclasses import dataclass

from convaudit.core.analysis import LayerResult, Report, gc_paused
from convaudit.core.layers import REGISTRY, elements
from convaudit.core.layers.base import Autocast, Saved
from convaudit.core.model import INPUT
from convaudit.core.strides import Strided, fresh
from convaudit.core.units import AMP_DTYPES, OPTIMIZER_STATES
from convaudit.errors import ConvauditError


@dataclass(frozen=True)
class RunMemory:
    """Bytes a forward (and backward) pass holds at its peak, roughly, for the memory guard."""

    params: int
    grads: int
    activations: int  # every layer's output, kept for backward
    activation_grads: int  # the gradient buffers of those outputs (backward only)
    input: int

    @property
    def total(self) -> int:
        return self.params + self.grads + self.activations + self.activation_grads + self.input


def run_memory(report: Report, backward: bool = True) -> RunMemory:
    """Parameters, their gradients, all outputs and (backward) the outputs' gradients, at the report's dtype."""
    size = dtype_size(report)
    totals = report.totals
    return RunMemory(
        params=totals.param_bytes,
        grads=totals.trainable_params * size if backward else 0,
        activations=totals.activation_bytes,
        activation_grads=totals.activation_bytes if backward else 0,
        input=elements(report.input) * report.batch * size,
    )


def dtype_size(report: Report) -> int:
    return report.layers[0].dtype_bytes if report.layers else 4


def layer_step_bytes(layer: LayerResult, backward: bool) -> int:
    """What one layer's step allocates beyond its resident weights: inputs and output, and for backward
    the output's gradient, the inputs' gradients (when needed) and the weights' gradients."""
    inputs = sum(elements(shape) for shape in layer.input_shapes) * layer.batch
    values = inputs + layer.activations
    if backward:
        values += layer.activations + (inputs if layer.needs_input_grad else 0) + layer.trainable_params
    return values * layer.dtype_bytes


# ---------------------------------------------------------------- training and inference

@dataclass(frozen=True)
class Memory:
    dtype: str
    batch: int
    optimizer: str
    params: int
    gradients: int
    optimizer_state: int
    saved_activations: int  # at the end of the forward: what backward will read
    saved_by_layer: dict[str, int]  # bytes each layer is the first to save
    inference_peak: int  # activation bytes alive at the worst inference step, input included
    inference_peak_layer: str
    amp: str | None = None  # autocast's half dtype (fp16, bf16), None without autocast
    checkpoint: str | None = None  # how segments were chosen (blocks, every:N, names)
    segments: int = 0  # checkpointed segments
    recompute_peak: int = 0  # the largest segment's own saved tensors, made again in the backward
    recompute_segment: str = ""  # its first layer
    recompute_flops: int = 0  # forward FLOPs the backward runs again (2·MACs of the checkpointed layers)
    recompute_other_ops: int = 0

    @property
    def training_total(self) -> int:
        return (self.params + self.gradients + self.optimizer_state + self.saved_activations
                + self.recompute_peak)

    @property
    def inference_total(self) -> int:
        return self.params + self.inference_peak


# ---------------------------------------------------------------- storage: which outputs are views

_STORAGE: list[tuple[Report, dict[str, Strided]]] = []  # the last report's, so each layer does not redo them


def storages(report: Report) -> dict[str, Strided]:
    """How every output sits in memory (each type's `storage`), in graph order."""
    if _STORAGE and _STORAGE[0][0] is report:
        return _STORAGE[0][1]
    result = {INPUT: fresh((report.batch, *report.input), INPUT)}
    for layer in report.layers:
        result[layer.name] = REGISTRY[layer.type].storage(layer, [result[source] for source in layer.spec.inputs])
    _STORAGE[:] = [(report, result)]
    return result


def _tensor_of(name: str, report: Report) -> str:
    """The tensor a layer's output lives in: its input's, for a view such as flatten."""
    return storages(report)[name].base


def is_view(layer: LayerResult, report: Report) -> bool:
    return storages(report)[layer.name].base != layer.name


def _tensor_bytes(name: str, report: Report, size: int) -> int:
    """Bytes of the tensor a name lives in (a view's base, whole)."""
    tensor = _tensor_of(name, report)
    shape = report.input if tensor == INPUT else report.layer(tensor).output_shape
    return elements(shape) * report.batch * size


# ---------------------------------------------------------------- autocast: each tensor's dtype

HALF_BYTES, FP32_BYTES = 2, 4


def autocast_rule(layer: LayerResult, cuda: bool = False) -> Autocast:
    """The layer type's `autocast` trait for this layer (CUDA's rule where its lists differ)."""
    trait = REGISTRY[layer.type].autocast
    return (trait(layer) if callable(trait) else trait).on(cuda)


def _cast(to: str, size: int) -> int:
    """Bytes per element of a tensor of `size` after a cast to 'half', 'fp32' or nothing ('input')."""
    return HALF_BYTES if to == "half" else FP32_BYTES if to == "fp32" else size


def _resolved(which: str, after_casts: list[int], default: int) -> int:
    """'half', 'fp32', or 'input': the widest input after casts (aten's type promotion)."""
    return _cast(which, max(after_casts, default=default))


def autocast_itemsizes(report: Report, cuda: bool = False) -> dict[str, int]:
    """Bytes per element of every layer's output (and the input's) under autocast, in graph order."""
    sizes = {INPUT: dtype_size(report)}
    for layer in report.layers:
        rule = autocast_rule(layer, cuda)
        after = [_cast(rule.casts, sizes[source]) for source in layer.spec.inputs]
        sizes[layer.name] = _resolved(rule.output, after, dtype_size(report))
    return sizes


class _Saving:
    """What a layer type's `saved` reads: its tensors as (key, bytes); tensors only it holds are keyed
    'layer#what'. Under autocast (`itemsizes`), every tensor at its own dtype, and the cast copies it saves."""

    def __init__(self, layer: LayerResult, report: Report, cuda: bool, itemsizes: dict[str, int] | None = None):
        self.layer, self.report, self.cuda = layer, report, cuda
        self.batch, self.size = layer.batch, layer.dtype_bytes
        self.itemsizes, self.rule = itemsizes, None
        if itemsizes is not None:
            self.rule = autocast_rule(layer, cuda)
            after = [_cast(self.rule.casts, itemsizes[source]) for source in layer.spec.inputs]
            self.size = _resolved(self.rule.extras, after, layer.dtype_bytes)

    def _itemsize(self, name: str) -> int:
        return self.layer.dtype_bytes if self.itemsizes is None else self.itemsizes[_tensor_of(name, self.report)]

    def output(self) -> list[Saved]:
        return [(_tensor_of(self.layer.name, self.report), self.layer.activations * self._itemsize(self.layer.name))]

    def inputs(self) -> list[Saved]:
        saved = []
        for source in self.layer.spec.inputs:
            have = self._itemsize(source)
            wanted = have if self.rule is None else _cast(self.rule.casts, have)
            if wanted != have:  # autocast's copy at the dtype the op runs in: the copy is what is saved
                values = elements(self.report.input) * self.batch if source == INPUT else \
                    self.report.layer(source).activations
                saved.append(self.extra(f"{source}@cast", values, wanted))
            else:
                saved.append((_tensor_of(source, self.report), _tensor_bytes(source, self.report, have)))
        return saved

    def extra(self, what: str, elements: int, itemsize: int | None = None) -> Saved:
        return f"{self.layer.name}#{what}", elements * (self.size if itemsize is None else itemsize)

    def storage(self, source: str) -> Strided:
        return storages(self.report)[source]

    def weight_copies(self) -> list[Saved]:
        """Under autocast, a lower-precision op's fp32 weights are copied to half (once per forward, shared by
        the layers that share them); its backward keeps the copies."""
        layer = self.layer
        if self.rule is None or self.rule.casts != "half" or not layer.weights or layer.dtype_bytes == HALF_BYTES:
            return []
        return [(f"{layer.spec.shares or layer.name}#weight@half", layer.weights * HALF_BYTES)]


def saved_tensors(layer: LayerResult, report: Report, cuda: bool = False,
                  itemsizes: dict[str, int] | None = None) -> list[Saved]:
    """(tensor key, bytes) that this layer saves for backward; shared tensors carry the producer's name.
    `itemsizes`: each tensor's bytes per element under autocast (autocast_itemsizes), None without it."""
    if not (layer.learns or layer.needs_input_grad):
        return []  # no gradient flows here: autograd records nothing
    saving = _Saving(layer, report, cuda, itemsizes)
    return REGISTRY[layer.type].saved(layer, saving) + saving.weight_copies()


def training_memory(report: Report, optimizer: str = "adam", cuda: bool = False, amp: str | None = None,
                    checkpoint: str | None = None) -> Memory:
    """Training memory at the report's dtype; `amp` (fp16, bf16): under autocast, with fp32 master weights;
    `checkpoint`: activation checkpointing over core/checkpoint.py's segments (blocks, every:N, names)."""
    if amp is not None and (amp not in AMP_DTYPES or report.dtype != "fp32"):
        raise ConvauditError(f"--amp {amp}: autocast keeps fp32 master weights: leave --dtype at fp32 "
                             f"(got {report.dtype}); --amp takes {' or '.join(AMP_DTYPES)}")
    with gc_paused():
        return _training_memory(report, optimizer, cuda, amp, checkpoint)


def _fresh_bytes(saved: list[Saved], seen: set[str]) -> int:
    """The bytes of the tensors not seen yet, marking them seen."""
    fresh = 0
    for key, nbytes in saved:
        if key not in seen:
            seen.add(key)
            fresh += nbytes
    return fresh


def _training_memory(report: Report, optimizer: str, cuda: bool, amp: str | None, checkpoint: str | None) -> Memory:
    from convaudit.core.checkpoint import boundary_inputs, checkpoint_segments

    size = dtype_size(report)
    trainable = report.totals.trainable_params
    itemsizes = autocast_itemsizes(report, cuda) if amp else None
    segments = checkpoint_segments(report, checkpoint) if checkpoint else ()
    first_of = {segment[0]: segment for segment in segments}
    inside = {name for segment in segments for name in segment}
    seen: set[str] = set()
    saved_by: dict[str, int] = {}
    for layer in report.layers:
        if layer.name in first_of:  # the segment's inputs, whole, as checkpoint saves them
            segment_inputs = [(_tensor_of(source, report), _tensor_bytes(
                source, report, size if itemsizes is None else itemsizes[_tensor_of(source, report)]))
                for source in boundary_inputs(report, first_of[layer.name])]
            saved_by[layer.name] = _fresh_bytes(segment_inputs, seen)
        elif layer.name in inside:
            saved_by[layer.name] = 0
        else:
            saved_by[layer.name] = _fresh_bytes(saved_tensors(layer, report, cuda, itemsizes), seen)
    # the backward remakes one segment's own saved tensors at a time (its inputs are already kept)
    recompute_peak, recompute_at = 0, ""
    for segment in segments:
        again = set(seen)
        nbytes = sum(_fresh_bytes(saved_tensors(report.layer(name), report, cuda, itemsizes), again)
                     for name in segment)
        if nbytes > recompute_peak:
            recompute_peak, recompute_at = nbytes, segment[0]
    recomputed = [report.layer(name) for name in inside]
    peak, at = inference_peak(report)
    return Memory(
        dtype=report.dtype, batch=report.batch, optimizer=optimizer,
        params=report.totals.param_bytes,
        gradients=trainable * size,
        optimizer_state=OPTIMIZER_STATES[optimizer] * trainable * size,
        saved_activations=sum(saved_by.values()),
        saved_by_layer=saved_by,
        inference_peak=peak, inference_peak_layer=at,
        amp=amp, checkpoint=checkpoint, segments=len(segments),
        recompute_peak=recompute_peak, recompute_segment=recompute_at,
        recompute_flops=sum(layer.flops for layer in recomputed),
        recompute_other_ops=sum(layer.other_ops for layer in recomputed),
    )


def inference_peak(report: Report) -> tuple[int, str]:
    """The most activation bytes alive at once in an inference pass, and the layer running then.

    A tensor lives from the layer that makes it to its last reader (the network's outputs to the end);
    at each step the layer's inputs and its new output are alive together.
    """
    size = dtype_size(report)
    order = {layer.name: index for index, layer in enumerate(report.layers)}
    last_read: dict[str, int] = {INPUT: -1}
    for layer in report.layers:
        for source in layer.spec.inputs:
            tensor = _tensor_of(source, report)
            last_read[tensor] = max(last_read.get(tensor, -1), order[layer.name])
    for output in report.spec.outputs:
        last_read[_tensor_of(output, report)] = len(report.layers)
    # one pass: a running sum, each tensor freed after step max(made, last read)
    freed_after: dict[int, list[int]] = {}
    current = elements(report.input) * report.batch * size
    freed_after.setdefault(max(last_read.get(INPUT, -1), 0), []).append(current)
    peak, at = current, INPUT
    for index, layer in enumerate(report.layers):
        if not is_view(layer, report):
            nbytes = layer.activations * size
            current += nbytes
            freed_after.setdefault(max(last_read.get(layer.name, -1), index), []).append(nbytes)
        if current > peak:
            peak, at = current, layer.name
        current -= sum(freed_after.pop(index, ()))
    return peak, at
