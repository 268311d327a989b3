"""The HTML report in a real browser: headless Chromium opens the report of every bundled network.

Chromium is the Debian package `chromium` (.ci/run installs it). Without it these tests skip locally and fail
in CI (CI=true), so CI always runs them. One browser serves the whole module; each network's page is opened
once and checked at 1400 px and at 400 px wide.
"""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path

import pytest
from typer.testing import CliRunner

from convaudit.cli import app
from convaudit.core.analysis import analyze
from convaudit.core.checks import check
from convaudit.errors import printable
from convaudit.render.report.layout import structure
from convaudit.render.report.views import STAGE_FEWEST, STAGE_STRETCH, report_views
from convaudit.spec.parser import load_spec

from .chromium import Chromium, Page, find_chromium
from .conftest import ARCHITECTURES, REPRESENTATIVE

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


def open_report(browser: Chromium, spec: Path | str, tmp_path: Path, *extra: str, width: int = 1400) -> Page:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", str(spec), "-o", str(out), *extra])
    assert result.exit_code == 0, result.output
    return open_page(browser, out, width)


def open_page(browser: Chromium, path: Path, width: int = 1400) -> Page:
    page = Page(browser, width)
    page.open(path.as_uri())
    assert page.evaluate("document.body.getAttribute('data-ready')") == "true", page.errors()
    return page


def resize(page: Page, width: int) -> None:
    page.resize(width)
    page.evaluate("window.convauditReport.refit()")  # what the page's resize handler does, 150 ms later


# Text cut by its box, elements wider than the window or their container (outside the panes that scroll).
PAGE_PROBLEMS = """(() => {
  const bad = [], W = window.innerWidth;
  if (document.documentElement.scrollWidth > W) bad.push('page ' + document.documentElement.scrollWidth + ' px wide');
  const cut = '.card b, .card span, .row > div, .bar b, .share-title, .share-legend, .crumbs, .toolbar > *, ' +
              '.details td, .kv td, .finding, h1, h2, p, .legend span';
  for (const e of document.querySelectorAll(cut))
    if (e.scrollWidth > e.clientWidth + 1) bad.push('cut: ' + e.className + ' "' + e.textContent.slice(0, 50) + '"');
  for (const e of document.querySelectorAll('#details, #table-head'))
    if (e.scrollWidth > e.clientWidth + 1) bad.push('wider than its pane: #' + e.id);
  for (const e of document.querySelectorAll('header *, main *')) {
    if (e.closest('#graph svg, #table-body, #details, .stack')) continue;  // inside panes that scroll, or checked
    const r = e.getBoundingClientRect(), p = e.parentElement.getBoundingClientRect();
    if (r.width && (r.right > p.right + 1 || r.left < p.left - 1))
      bad.push('past its container: ' + e.tagName + '.' + e.className + ' "' + e.textContent.slice(0, 40) + '"');
  }
  return bad; })()"""

