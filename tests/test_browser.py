"""The HTML report in a real browser: headless Chromium opens the report of every bundled network.

Chromium is the Debian package `chromium` (.ci/run installs it). Without it these tests skip locally and fail
in CI (CI=true), so CI always runs them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from convaudit.cli import app
from convaudit.core.analysis import analyze
from convaudit.core.checks import check
from convaudit.render.report.layout import place, structure
from convaudit.spec.parser import load_spec

from .chromium import Chromium, Page, find_chromium
from .conftest import ARCHITECTURES

CHROMIUM = find_chromium()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing in CI: .ci/run must apt-get install chromium")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    chromium = Chromium(CHROMIUM)
    yield chromium
    chromium.close()


def open_report(browser: Chromium, spec: Path | str, tmp_path: Path, *extra: str) -> Page:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", str(spec), "-o", str(out), *extra])
    assert result.exit_code == 0, result.output
    page = Page(browser)
    page.open(out.as_uri())
    assert page.evaluate("document.body.getAttribute('data-ready')") == "true", page.errors()
    return page


def visible(drawing, expanded: set[str], cid: str = "B0") -> set[str]:
    """The boxes the drawing shows when `expanded` clusters are open: layers, the input, shut blocks and runs."""
    found: set[str] = set()
    for row in drawing.clusters[cid].ranks:
        for item in row:
            if item in drawing.clusters and item in expanded:
                found |= visible(drawing, expanded, item)
            elif drawing.nodes[item].kind not in ("dummy", "in", "out"):
                found.add(item)
    return found


def flat(placed, prefix: str = "") -> dict[str, list[float]]:
    out = {}
    for item, x in placed.x.items():
        out[prefix + item] = [x, placed.y[item]]
    for item, inner in placed.inner.items():
        out.update(flat(inner, prefix + item + "/"))
    return out


JS_FLAT = """(() => { const L = window.convauditLayout;
  function flat(p, prefix) { const out = {};
    for (const [k, x] of p.x) out[prefix + k] = [x, p.y.get(k)];
    for (const [k, inner] of p.inner) Object.assign(out, flat(inner, prefix + k + '/'));
    return out; }
  return flat(L.place('B0', new Set(%s)), ''); })()"""

NOTHING_OVERFLOWS = """(() => {
  const bad = [];
  if (document.documentElement.scrollWidth > window.innerWidth) bad.push('page is wider than the window');
  for (const g of document.querySelectorAll('#graph .g-node')) {
    const rect = g.querySelector('rect'), w = Number(rect.getAttribute('width'));
    for (const t of g.querySelectorAll('text.label, text.sub'))
      if (t.getComputedTextLength() > w - 4) bad.push(g.dataset.id + ': ' + t.textContent);
  }
  for (const cell of document.querySelectorAll('.card b, .bar b'))
    if (cell.scrollWidth > cell.parentElement.clientWidth + 1) bad.push('cut: ' + cell.textContent);
  return bad; })()"""


@pytest.mark.parametrize("path", ARCHITECTURES, ids=[p.stem for p in ARCHITECTURES])
def test_every_bundled_network_renders(browser: Chromium, path: Path, tmp_path: Path) -> None:
    report = analyze(load_spec(path))
    drawing = structure(report)
    page = open_report(browser, path, tmp_path)
    try:
        # Collapsed at first: exactly the top level's boxes, and every layer inside one of them.
        shown = set(page.evaluate("[...document.querySelectorAll('#graph .g-node')].map(g => g.dataset.id)"))
        assert shown == visible(drawing, {"B0"})
        for index in range(len(report.layers)):
            node = f"L{index}"
            while node not in shown:
                node = drawing.parent[node]
        # Opened: every layer has its own box, named, and the coordinates are layout.py's.
        page.evaluate("document.getElementById('expand-all').click()")
        names = page.evaluate("[...document.querySelectorAll('#graph .g-node[data-kind=layer]')]"
                              ".map(g => g.dataset.layer)")
        assert sorted(names) == sorted(layer.name for layer in report.layers)
        opened = set(drawing.clusters)
        js = page.evaluate(JS_FLAT % json.dumps(sorted(opened)))
        py = flat(place(drawing, "B0", opened))
        assert js.keys() == py.keys()
        assert all(abs(js[k][0] - py[k][0]) < 1e-6 and abs(js[k][1] - py[k][1]) < 1e-6 for k in py)
        # Findings are marked on their layers.
        flagged = {f.layer for f in check(report) if f.layer}
        marked = set(page.evaluate("[...document.querySelectorAll('#graph .g-node[data-kind=layer]')]"
                                   ".filter(g => g.querySelector('rect.error, rect.warning, rect.info'))"
                                   ".map(g => g.dataset.layer)"))
        assert marked == flagged
        # The table, the charts and the findings are there; nothing overflows; no error, no request.
        assert page.evaluate("document.querySelectorAll('#table-body .row').length") > 0
        assert page.evaluate("document.querySelectorAll('#share-bars .share').length") == 3
        assert page.evaluate("document.querySelectorAll('#rf-chart path').length") == 2
        assert page.evaluate("document.querySelectorAll('#finding-list .finding').length") == min(
            200, len(check(report)))
        assert page.evaluate(NOTHING_OVERFLOWS) == []
        assert page.errors() == []
        assert [url for url in page.requests() if not url.startswith(("file:", "data:"))] == []
    finally:
        page.close()


def test_alexnet_shares_at_a_glance(browser: Chromium, tmp_path: Path) -> None:
    """Convolutions do about 92% of AlexNet's compute; its fully connected layers hold about 96% of its
    parameters. Both from the layer shapes, written out here, against what the page draws."""
    conv_macs = (55 * 55 * 96 * 11 * 11 * 3        # conv1: 96 maps of 55×55, 11×11×3 windows
                 + 27 * 27 * 256 * 5 * 5 * 48      # conv2: two groups, each window 5×5×48
                 + 13 * 13 * 384 * 3 * 3 * 256     # conv3
                 + 13 * 13 * 384 * 3 * 3 * 192     # conv4: two groups
                 + 13 * 13 * 256 * 3 * 3 * 192)    # conv5: two groups
    fc_macs = 9216 * 4096 + 4096 * 4096 + 4096 * 1000
    conv_params = (11 * 11 * 3 * 96 + 96 + 5 * 5 * 48 * 256 + 256 + 3 * 3 * 256 * 384 + 384
                   + 3 * 3 * 192 * 384 + 384 + 3 * 3 * 192 * 256 + 256)
    fc_params = 9216 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000
    page = open_report(browser, "alexnet", tmp_path)
    try:
        share = page.evaluate("""Object.fromEntries([...document.querySelectorAll('#share-bars .share')].map(row =>
            [row.dataset.metric, Object.fromEntries([...row.querySelectorAll('[data-category]')].map(
                s => [s.dataset.category, Number(s.dataset.share)]))]))""")
        assert share["FLOPs"]["conv"] == pytest.approx(conv_macs / (conv_macs + fc_macs), abs=1e-5)
        assert share["parameters"]["dense"] == pytest.approx(fc_params / (conv_params + fc_params), abs=1e-5)
        assert 0.91 < share["FLOPs"]["conv"] < 0.93 and 0.95 < share["parameters"]["dense"] < 0.97
        assert page.errors() == []
    finally:
        page.close()


HOSTILE = """\
name: hostile
title: "</title><script>alert(1)</script>"
input: [3, 32, 32]
separator: "."
layers:
  - {type: conv, name: "</script><script>alert(1)</script>", out: 8, kernel: 3}
  - {type: relu, name: "[bold]x"}
  - {type: relu, name: "<img src=x onerror=alert(2)>"}
