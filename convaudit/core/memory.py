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

import functools
from dataclasses import dataclass

from convaudit.core.analysis import LayerResult, Report, gc_paused
from convaudit.core.layers import elements, normalised_dim
from convaudit.core.model import INPUT
from convaudit.core.units import OPTIMIZER_STATES

INDEX_BYTES = 8  # int64 indices of max-pooling
MASK_BYTES = 1  # dropout's bool mask on CUDA (fused native_dropout); the CPU keeps it at the dtype
ALIASES = ("flatten", "slice", "select", "permute", "reshape", "dropout")  # outputs that may be views (layouts)


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


# ---------------------------------------------------------------- layouts: which outputs are views

@dataclass(frozen=True)
class Layout:
    """A tensor as PyTorch holds it, batch included: its shape, strides, and the layer whose storage it is."""

    shape: tuple[int, ...]
    strides: tuple[int, ...]
    base: str  # the layer (or input) that owns the storage: itself unless it is a view


def contiguous(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def view_strides(shape: tuple[int, ...], strides: tuple[int, ...], new: tuple[int, ...]) -> tuple[int, ...] | None:
    """The strides of `new` as a view of a tensor, or None where PyTorch's reshape must copy
    (aten's computeStride: merged dimensions must be laid out one inside the other)."""
    result = [0] * len(new)
    view_d, chunk_stride = len(new) - 1, strides[-1]
    tensor_numel = view_numel = 1
    for d in range(len(shape) - 1, -1, -1):
        tensor_numel *= shape[d]
        if d == 0 or (shape[d - 1] != 1 and strides[d - 1] != tensor_numel * chunk_stride):
            while view_d >= 0 and (view_numel < tensor_numel or new[view_d] == 1):
                result[view_d] = view_numel * chunk_stride
                view_numel *= new[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return None
            if d > 0:
                chunk_stride, tensor_numel, view_numel = strides[d - 1], 1, 1
    return tuple(result) if view_d == -1 else None


def dense(layout: Layout) -> bool:
    """Non-overlapping and dense (a permutation of a contiguous tensor): element-wise ops keep its strides."""
    return _dense(layout.shape, layout.strides)


@functools.lru_cache(maxsize=1024)  # a network repeats a few shapes many times
def _dense(shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    dims = sorted((stride, size) for size, stride in zip(shape, strides, strict=True) if size != 1)
    step = 1
    for stride, size in dims:
        if stride != step:
            return False
        step *= size
    return True


KEEPS_LAYOUT = ("gelu", "silu", "swish", "relu6", "hardswish", "hardsigmoid", "relu", "tanh", "sigmoid",
                "scaledtanh", "scale", "dropout", "mul", "posembedding", "add")  # the first input's, when dense


def _layout(layer: LayerResult, inputs: list[Layout]) -> Layout:
    """How PyTorch lays out this layer's output (our builder's modules)."""
    shape = (layer.batch, *layer.output_shape)
    first, kind, params = inputs[0], layer.type, layer.spec.params
    if kind == "slice":
        return Layout(shape, first.strides, first.base)
    if kind == "select":
        return Layout(shape, first.strides[:1] + first.strides[2:], first.base)
    if kind == "permute":
        return Layout(shape, (first.strides[0],) + tuple(first.strides[i + 1] for i in params["order"]), first.base)
    if kind == "dropout" and params["p"] == 0:  # aten's dropout returns its input tensor itself
        return first
    if kind in ("reshape", "flatten"):
        strides = view_strides(first.shape, first.strides, shape)
        return Layout(shape, strides, first.base) if strides is not None else Layout(shape, contiguous(shape),
                                                                                       layer.name)
    if kind in KEEPS_LAYOUT and first.shape == shape and dense(first):
        return Layout(shape, first.strides, layer.name)
    if kind == "layernorm" and params["over"] == "channels" and len(shape) > 2:
        moved = contiguous(shape[:1] + shape[2:] + shape[1:2])  # normalised with C last, then moved back
        return Layout(shape, (moved[0], moved[-1]) + moved[1:-1], layer.name)
    if kind == "attention":  # batch_first: computed as [N, B, D] and transposed back
        n, d = layer.output_shape
        return Layout(shape, (d, layer.batch * d, 1), layer.name)
    return Layout(shape, contiguous(shape), layer.name)


_LAYOUTS: list[tuple[Report, dict[str, Layout]]] = []  # the last report's, so each layer does not redo them


def layouts(report: Report) -> dict[str, Layout]:
    """Every output's layout, in graph order."""
    if _LAYOUTS and _LAYOUTS[0][0] is report:
        return _LAYOUTS[0][1]
    shape = (report.batch, *report.input)
    result = {INPUT: Layout(shape, contiguous(shape), INPUT)}
    for layer in report.layers:
        result[layer.name] = _layout(layer, [result[source] for source in layer.spec.inputs])
    _LAYOUTS[:] = [(report, result)]
    return result


def _tensor_of(name: str, report: Report) -> str:
    """The tensor a layer's output lives in: its input's, for a view such as flatten."""
    return layouts(report)[name].base


def is_view(layer: LayerResult, report: Report) -> bool:
    return layouts(report)[layer.name].base != layer.name


def _tensor_bytes(name: str, report: Report, size: int) -> int:
    """Bytes of the tensor a name lives in (a view's base, whole)."""
    tensor = _tensor_of(name, report)
    shape = report.input if tensor == INPUT else report.layer(tensor).output_shape
    return elements(shape) * report.batch * size


def _linear_copies(layer: LayerResult, report: Report) -> bool:
    """Whether a linear layer must copy its input into the matrix it multiplies (a view cannot fold it)."""
    source = layouts(report)[layer.spec.inputs[0]]
    if layer.spec.params.get("flatten", True):
        matrix = (layer.batch, elements(layer.input_shapes[0]))
    else:
        matrix = (elements(source.shape) // source.shape[-1], source.shape[-1])
    return len(source.shape) > 2 and view_strides(source.shape, source.strides, matrix) is None


def saved_tensors(layer: LayerResult, report: Report, cuda: bool = False) -> list[tuple[str, int]]:
    """(tensor key, bytes) that this layer saves for backward; shared tensors carry the producer's name."""
    if not (layer.trainable_params or layer.needs_input_grad):
        return []  # no gradient flows here: autograd records nothing
    size, batch = layer.dtype_bytes, layer.batch
    kind = layer.type
    if kind in ("relu", "tanh", "sigmoid", "softmax"):  # before the inputs are looked up: they keep none
        return [(_tensor_of(layer.name, report), layer.activations * size)]
    inputs = [(_tensor_of(source, report), _tensor_bytes(source, report, size)) for source in layer.spec.inputs]
    extra = f"{layer.name}#"  # tensors only this layer holds
    table = layer.spec.params.get("connections")
    if kind == "conv" and table is not None:
        # The PyTorch module gathers each output map's inputs into a copy; the indices are buffers made once.
        reads = sum(len(row) for row in table)
        c, h, w = layer.input_shapes[0]
        return [(extra + "gathered", reads * h * w * batch * size)]
    if kind == "linear" and _linear_copies(layer, report):
        return [(extra + "matrix", elements(layer.input_shapes[0]) * batch * size)]  # reshaped to a matrix: a copy
    if kind == "globalavgpool" or (kind == "adaptiveavgpool" and layer.output_shape[1:] == (1, 1)):
        return []  # aten pools to 1 × 1 as input.mean((-1, -2)), whose backward keeps only sizes
    if kind in ("conv", "linear", "avgpool", "adaptiveavgpool"):
        return inputs[:1]
    if kind == "subsample":
        return inputs[:1] + [(extra + "sum", layer.activations * size)]
    if kind == "rbf":
        return [(extra + "differences", layer.outcome.in_features * layer.output_shape[0] * batch * size)]
    if kind == "scaledtanh":  # A·tanh(S·x): tanh keeps its own result, before the scaling by A
        return [(extra + "tanh", layer.activations * size)]
    if kind == "maxpool":
        return inputs[:1] + [(extra + "indices", layer.activations * INDEX_BYTES)]
    if kind == "batchnorm":
        return inputs[:1] + [(extra + "stats", 2 * layer.output_shape[0] * size)]
    if kind == "lrn":
        c, h, w = layer.input_shapes[0]
        padded = (c + layer.spec.params["size"] - 1) * h * w * batch * size
        return inputs[:1] + [(extra + "terms", 2 * layer.activations * size), (extra + "squares", padded)]
    if kind == "dropout" and layer.spec.params["p"] == 0:
        return []  # the input passed through: nothing recorded
    if kind == "dropout":
        return [(extra + "mask", layer.activations * (MASK_BYTES if cuda else size))]
    if kind in ("gelu", "silu", "swish", "relu6", "hardswish", "hardsigmoid", "scale"):
        return inputs[:1]
    if kind == "mul":
        return inputs
    if kind == "layernorm":
        shape = layer.input_shapes[0]
        vectors = elements(shape) // normalised_dim(shape, layer.spec.params["over"])
        return inputs[:1] + [(extra + "stats", 2 * vectors * batch * size)]
    if kind == "attention":
        (n, d), heads = layer.input_shapes[0], layer.spec.params["heads"]
        # The in-projection multiplies x transposed to [N, B, D] as an (N·B) × D matrix: a copy unless viewable.
        source = layouts(report)[layer.spec.inputs[0]]
        transposed = ((n, batch, d), (source.strides[1], source.strides[0], source.strides[2]))
        if view_strides(*transposed, (n * batch, d)) is None:
            inputs = [(extra + "input", n * d * batch * size)]
        return inputs[:1] + [(extra + "qkv", 3 * n * d * batch * size), (extra + "q", n * d * batch * size),
                             (extra + "weights", heads * n * n * batch * size),
                             (extra + "context", n * d * batch * size)]
    return []  # pools, merges, flatten, views, classtoken, posembedding


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
