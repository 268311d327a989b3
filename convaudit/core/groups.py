"""Layers grouped by block, for readable tables of deep graphs (`--depth N`), and main-path totals.

A layer's group at depth N is the first N parts of its name, split at the spec's
separator: `inception3a/b2/conv3x3` is in `inception3a` at depth 1 and
`inception3a/b2` at depth 2; `layer3.1.conv2` is in `layer3` at depth 1. Group
sums are plain sums of their layers, so the totals stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from convaudit.core.analysis import TOTAL_FIELDS, LayerResult, Report
from convaudit.core.layers import Shape
from convaudit.core.windows import WindowAxis


def group_key(name: str, separator: str, depth: int) -> str:
    return separator.join(name.split(separator)[:depth])


@dataclass(frozen=True)
class Group:
    """Several layers shown as one row: their sums, and the output of the last of them."""

    name: str
    layers: tuple[LayerResult, ...]
    label: str  # the block type(s) it holds, or the single layer's type

    @property
    def type(self) -> str:
        return self.label

    @property
    def output_shape(self) -> Shape:
        return self.layers[-1].output_shape

    @property
    def input_shapes(self) -> tuple[Shape, ...]:
        return self.layers[0].input_shapes

    @property
    def windows(self) -> tuple[WindowAxis, ...]:
        return tuple(axis for layer in self.layers for axis in layer.windows)

    @property
    def exact(self) -> bool:
        return all(layer.exact for layer in self.layers)

    @cached_property
    def inputs(self) -> tuple[str, ...]:
        """What the group reads from outside itself."""
        inside = {layer.name for layer in self.layers}
        outside = [source for layer in self.layers for source in layer.spec.inputs if source not in inside]
        return tuple(dict.fromkeys(outside))

    def __getattr__(self, name: str) -> int:
        if name in TOTAL_FIELDS:  # params, macs, flops, …: summed over the layers
            return sum(getattr(layer, name) for layer in self.layers)
        raise AttributeError(name)


def block_label(key: str, layers: list[LayerResult], separator: str) -> str:
    """'inception' for an instance; 'basic_down + basic ×2' for a repeat group; a lone layer's own type;
    'conv+relu' for part of a block."""
    if len(layers) == 1 and layers[0].name == key:
        return layers[0].type
    kinds: dict[str, set[str]] = {}
    for layer in layers:
        for instance, block in layer.spec.blocks:
            if instance == key or instance.startswith(key + separator):
                kinds.setdefault(block, set()).add(instance)
                break
    if not kinds:  # a part of a block (a branch): the types it holds
        return "+".join(dict.fromkeys(layer.type for layer in layers))
    return " + ".join(f"{block} ×{len(instances)}" if len(instances) > 1 else block
                      for block, instances in kinds.items())


def grouped(report: Report, depth: int) -> list[Group]:
    """Layers gathered into groups at `depth`, in the order each group first appears."""
    separator = report.spec.separator
    members: dict[str, list[LayerResult]] = {}
    for layer in report.layers:
        members.setdefault(group_key(layer.name, separator, depth), []).append(layer)
    return [Group(key, tuple(layers), block_label(key, layers, separator)) for key, layers in members.items()]


def main_and_side(report: Report) -> tuple[list[LayerResult], list[LayerResult]]:
    """Layers on the way to the main output, and the rest (auxiliary classifiers, extra outputs). A partial
    import's outputs are what the untraced rest of the model would read, none of them its output: no split."""
    if not report.spec.outputs or report.spec.untraced is not None:
        return list(report.layers), []
    main = report.spec.ancestors(report.spec.outputs[0])
    return ([layer for layer in report.layers if layer.name in main],
            [layer for layer in report.layers if layer.name not in main])
