"""`check`: findings about a network at one input (what does not divide, fit or match), with fixes re-analysed
before they are offered.

    findings.py  the findings, and their wording
    merges.py    why a merge's inputs differ
    exact.py     the one-pass model of the input sizes where every division is exact and every merge matches
    search.py    the nearest such input sizes
    repairs.py   paddings and input sizes, each applied and re-analysed before it is offered
"""

from __future__ import annotations

from convaudit.core.analysis import Report
from convaudit.core.checks.exact import ExactModel
from convaudit.core.checks.findings import Finding, exit_status, judge
from convaudit.core.checks.repairs import Advice, Padding
from convaudit.core.checks.search import SEARCH_SPAN, InputFixes, InputSize, _verdict

__all__ = ["SEARCH_SPAN", "ExactModel", "Finding", "InputFixes", "InputSize", "Padding", "_verdict", "check",
           "exit_status"]


def check(report: Report) -> list[Finding]:
    """Every finding for one analysed network, in layer order, with the fixes that hold."""
    return judge(report, Advice(report))