# In the drawing shown: names and hyper-parameters inside their boxes, titles inside their frames, shapes on
# the edges clear of every box, frame border, other shape and line.
VIEW_PROBLEMS = """((lines) => {
  const bad = [], svg = document.querySelector('#graph svg');
  const area = (r) => { const x = +r.getAttribute('x'), y = +r.getAttribute('y');
    return { x, y, width: +r.getAttribute('width'), height: +r.getAttribute('height') }; };
  const meets = (a, b) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height
    && b.y < a.y + a.height;
  const holds = (a, b) => b.x >= a.x && b.y >= a.y && b.x + b.width <= a.x + a.width
    && b.y + b.height <= a.y + a.height;
  for (const g of svg.querySelectorAll('.n')) {
    const w = +g.querySelector('rect').getAttribute('width');
    for (const t of g.querySelectorAll('text.label, text.sub'))
      if (t.getComputedTextLength() > w - 6) bad.push('text past its box: ' + t.textContent);
  }
  const frames = [...svg.querySelectorAll('.f')].map((g) => [area(g.querySelector('rect')), g.querySelector('text')]);
  for (const [f, t] of frames) {
    const b = t.getBBox();
    if (b.x + b.width > f.x + f.width - 4) bad.push('title past its frame: ' + t.textContent);
  }
  const boxes = [...svg.querySelectorAll('.n > rect')].map(area);
  const labels = [...svg.querySelectorAll('text.shape')].map((t) => [t.textContent, t.getBBox()]);
  labels.forEach(([text, b], i) => {
    if (boxes.some((r) => meets(r, b))) bad.push('shape on a box: ' + text);
    if (frames.some(([f]) => meets(f, b) && !holds(f, b))) bad.push('shape across a frame: ' + text);
    if (labels.some(([, c], j) => j !== i && meets(b, c))) bad.push('shapes collide: ' + text);
  });
  if (lines) {  // no line through a shape: each label's area probed, a point a pixel, against the lines near it
    const paths = [...svg.querySelectorAll('path.edge')].map((p) => [p, p.getBBox()]), at = svg.createSVGPoint();
    const near = (a, b) => a.x <= b.x + b.width && b.x <= a.x + a.width && a.y <= b.y + b.height
      && b.y <= a.y + a.height;
    for (const [text, b] of labels) {
      const inner = { x: b.x + 1, y: b.y + 1, width: b.width - 2, height: b.height - 2 };
      for (const [p, box] of paths) {
        if (!near(inner, box)) continue;
        let hit = false;
        for (at.x = inner.x; at.x <= inner.x + inner.width && !hit; at.x += 1)
          for (at.y = inner.y; at.y <= inner.y + inner.height && !hit; at.y += 1) hit = p.isPointInStroke(at);
        if (hit) { bad.push('a line crosses shape ' + text); break; }
      }
    }
  }
  return bad; })(%s)"""

CHECK_ALL_VIEWS = """(() => { const R = window.convauditReport, found = {};
  R.views.forEach((v, i) => { R.showView(i); const bad = %s; if (bad.length) found[i + ' ' + v.label] = bad; });
  R.showView(0); return found; })()""" % (VIEW_PROBLEMS % "false")


def shown_boxes(page: Page) -> set[str]:
    return set(page.evaluate("[...document.querySelectorAll('#graph .n')].map(g => g.dataset.id)"))


# a classic, branches, tokens, an encoder-decoder, a volume and the most layers: every kind of drawing
IN_BROWSER = ("alexnet", "googlenet", "vit_b_16", "unet", "r3d_18", "densenet121")
assert set(IN_BROWSER) <= set(REPRESENTATIVE)


@pytest.mark.parametrize("path", [p for p in ARCHITECTURES if p.stem in IN_BROWSER],
                         ids=[p.stem for p in ARCHITECTURES if p.stem in IN_BROWSER])
