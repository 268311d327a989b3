"""What `split` and `bench --devices` need to know to divide a weight layer by channels: the record a layer
type's `column_split` trait returns (core/plan/ reads it; no type names there).

A column split gives each device some of the layer's output channels (Megatron's ColumnParallel); a row split
gives each device some of its input channels and sums the partial outputs (RowParallel).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ColumnSplit:
    """How output channels read input channels, for one layer at its input.

    groups: output group g reads only input group g (C_in/groups maps each; AlexNet's two halves); 1: every
        output channel reads every input channel.
    table: instead, output map j reads exactly the input maps table[j] (LeNet-5's C3).
    other_ops_per_input: in a row split, whether the layer's other ops divide with its input features (the
        RBF's subtractions x_j − w_ij) or run once, after the partial outputs are summed (bias adds).
    in_pinned: the spec's field that pins the input features (`in`), cleared in a device's share.
    """

    groups: int = 1
    table: tuple[tuple[int, ...], ...] | None = None
    other_ops_per_input: bool = False
    in_pinned: str | None = None

    @property
    def reads_every_channel(self) -> bool:
        """Every output reads every input channel: the layer can be row-split (each device its inputs)."""
        return self.groups == 1 and self.table is None

    def reads(self, outputs: Sequence[int], in_channels: int, out_channels: int) -> tuple[int, ...]:
        """The input channels these output channels read, ascending: their groups' maps, or their table rows."""
        if self.table is not None:
            return tuple(sorted({c for out in outputs for c in self.table[out]}))
        per_in, per_out = in_channels // self.groups, out_channels // self.groups
        touched = sorted({out // per_out for out in outputs})
        return tuple(c for g in touched for c in range(g * per_in, (g + 1) * per_in))

    def table_entries(self, outputs: Sequence[int]) -> int:
        """(input map, output map) pairs of a table that these outputs hold: Σ |table[j]|."""
        assert self.table is not None
        return sum(len(self.table[out]) for out in outputs)

    def cuts_a_group(self, outputs: int, out_channels: int) -> int | None:
        """The group size, when `outputs` output channels on one device would cut a group (None: whole groups)."""
        per_group = out_channels // self.groups
        return per_group if self.groups > 1 and outputs % per_group else None

    def share_params(self, params: Mapping[str, Any], outputs: Sequence[int] | None, reads: Sequence[int],
                     out_channels: int, bias: bool) -> dict[str, Any]:
        """The hyper-parameters of one device's part: `outputs` of the layer's output channels (None: a row
        split, every output from the input channels `reads`), built by the same builders as the whole layer.
        `bias`: whether this part adds the bias (a row split adds it once, on the first device)."""
        share = dict(params)
        if self.in_pinned is not None:
            share[self.in_pinned] = None  # the share's own input decides its features
        if "bias" in share:
            share["bias"] = bool(share["bias"]) and bias
        if outputs is None:  # row: every output, from this device's input channels
            if self.groups > 1:
                share["groups"] = 1
            return share
        share["out"] = len(outputs)
        if self.table is not None:
            position = {c: i for i, c in enumerate(reads)}
            share["connections"] = tuple(tuple(position[c] for c in self.table[out]) for out in outputs)
        elif self.groups > 1:
            share["groups"] = max(1, len(outputs) // (out_channels // self.groups))
        return share


# Declarations that several layer types make (each type still declares the trait itself, in one line):

def not_split_by_channels(self: Any, inputs: Sequence[tuple[int, ...]], params: Mapping[str, Any]) -> None:
    """`column_split` of a type that is never divided by output channels (it follows, merges or runs whole)."""
    return None


def no_parameters(self: Any, inputs: Sequence[tuple[int, ...]], params: Mapping[str, Any]) -> tuple[()]:
    """`parameter_shapes` of a type without parameters."""
    return ()
