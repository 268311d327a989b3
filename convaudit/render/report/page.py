"""`convaudit report`: one self-contained HTML file, the data embedded once as JSON and drawn by report.js.

The blob's "summary" is `report_dict`, the very function behind `summary --format json`, so the page can never
disagree with it. Beside it sit only what the drawing needs and the summary does not hold: the findings of
`check`, the drawing's structure (boxes, clusters, ranks; layout.py), and optionally the timings of
`bench --format json`. Templates (report.html, report.css, report.js) hold no numbers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from html import escape
from importlib import resources
from typing import Any

from convaudit.core.checks import Finding
from convaudit.errors import SpecError, printable
from convaudit.render.findings import finding_dict
from convaudit.render.report.layout import Structure, structure
from convaudit.render.report.svg import category
from convaudit.render.summary import View, report_dict


def report_data(view: View, findings: Iterable[Finding], bench: dict[str, Any] | None = None,
                drawing: Structure | None = None) -> dict[str, Any]:
    report = view.report
    drawing = drawing or structure(report)
    return {
        "summary": report_dict(view),
        "findings": [finding_dict(f) for f in findings],
        "graph": {**drawing.as_dict(), "separator": report.spec.separator or "/",
                  "categories": [category(layer.type) for layer in report.layers]},
        "bench": bench_timings(bench) if bench is not None else None,
    }


def bench_timings(bench: Any) -> dict[str, Any]:
    """The fields of `bench --format json` that the report shows: per-layer forward and backward medians."""
    if not isinstance(bench, dict) or not isinstance(bench.get("layers"), list):
        raise SpecError("--bench: not the JSON of `convaudit bench --format json` (no 'layers' list)")
    layers = {}
    for row in bench["layers"]:
        if not isinstance(row, dict) or not isinstance(row.get("name"), str):
            raise SpecError("--bench: every entry of 'layers' needs a 'name'")
        layers[row["name"]] = {phase: _median(row, phase) for phase in ("forward", "backward")}
    keep = ("spec", "device", "dtype", "batch", "gpu", "repeats")
    return {"layers": layers, **{key: bench.get(key) for key in keep}}


def _median(row: dict[str, Any], phase: str) -> float | None:
    timing = row.get(phase)
    if timing is None:
        return None
    median = timing.get("median_s") if isinstance(timing, dict) else None
    if not isinstance(median, (int, float)) or isinstance(median, bool) or median < 0:
        raise SpecError(f"--bench: layer '{printable(row['name'])}': {phase}.median_s is not a duration")
    return float(median)


def load_bench(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as exc:
        raise SpecError(f"--bench: cannot read {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"--bench: {path} is not JSON ({exc})") from None


def script_json(data: Any) -> str:
    """JSON safe inside <script>: no '</script>', no HTML comment, no line separators JavaScript chokes on."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(raw, escaped)
    return text


def _template(name: str) -> str:
    return resources.files("convaudit.render.report").joinpath(name).read_text(encoding="utf-8")


def report_html(view: View, findings: Iterable[Finding], bench: dict[str, Any] | None = None) -> str:
    spec = view.report.spec
    title = spec.label + (f" — {spec.title}" if spec.title else "")
    values = {"/*CSS*/": _template("report.css"), "/*JS*/": _template("report.js"),
              "{{TITLE}}": escape(printable(title)), "{{DATA}}": script_json(report_data(view, findings, bench))}
    # one pass over the template: text put in is never searched again for markers
    return re.sub(r"/\*CSS\*/|/\*JS\*/|\{\{TITLE\}\}|\{\{DATA\}\}", lambda m: values[m.group(0)],
                  _template("report.html"))
