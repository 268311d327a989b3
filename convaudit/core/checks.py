"""Findings about a network at one input: what does not divide, fit or match, and how to fix it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from convaudit.core.analysis import LayerResult, Report, analyze
from convaudit.core.layers import REGISTRY, describe_shape
from convaudit.core.layers.base import trait_of
from convaudit.core.model import INPUT, NetworkSpec
from convaudit.core.windows import WindowAxis, format_fraction, merged_axes
from convaudit.errors import EXIT_FINDINGS, Where

SEARCH_SPAN = 256  # input sizes tried on each side when looking for an exact one


@dataclass(frozen=True)
class Finding:
    spec: str
    layer: str | None
    severity: str  # error | warning | info
    kind: str
    message: str
    suggestions: tuple[str, ...] = ()
    where: Where = Where()


def check(report: Report) -> list[Finding]:
    """Every finding for one analysed network, in layer order."""
    spec = report.spec
    fixes = InputFixes(spec, report if report.batch == 1 else None)
    findings: list[Finding] = []
    for layer in report.layers:
        findings += _division_findings(spec, layer, fixes)
        findings += _pin_findings(spec, report, layer, fixes)
        findings += _expect_findings(spec, report, layer)
    if report.halted:
        halt = report.halted
        message = halt.problem.message + _consequence(report, halt.inexact_upstream)
        kind = {"kernel-too-large": "non-positive-output"}.get(halt.problem.kind, halt.problem.kind)
        findings.append(Finding(spec.label, halt.layer.name, "error", kind,
                                f"{halt.layer.name}: {message}; analysis stops here",
                                fixes.suggest() if halt.inexact_upstream else (),
                                halt.layer.where_key(halt.problem.key)))
    return findings


def _division_findings(spec: NetworkSpec, layer: LayerResult, fixes: InputFixes) -> list[Finding]:
    """Every axis judged: a warning when floor rounding leaves input unread on any axis; information when it
    drops only padding, or rounds up, on every inexact axis."""
    inexact = [axis for axis in layer.windows if not axis.is_exact]
    if not inexact:
        return []
    merged = merged_axes(inexact)
    where = layer.spec.where_key("stride" if "stride" in layer.spec.key_lines else "kernel")
    clauses = [_ceil_clause(axis) if axis.ceil else _floor_clause(axis) for axis in merged]
    message = f"{layer.name}: " + "; ".join(clauses)
    if all(axis.ceil for axis in inexact):
        return [Finding(spec.label, layer.name, "info", "ceil-rounding", message, (), where)]
    if not any(axis.truncated and axis.unseen for axis in inexact):
        return [Finding(spec.label, layer.name, "info", "inexact-division", message, (), where)]
    first_cause = layer.inexact_upstream[0] == layer.name  # later ones follow from it: fix the input once
    suggestions = (fixes.suggest() if first_cause else ()) + tuple(
        _padding_fix(axis, layer.type, axis.axis) for axis in merged if axis.truncated and axis.unseen)
    return [Finding(spec.label, layer.name, "warning", "inexact-division", message, suggestions, where)]


NOUNS = {"H": "rows", "W": "columns", "H and W": "rows and columns"}


def _ceil_clause(axis: WindowAxis) -> str:
    noun = NOUNS[axis.axis]
    return (f"{axis.axis}: {axis.formula()}, rounded up to {axis.out} (ceil: true); the last window reaches "
            f"{axis.overhang} {_rows(noun, axis.overhang, verb=False)} past the padded input, reading only what lies "
            "inside")


def _floor_clause(axis: WindowAxis) -> str:
    noun = NOUNS[axis.axis]
    unseen = axis.unseen
    if unseen:
        seen_text = f"so the last {unseen} input {_rows(noun, unseen)} never seen"
    else:
        seen_text = "dropping only right padding, so no input is lost"
    if axis.effective_kernel < axis.stride:  # windows leave gaps: rows are skipped between them anyway
        seen_text += (f" (with a {axis.effective_kernel}-wide window and stride {axis.stride}, "
                      f"{axis.stride - axis.effective_kernel} of every {axis.stride} rows are skipped anyway)")
    caffe = axis.ceil_rounded()
    if caffe.out == axis.out:
        caffe_text = f"Caffe's ceil rounding gives {caffe.out} too: window {caffe.out + 1} would start past the input"
    else:
        caffe_text = (f"Caffe's ceil rounding (its pooling rule) would give {caffe.out}, its last window reaching "
                      f"{caffe.overhang} {_rows(noun, caffe.overhang, verb=False)} past the padded input")
    return (f"{axis.axis}: {axis.formula()} is not an integer. PyTorch floors it to {axis.out}, {seen_text}. "
            f"{caffe_text}")


def _rows(noun: str, count: int, verb: bool = True) -> str:
    """'row and column are', 'rows are', 'column' … agreeing with the count."""
    if noun == "rows and columns":
        words = "row and column" if count == 1 else "rows and columns"
    else:
        words = noun.replace("rows", "row").replace("columns", "column") if count == 1 else noun
    return f"{words} {'is' if count == 1 and noun != 'rows and columns' else 'are'}" if verb else words


def _padding_fix(axis: WindowAxis, layer_type: str, on: str) -> str:
    """The least extra padding that makes this division exact."""
    span = axis.padded - axis.effective_kernel
    extra = -span % axis.stride  # padded positions to add so that S divides W − K' + 2P
    out = (span + extra) // axis.stride + 1
    new_padding = axis.padding + extra // 2
    pool_limit_ok = not REGISTRY[layer_type].padding_at_most_half_kernel or new_padding <= axis.kernel // 2
    if extra % 2 == 0 and pool_limit_ok:
        return (f"padding {new_padding} on {on} makes {layer_type} exact: "
                f"({axis.size} − {axis.effective_kernel} + 2·{new_padding})/{axis.stride} + 1 = {out}")
    why = f"{span} + 2P is odd" if extra % 2 else f"padding above ⌊{axis.kernel}/2⌋ is refused by PyTorch"
    before, after = extra // 2, extra - extra // 2
    return (f"no symmetric padding makes it exact ({why}); padding {before} before and {after} after on {on} "
            f"(nn.ZeroPad2d) does: ({axis.size} − {axis.effective_kernel} + 2·{axis.padding} + {before} + {after})"
            f"/{axis.stride} + 1 = {out}")


def _pin_findings(spec: NetworkSpec, report: Report, layer: LayerResult, fixes: InputFixes) -> list[Finding]:
    pinned = layer.spec.params.get("in")
    received = layer.outcome.in_features
    if pinned is None or received is None or pinned == received:
        return []
    shape = layer.input_shapes[0]
    if len(shape) == 1:
        arithmetic = str(received)
    elif not layer.spec.params.get("flatten", True):  # nn.Linear on the last dimension
        arithmetic = f"{describe_shape(shape)}, whose last dimension is {received} (flatten: false)"
    else:  # flattened: every element is an input feature
        arithmetic = f"{describe_shape(shape)} = {received}"
    message = (f"{layer.name} pins in: {pinned} but receives {arithmetic}"
               f"{_consequence(report, layer.inexact_upstream)}")
    return [Finding(spec.label, layer.name, "error", "in-mismatch", message, fixes.suggest_pinned(),
                    layer.spec.where_key("in"))]


def _consequence(report: Report, upstream: tuple[str, ...]) -> str:
    """', a consequence of the inexact division at conv1 (54.25 → 54) and 3 later ones'."""
    if not upstream:
        return ""
    root = report.layer(upstream[0])
    axis = next(a for a in root.windows if not a.is_exact)
    later = len(upstream) - 1
    more = f" and {later} later one{'s' if later > 1 else ''}" if later else ""
    return f", a consequence of the inexact division at {root.name} ({format_fraction(axis.exact)} → {axis.out}){more}"


EXPECTED_VALUE: dict[str, Callable[[LayerResult], object]] = {
    "shape": lambda layer: layer.output_shape,
    "params": lambda layer: layer.params,
    "trainable_params": lambda layer: layer.trainable_params,
    "weights": lambda layer: layer.weights,
    "biases": lambda layer: layer.biases,
    "macs": lambda layer: layer.outcome.macs,  # expectations are per sample
    "flops": lambda layer: 2 * layer.outcome.macs,
    "activations": lambda layer: layer.activations // layer.batch,
}


def _expect_findings(spec: NetworkSpec, report: Report, layer: LayerResult) -> list[Finding]:
    findings = []
    for key, expected in layer.spec.expect.items():
        computed = EXPECTED_VALUE[key](layer)
        if computed == expected:
            continue
        show = (lambda v: f"[{', '.join(map(str, v))}]") if key == "shape" else (lambda v: f"{v:,}")
        message = (f"{layer.name}: expected {key} {show(expected)}, computed {show(computed)}"
                   f"{_consequence(report, layer.inexact_upstream)}")
        findings.append(Finding(spec.label, layer.name, "error", "expect-mismatch", message, (),
                                layer.spec.where_key("expect")))
    return findings


class InputFixes:
    """Input sizes near the current one at which every layer divides exactly, and those where every pinned
    `in:` matches too: what fixes a division finding, and what fixes a pin finding."""

    def __init__(self, spec: NetworkSpec, report: Report | None = None):
        self.spec = spec
        self.report = report
        self._found: list[AxisSearch] | None = None

    def searches(self) -> list[AxisSearch]:
        if self._found is None:
            self._found = _input_searches(self.spec, self.report)
        return self._found

    def suggest(self) -> tuple[str, ...]:
        """For a division finding: the nearest exact inputs, and the nearest that also satisfies every pin."""
        out: list[str] = []
        for found in self.searches():
            out += found.exact_text()
            if _has_pins(self.spec):
                out += found.pinned_text()
        return tuple(out)

    def suggest_pinned(self) -> tuple[str, ...]:
        """For a pin finding: only inputs where every pin matches (and every layer is exact) fix it."""
        return tuple(text for found in self.searches() for text in found.pinned_text(required=True))


@dataclass(frozen=True)
class AxisSearch:
    current: int
    label: str  # "224", "height 224"
    show: Callable[[int], str]
    below: int | None
    above: int | None
    pinned: int | None
    exact_now: bool  # the current size already divides exactly everywhere
    note: str = ""  # why no search was made, if none was

    def exact_text(self) -> list[str]:
        if self.note:
            return [self.note]
        if self.exact_now:
            return []
        found = sorted({s for s in (self.below, self.above) if s is not None}, key=lambda s: (abs(s - self.current), s))
        if not found:
            return [f"no input within {SEARCH_SPAN} of {self.label} makes every layer exact"]
        return ["nearest inputs where every layer divides exactly: "
                + ", ".join(f"{self.show(s)} ({s - self.current:+d})" for s in found)]

    def pinned_text(self, required: bool = False) -> list[str]:
        if self.note:
            return [self.note] if required else []
        if self.pinned is None:
            return [f"no input within {SEARCH_SPAN} of {self.label} makes every layer exact and every pinned `in:` "
                    "match"] if required else []
        return [f"{self.show(self.pinned)} is the nearest where every layer is exact and every pinned `in:` matches"]


def _input_searches(spec: NetworkSpec, report: Report | None) -> list[AxisSearch]:
    if spec.spatial_axes != 2:
        return []
    _, height, width = spec.input
    if height == width:
        return [_axis_search(spec, report, (0, 1), height, f"{height}", lambda s: f"{s}×{s}")]
    return [_axis_search(spec, report, (0,), height, f"height {height}", lambda s: f"height {s}"),
            _axis_search(spec, report, (1,), width, f"width {width}", lambda s: f"width {s}")]


def _axis_search(spec: NetworkSpec, report: Report | None, axes: tuple[int, ...], current: int, label: str,
                 show: Callable[[int], str]) -> AxisSearch:
    report = report or analyze(spec)
    model = ExactModel.of(report, axes)
    if model is not None:
        verdict = model.verdict
    elif len(spec.layers) * 2 * SEARCH_SPAN <= BRUTE_FORCE_BUDGET:
        def verdict(size: int) -> bool | None:
            sizes = [spec.input[1], spec.input[2]]
            for axis in axes:
                sizes[axis] = size
            return _verdict(spec, *sizes)
    else:
        return AxisSearch(current, label, show, None, None, None, False,
                          f"no exact-input search: {len(spec.layers):,} layers with ceil rounding, merges of unlike "
                          "grids or reshaping layers take a full analysis per size tried")
    below = above = pinned = None
    exact_now = verdict(current) is not None
    for distance in range(1, SEARCH_SPAN + 1):
        for size in (current - distance, current + distance):
            if size < 1:
                continue
            result = verdict(size)
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
    return AxisSearch(current, label, show, below, above, pinned, exact_now)


BRUTE_FORCE_BUDGET = 2_000_000  # layer analyses the slow search may spend (512 sizes of a 3,900-layer network)


@dataclass(frozen=True)
class Affine:
    """A spatial size as a function of the input size x, on the inputs where every division is exact:
    size = (x − b)/m."""

    b: int
    m: int

    def at(self, x: int) -> int:
        return (x - self.b) // self.m


class ExactModel:
    """Which input sizes make every floored division exact, found in one pass over the layers.

    Where every division upstream is exact, each spatial size is affine in the input size x:
    size = (x − b)/m. A window layer (K' = D·(K − 1) + 1, padding P, stride S) then divides exactly when
    (x − b)/m − K' + 2P ≡ 0 (mod S), that is x ≡ b + m·(K' − 2P) (mod m·S), and its output is affine again:
    b' = b + m·(K' − 2P) − m·S, m' = m·S. It has an output when x ≥ b + m·(K' − 2P). The exact inputs are
    then one residue class (the congruences combined) above a lower bound, and each pinned `in:` is a
    product of affine sizes: checking a size costs a few multiplications, not an analysis.
    """

    def __init__(self, congruence: tuple[int, int], lowest: int, pins: list[tuple[int, list[Any]]]):
        self.congruence = congruence  # (r, M): x ≡ r (mod M)
        self.lowest = lowest
        self.pins = pins  # (pinned in:, [factors: ints, or Affine of x])

    @classmethod
    def of(cls, report: Report, axes: tuple[int, ...]) -> ExactModel | None:
        """None where the one-pass model does not apply (ceil rounding, halts, reshaping layers …)."""
        if report.halted:
            return None
        fixed = [report.spec.input[1], report.spec.input[2]]  # the axis not searched keeps its size
        forms: dict[str, list[Any]] = {INPUT: [Affine(0, 1) if axis in axes else fixed[axis] for axis in (0, 1)]}
        residue, modulus, lowest = 0, 1, 1
        pins: list[tuple[int, list[Any]]] = []
        for layer in report.layers:
            sources = [forms[name] for name in layer.spec.inputs]
            if any(source is None for source in sources):
                return None
            first = sources[0]
            pinned = layer.spec.params.get("in")  # only linear and rbf take `in:`
            if pinned is not None:
                shape = layer.input_shapes[0]
                if not layer.spec.params.get("flatten", True) and len(shape) > 1:
                    # the last dimension: W of a map (whose form is [H, W]); the model stops at this layer anyway
                    pins.append((pinned, [first[-1]] if len(shape) == 3 else [shape[-1]]))
                elif len(first) == 3:  # a flattened map: C·H·W
                    pins.append((pinned, list(first)))
                elif len(shape) == 3:  # a map, flattened by the layer itself
                    pins.append((pinned, [shape[0], *first]))
                else:  # a vector whose length does not depend on the input size
                    pins.append((pinned, [shape[0]]))
            rule = trait_of(REGISTRY[layer.type], "size_rule", layer.spec.params)
            rank = len(layer.output_shape)
            if rule == "window":
                out = []
                for axis, window in zip((0, 1), layer.windows, strict=True):
                    size = first[axis]
                    if window.ceil:
                        return None
                    if isinstance(size, int):
                        if window.truncated:
                            return _never()
                        out.append(window.out)
                        continue
                    offset = size.b + size.m * (window.effective_kernel - 2 * window.padding)
                    combined = _combine(residue, modulus, offset, size.m * window.stride)
                    if combined is None:
                        return _never()
                    residue, modulus = combined
                    lowest = max(lowest, offset)
                    out.append(Affine(offset - size.m * window.stride, size.m * window.stride))
                forms[layer.name] = out
            elif rule in ("pointwise", "concat") and rank == 3:
                if any(source[:2] != first[:2] for source in sources):
                    return None  # merged branches on different grids: equal sizes at isolated inputs only
                forms[layer.name] = first[:2]
            elif rule == "pointwise" and rank == 1 and len(sources) == 1:
                forms[layer.name] = first
            elif rule == "fixed" and rank == 3:
                forms[layer.name] = list(layer.output_shape[1:])
            elif rule == "vector" and rank == 1:
                forms[layer.name] = [1, 1]
            elif rule == "flatten" and len(layer.input_shapes[0]) == 3 and len(first) == 2:
                forms[layer.name] = [layer.input_shapes[0][0], *first]
            else:
                return None
        return cls((residue, modulus), lowest, pins)

    def verdict(self, x: int) -> bool | None:
        """None if some layer is inexact or has no output at input x; else whether every pin matches."""
        residue, modulus = self.congruence
        if modulus == 0 or x < self.lowest or (x - residue) % modulus:
            return None
        for pinned, factors in self.pins:
            value = 1
            for factor in factors:
                value *= factor if isinstance(factor, int) else factor.at(x)
            if value != pinned:
                return False
        return True


def _never() -> ExactModel:
    return ExactModel((0, 0), 0, [])


def _combine(r1: int, m1: int, r2: int, m2: int) -> tuple[int, int] | None:
    """x ≡ r1 (mod m1) and x ≡ r2 (mod m2) as one congruence, or None if no x satisfies both."""
    g = math.gcd(m1, m2)
    if (r2 - r1) % g:
        return None
    lcm = m1 // g * m2
    # r1 + m1·t ≡ r2 (mod m2): t ≡ (r2 − r1)/g · (m1/g)⁻¹ (mod m2/g)
    t = ((r2 - r1) // g * pow(m1 // g, -1, m2 // g)) % (m2 // g) if m2 // g > 1 else 0
    return (r1 + m1 * t) % lcm, lcm


def _has_pins(spec: NetworkSpec) -> bool:
    return any(layer.params.get("in") is not None for layer in spec.layers)


def _verdict(spec: NetworkSpec, height: int, width: int) -> bool | None:
    """The slow reference: a full analysis. None if some layer is inexact (floor) or fails at this input; else
    whether every `in:` pin matches."""
    report = analyze(spec.with_input(height, width))
    if report.halted:
        return None
    if any(layer.inexact_upstream for layer in report.layers):  # some division was truncated
        return None
    return all(layer.spec.params.get("in") in (None, layer.outcome.in_features) for layer in report.layers)


def exit_status(findings: list[Finding], strict: bool = False) -> int:
    failing = {"error", "warning"} if strict else {"error"}
    return EXIT_FINDINGS if any(f.severity in failing for f in findings) else 0
