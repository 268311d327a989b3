"""Findings about a network at one input: what does not divide, fit or match, and how to fix it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from convaudit.core.analysis import LayerResult, Report, analyze
from convaudit.core.layers import describe_shape
from convaudit.core.model import NetworkSpec
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
    fixes = InputFixes(spec)
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


def _axes_text(axes: list[WindowAxis]) -> tuple[str, str]:
    """('rows and columns', 'H and W: (…)') when both axes divide alike, else one clause per axis."""
    merged = merged_axes(axes)
    noun = {"H": "rows", "W": "columns", "H and W": "rows and columns"}
    return " / ".join(noun[a.axis] for a in merged), "; ".join(f"{a.axis}: {a.formula()}" for a in merged)


def _division_findings(spec: NetworkSpec, layer: LayerResult, fixes: InputFixes) -> list[Finding]:
    """Warning when floor rounding leaves input unread; info when it drops only padding, or rounds up."""
    inexact = [axis for axis in layer.windows if not axis.is_exact]
    if not inexact:
        return []
    first = inexact[0]
    noun, formula = _axes_text(inexact)
    where = layer.spec.where_key("stride" if "stride" in layer.spec.key_lines else "kernel")
    if first.ceil:
        message = (f"{layer.name}: {formula}, rounded up to {first.out} (ceil: true); the last window reaches "
                   f"{first.overhang} {_rows(noun, first.overhang, verb=False)} past the padded input, "
                   f"reading only what lies inside")
        return [Finding(spec.label, layer.name, "info", "ceil-rounding", message, (), where)]
    unseen = first.unseen
    if unseen:
        seen_text = f"so the last {unseen} input {_rows(noun, unseen)} never seen"
    else:
        seen_text = "dropping only right padding, so no input is lost"
    if first.effective_kernel < first.stride:  # windows leave gaps: rows are skipped between them anyway
        seen_text += (f" (with a {first.effective_kernel}-wide window and stride {first.stride}, "
                      f"{first.stride - first.effective_kernel} of every {first.stride} rows are skipped anyway)")
    caffe = first.ceil_rounded()
    if caffe.out == first.out:
        caffe_text = (f"Caffe's ceil rounding gives {caffe.out} too: window {caffe.out + 1} would start past the "
                      "input")
    else:
        caffe_text = (f"Caffe's ceil rounding (its pooling rule) would give {caffe.out}, its last window reaching "
                      f"{caffe.overhang} {_rows(noun, caffe.overhang, verb=False)} past the padded input")
    message = f"{layer.name}: {formula} is not an integer. PyTorch floors it to {first.out}, {seen_text}. {caffe_text}"
    if not unseen:
        return [Finding(spec.label, layer.name, "info", "inexact-division", message, (), where)]
    first_cause = layer.inexact_upstream[0] == layer.name  # later ones follow from it: fix the input once
    suggestions = (fixes.suggest() if first_cause else ()) + tuple(
        _padding_fix(axis, layer.type, axis.axis) for axis in merged_axes(inexact))
    return [Finding(spec.label, layer.name, "warning", "inexact-division", message, suggestions, where)]


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
    pool_limit_ok = layer_type == "conv" or new_padding <= axis.kernel // 2  # PyTorch: pool padding ≤ ⌊K/2⌋
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
    arithmetic = f"{describe_shape(shape)} = {received}" if len(shape) > 1 else str(received)
    message = (f"{layer.name} pins in: {pinned} but receives {arithmetic}"
               f"{_consequence(report, layer.inexact_upstream)}")
    return [Finding(spec.label, layer.name, "error", "in-mismatch", message, fixes.suggest(),
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
    """Input sizes near the current one at which every layer divides exactly."""

    def __init__(self, spec: NetworkSpec):
        self.spec = spec
        self._suggestions: tuple[str, ...] | None = None

    def suggest(self) -> tuple[str, ...]:
        if self._suggestions is None:
            self._suggestions = tuple(_input_suggestions(self.spec))
        return self._suggestions


def _input_suggestions(spec: NetworkSpec) -> list[str]:
    _, height, width = spec.input
    if height == width:
        return _axis_suggestions(spec, height, lambda s: (s, s), f"{height}", lambda s: f"{s}×{s}")
    return (_axis_suggestions(spec, height, lambda s: (s, width), f"height {height}", lambda s: f"height {s}")
            + _axis_suggestions(spec, width, lambda s: (height, s), f"width {width}", lambda s: f"width {s}"))


def _axis_suggestions(spec: NetworkSpec, current: int, size_of: Callable[[int], tuple[int, int]],
                      label: str, show: Callable[[int], str]) -> list[str]:
    below = above = pinned = None
    for distance in range(1, SEARCH_SPAN + 1):
        for size in (current - distance, current + distance):
            if size < 1:
                continue
            verdict = _verdict(spec, *size_of(size))
            if verdict is None:
                continue
            if size < current and below is None:
                below = size
            if size > current and above is None:
                above = size
            if verdict and pinned is None:
                pinned = size
        if below is not None and above is not None and pinned is not None:
            break
    found = sorted({s for s in (below, above) if s is not None}, key=lambda s: (abs(s - current), s))
    if not found:
        return [f"no input within {SEARCH_SPAN} of {label} makes every layer exact"]
    suggestions = ["nearest inputs where every layer divides exactly: "
                   + ", ".join(f"{show(s)} ({s - current:+d})" for s in found)]
    if pinned is not None and _has_pins(spec):
        suggestions.append(f"{show(pinned)} is the nearest where every layer is exact and every pinned `in:` matches")
    return suggestions


def _has_pins(spec: NetworkSpec) -> bool:
    return any(layer.params.get("in") is not None for layer in spec.layers)


def _verdict(spec: NetworkSpec, height: int, width: int) -> bool | None:
    """None if some layer is inexact (floor) or fails at this input; else whether every `in:` pin matches."""
    report = analyze(spec.with_input(height, width))
    if report.halted:
        return None
    if any(layer.inexact_upstream for layer in report.layers):  # some division was truncated
        return None
    return all(layer.spec.params.get("in") in (None, layer.outcome.in_features) for layer in report.layers)


def exit_status(findings: list[Finding], strict: bool = False) -> int:
    failing = {"error", "warning"} if strict else {"error"}
    return EXIT_FINDINGS if any(f.severity in failing for f in findings) else 0
