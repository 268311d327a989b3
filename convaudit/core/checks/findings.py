"""Findings about a network at one input: what does not divide, fit or match. `judge` finds them; the advice it is
handed (checks/repairs.py) adds the fixes, each re-analysed before it is offered."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from convaudit.core.analysis import Halt, LayerResult, Report
from convaudit.core.layers import describe_shape
from convaudit.core.model import NetworkSpec
from convaudit.core.windows import AXIS_NOUNS, Resize, WindowAxis, format_fraction, joined, merged_axes
from convaudit.errors import EXIT_FINDINGS, Where

if TYPE_CHECKING:
    from convaudit.core.checks.repairs import Advice


@dataclass(frozen=True)
class Finding:
    spec: str
    layer: str | None
    severity: str  # error | warning | info
    kind: str
    message: str
    suggestions: tuple[str, ...] = ()
    where: Where = Where()
    fixes: tuple[Any, ...] = field(default=(), compare=False)  # the suggestions as edits (repairs.py), re-analysed


def judge(report: Report, advice: Advice | None = None) -> list[Finding]:
    """Every finding for one analysed network, in layer order; with fixes where `advice` is given."""
    spec = report.spec
    findings: list[Finding] = []
    for layer in report.layers:
        findings += _division_findings(spec, layer, advice)
        findings += _resize_findings(spec, layer)
        findings += _pin_findings(spec, report, layer, advice)
        findings += _expect_findings(spec, report, layer)
    if report.halted:
        findings.append(_halt_finding(report, report.halted, advice))
    return findings


def _halt_finding(report: Report, halt: Halt, advice: Advice | None) -> Finding:
    spec = report.spec
    if halt.problem.kind == "merge":
        from convaudit.core.checks.merges import explain_merge

        message = f"{halt.problem.message}; {explain_merge(report, halt)}"
        offered = advice.merge() if advice else ((), ())
    else:
        message = halt.problem.message + _consequence(report, halt.inexact_upstream)
        offered = advice.inputs.suggest() if advice and halt.inexact_upstream else ((), ())
    texts, fixes = offered
    return Finding(spec.label, halt.layer.name, "error", halt_kind(halt),
                   f"{halt.layer.name}: {message}; analysis stops here", texts, halt.layer.where_key(halt.problem.key),
                   fixes)


def halt_kind(halt: Halt) -> str:
    """A halt's finding kind: the problem's, a kernel larger than its input named by what it gives."""
    return {"kernel-too-large": "non-positive-output"}.get(halt.problem.kind, halt.problem.kind)


def lost(axis: WindowAxis) -> int:
    """Input rows a floored division never reads beyond those its stride skips anyway: a K'-wide window at stride
    S > K' reads K' of every S rows, so the S − K' rows after the last window would be skipped even if the
    division were exact (ResNet's 1×1 stride-2 shortcut drops its last row as it drops every other one)."""
    return max(0, axis.unseen - max(0, axis.stride - axis.effective_kernel))


def _division_findings(spec: NetworkSpec, layer: LayerResult, advice: Advice | None) -> list[Finding]:
    """Every axis judged: a warning when floor rounding leaves input unread on any axis beyond what the stride
    skips anyway; information when it drops only padding or skipped rows, or rounds up, on every inexact axis."""
    inexact = [axis for axis in layer.windows if not axis.is_exact]
    if not inexact:
        return []
    merged = merged_axes(inexact)
    where = layer.spec.where_key("stride" if "stride" in layer.spec.key_lines else "kernel")
    clauses = [_ceil_clause(axis) if axis.ceil else _floor_clause(axis) for axis in merged]
    message = f"{layer.name}: " + "; ".join(clauses)
    if all(axis.ceil for axis in inexact):
        return [Finding(spec.label, layer.name, "info", "ceil-rounding", message, (), where)]
    if not any(axis.truncated and lost(axis) for axis in inexact):
        return [Finding(spec.label, layer.name, "info", "inexact-division", message, (), where)]
    if advice is None:
        return [Finding(spec.label, layer.name, "warning", "inexact-division", message, (), where)]
    first_cause = layer.inexact_upstream[0] == layer.name  # later ones follow from it: fix the input once
    suggestions, fixes = advice.inputs.suggest() if first_cause else ((), ())
    for axis in merged:
        if axis.truncated and lost(axis):
            offered, note = advice.padding(layer, axis)
            if offered is not None:
                suggestions, fixes = suggestions + (offered.text,), fixes + (offered,)
            elif note:
                message += f". {note}"
    return [Finding(spec.label, layer.name, "warning", "inexact-division", message, suggestions, where, fixes)]


def axis_nouns(label: str, count: int = 2) -> str:
    """'rows', 'row and column', 'slices, rows and columns' for an axis label such as 'D, H and W'."""
    words = [AXIS_NOUNS[name] for name in label.replace(" and ", ", ").split(", ")]
    return joined([word[:-1] if count == 1 else word for word in words])


def _rows(label: str, count: int, verb: bool = True) -> str:
    """'row and column are', 'rows are', 'column is' … agreeing with the count."""
    words = axis_nouns(label, count)
    return f"{words} {'is' if count == 1 and ' ' not in words else 'are'}" if verb else words


def _ceil_clause(axis: WindowAxis) -> str:
    return (f"{axis.axis}: {axis.formula()}, rounded up to {axis.out} (ceil: true); the last window reaches "
            f"{axis.overhang} {_rows(axis.axis, axis.overhang, verb=False)} past the padded input, reading only what "
            "lies inside")


def _floor_clause(axis: WindowAxis) -> str:
    unseen = axis.unseen
    gap = axis.stride - axis.effective_kernel  # rows between windows, skipped by design
    if unseen and gap > 0 and not lost(axis):
        seen_text = (f"so the last {unseen} input {_rows(axis.axis, unseen)} never seen, which the stride skips "
                     f"anyway: a {axis.effective_kernel}-wide window at stride {axis.stride} reads "
                     f"{axis.effective_kernel} of every {axis.stride} {axis_nouns(axis.axis)}, so nothing is lost "
                     "beyond that")
    elif unseen:
        seen_text = f"so the last {unseen} input {_rows(axis.axis, unseen)} never seen"
        if gap > 0:
            seen_text += (f", {lost(axis)} more than the stride skips anyway (a {axis.effective_kernel}-wide window "
                          f"at stride {axis.stride} reads {axis.effective_kernel} of every {axis.stride} "
                          f"{axis_nouns(axis.axis)})")
    else:
        seen_text = "dropping only right padding, so no input is lost"
    caffe = axis.ceil_rounded()
    if caffe.out == axis.out:
        caffe_text = f"Caffe's ceil rounding gives {caffe.out} too: window {caffe.out + 1} would start past the input"
    else:
        caffe_text = (f"Caffe's ceil rounding (its pooling rule) would give {caffe.out}, its last window reaching "
                      f"{caffe.overhang} {_rows(axis.axis, caffe.overhang, verb=False)} past the padded input")
    return (f"{axis.axis}: {axis.formula()} is not an integer. PyTorch floors it to {axis.out}, {seen_text}. "
            f"{caffe_text}")


def resize_formula(resize: Resize) -> str:
    """'35 × 1.5 = 52.5', the product a fractional up-sampling floors."""
    return f"{resize.size} × {format_fraction(resize.scale)} = {format_fraction(resize.exact)}"


def _resize_findings(spec: NetworkSpec, layer: LayerResult) -> list[Finding]:
    """Up-sampling by a fractional factor floors its product, as PyTorch does: information, per axis."""
    alike: dict[tuple[int, object, int], list[Resize]] = {}  # axes that floor alike, labelled together
    for resize in layer.outcome.resizes:
        if not resize.is_exact:
            alike.setdefault((resize.size, resize.scale, resize.out), []).append(resize)
    if not alike:
        return []
    clauses = [f"{joined([r.axis for r in group])}: {resize_formula(group[0])} is not an integer; PyTorch floors it "
               f"to {group[0].out}" for group in alike.values()]
    return [Finding(spec.label, layer.name, "info", "inexact-resize", f"{layer.name}: " + "; ".join(clauses), (),
                    layer.spec.where_key("scale"))]


def _pin_findings(spec: NetworkSpec, report: Report, layer: LayerResult, advice: Advice | None) -> list[Finding]:
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
    suggestions, fixes = advice.inputs.suggest_pinned() if advice else ((), ())
    return [Finding(spec.label, layer.name, "error", "in-mismatch", message, suggestions,
                    layer.spec.where_key("in"), fixes)]


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


def exit_status(findings: list[Finding], strict: bool = False) -> int:
    failing = {"error", "warning"} if strict else {"error"}
    return EXIT_FINDINGS if any(f.severity in failing for f in findings) else 0
