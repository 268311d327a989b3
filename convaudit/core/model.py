"""The spec model: frozen records of a network and its layers. Parsing lives in parser.py.

A network is a directed acyclic graph of layers. A layer reads the previous
layer's output unless it names its inputs with `from:`, so a plain list of
layers is a chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from convaudit.core.fields import Int, Shape
from convaudit.errors import ConvauditError, Where


def describe_axes(count: int) -> str:
    return {1: "length", 2: "height and width", 3: "depth, height and width"}[count]

INPUT = "input"  # the name of the network's input in `from:`

EXPECT_FIELDS = {
    "shape": Shape(),
    "params": Int(0),
    "trainable_params": Int(0),
    "weights": Int(0),
    "biases": Int(0),
    "macs": Int(0),
    "flops": Int(0),
    "activations": Int(1),
}


@dataclass(frozen=True)
class LayerSpec:
    """One layer as the spec gives it, hyper-parameters normalised and defaults filled."""

    name: str
    type: str
    params: Mapping[str, Any]
    inputs: tuple[str, ...]
    expect: Mapping[str, Any]
    where: Where  # the layer's own line (inside a block: the block definition's)
    key_lines: Mapping[str, int] = field(default_factory=dict)
    blocks: tuple[tuple[str, str], ...] = ()  # enclosing (instance, block type), outermost first
    expect_where: Where | None = None  # where `expect:` was written, when on a block instance
    shares: str | None = None  # the layer whose weights it uses (a module called twice)

    def where_key(self, key: str | None) -> Where:
        if key is None:
            return self.where
        if key == "expect" and self.expect_where is not None:
            return self.expect_where
        base = self.where.key or ""
        return Where(self.where.file, self.key_lines.get(key, self.where.line), f"{base}.{key}" if base else key)


def in_module(module: str) -> str:
    """Where in a model an operator ran: "in module 'rpn'", or "in the model's own forward" for ""."""
    return f"in module '{module}'" if module else "in the model's own forward"


@dataclass(frozen=True)
class Untraced:
    """The part of an imported model its spec leaves out: the trace stopped at operator `op` (`reason`), so
    nothing the model runs from there on is in the spec; `unreached`: the outermost modules that had not run."""

    op: str  # "aten.nonzero.default"
    module: str  # the module path at the stop, "" for the model's own forward
    reason: str
    unreached: tuple[str, ...] = ()

    def describe(self) -> str:
        unreached = f"; modules that had not run: {', '.join(self.unreached)}" if self.unreached else ""
        return (f"what the model runs from {self.op} {in_module(self.module)} on, where its trace stopped "
                f"({self.reason}){unreached}: params, MACs, FLOPs, other ops and memory are those of the part "
                "before it")


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    input: tuple[int, ...]  # [C, L], [C, H, W] or [C, D, H, W]
    layers: tuple[LayerSpec, ...]  # topological order
    title: str = ""
    source: str = ""
    file: str = "<spec>"
    aliases: tuple[str, ...] = ()
    notes: str = ""
    outputs: tuple[str, ...] = ()  # the first is the main output
    separator: str = "/"  # between an instance's name and its layers' names
    variant: str | None = None
    variants: Mapping[str, str] = field(default_factory=dict)  # name -> description
    input_where: Where = Where()
    raw: Mapping[str, Any] = field(default_factory=dict)  # the whole document
    claims: tuple[Any, ...] = ()  # claims.Claim: what sources state about this network
    placement: Mapping[str, int] = field(default_factory=dict)  # layers pinned whole to a device (split)
    placement_where: Where = Where()
    untraced: Untraced | None = None  # an imported spec's trace stopped early (import --partial): what it leaves out

    @property
    def label(self) -> str:
        return f"{self.name}+{self.variant}" if self.variant else self.name

    def with_input(self, *sizes: int) -> NetworkSpec:
        """The network at another input size: one size for H and W (L of a 1-D input), [H, W], or all three axes
        of a 3-D input ([D, H, W]); the axes not given keep their size (a video's frames, say)."""
        spatial = self.input[1:]
        if len(sizes) == 1:
            sizes = sizes * min(2, len(spatial))
        if len(sizes) > len(spatial):
            if len(spatial) == 1 and len(set(sizes)) == 1:  # N given as N×N (the CLI's 224 is 224×224)
                sizes = sizes[:1]
            else:
                raise ConvauditError(f"{self.label} takes {len(spatial)} input size{'s' if len(spatial) > 1 else ''} "
                                     f"({describe_axes(len(spatial))}), got {len(sizes)}: "
                                     f"{'×'.join(map(str, sizes))}")
        return replace(self, input=(self.input[0], *spatial[:len(spatial) - len(sizes)], *sizes))

    @property
    def spatial_axes(self) -> int:
        return len(self.input) - 1

    def layer(self, name: str) -> LayerSpec:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def ancestors(self, name: str) -> set[str]:
        """`name` and every layer it depends on."""
        inputs = {layer.name: layer.inputs for layer in self.layers}
        found, todo = set(), [name]
        while todo:
            current = todo.pop()
            if current in found or current == INPUT:
                continue
            found.add(current)
            todo.extend(inputs.get(current, ()))
        return found

    @property
    def is_chain(self) -> bool:
        """Every layer reads the one before it: a plain sequential network."""
        previous = INPUT
        for layer in self.layers:
            if layer.inputs != (previous,):
                return False
            previous = layer.name
        return True
