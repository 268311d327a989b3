"""Two analyses side by side, layer by layer: what changed in shape, parameters and MACs (pure)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from convaudit.core.analysis import LayerResult, Report

COMPARED = ("output_shape", "params", "macs")


@dataclass(frozen=True)
class Pair:
    """One row of a diff: a layer of the left network, of the right one, or of both."""

    left: LayerResult | None
    right: LayerResult | None

    @property
    def name(self) -> str:
        if self.left and self.right and self.left.name != self.right.name:
            return f"{self.left.name} / {self.right.name}"
        return (self.left or self.right).name  # type: ignore[union-attr]

    @property
    def status(self) -> str:
        if self.left is None:
            return "added"
        if self.right is None:
            return "removed"
        return "changed" if self.changes else "same"

    @property
    def changes(self) -> tuple[str, ...]:
        if self.left is None or self.right is None:
            return ()
        return tuple(key for key in COMPARED if getattr(self.left, key) != getattr(self.right, key))


def align(left: Report, right: Report) -> list[Pair]:
    """Pair layers by name, keeping order; unmatched stretches are paired by position, the rest added or removed."""
    a, b = list(left.layers), list(right.layers)
    matcher = difflib.SequenceMatcher(a=[x.name for x in a], b=[x.name for x in b], autojunk=False)
    pairs: list[Pair] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            pairs += [Pair(x, y) for x, y in zip(a[i1:i2], b[j1:j2], strict=True)]
            continue
        ours, theirs = a[i1:i2], b[j1:j2]
        common = min(len(ours), len(theirs))
        pairs += [Pair(x, y) for x, y in zip(ours[:common], theirs[:common], strict=True)]
        pairs += [Pair(x, None) for x in ours[common:]] + [Pair(None, y) for y in theirs[common:]]
    return pairs
