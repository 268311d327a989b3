"""Memory a run needs, estimated from the analysis alone (pure: no torch)."""

from __future__ import annotations

from dataclasses import dataclass

from .analysis import LayerResult, Report
from .layers import elements


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
    size = report.layers[0].dtype_bytes if report.layers else 4
    totals = report.totals
    return RunMemory(
        params=totals.param_bytes,
        grads=totals.trainable_params * size if backward else 0,
        activations=totals.activation_bytes,
        activation_grads=totals.activation_bytes if backward else 0,
        input=elements(report.input) * report.batch * size,
    )


def layer_step_bytes(layer: LayerResult, backward: bool) -> int:
    """What one layer's step allocates beyond its resident weights: inputs and output, and for backward
    the output's gradient, the inputs' gradients (when needed) and the weights' gradients."""
    inputs = sum(elements(shape) for shape in layer.input_shapes) * layer.batch
    values = inputs + layer.activations
    if backward:
        values += layer.activations + (inputs if layer.needs_input_grad else 0) + layer.trainable_params
    return values * layer.dtype_bytes