def test_representative_networks(browser: Chromium, path: Path, tmp_path: Path) -> None:
    report = analyze(load_spec(path))
    drawing = structure(report)
    views, own = report_views(drawing)
    page = open_report(browser, path, tmp_path)
    try:
        # The first view is the stage level: a useful number of boxes, every layer inside one of them.
        shown = shown_boxes(page)
        assert len(shown) == drawing.boxes("B0", views[0].expanded)
        assert min(STAGE_FEWEST, 1 + len(report.layers)) <= len(shown) <= STAGE_STRETCH
        for index in range(len(report.layers)):
            assert f"L{index}" in shown or any(a in shown for a in drawing.ancestors(f"L{index}"))
        # "Expand all": the deepest level; on a bundled network, every layer in a box of its own.
        page.evaluate("document.getElementById('expand-all').click()")
        assert {f"L{i}" for i in range(len(report.layers))} <= shown_boxes(page)
        # Each block has a view of its own, reached by clicking it, with a breadcrumb back.
        page.evaluate("document.getElementById('collapse-all').click()")
        block = next((b for b in shown_boxes(page) if b in drawing.clusters), None)
        if block is not None:
            page.evaluate(f"document.querySelector('#graph [data-id=\"{block}\"] rect').dispatchEvent("
                          "new MouseEvent('click', {bubbles: true}))")
            assert page.evaluate("document.querySelector('#graph svg')") is not None
            crumbs = page.evaluate("document.getElementById('crumbs').textContent")
            assert crumbs.endswith(printable(drawing.clusters[block].name))
            frames = set(page.evaluate("[...document.querySelectorAll('#graph .f')].map(g => g.dataset.id)"))
            assert shown_boxes(page) | frames >= {item for row in drawing.clusters[block].ranks for item in row
                                         if drawing.nodes[item].kind not in ("dummy", "in", "out")}
        # Findings are marked on their layers, in the every-layer view.
        page.evaluate("document.getElementById('expand-all').click()")
        names = {f"L{i}": layer.name for i, layer in enumerate(report.layers)}
        flagged = {f.layer for f in check(report) if f.layer}
        marked = page.evaluate("[...document.querySelectorAll('#graph .n[data-id^=L]')]"
                               ".filter(g => g.querySelector('rect.error, rect.warning, rect.info'))"
                               ".map(g => g.dataset.id)")
        assert {names[m] for m in marked} == flagged
        # Clicking a layer shows its hyper-parameters and numbers.
        page.evaluate("document.querySelector('#graph .n[data-id=L0] rect').dispatchEvent("
                      "new MouseEvent('click', {bubbles: true}))")
        assert page.evaluate("document.querySelector('#details h3').textContent") == printable(report.layers[0].name)
        # Every view: text inside its box and frame, shapes clear of boxes, frames and each other.
        assert page.evaluate(CHECK_ALL_VIEWS) == {}
        page.evaluate("window.convauditReport.showView(0)")
        assert page.evaluate(VIEW_PROBLEMS % "true") == []  # and no line through a shape
        # The table, the charts and the findings are there.
        assert page.evaluate("document.querySelectorAll('#table-body .row').length") > 0
        assert page.evaluate("document.querySelectorAll('#share-bars .share').length") == 3
        assert page.evaluate("document.querySelectorAll('#rf-chart path').length") == 2
        assert page.evaluate("document.querySelectorAll('#finding-list .finding').length") == min(
            200, len(check(report)))
        # At 1400 px and at 400 px, nothing is cut or wider than the window.
        assert page.evaluate(PAGE_PROBLEMS) == []
        resize(page, 400)
        assert page.evaluate(PAGE_PROBLEMS) == []
        assert page.evaluate("document.querySelectorAll('#table-head div').length") >= 3
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
            [row.dataset.metric, Object.fromEntries([...row.querySelectorAll('[data-type]')].map(
                s => [s.dataset.type, Number(s.dataset.share)]))]))""")
        assert share["FLOPs"]["conv"] == pytest.approx(conv_macs / (conv_macs + fc_macs), abs=1e-5)
        assert share["parameters"]["linear"] == pytest.approx(fc_params / (conv_params + fc_params), abs=1e-5)
        assert 0.91 < share["FLOPs"]["conv"] < 0.93 and 0.95 < share["parameters"]["linear"] < 0.97
        assert page.errors() == []
    finally:
        page.close()


def test_shares_name_the_real_kinds(browser: Chromium, tmp_path: Path) -> None:
    """ViT: attention apart from the linear layers, and no 'other' slice: dropout, reshape, permute named."""
    page = open_report(browser, "vit_b_16", tmp_path)
    try:
        kinds = page.evaluate("Object.fromEntries([...document.querySelectorAll('#share-bars .share')].map(row =>"
                              " [row.dataset.metric,"
                              "  [...row.querySelectorAll('[data-type]')].map(s => s.dataset.type)]))")
        assert {"attention", "linear"} <= set(kinds["FLOPs"])
        assert {"dropout", "reshape", "permute"} <= set(kinds["activation memory"])
        assert "other" not in kinds["activation memory"]
    finally:
        page.close()


HOSTILE = """\
name: hostile
title: "</title><script>alert(1)</script> \\u202e"
input: [3, 32, 32]
separator: "."
layers:
  - {type: conv, name: "</script><script>alert(1)</script>", out: 8, kernel: 3}
  - {type: relu, name: "[bold]x"}
  - {type: relu, name: "<img src=x onerror=alert(2)>"}
  - {type: relu, name: "__proto__"}
  - {type: relu, name: "constructor"}
  - {type: relu, name: "toString"}
  - {type: relu, name: "a\\u202eb\\u2066c\\x1bd"}
