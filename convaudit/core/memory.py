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
"""

from __future__ import annotations

from dataclasses import dataclass

from convaudit.core.analysis import LayerResult, Report, gc_paused
from convaudit.core.layers import REGISTRY, elements
from convaudit.core.layers.base import Saved
from convaudit.core.model import INPUT
from convaudit.core.strides import Strided, fresh
from convaudit.core.units import OPTIMIZER_STATES


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
    saved_activations: int
    saved_by_layer: dict[str, int]  # bytes each layer is the first to save
    inference_peak: int  # activation bytes alive at the worst inference step, input included
    inference_peak_layer: str

    @property
    def training_total(self) -> int:
        return self.params + self.gradients + self.optimizer_state + self.saved_activations

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


class _Saving:
    """What a layer type's `saved` reads: its tensors as (key, bytes); tensors only it holds are keyed
    'layer#what'."""

    def __init__(self, layer: LayerResult, report: Report, cuda: bool):
        self.layer, self.report, self.cuda = layer, report, cuda
        self.batch, self.size = layer.batch, layer.dtype_bytes

    def output(self) -> list[Saved]:
        return [(_tensor_of(self.layer.name, self.report), self.layer.activations * self.size)]

    def inputs(self) -> list[Saved]:
        return [(_tensor_of(source, self.report), _tensor_bytes(source, self.report, self.size))
                for source in self.layer.spec.inputs]

    def extra(self, what: str, elements: int, itemsize: int | None = None) -> Saved:
        return f"{self.layer.name}#{what}", elements * (self.size if itemsize is None else itemsize)

    def storage(self, source: str) -> Strided:
        return storages(self.report)[source]


def saved_tensors(layer: LayerResult, report: Report, cuda: bool = False) -> list[Saved]:
    """(tensor key, bytes) that this layer saves for backward; shared tensors carry the producer's name."""
    if not (layer.learns or layer.needs_input_grad):
        return []  # no gradient flows here: autograd records nothing
    return REGISTRY[layer.type].saved(layer, _Saving(layer, report, cuda))


def training_memory(report: Report, optimizer: str = "adam", cuda: bool = False) -> Memory:
    with gc_paused():
        return _training_memory(report, optimizer, cuda)


def _training_memory(report: Report, optimizer: str, cuda: bool) -> Memory:
    size = dtype_size(report)
    trainable = report.totals.trainable_params
    seen: set[str] = set()
    saved_by: dict[str, int] = {}
    for layer in report.layers:
        fresh = 0
        for key, nbytes in saved_tensors(layer, report, cuda):
            if key not in seen:
                seen.add(key)
                fresh += nbytes
        saved_by[layer.name] = fresh
    peak, at = inference_peak(report)
    return Memory(
        dtype=report.dtype, batch=report.batch, optimizer=optimizer,
        params=report.totals.param_bytes,
        gradients=trainable * size,
        optimizer_state=OPTIMIZER_STATES[optimizer] * trainable * size,
        saved_activations=sum(saved_by.values()),
        saved_by_layer=saved_by,
        inference_peak=peak, inference_peak_layer=at,
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
