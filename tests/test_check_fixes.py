"""Fixes that are always right (issue 20): every fix `check` offers on a bundled network, at its own input and at
± 1 and ± 3, is applied to the spec and the whole network analysed again: the finding is cleared, no merge breaks
and no new error or warning appears."""

from __future__ import annotations

import pytest

from convaudit.core.analysis import analyze
from convaudit.core.checks import InputSize, Padding, check
from convaudit.spec.library import load

from .conftest import ARCHITECTURES

SEVERE = ("error", "warning")


def shifted(spec, delta: int):
    return spec.with_input(*(size + delta for size in spec.input[1:]))


@pytest.mark.parametrize("path", ARCHITECTURES, ids=lambda path: path.stem)
def test_every_offered_fix_holds(path) -> None:
    base = load(str(path))
    for delta in (0, -1, 1, -3, 3):
        spec = shifted(base, delta)
        report = analyze(spec)
        findings = check(report)
        before = {(f.kind, f.layer) for f in findings if f.severity in SEVERE}
        for finding in findings:
            # each text that offers an edit carries it: a padding, or one or more input sizes
            paddings = [s for s in finding.suggestions if s.startswith(("padding", "no symmetric"))]
            assert len(paddings) == sum(isinstance(fix, Padding) for fix in finding.fixes), finding
            if any(s.startswith("nearest input") or "is the nearest" in s for s in finding.suggestions):
                assert any(isinstance(fix, InputSize) for fix in finding.fixes), finding
            for fix in finding.fixes:
                after = analyze(fix.applied(spec))
                # nothing new halts it (a video whose frame count fails further on still fails there)
                halted = None if report.halted is None else report.halted.layer.name
                assert after.halted is None or after.halted.layer.name == halted, (path.stem, delta, finding.layer, fix)
                if isinstance(fix, Padding):  # the division it fixes is exact now
                    assert all(after.layer(fix.layer).windows[axis].is_exact for axis in fix.axes), fix
                else:  # an input size: every division is exact there
                    assert not any(layer.inexact_upstream for layer in after.layers), fix
                new = {(f.kind, f.layer) for f in check(analyze(fix.applied(spec))) if f.severity in SEVERE}
                if isinstance(fix, Padding):  # at the same input, nothing new (expectations may change with the input)
                    assert new <= before, (path.stem, delta, fix, new - before)
                else:
                    assert all(kind in ("expect-mismatch", "in-mismatch") for kind, _ in new - before), (fix, new)


def test_resnets_offer_no_padding_that_breaks_their_residual_add() -> None:
    # The 1×1 stride-2 shortcut: (56 − 1)/2 + 1 = 28.5. Padding it to 29 would break the add with the main path's 28;
    # and what it drops is a row its stride skips anyway: information, with no fix.
    for name in ("resnet18", "resnet50"):
        findings = check(analyze(load(name)))
        shortcut = [f for f in findings if f.layer == "layer2.0.downsample.0"][0]
        assert shortcut.severity == "info" and shortcut.suggestions == () and shortcut.fixes == ()
        assert [f for f in findings if f.severity != "info"] == []
