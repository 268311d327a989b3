"""Two analyses side by side, layer by layer: what changed in shape, parameters and MACs (pure)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from convaudit.core.analysis import LayerResult, Report
from convaudit.core.checks import Finding, check
from convaudit.errors import ConvauditError

T = TypeVar("T")

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


@dataclass(frozen=True)
class ReportDiff:
    """Two analyses aligned layer by layer, with what `check` finds on each side."""

    left: Report
    right: Report
    pairs: tuple[Pair, ...]
    left_findings: tuple[Finding, ...]
    right_findings: tuple[Finding, ...]


def compare_reports(left: Report, right: Report) -> ReportDiff:
    return ReportDiff(left, right, tuple(align(left, right)), tuple(check(left)), tuple(check(right)))


def validate_diff(second_spec: bool, sizes: Sequence[object], strategies: Sequence[object],
                  device_counts: Sequence[object], plan_options: Mapping[str, object]) -> bool:
    """Check what `diff` was asked to compare: each option once (both sides) or twice (A, then B); two specs,
    or one at two inputs, strategies or device counts. True when it compares split plans."""
    for option, given in (("--input", sizes), ("--strategy", strategies), ("--devices", device_counts)):
        if len(given) > 2:
            raise ConvauditError(f"{option}: give it once (both sides) or twice (A then B)")
    planning = bool(strategies or device_counts)
    if not planning and any(value is not None for value in plan_options.values()):
        names = list(plan_options)
        raise ConvauditError(f"{', '.join(names[:-1])} and {names[-1]} compare split plans: "
                             "give --strategy or --devices too")
    if not second_spec and 2 not in (len(sizes), len(strategies), len(device_counts)):
        raise ConvauditError("diff needs two specs, or one spec and two --input sizes"
                             + (", --strategy or --devices" if planning else ""))
    return planning


def per_side(values: Sequence[T], default: T) -> tuple[T, T]:
    """An option given once applies to both sides; twice, A then B; never, the default on both."""
    return (values[0], values[-1]) if values else (default, default)