"""


def test_user_text_renders_as_text(browser: Chromium, write_spec, tmp_path: Path) -> None:
    page = open_report(browser, write_spec(HOSTILE), tmp_path)
    try:
        assert page.dialogs() == []
        labels = page.evaluate("[...document.querySelectorAll('#graph .g-node')].map(g => g.dataset.layer)")
        assert "</script><script>alert(1)</script>" in labels and "[bold]x" in labels
        assert "<img src=x onerror=alert(2)>" in labels
        assert page.evaluate("document.querySelectorAll('img, script:not([id]) ~ script').length") == 0
        assert page.evaluate("document.getElementById('title').textContent").startswith(
            "hostile — </title><script>")
        assert page.errors() == []
    finally:
        page.close()


def long_chain(layers: int) -> str:
    lines = ["name: long", "input: [3, 16, 16]", "layers:"]
    for i in range(layers // 2):
        lines += [f"  - {{type: conv, name: c{i}, out: 4, kernel: 3, padding: 1}}", f"  - {{type: relu, name: r{i}}}"]
    return "\n".join(lines) + "\n"


def test_long_chain_stays_collapsed(browser: Chromium, write_spec, tmp_path: Path) -> None:
    """20,000 layers without blocks: nested runs (a few dozen boxes), a table that draws only the rows in view,
    runs that open, and "Expand all" that stops at a few thousand boxes."""
    page = open_report(browser, write_spec(long_chain(20000)), tmp_path)
    try:
        before = page.evaluate("document.querySelectorAll('#graph .g-node').length")
        assert before <= 60
        assert page.evaluate("document.querySelectorAll('#table-body .row').length") < 100
        page.evaluate("document.querySelector('#graph .g-node[data-kind=run]').dispatchEvent(new Event('click'))")
        assert page.evaluate("document.querySelectorAll('#graph .g-node').length") > before
        page.evaluate("document.getElementById('table-body').scrollTop = 26 * 15000")
        page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        assert "c7500" in page.evaluate("[...document.querySelectorAll('#table-body .row')].map(r => r.dataset.row)")
        page.evaluate("document.getElementById('expand-all').click()")  # stops at a few thousand boxes
        assert 1000 < page.evaluate("document.querySelectorAll('#graph .g-node').length") <= 4000
        assert page.errors() == []
    finally:
        page.close()


def test_bench_times_beside_the_flops(browser: Chromium, tmp_path: Path) -> None:
    bench = {"spec": "lenet5", "device": "cpu", "dtype": "fp32", "batch": 1, "gpu": False, "repeats": 3,
             "layers": [{"name": "C1", "forward": {"median_s": 0.002}, "backward": None},
                        {"name": "C3", "forward": {"median_s": 0.006}, "backward": None}]}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(bench), encoding="utf-8")
    page = open_report(browser, "lenet5", tmp_path, "--bench", str(path))
    try:
        assert page.evaluate("[...document.querySelectorAll('#table-head div')].map(d => d.textContent)")[-1] == (
            "forward time")
        times = page.evaluate("Object.fromEntries([...document.querySelectorAll('#table-body .row')].map(r =>"
                              " [r.dataset.row, r.querySelector('.bar.time b').textContent]))")
        assert times["C1"] == "2.00 ms" and times["C3"] == "6.00 ms" and times["S2"] == ""
        share = page.evaluate("document.querySelector('[data-metric=\"forward time\"] [data-category=conv]')"
                              ".dataset.share")
        assert float(share) == pytest.approx(1.0)  # both timed layers are convolutions
        assert page.errors() == []
    finally:
        page.close()
