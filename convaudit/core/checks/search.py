"""Input sizes near the current one at which every layer divides exactly and every merge matches, and those where
every pinned `in:` matches too: what fixes a division or merge finding, and what fixes a pin finding.

Spatial axes of equal size are searched together (a square image's H and W, a video's H and W), each other axis
alone, the rest keeping their size. The one-pass model (checks/exact.py) says which sizes work; where it does not
apply, a full analysis per size tried, within a budget. Every size offered is re-analysed whole first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from convaudit.core.analysis import Report, analyze
from convaudit.core.checks.exact import ExactModel, Never, searched_groups
from convaudit.core.model import NetworkSpec
from convaudit.core.windows import axis_names, joined

SEARCH_SPAN = 256  # input sizes tried on each side when looking for an exact one
BRUTE_FORCE_BUDGET = 2_000_000  # layer analyses the slow search may spend (512 sizes of a 3,900-layer network)
AXIS_WORDS = {"L": "length", "D": "depth", "H": "height", "W": "width"}


@dataclass(frozen=True)
class InputSize:
    """A fix: the network at other input sizes (the spatial sizes, all axes)."""

    sizes: tuple[int, ...]

    def applied(self, spec: NetworkSpec) -> NetworkSpec:
        return spec.with_input(*self.sizes)


class InputFixes:
    """The input-size searches of one network at one input, made once when first asked for."""

    def __init__(self, spec: NetworkSpec, report: Report | None = None, merges: bool = False):
        self.spec = spec
        self.report = report
        self.merges = merges  # say "and every merge matches": the network stopped at a merge
        self._found: list[AxisSearch] | None = None

    def searches(self) -> list[AxisSearch]:
        if self._found is None:
            self._found = _input_searches(self.spec, self.report)
        return self._found

    def suggest(self) -> tuple[tuple[str, ...], tuple[InputSize, ...]]:
        """For a division or merge finding: the nearest exact inputs, and the nearest that also satisfies every pin.
        Where several groups of axes are inexact (a video's frames and its height and width), each group's nearest
        sizes, and the input that takes the nearest of each."""
        texts: list[str] = []
        fixes: list[InputSize] = []
        searches = self.searches()
        inexact = [found for found in searches if not found.exact_now and not found.note]
        for found in searches:
            texts += found.exact_text(self.merges)
            if len(inexact) == 1:
                fixes += found.exact_fixes()
            if _has_pins(self.spec) and self._whole(found.pinned_fixes()):  # the other axes exact too
                texts += found.pinned_text()
                fixes += found.pinned_fixes()
        if len(inexact) > 1:
            combined = self._combined(inexact)
            if combined is not None:
                matches = " and every merge matches" if self.merges else ""
                texts.append(f"nearest input where every layer divides exactly{matches}: "
                             f"{'×'.join(map(str, combined.sizes))}")
                fixes.append(combined)
        return tuple(texts), tuple(dict.fromkeys(fixes))

    def _whole(self, fixes: list[InputSize]) -> bool:
        """Whether each fix makes every layer exact on every axis and every pin match, not only on its own axes."""
        return all(_verdict(self.spec, *fix.sizes) for fix in fixes)

    def _combined(self, inexact: list[AxisSearch]) -> InputSize | None:
        """Each inexact group at its nearest exact size, the whole input re-analysed."""
        sizes = list(self.spec.input[1:])
        for found in inexact:
            nearest = found.nearest()
            if nearest is None:
                return None
            for axis in found.axes:
                sizes[axis] = nearest
        return InputSize(tuple(sizes)) if _verdict(self.spec, *sizes) is not None else None

    def suggest_pinned(self) -> tuple[tuple[str, ...], tuple[InputSize, ...]]:
        """For a pin finding: only inputs where every pin matches (and every layer is exact) fix it."""
        searches = [found for found in self.searches() if self._whole(found.pinned_fixes())]
        texts = tuple(text for found in searches for text in found.pinned_text(required=True))
        return texts, tuple(fix for found in searches for fix in found.pinned_fixes())


@dataclass(frozen=True)
class AxisSearch:
    axes: tuple[int, ...]  # the spatial axes searched together
    current: int
    label: str  # "224", "height 224"
    show: Callable[[int], str]
    full: Callable[[int], tuple[int, ...]]  # every spatial size at this size of the searched axes
    below: int | None
    above: int | None
    pinned: int | None
    exact_now: bool  # the current size already divides exactly everywhere
    note: str = ""  # why no search was made, if none was
    never: Never | None = None  # why no input size works, where the model can say

    def exact_text(self, merges: bool = False) -> list[str]:
        if self.note:
            return [self.note]
        if self.exact_now:
            return []
        found = self._found()
        matches = " and every merge matches" if merges else ""
        if not found:
            if self.never is not None and self.never.merge:
                return [f"no input size makes every layer exact and every merge match: at {self.never.layer}, "
                        f"{self.never.reason}"]
            return [f"no input within {SEARCH_SPAN} of {self.label} makes every layer exact{matches}"]
        return [f"nearest inputs where every layer divides exactly{matches}: "
                + ", ".join(f"{self.show(s)} ({s - self.current:+d})" for s in found)]

    def _found(self) -> list[int]:
        return sorted({s for s in (self.below, self.above) if s is not None},
                      key=lambda s: (abs(s - self.current), s))

    def nearest(self) -> int | None:
        found = self._found()
        return found[0] if found else None

    def exact_fixes(self) -> list[InputSize]:
        return [] if self.note or self.exact_now else [InputSize(self.full(s)) for s in self._found()]

    def pinned_text(self, required: bool = False) -> list[str]:
        if self.note:
            return [self.note] if required else []
        if self.pinned is None:
            return [f"no input within {SEARCH_SPAN} of {self.label} makes every layer exact and every pinned `in:` "
                    "match"] if required else []
        return [f"{self.show(self.pinned)} is the nearest where every layer is exact and every pinned `in:` matches"]

    def pinned_fixes(self) -> list[InputSize]:
        return [] if self.note or self.pinned is None else [InputSize(self.full(self.pinned))]


def _input_searches(spec: NetworkSpec, report: Report | None) -> list[AxisSearch]:
    """Each group of axes searched with the others at their size; a group that finds nothing is searched again
    with the other groups at their nearest exact size (a video whose frame count fails everywhere makes every
    height and width fail too)."""
    spatial = spec.input[1:]
    groups = searched_groups(spatial)
    searches = [_group_search(spec, report, axes, spatial) for axes in groups]
    base = list(spatial)
    for found in searches:
        nearest = None if found.exact_now or found.note else found.nearest()
        for axis in found.axes if nearest is not None else ():
            base[axis] = nearest
    if tuple(base) != tuple(spatial):
        moved = spec.with_input(*base)
        searches = [_group_search(moved, None, found.axes, tuple(base), spatial)
                    if not (found.exact_now or found.note or found.nearest() is not None) else found
                    for found in searches]
    return searches


def _group_search(spec: NetworkSpec, report: Report | None, axes: tuple[int, ...], base: tuple[int, ...],
                  shown: tuple[int, ...] | None = None) -> AxisSearch:
    """The search of one group of axes, the others at `base`; `shown`: the user's input, which labels it."""
    names = axis_names(len(base))
    current = (shown or base)[axes[0]]

    def full(size: int) -> tuple[int, ...]:
        return tuple(size if index in axes else old for index, old in enumerate(base))

    count = len(axes)
    if count == len(base):  # square, a cube, or 1-D: the whole input
        label = f"{current}"
        show = (lambda s: "×".join([str(s)] * count))
    else:  # the other axes keep their size, and are searched on their own
        words = joined([AXIS_WORDS[names[index]] for index in axes])
        label = f"{words} {current}"
        show = (lambda s: f"{words} {'×'.join([str(s)] * count)}")
    return _axis_search(spec, report, axes, current, label, show, full)


def _axis_search(spec: NetworkSpec, report: Report | None, axes: tuple[int, ...], current: int, label: str,
                 show: Callable[[int], str], full: Callable[[int], tuple[int, ...]]) -> AxisSearch:
    report = report or analyze(spec)
    model = ExactModel.of(report, axes)

    def confirmed(size: int) -> bool | None:
        return _verdict(spec, *full(size), axes=axes)

    if model is not None:
        verdict = model.verdict
        never = model.never
    elif len(spec.layers) * 2 * SEARCH_SPAN <= BRUTE_FORCE_BUDGET:
        verdict, never = confirmed, None
    else:
        return AxisSearch(axes, current, label, show, full, None, None, None, False,
                          f"no exact-input search: {len(spec.layers):,} layers with ceil rounding, merges of unlike "
                          "grids or reshaping layers take a full analysis per size tried")
    below = above = pinned = None
    exact_now = verdict(current) is not None
    for distance in range(1, SEARCH_SPAN + 1):
        for size in (current - distance, current + distance):
            if size < 1:
                continue
            wanted = (size < current and below is None) or (size > current and above is None) or pinned is None
            if not wanted:
                continue
            result = verdict(size)
            if result is None:
                continue
            if verdict is not confirmed:
                result = confirmed(size)  # every size offered is re-analysed whole first
                if result is None:
                    continue
            if size < current and below is None:
                below = size
            if size > current and above is None:
                above = size
            if result and pinned is None:
                pinned = size
        if below is not None and above is not None and pinned is not None:
            break
    if verdict(current):
        pinned = current
    return AxisSearch(axes, current, label, show, full, below, above, pinned, exact_now, never=never)


def _has_pins(spec: NetworkSpec) -> bool:
    return any(layer.params.get("in") is not None for layer in spec.layers)


def _verdict(spec: NetworkSpec, *sizes: int, axes: tuple[int, ...] | None = None) -> bool | None:
    """The slow reference: a full analysis at these spatial sizes. None if some layer is inexact (floor) along
    `axes` (default: every axis), fails or cannot merge at this input; else whether every `in:` pin matches."""
    report = analyze(spec.with_input(*sizes))
    if report.halted:
        return None
    for layer in report.layers:  # a layer has windows or resizes, one per spatial axis
        rounded = [window.truncated for window in layer.windows] or [not r.is_exact for r in layer.outcome.resizes]
        if any(flag for index, flag in enumerate(rounded) if axes is None or index in axes):
            return None
    return all(layer.spec.params.get("in") in (None, layer.outcome.in_features) for layer in report.layers)
