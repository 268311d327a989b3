"""Memory for training and inference, estimated from the analysis alone (pure: no torch).

Training holds parameters, their gradients, the optimizer's state (SGD none,
momentum one buffer, Adam two, per trainable parameter) and the tensors
autograd saves for backward. What each layer saves follows PyTorch's kernels:

    conv, linear       its input                      (for dW; the weight is a parameter)
    sparse conv        each output map's gathered inputs, Σ|row|·H·W, and int64 indices (how our module runs it)
    average pools      their input (plain, adaptive and global)
    subsample          its input and its window sum
    RBF                the B × out × in differences
    relu, tanh, sigmoid, softmax                      its output
    scaled tanh        the inner tanh's result (a tensor apart from its output)
    maxpool            its input and int64 indices, one per output
    batchnorm          its input, and a mean and inverse std per channel
    LRN                its input, two tensors of its size, and the squares padded to C + size − 1 channels
    dropout            a mask, one element per output at the activation dtype (CUDA keeps one byte)
    merges, flatten    nothing

A tensor several layers save (a ReLU's output, read by a conv and a pool) is
counted once, and only layers on a gradient path save anything. Inference peak:
the tensors alive at the worst step, each freed after its last reader.
"""

from __future__ import annotations

from dataclasses import dataclass

from convaudit.core.analysis import LayerResult, Report
from convaudit.core.layers import elements
from convaudit.core.model import INPUT

OPTIMIZER_STATES = {"sgd": 0, "momentum": 1, "adam": 2}  # buffers per trainable parameter
INDEX_BYTES = 8  # int64 indices of max-pooling
ALIASES = ("flatten",)  # views of their input: no new memory


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


def _tensor_of(name: str, report: Report) -> str:
    """The tensor a layer's output lives in: its input's, for a view such as flatten."""
    layers = {layer.name: layer for layer in report.layers}
    while name in layers and layers[name].type in ALIASES:
        name = layers[name].spec.inputs[0]
    return name


def saved_tensors(layer: LayerResult, report: Report) -> list[tuple[str, int]]:
    """(tensor key, bytes) that this layer saves for backward; shared tensors carry the producer's name."""
    if not (layer.trainable_params or layer.needs_input_grad):
        return []  # no gradient flows here: autograd records nothing
    size, batch = layer.dtype_bytes, layer.batch
    inputs = [(_tensor_of(source, report), elements(shape) * batch * size)
              for source, shape in zip(layer.spec.inputs, layer.input_shapes, strict=True)]
    output = (_tensor_of(layer.name, report), layer.activations * size)
    extra = f"{layer.name}#"  # tensors only this layer holds
    kind = layer.type
    table = layer.spec.params.get("connections")
    if kind == "conv" and table is not None:
        # The PyTorch module gathers each output map's inputs into a copy (and an int64 index per read map).
        reads = sum(len(row) for row in table)
        c, h, w = layer.input_shapes[0]
        return [(extra + "gathered", reads * h * w * batch * size), (extra + "index", reads * INDEX_BYTES)]
    if kind in ("conv", "linear", "avgpool", "adaptiveavgpool", "globalavgpool"):
        return inputs[:1]
    if kind == "subsample":
        return inputs[:1] + [(extra + "sum", layer.activations * size)]
    if kind == "rbf":
        return [(extra + "differences", layer.outcome.in_features * layer.output_shape[0] * batch * size)]
    if kind in ("relu", "tanh", "sigmoid", "softmax"):
        return [output]
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
    if kind == "dropout":
        return [(extra + "mask", layer.activations * size)]
    return []  # pools, merges, flatten


def training_memory(report: Report, optimizer: str = "adam") -> Memory:
    size = dtype_size(report)
    trainable = report.totals.trainable_params
    seen: set[str] = set()
    saved_by: dict[str, int] = {}
    for layer in report.layers:
        fresh = 0
        for key, nbytes in saved_tensors(layer, report):
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
    nbytes = {INPUT: elements(report.input) * report.batch * size}
    nbytes.update({layer.name: layer.activations * size for layer in report.layers})
    alive = {INPUT}
    peak, at = nbytes[INPUT], INPUT
    for index, layer in enumerate(report.layers):
        if layer.type not in ALIASES:
            alive.add(layer.name)
        current = sum(nbytes[t] for t in alive)
        if current > peak:
            peak, at = current, layer.name
        alive = {t for t in alive if last_read.get(t, -1) > index}
    return peak, at
