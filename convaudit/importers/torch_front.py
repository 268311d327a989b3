"""Read an nn.Module into convaudit layers: a meta-device trace (importers/trace.py) read operator by operator
(importers/reader.py, one handler per family in importers/aten.py).

The model runs once per batch size on the meta device, in eval mode: nothing is allocated, and a 100M-parameter
model costs what its Python forward costs. Layers are named from module paths (`layer3.1.conv2`), and checked
against the trace before the spec is written (importers/__init__.py).

Imported only when a target is imported; torch is imported inside the functions.
"""

from __future__ import annotations

from typing import Any

from convaudit.core.model import Untraced
from convaudit.importers.aten import HANDLERS
from convaudit.importers.graph import Imported
from convaudit.importers.operator_table import Unsupported
from convaudit.importers.opgraph import PARAMETER
from convaudit.importers.reader import Reader
from convaudit.importers.regions import COLLAPSE
from convaudit.importers.tidy import fuse_shuffles, name_layers


def read_module(model: Any, input_shape: tuple[int, ...], name: str, origin: dict[str, Any], title: str = "",
                partial: bool = False) -> Imported:
    """Trace `model` at `input_shape` (one sample, any rank) and read it into convaudit layers."""
    from convaudit.importers.trace import trace

    was_training = model.training
    model.eval()
    try:
        graph = trace(model, tuple(input_shape), partial=partial)
    finally:
        model.train(was_training)
    reader = Reader(graph, HANDLERS, COLLAPSE, partial)
    reader.walk()
    reader.finish()
    if graph.stopped is not None and not reader.layers:
        raise Unsupported(f"the trace stopped at {graph.stopped.line()}; nothing before it makes a layer, so "
                          "--partial has nothing to count")
    outputs = tuple(dict.fromkeys(reader.values[output.tensor].layer for output in graph.outputs
                                  if getattr(reader.values.get(output.tensor), "layer", None)))
    read = {source for layer in reader.layers for source in layer.inputs}
    dead = tuple(layer.name for layer in reader.layers if layer.name not in read and layer.name not in outputs)
    outputs += dead  # computed but never returned: they run, so they count, listed after the real outputs
    layers, outputs = fuse_shuffles(reader.layers, outputs)
    layers, outputs = name_layers(layers, outputs)
    parameters = graph.named(PARAMETER)
    used = set(reader.claimed)
    unused = sorted({tensor.name.rsplit(".", 1)[0] for tensor in parameters if tensor.name not in used})
    imported = Imported(
        name=name, input=tuple(input_shape), layers=layers, outputs=outputs, origin=origin, title=title,
        modules=dict(graph.modules),
        graph_params=sum(n for key, n in reader.claimed.items() if not reader.is_buffer(key)),
        model_params=sum(p.numel() for p in model.parameters()),
        unused=tuple(unused),
    )
    if graph.stopped is not None:  # what ran before a data-dependent operator (importers.cut)
        stop = graph.stopped
        imported.untraced = Untraced(stop.op, stop.module, stop.reason, graph.unreached)
        imported.notes.append("partial: " + imported.untraced.describe())
        imported.partial = True
    if reader.problems:
        imported.notes.append("partial: " + reader.problems_text().split(" (import --partial")[0])
        imported.partial = True
    return imported
