"""`report` and `draw` without a browser: the embedded data, escaping, the layout's structure, the CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from convaudit.cli import app
from convaudit.core.analysis import analyze
from convaudit.render.report.layout import RUN_LIMIT, isotonic, place, structure
from convaudit.spec.library import load

from .conftest import ARCHITECTURES

runner = CliRunner()


def blob(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.S)
    assert match
    return json.loads(match.group(1))


def make_report(tmp_path: Path, *args: str) -> str:
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", *args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out.read_text(encoding="utf-8")


@pytest.mark.parametrize("spec", ["alexnet", "googlenet+aux", "resnet50"])
def test_embedded_summary_is_summary_json(spec: str, tmp_path: Path) -> None:
    html = make_report(tmp_path, spec)
    summary = runner.invoke(app, ["summary", spec, "--format", "json"])
    assert summary.exit_code == 0
    assert blob(html)["summary"] == json.loads(summary.output)


def test_self_contained(tmp_path: Path) -> None:
    html = make_report(tmp_path, "googlenet")
    assert not re.search(r"\b(src|href)\s*=", html)  # nothing to fetch: no script, image or style by address
    assert set(re.findall(r"https?://[^\s\"'<)]+", html)) <= {"http://www.w3.org/2000/svg"}  # the SVG namespace
    assert "default-src 'none'" in html  # and the page's policy forbids fetching anyway


HOSTILE = """\
name: hostile
title: "</title><b>t</b>"
input: [3, 32, 32]
separator: "."
layers:
  - {type: conv, name: "</script><script>alert(1)</script>", out: 8, kernel: 3}
  - {type: relu, name: "[bold]x & \\u2028 \\x1b[31m"}
"""


def test_user_text_is_escaped(write_spec, tmp_path: Path) -> None:
    path = write_spec(HOSTILE)
    html = make_report(tmp_path, str(path))
    assert "</script><script>alert(1)" not in html and "<b>t</b>" not in html
    assert "\u2028" not in html and "\x1b" not in html
    names = [layer["name"] for layer in blob(html)["summary"]["layers"]]
    assert names[0] == "</script><script>alert(1)</script>"  # the data keeps the name as it is
    svg = runner.invoke(app, ["draw", str(path)])
    assert svg.exit_code == 0
    root = ET.fromstring(svg.output)  # well-formed XML: every name escaped, control characters shown as \x1b
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "&lt;/script&gt;" not in "".join(texts) and any("</script><script>" in (t or "") for t in texts)
    assert any("[bold]x & " in (t or "") and "\\x1b" in (t or "") for t in texts)


def test_bench_timings(tmp_path: Path) -> None:
    bench = {"spec": "lenet5", "device": "cpu", "dtype": "fp32", "batch": 1, "gpu": False, "repeats": 3,
             "layers": [{"name": "c1", "forward": {"median_s": 0.0015}, "backward": None},
                        {"name": "c3", "forward": {"median_s": 0.5}, "backward": {"median_s": 1.0}}]}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(bench), encoding="utf-8")
    data = blob(make_report(tmp_path, "lenet5", "--bench", str(path)))
    assert data["bench"]["layers"]["c1"] == {"forward": 0.0015, "backward": None}
    assert data["bench"]["layers"]["c3"] == {"forward": 0.5, "backward": 1.0}


@pytest.mark.parametrize("text, says", [("not json", "is not JSON"), ('{"layers": 3}', "no 'layers' list"),
                                        ('{"layers": [{"name": "c1", "forward": {"median_s": "x"}}]}',
                                         "not a duration")])
def test_bad_bench_file_is_one_line(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "bench.json"
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["report", "lenet5", "--bench", str(path), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 2
    assert says in result.output and len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_unwritable_output_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["draw", "lenet5", "-o", str(tmp_path / "missing" / "x.svg")])
    assert result.exit_code == 2 and result.output.startswith("error: cannot write")


@pytest.mark.parametrize("path", ARCHITECTURES, ids=[p.stem for p in ARCHITECTURES])
def test_draw_every_bundled_network(path: Path) -> None:
    result = runner.invoke(app, ["draw", str(path)])
    assert result.exit_code == 0, result.output
    root = ET.fromstring(result.output)
    report = analyze(load(str(path)))
    groups = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") != "cluster"]
    titles = [g.find("{http://www.w3.org/2000/svg}title").text for g in groups]
    for layer in report.layers:  # every layer has a box, titled with its name and type
        assert any(title.startswith(f"{layer.name} ({layer.type})") for title in titles)


# ---------------------------------------------------------------- the layout's structure

def test_isotonic_keeps_order_and_gaps() -> None:
    assert isotonic([0.0, 0.0, 0.0], [10.0, 10.0]) == [-10.0, 0.0, 10.0]  # spread evenly around the mean
    assert isotonic([0.0, 50.0], [10.0]) == [0.0, 50.0]  # already apart: untouched
    assert isotonic([5.0, 0.0], [4.0]) == [0.5, 4.5]  # swapped wishes: pooled, mean 2.5, gap 4


def test_inception_branches_side_by_side() -> None:
    drawing = structure(analyze(load("googlenet")))
    block = next(c for c in drawing.clusters.values() if c.name == "inception3a")
    branch_rank = max(block.ranks, key=len)
    assert len(branch_rank) == 4  # b1, b2, b3, b4 in one rank
    assert [drawing.clusters[b].name for b in branch_rank] == [f"inception3a/b{i}" for i in range(1, 5)]


def test_resnet_shortcut_beside_the_main_path() -> None:
    drawing = structure(analyze(load("resnet18")))
    block = next(c for c in drawing.clusters.values() if c.name == "layer2.0")
    ranks = [[drawing.nodes[item] for item in row] for row in block.ranks]
    # the projection shortcut (downsample.0, .1) sits in the ranks of conv1 and bn1, beside them
    assert any({n.label for n in row if n.kind != "dummy"} >= {"conv1", "downsample"} for row in ranks)
    placed = place(drawing, block.id, set(drawing.clusters))
    conv1 = next(i for i in placed.x if drawing.nodes[i].label == "conv1")
    shortcut = next(i for i in placed.x if drawing.nodes[i].label == "downsample")
    assert placed.y[conv1] == placed.y[shortcut] and placed.x[conv1] != placed.x[shortcut]


def test_every_layer_in_exactly_one_place(write_spec) -> None:
    lines = ["name: long", "input: [3, 8, 8]", "layers:"] + [f"  - {{type: relu, name: r{i}}}" for i in range(1000)]
    report = analyze(load(str(write_spec("\n".join(lines) + "\n"))))
    drawing = structure(report)
    held = [item for c in drawing.clusters.values() for row in c.ranks for item in row if item.startswith("L")]
    assert sorted(held) == sorted(f"L{i}" for i in range(1000))
    assert all(len([i for i in c.children]) <= RUN_LIMIT for c in drawing.clusters.values())
    assert len(drawing.clusters["B0"].children) <= RUN_LIMIT


def test_report_does_not_import_torch(tmp_path: Path) -> None:
    code = ("import sys; from convaudit.cli import app\n"
            f"try: app(['report', 'googlenet', '-o', {str(tmp_path / 'r.html')!r}])\n"
            "except SystemExit: pass\n"
            f"try: app(['draw', 'googlenet', '-o', {str(tmp_path / 'r.svg')!r}])\n"
            "except SystemExit: pass\n"
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert (tmp_path / "r.html").exists() and (tmp_path / "r.svg").exists()
