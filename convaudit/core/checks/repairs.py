"""Fixes that are always right. Each fix a finding suggests is applied to the spec and the whole network analysed
again first; it is offered only where the finding is then cleared, no merge breaks and no new error or warning
appears. A padding that would break something else is not offered: the finding says what would break instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from convaudit.core.analysis import Halt, LayerResult, Report, analyze
from convaudit.core.checks.findings import Finding, halt_kind, judge
from convaudit.core.checks.search import InputFixes
from convaudit.core.fields import per_axis
from convaudit.core.layers import REGISTRY
from convaudit.core.model import LayerSpec, NetworkSpec
from convaudit.core.windows import WindowAxis, axis_names, joined


@dataclass(frozen=True)
class Padding:
    """A fix: `extra` more padded positions on some axes of one window layer, split `before` and `after`; written as
    the layer's own symmetric `padding:` where it can be, else as a zero pad in front of it (nn.ZeroPad2d)."""

    layer: str
    axes: tuple[int, ...]  # the spatial axes it pads
    before: int
    after: int
    own: bool  # the layer's own `padding:` grows by `before` (= `after`) on each of these axes
    text: str
    summary: str  # 'padding 1 on H and W', 'padding 0 before and 1 after on H and W (nn.ZeroPad2d)'

    def applied(self, spec: NetworkSpec) -> NetworkSpec:
        layers = list(spec.layers)
        index = next(i for i, layer in enumerate(layers) if layer.name == self.layer)
        layer = layers[index]
        if self.own:
            current = layer.params.get("padding", (0,))
            per_axis = [current[0] if len(current) == 1 else current[i] for i in range(len(spec.input) - 1)]
            padding = tuple(p + self.before if i in self.axes else p for i, p in enumerate(per_axis))
            layers[index] = replace(layer, params={**layer.params, "padding": padding})
        else:
            axes = len(spec.input) - 1
            names = {existing.name for existing in layers}
            name = next(f"{layer.name}.pad{'' if n == 0 else n}" for n in range(len(layers) + 1)
                        if f"{layer.name}.pad{'' if n == 0 else n}" not in names)
            params = {field.name: field.default for field in REGISTRY["pad"].fields}
            params.update(before=tuple(self.before if i in self.axes else 0 for i in range(axes)),
                          after=tuple(self.after if i in self.axes else 0 for i in range(axes)))
            pad = LayerSpec(name, "pad", params, layer.inputs[:1], {}, layer.where, blocks=layer.blocks)
            layers[index:index + 1] = [pad, replace(layer, inputs=(name, *layer.inputs[1:]))]
        return replace(spec, layers=tuple(layers))


def padding_fix(layer: LayerResult, axis: WindowAxis) -> Padding:
    """The least extra padding that makes this division exact (`axis` may be a merged label such as 'H and W')."""
    span = axis.padded - axis.effective_kernel
    extra = -span % axis.stride  # padded positions to add so that S divides W − K' + 2P
    out = (span + extra) // axis.stride + 1
    new_padding = axis.padding + extra // 2
    layer_type = REGISTRY[layer.type]
    spatial = len(layer.input_shapes[0]) - 1
    axes = tuple(axis_names(spatial).index(name) for name in axis.axis.replace(" and ", ", ").split(", "))
    takes_padding = any(field.name == "padding" for field in layer_type.fields)
    pool_limit_ok = not layer_type.padding_at_most_half_kernel or new_padding <= axis.kernel // 2
    if extra % 2 == 0 and pool_limit_ok and takes_padding:
        return Padding(layer.name, axes, extra // 2, extra // 2, True,
                       f"padding {new_padding} on {axis.axis} makes {layer.type} exact: "
                       f"({axis.size} − {axis.effective_kernel} + 2·{new_padding})/{axis.stride} + 1 = {out}",
                       f"padding {new_padding} on {axis.axis}")
    if extra % 2:
        why = f"{span} + 2P is odd"
    elif not takes_padding:
        why = f"{layer.type} takes no padding"
    else:
        why = f"padding above ⌊{axis.kernel}/2⌋ is refused by PyTorch"
    before, after = extra // 2, extra - extra // 2
    summary = f"padding {before} before and {after} after on {axis.axis} (nn.ZeroPad{spatial}d)"
    return Padding(layer.name, axes, before, after, False,
                   f"no symmetric padding makes it exact ({why}); {summary} does: ({axis.size} − "
                   f"{axis.effective_kernel} + 2·{axis.padding} + {before} + {after})/{axis.stride} + 1 = {out}",
                   summary)


def _same_halt(first: Halt | None, second: Halt) -> bool:
    return (first is not None and first.layer.name == second.layer.name and first.problem.kind == second.problem.kind
            and first.input_shapes == second.input_shapes)


SEVERE = ("error", "warning")


