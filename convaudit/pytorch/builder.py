"""Build a real torch.nn.Module from an analysed spec. Imported only by verify and bench.

Every layer becomes one module in `SpecModel.layers`, built by its type's `module` trait from the namespace
in pytorch/modules.py and keyed by a sanitised layer name, so per-module counts from fvcore and
FlopCounterMode map back to spec layers.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from convaudit.core.analysis import Report, runs_first
from convaudit.core.layers import REGISTRY, Shape
from convaudit.core.layers.base import LEADING, Placement, trait_of
from convaudit.core.model import INPUT, LayerSpec
from convaudit.pytorch import modules

TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}



def build_layer(layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...] | None = None
                ) -> nn.Module:
    """The torch module of one spec layer, as its type builds it (the type's `module` trait); `placements` say where
    each input holds the batch (first, unless tensor code moved it)."""
    kind, placements = REGISTRY[layer.type], placements or (LEADING,) * len(inputs)
    if trait_of(kind, "batch_rule", layer.params) == "leading" and all(runs_first(p) for p in placements):
        inputs = tuple(shape[1:] for shape in inputs)  # its first dimension is all the batch it runs at
    return kind.module(modules, layer, inputs, placements)


# ------------------------------------------------------------------ the model

def module_key(name: str, taken: set[str]) -> str:
    """A ModuleDict key for a layer name: letters, digits and _ only (fvcore splits scopes on '.' and '/')."""
    key = re.sub(r"\W", "_", name) or "layer"
    if key[0].isdigit():
        key = f"l_{key}"
    base, index = key, 1
    while key in taken:
        index += 1
        key = f"{base}_{index}"
    taken.add(key)
    return key


class SpecModel(nn.Module):
    """Runs spec layers in graph order; `keys` maps each spec layer name to its module key."""

    def __init__(self, plan: list[tuple[str, str, tuple[str, ...]]], modules: dict[str, nn.Module],
                 outputs: tuple[str, ...]):
        super().__init__()
        self.layers = nn.ModuleDict(modules)
        self.plan = plan  # (module key, layer name, input names)
        self.outputs = outputs
        self.keys = {name: key for key, name, _ in plan}

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        values = {INPUT: x}
        for key, name, sources in self.plan:  # a source reads no layer: it gets the input, for the batch size
            values[name] = self.layers[key](*((values[source] for source in sources) if sources else (x,)))
        results = tuple(values[name] for name in self.outputs if name in values)
        return results[0] if len(results) == 1 else results

    def module_for(self, name: str) -> nn.Module:
        return self.layers[self.keys[name]]


def build_model(report: Report) -> SpecModel:
    """The analysed layers, plus the layer the analysis stopped at (so PyTorch can raise its own error)."""
    layers = [(result.spec, result.input_shapes, result.placements) for result in report.layers]
    if report.halted:
        layers.append((report.halted.layer, report.halted.input_shapes, None))
    taken: set[str] = set()
    plan, built = [], {}
    keys: dict[str, str] = {}
    for spec, input_shapes, placements in layers:
        key = keys[spec.name] = module_key(spec.name, taken)
        # a layer that shares another's weights calls that very module again (parameters() counts it once)
        shared = built.get(keys.get(spec.shares, "")) if spec.shares is not None else None
        built[key] = shared if shared is not None else build_layer(spec, input_shapes, placements)
        plan.append((key, spec.name, spec.inputs))
    outputs = report.spec.outputs if not report.halted else (report.halted.layer.name,)
    return SpecModel(plan, built, outputs)


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(trainable, non-trainable): parameters with and without requires_grad; their sum is
    sum(p.numel() for p in module.parameters()), the headline count. LeNet's fixed RBF centres are
    parameters with requires_grad=False, so they count here as non-trainable."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    fixed = sum(p.numel() for p in module.parameters() if not p.requires_grad)
    return trainable, fixed


def count_buffers(module: nn.Module) -> int:
    """Buffers: batchnorm's running mean and variance. `num_batches_tracked` is a counter and is left out."""
    return sum(b.numel() for m in module.modules() for name, b in m._buffers.items()  # non-persistent: indices
               if b is not None and name != "num_batches_tracked" and name not in m._non_persistent_buffers_set)
