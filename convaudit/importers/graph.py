"""The records both front ends fill: one imported layer, and the imported network.

Torch-free. A layer's `params` are what its YAML entry will say (ints, bools,
lists, decimal floats), already in our spec's vocabulary; shapes leave out the
batch, as everywhere in convaudit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from convaudit.core.model import Untraced


@dataclass
class Layer:
    name: str  # unique, from the module path: layer3.1.conv2, layer3.1.add, class_token
    type: str  # one of convaudit's layer types
    params: dict[str, Any]
    inputs: tuple[str, ...]  # layer names, or "input"
    scopes: tuple[str, ...] = ()  # enclosing module paths, outermost first (the layer's own module last)
    module: tuple[str, int] | None = None  # (module path, call index) when one module call is exactly this layer
    shape: tuple[int, ...] = ()  # traced output shape, batch dropped
    weights: int = 0  # parameter elements the graph feeds this layer
    buffers: int = 0  # buffer elements (running statistics) it reads
    op: str = ""  # the operator it came from, for messages
    named_after: str | None = None  # a parameter used outside modules that names the layer (class_token)
    leaf: bool = False  # the layer is (one call of) a module without children: it takes the module's path
    call: int | None = None  # which call of its innermost module made it (0: the first)
    placement: tuple[int | None, bool] = (0, False)  # where the traced output holds the batch (dim, folded)


@dataclass
class Imported:
    """A network read from a model: its layers in graph order, and where it came from."""

    name: str
    input: tuple[int, ...]
    layers: list[Layer]
    outputs: tuple[str, ...]
    origin: dict[str, Any]  # {"from": target, "args": {...}}: written as the spec's `imported:`
    title: str = ""
    source: str = ""
    modules: dict[str, str] = field(default_factory=dict)  # module path -> class name, for block names
    notes: list[str] = field(default_factory=list)
    graph_params: int = 0  # parameter elements the graph reads
    model_params: int | None = None  # sum(p.numel()) over the module's parameters, where there is a module
    unused: tuple[str, ...] = ()  # modules whose parameters the traced graph never reads (eval-only paths)
    partial: bool = False  # some operators could not be counted (kept as `uncounted` layers, --partial)
    untraced: Untraced | None = None  # the trace stopped before the model's end (--partial): what is left out