class Advice:
    """What `check` may suggest for one analysed network: input sizes (checks/search.py) and paddings, each
    re-analysed whole before it is offered."""

    def __init__(self, report: Report):
        self.report = report
        halt = report.halted
        self.inputs = InputFixes(report.spec, report if report.batch == 1 else None,
                                 merges=halt is not None and halt.problem.kind == "merge")
        self._severe: set[tuple[str, str | None]] | None = None

    def severe(self) -> set[tuple[str, str | None]]:
        """(kind, layer) of every error and warning as the network stands."""
        if self._severe is None:
            self._severe = {(f.kind, f.layer) for f in judge(self.report) if f.severity in SEVERE}
        return self._severe

    def merge(self) -> tuple[tuple[str, ...], tuple[object, ...]]:
        """For a merge that fails: the input sizes where every merge matches, and output paddings that close a
        constant gap."""
        texts, fixes = self.inputs.suggest()
        closing = output_padding_fix(self.report, self.severe())
        if closing is None:
            return texts, fixes
        return texts + (closing.text,), fixes + (closing,)

    def padding(self, layer: LayerResult, axis: WindowAxis) -> tuple[Padding | None, str]:
        """The padding that makes this division exact, if it breaks nothing else; else None and what it breaks."""
        fix = padding_fix(layer, axis)
        trouble = self.trouble(fix)
        if trouble is None:
            return fix, ""
        return None, f"Padding alone does not fix it: {fix.summary} would make it exact, but then {trouble}"

    def trouble(self, fix: Padding) -> str | None:
        """What the fix breaks, re-analysed: None if it clears the division and adds no error or warning."""
        after = analyze(fix.applied(self.report.spec))
        fixed = after.by_name.get(fix.layer)
        if fixed is None or any(not fixed.windows[axis].is_exact for axis in fix.axes):
            return f"{fix.layer} is still inexact"
        if after.halted is not None and not _same_halt(self.report.halted, after.halted):
            return f"{after.halted.layer.name} fails: {after.halted.problem.message}"
        new = [f for f in judge(after) if f.severity in SEVERE and (f.kind, f.layer) not in self.severe()]
        return _described(after, new[0]) if new else None


def _described(report: Report, finding: Finding) -> str:
    """'pool3 floors in turn: (143 − 2 + 2·0)/2 + 1 = 71.5', or the finding's own message."""
    if finding.kind == "inexact-division" and finding.layer is not None:
        axis = next(axis for axis in report.layer(finding.layer).windows if axis.truncated)
        return f"{finding.layer} floors in turn: {axis.formula()}"
    if finding.kind == "expect-mismatch":  # 'pool3: expected shape [256, 28, 28], computed [256, 29, 29]'
        claim = finding.message.removeprefix(f"{finding.layer}: ").split(", a consequence of")[0]
        return f"{finding.layer} no longer holds its `expect:` ({claim})"
    return finding.message


@dataclass(frozen=True)
class OutputPadding:
    """A fix: transposed convolutions' output_padding changed so that each up-path is as large as what it merges with
    (an up-convolution that gives 2·W − 1 where its skip has 2·W)."""

    changes: tuple[tuple[str, tuple[int, ...]], ...]  # (layer, its new output_padding per axis)
    text: str

    def applied(self, spec: NetworkSpec) -> NetworkSpec:
        new = dict(self.changes)
        return replace(spec, layers=tuple(
            replace(layer, params={**layer.params, "output_padding": new[layer.name]}) if layer.name in new else layer
            for layer in spec.layers))


MAX_MERGE_FIXES = 16  # transposed convolutions one output_padding fix may change


def output_padding_fix(report: Report, severe: set[tuple[str, str | None]]) -> OutputPadding | None:
    """Where a merge fails because an up-path is a constant amount off, the output_padding of its transposed
    convolution that closes the gap, repeated at each merge that then fails alike; re-analysed whole."""
    changes: dict[str, tuple[int, ...]] = {}
    steps: list[tuple[str, str]] = []
    current = report
    for _ in range(MAX_MERGE_FIXES):
        halt = current.halted
        if halt is None:
            break
        change = _closing_change(current, halt) if halt.problem.kind == "merge" else None
        if change is None or change[0] in changes:
            return None
        name, padding, step = change
        changes[name] = padding
        steps.append(step)
        fix = OutputPadding(tuple(changes.items()), "")
        current = analyze(fix.applied(report.spec))
    if current.halted is not None:
        return None
    ignored = {(halt_kind(report.halted), report.halted.layer.name)} if report.halted else set()
    if any(f.severity in SEVERE and (f.kind, f.layer) not in severe | ignored for f in judge(current)):
        return None
    values = sorted({value for padding in changes.values() for value in padding})
    (first, (size, other)), *rest = zip(changes, steps, strict=True)
    later = "".join(f", {name} {each}" for name, (each, _) in rest)
    return OutputPadding(tuple(changes.items()),
                         f"output_padding {joined([str(v) for v in values])} at {joined(list(changes))} makes every "
                         f"merge match: {first} then gives {size} as {other} does{later}")


def _closing_change(report: Report, halt: Halt) -> tuple[str, tuple[int, ...], tuple[str, str]] | None:
    """The transposed convolution feeding the smaller input of a failed merge (through layers that keep its size),
    with the output_padding that makes that input as large as the other."""
    shapes = halt.input_shapes
    if len({len(shape) for shape in shapes}) > 1 or len(shapes[0]) < 2:
        return None
    target = tuple(max(sizes) for sizes in zip(*(shape[1:] for shape in shapes), strict=True))
    for source, shape in zip(halt.layer.inputs, shapes, strict=True):
        if shape[1:] == target:
            continue
        name = source
        while name in report.by_name:
            layer = report.by_name[name]
            resizes = layer.outcome.resizes
            if resizes and all(resize.kind == "transposed" for resize in resizes):
                break
            if len(layer.spec.inputs) != 1 or layer.input_shapes[0][1:] != layer.output_shape[1:]:
                return None
            name = layer.spec.inputs[0]
        else:
            return None
        old = per_axis(layer.spec.params["output_padding"], len(resizes))
        if old is None or shape[1:] != layer.output_shape[1:]:
            return None
        padding = tuple(op + want - have for op, want, have in zip(old, target, shape[1:], strict=True))
        other = next((each for each, sizes in zip(halt.layer.inputs, shapes, strict=True) if sizes[1:] == target), None)
        if other is None:
            return None  # no input is the largest on every axis
        return name, padding, ("×".join(map(str, target)), f"'{other}'")
    return None