"""

# every text the page shows, and every attribute: none holds a control, bidi or separator character raw
RAW_HIDDEN = r"""(() => { const found = [], re = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode())
    if (re.test(n.textContent.replace(/[\n\t]/g, '')) && !n.parentElement.closest('script')) found.push(n.textContent);
  for (const e of document.querySelectorAll('*'))
    for (const a of e.attributes) if (re.test(a.value)) found.push(a.value);
  if (re.test(document.title)) found.push(document.title);
  return found; })()"""


def test_user_text_renders_as_text(browser: Chromium, write_spec, tmp_path: Path) -> None:
    bench = {"layers": [{"name": name, "forward": {"median_s": 0.001 * (i + 1)}}
                        for i, name in enumerate(["__proto__", "constructor", "toString"])]}
    (tmp_path / "bench.json").write_text(json.dumps(bench), encoding="utf-8")
    page = open_report(browser, write_spec(HOSTILE), tmp_path, "--bench", str(tmp_path / "bench.json"))
    try:
        assert page.dialogs() == []
        page.evaluate("document.getElementById('expand-all').click()")
        titles = page.evaluate("[...document.querySelectorAll('#graph .n title')].map(t => t.textContent)")
        for name in ["</script><script>alert(1)</script> (conv)", "[bold]x (relu)",
                     "<img src=x onerror=alert(2)> (relu)", "a\\u202eb\\u2066c\\x1bd (relu)"]:
            assert any(title.startswith(name) for title in titles), name
        assert page.evaluate("document.querySelectorAll('img, script:not([id]) ~ script').length") == 0
        assert page.evaluate("document.getElementById('title').textContent").startswith(
            "hostile — </title><script>")
        # Layers named like Object's own properties keep their timings (Maps, not objects, hold user keys).
        times = page.evaluate("Object.fromEntries([...document.querySelectorAll('#table-body .row')].map(r =>"
                              " [r.dataset.row, r.querySelector('.bar.time b').textContent]))")
        assert times["__proto__"] == "1.00 ms" and times["constructor"] == "2.00 ms" and times["toString"] == "3.00 ms"
        assert times["[bold]x"] == "" and not any("NaN" in t for t in times.values())
        # Control and bidi characters are shown as escapes, as the terminal shows them, everywhere.
        assert page.evaluate(RAW_HIDDEN) == []
        page.evaluate("window.convauditReport.reveal(6)")
        assert page.evaluate("document.querySelector('#details h3').textContent") == "a\\u202eb\\u2066c\\x1bd"
        samples = ["\u202e", "\u2066", "\x1b", "\x7f", "\u2028", "\u00a0", "\U000e0001", "\ufeff", "é", "\u200b"]
        assert page.evaluate(f"{json.dumps(samples)}.map(window.convauditReport.shown)") == [
            printable(s) for s in samples]  # the page's shown() is the terminal's printable()
        assert all(unicodedata.category(s[0]) for s in samples)
        assert page.errors() == []
    finally:
        page.close()


PARTIAL = """name: partial
input: [3, 8, 8]
untraced: {op: aten.nonzero.default, module: rpn, reason: "data-dependent (its output size)", unreached: [roi_heads]}
layers:
  - {type: conv, name: conv, out: 4, kernel: 3}
  - {type: uncounted, name: sort, op: aten.sort.default, shape: [4, 6, 6]}
