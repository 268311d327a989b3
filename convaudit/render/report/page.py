"""`convaudit report`: one self-contained HTML file, the data embedded once as JSON, the drawing as SVG.

The blob's "summary" is `report_dict`, the very function behind `summary --format json`, so the page can never
disagree with it. Beside it sit what the page needs and the summary does not hold: the findings of `check`
(their files relative to the working directory, so that a mailed report gives away no home directory), each
layer's hyper-parameters, the main path for the receptive-field chart, an index of the drawing's views, and
optionally the timings of `bench --format json` (bench.py). The views themselves are SVG, drawn in Python by
svg.py, each in a <template> that report.js swaps in: the browser lays nothing out. Templates (report.html,
report.css, report.js) hold no numbers.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from convaudit.core.analysis import Report
from convaudit.core.checks import Finding
from convaudit.core.layers import CATEGORIES
from convaudit.errors import printable
from convaudit.render.findings import finding_dict
from convaudit.render.report.bench import bench_timings, load_bench
from convaudit.render.report.hyper import layer_values, type_fields
from convaudit.render.report.layout import Structure, structure
from convaudit.render.report.svg import Drawing, category, drawing_css
from convaudit.render.report.views import report_views
from convaudit.render.summary import View
from convaudit.render.summary_data import report_dict

__all__ = ["load_bench", "main_path", "report_data", "report_html"]

# px: the drawing's rows wrap to this (the pane beside the details on a 1400 px screen, less a scroll bar)
PANE_WIDTH = 960.0


def relative(path: str | None) -> str | None:
    """A file as a mailed report may show it: relative to the working directory when inside it, else its name."""
    if path is None or not os.path.isabs(path):
        return path
    try:
        inside = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return Path(path).name
    return Path(path).name if inside.startswith("..") else inside


def main_path(report: Report) -> list[int]:
    """The layers of the longest path from the input to the main output (the first output, else the last
    layer), in graph order; ties go to the earlier layer. Branches beside it (shortcuts, auxiliary heads) are
    left out, so that a chart along it does not zig-zag."""
    if not report.layers:
        return []
    index = {layer.name: i for i, layer in enumerate(report.layers)}
    length: list[int] = []
    before: list[int | None] = []
    for layer in report.layers:
        sources = [index[name] for name in layer.spec.inputs if name in index]
        best = max(sources, key=lambda s: (length[s], -s), default=None)
        before.append(best)
        length.append(1 + (length[best] if best is not None else 0))
    outputs = [index[name] for name in report.spec.outputs if name in index]
    node: int | None = outputs[0] if outputs else len(report.layers) - 1
    path = []
    while node is not None:
        path.append(node)
        node = before[node]
    return path[::-1]


def report_data(view: View, findings: Iterable[Finding], bench: dict[str, Any] | None = None,
                drawing: Structure | None = None) -> tuple[dict[str, Any], list[str]]:
    """The blob, and each view of the drawing as an SVG element (the blob's graph.views index them)."""
    report = view.report
    findings = list(findings)
    drawing = drawing or structure(report)
    views, own = report_views(drawing)
    painter = Drawing(report, drawing, findings)
    markup, index = [], []
    for item in views:
        elements, width, height = painter.view(item, True, PANE_WIDTH - 32)
        markup.append(f'<svg class="net" width="{width:.0f}" height="{height:.0f}" '
                      f'viewBox="0 0 {width:.1f} {height:.1f}">{elements}</svg>')
        index.append({"root": item.root, "label": item.label, "boxes": drawing.boxes(item.root, item.expanded)})
    types = {layer.type for layer in report.layers}
    data = {
        "summary": report_dict(view),
        "findings": [{**finding_dict(f), "file": relative(f.where.file)} for f in findings],
        "graph": {
            "separator": report.spec.separator or "/",
            "categories": [category(layer.type) for layer in report.layers],
            "families": list(CATEGORIES),
            "parent": drawing.parent,
            "clusters": {cid: c.name for cid, c in drawing.clusters.items()},
            "views": index,
            "own": own,
        },
        "fields": {"types": {name: type_fields(name) for name in sorted(types)},
                   "values": [layer_values(layer) for layer in report.layers]},
        "main_path": main_path(report),
        "bench": bench_timings(bench) if bench is not None else None,
    }
    return data, markup


def script_json(data: Any) -> str:
    """JSON safe inside <script>: no '</script>', no HTML comment, and no character printable() would escape
    (line separators JavaScript chokes on, bidi overrides that reorder the file in an editor) but as a \\u
    escape. Only finite numbers get here (the bench file is checked when read), so the JSON is always valid."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(raw, escaped)
    return text if text.isprintable() else "".join(ch if ch.isprintable() else _json_escape(ch) for ch in text)


def _json_escape(ch: str) -> str:
    if printable(ch) == ch:
        return ch
    units = ch.encode("utf-16-be", "surrogatepass")  # beyond U+FFFF: a surrogate pair, as JSON writes it
    return "".join(f"\\u{int.from_bytes(units[i:i + 2], 'big'):04x}" for i in range(0, len(units), 2))


def _template(name: str) -> str:
    return resources.files("convaudit.render.report").joinpath(name).read_text(encoding="utf-8")


def report_html(view: View, findings: Iterable[Finding], bench: dict[str, Any] | None = None) -> str:
    spec = view.report.spec
    title = spec.label + (f" — {spec.title}" if spec.title else "")
    data, markup = report_data(view, findings, bench)
    views = "\n".join(f'<template id="view-{i}">{svg}</template>' for i, svg in enumerate(markup))
    values = {"/*CSS*/": _template("report.css") + drawing_css(), "/*JS*/": _template("report.js"),
              "{{TITLE}}": escape(printable(title)), "{{DATA}}": script_json(data), "{{VIEWS}}": views}
    # one pass over the template: text put in is never searched again for markers
    return re.sub(r"/\*CSS\*/|/\*JS\*/|\{\{TITLE\}\}|\{\{DATA\}\}|\{\{VIEWS\}\}", lambda m: values[m.group(0)],
                  _template("report.html"))
