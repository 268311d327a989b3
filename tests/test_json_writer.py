"""`summary --format json` is written by `indented_json`, which must equal json.dumps(..., indent=2,
ensure_ascii=False) character for character: on every bundled network's report and on awkward values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convaudit.core.analysis import analyze
from convaudit.render.summary import View
from convaudit.render.summary_data import indented_json, report_dict, summary_json
from convaudit.spec.library import load

from .conftest import ROOT

SPECS = sorted(path.stem for path in Path(ROOT, "architectures").glob("*.yaml"))


def reference(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


@pytest.mark.parametrize("name", SPECS)
def test_summary_json_is_json_dumps(name: str) -> None:
    report = analyze(load(name))
    if report.halted:
        pytest.skip("halts at its default input")
    view = View(report)
    assert summary_json(view) == reference(report_dict(view))


AWKWARD = [{}, [], (), {"a": []}, [[]], [1, [2, [3, {}]]], (1, 2), {1: 2}, {"k": {"n": [1, "a", 2]}},
           "é\x00\u2028\"\\\t", 3, -0, 2.5, -0.0, 1e300, math.inf, -math.inf, math.nan, None, True, False,
           [True, 1, False, 0], {"x": [None, 2.5, "p/q"]}, [{"a": 1}, {"a": 2}], {"": ""}, {"a": [1], 2: "b"},
           [{"a": {"b": 1, None: 2}}]]


@pytest.mark.parametrize("value", AWKWARD, ids=range(len(AWKWARD)))
def test_awkward_values(value: object) -> None:
    assert indented_json(value) == reference(value)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                                  max_size=4),
                    max_leaves=20)


@settings(max_examples=150, deadline=None)
@given(JSON)
def test_any_json_value(value: object) -> None:
    assert indented_json(value) == reference(value)
