"""Why a merge's inputs differ: the first floored division on one branch and not the other, and what that branch
does with the rounded size on its way to the merge ("floor at pool4: (71 − 2 + 2·0)/2 + 1 = 35.5 → 35, then ×2 at
up1 = 70"); where no rounding is to blame, how the branches' sizes differ at every input (checks/exact.py)."""

from __future__ import annotations

from convaudit.core.analysis import Halt, LayerResult, Report
from convaudit.core.checks.exact import ExactModel, MapForm, disagreement, searched_groups
from convaudit.core.checks.findings import resize_formula
from convaudit.core.layers import REGISTRY
from convaudit.core.layers.base import trait_of
from convaudit.core.windows import axis_names, format_fraction, joined


def explain_merge(report: Report, halt: Halt) -> str:
    """One clause per group of axes whose sizes disagree alike: 'H and W: 'a' gives 71, 'b' gives 70: floor at …'."""
    shapes = halt.input_shapes
    if len({len(shape) for shape in shapes}) > 1 or len(shapes[0]) < 2:
        return "their ranks differ"
    crop = trait_of(REGISTRY[halt.layer.type], "size_rule", halt.layer.params) == "resize"
    groups: dict[tuple[int, ...], list[int]] = {}
    for axis in range(len(shapes[0]) - 1):
        sizes = tuple(shape[1 + axis] for shape in shapes)
        if (sizes[0] < sizes[1]) if crop else len(set(sizes) - ({1} if len(set(sizes)) > 2 else set())) > 1:
            groups.setdefault(sizes, []).append(axis)
    names = axis_names(len(shapes[0]) - 1)
    return "; ".join(f"{joined([names[a] for a in axes])}: {_why(report, halt, axes[0], sizes)}"
                     for sizes, axes in groups.items())


def _why(report: Report, halt: Halt, axis: int, sizes: tuple[int, ...]) -> str:
    sources = halt.layer.inputs
    other = next(index for index, size in enumerate(sizes) if size != sizes[0])
    first, second = sources[0], sources[other]
    head = f"'{first}' gives {sizes[0]}, '{second}' gives {sizes[other]}"
    floors_first, floors_second = _floors(report, first, axis), _floors(report, second, axis)
    only = [(layer, second if layer.name in floors_second else first) for layer in report.layers
            if (layer.name in floors_first) != (layer.name in floors_second)]
    if only:
        root, branch = only[0]
        more = len(only) - 1
        later = f" (and {more} later floor{'s' if more > 1 else ''} on one branch only)" if more else ""
        steps = _steps(report, root, branch, axis)
        return f"{head}: floor at {root.name}: {_rounding(root, axis)}" + "".join(
            f", then {step}" for step in steps) + later
    return f"{head}: no division floors on one branch only; {_by_design(report, halt, axis, first, second)}"


def _floors(report: Report, name: str, axis: int) -> set[str]:
    """The layers at or above `name` that round a size down along this axis."""
    return {layer for layer in report.spec.ancestors(name)
            if layer in report.by_name and _rounds(report.by_name[layer], axis)}


def _rounds(layer: LayerResult, axis: int) -> bool:
    windows, resizes = layer.windows, layer.outcome.resizes
    return (axis < len(windows) and windows[axis].truncated) or (axis < len(resizes) and not resizes[axis].is_exact)


def _rounding(layer: LayerResult, axis: int) -> str:
    if axis < len(layer.windows):
        window = layer.windows[axis]
        return f"{window.formula()} → {window.out}"
    resize = layer.outcome.resizes[axis]
    return f"{resize_formula(resize)} → {resize.out}"


def _steps(report: Report, root: LayerResult, branch: str, axis: int) -> list[str]:
    """What the branch does to the size after `root`, on its way to the merge: one step per layer that changes it."""
    below = {root.name}
    for layer in report.layers:  # graph order: everything fed by root
        if any(source in below for source in layer.spec.inputs):
            below.add(layer.name)
    path = [branch]
    while path[-1] != root.name:
        path.append(next(s for s in report.by_name[path[-1]].spec.inputs if s in below))
    steps = []
    for name in reversed(path[:-1]):
        layer = report.by_name[name]
        step = _step(layer, axis)
        if step:
            steps.append(step)
    return steps


def _step(layer: LayerResult, axis: int) -> str:
    """'×2 at up1 = 70', '2·35 − 2 at up1 = 68', '(35 − 3 + 2·0)/1 + 1 = 33 at dec1/conv1', 'to 56 at crop1'."""
    if axis < len(layer.windows):
        window = layer.windows[axis]
        if window.is_exact and window.out == window.size:
            return ""
        rounded = f" → {window.out}" if not window.is_exact else ""
        return f"{window.formula()}{rounded} at {layer.name}"
    if axis >= len(layer.outcome.resizes):
        return ""
    resize = layer.outcome.resizes[axis]
    rounded = f" → {resize.out}" if not resize.is_exact else ""
    if resize.kind == "fixed":
        return f"to {resize.out} at {layer.name}"
    if resize.offset == 0:
        return f"×{format_fraction(resize.scale)} at {layer.name} = {format_fraction(resize.exact)}{rounded}"
    scaled = f"{format_fraction(resize.scale)}·{resize.size}" if resize.scale != 1 else f"{resize.size}"
    sign = "+" if resize.offset > 0 else "−"
    return f"{scaled} {sign} {abs(resize.offset)} at {layer.name} = {resize.out}"


def _by_design(report: Report, halt: Halt, axis: int, first: str, second: str) -> str:
    """How the two branches differ at every input, from the exact model's forms."""
    spatial = report.spec.input[1:]
    axes = next(group for group in searched_groups(spatial) if axis in group)
    model = ExactModel.of(report, axes)
    forms = model.forms if model is not None else {}
    one, two = forms.get(first), forms.get(second)
    if not (isinstance(one, MapForm) and isinstance(two, MapForm)):
        return "the branches differ by design"
    return disagreement(first, one.sizes[axis], second, two.sizes[axis])