"""


def test_partial_totals_say_what_is_not_counted(browser: Chromium, write_spec, tmp_path: Path) -> None:
    page = open_report(browser, write_spec(PARTIAL), tmp_path)
    try:
        rows = page.evaluate("[...document.querySelectorAll('#totals-table tr')].map(r => r.textContent)")
        assert "not countedsort (aten.sort.default): no counting rule; the MACs, FLOPs and other ops above leave " \
               "them out" in rows
        assert any(row.startswith("not countedwhat the model runs from aten.nonzero.default in module 'rpn' on")
                   and "modules that had not run: roi_heads" in row for row in rows)
        cards = page.evaluate("[...document.querySelectorAll('#cards .card')].map(c => c.textContent)")
        assert all("partial: see not counted" in card for card in cards[:3])
        assert page.errors() == []
    finally:
        page.close()


def long_chain(layers: int) -> str:
    lines = ["name: long", "input: [3, 16, 16]", "layers:"]
    for i in range(layers // 2):
        lines += [f"  - {{type: conv, name: c{i}, out: 4, kernel: 3, padding: 1}}", f"  - {{type: relu, name: r{i}}}"]
    return "\n".join(lines) + "\n"


def test_long_chain_stays_collapsed(browser: Chromium, write_spec, tmp_path: Path) -> None:
    """10,000 layers without blocks (half the most a spec may hold): nested runs (a few dozen boxes), a table that
    draws only the rows in view, runs that open as views of their own, and "Expand all" that stops at the deepest
    level that stays small."""
    page = open_report(browser, write_spec(long_chain(10000)), tmp_path)
    try:
        before = page.evaluate("document.querySelectorAll('#graph .n').length")
        assert before <= 80
        assert page.evaluate("document.querySelectorAll('#table-body .row').length") < 100
        run = page.evaluate("document.querySelector('#graph .n rect.run').parentElement.dataset.id")
        page.evaluate("document.querySelector('#graph .n rect.run')"
                      ".dispatchEvent(new MouseEvent('click', {bubbles: true}))")
        assert page.evaluate("document.getElementById('crumbs').textContent").startswith("long › ")
        assert page.evaluate(f"document.querySelector('#graph .f[data-id={run}]') !== null")
        page.evaluate("document.getElementById('table-body').scrollTop = 26 * 7500")
        page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        assert "c3750" in page.evaluate("[...document.querySelectorAll('#table-body .row')].map(r => r.dataset.row)")
        page.evaluate("document.getElementById('expand-all').click()")
        assert 100 < page.evaluate("document.querySelectorAll('#graph .n').length") <= 1500
        page.evaluate("window.convauditReport.reveal(7501)")  # a layer deep inside: shown in a view that holds it
        assert page.evaluate("document.querySelector('#graph .n.selected').dataset.id") == "L7501"
        assert page.errors() == []
    finally:
        page.close()


def test_bench_times_beside_the_flops(browser: Chromium, tmp_path: Path) -> None:
    bench = {"spec": "lenet5", "device": "cpu", "dtype": "fp32", "batch": 1, "gpu": False, "repeats": 3,
             "layers": [{"name": "C1", "forward": {"median_s": 0.002}, "backward": None},
                        {"name": "C3", "forward": {"median_s": 0.006}, "backward": None},
                        {"name": "C5", "forward": {"median_s": 1e6}, "backward": {"median_s": 0}}]}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(bench), encoding="utf-8")
    page = open_report(browser, "lenet5", tmp_path, "--bench", str(path))
    try:
        assert page.evaluate("[...document.querySelectorAll('#table-head div')].map(d => d.textContent)")[-1] == (
            "forward time")
        times = page.evaluate("Object.fromEntries([...document.querySelectorAll('#table-body .row')].map(r =>"
                              " [r.dataset.row, r.querySelector('.bar.time b').textContent]))")
        assert times["C1"] == "2.00 ms" and times["C3"] == "6.00 ms" and times["S2"] == ""
        assert times["C5"] == "1.00e+6 s"  # the longest a file may hold: drawn, not an exception
        share = page.evaluate("document.querySelector('[data-metric=\"forward time\"] [data-type=conv]').dataset.share")
        assert float(share) == pytest.approx(1.0)  # all three timed layers are convolutions
        assert page.evaluate(PAGE_PROBLEMS) == []
        assert page.errors() == []
    finally:
        page.close()
