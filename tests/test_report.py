"""`report` and `draw` without a browser: the embedded data, escaping, the bench file, the layout, the views."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import pytest
from typer.testing import CliRunner

from convaudit.cli import app
from convaudit.core.analysis import analyze
from convaudit.core.checks import check
from convaudit.render.report import bench as bench_module
from convaudit.render.report.hyper import box_items, box_line, number_text
from convaudit.render.report.layout import RUN_LIMIT, structure
from convaudit.render.report.page import main_path, relative
from convaudit.render.report.place import isotonic, place
from convaudit.render.report.svg import network_svg
from convaudit.render.report.views import LEVEL_MOST, STAGE_FEWEST, STAGE_STRETCH, default_expanded, report_views
from convaudit.spec.library import load

from .conftest import ARCHITECTURES

runner = CliRunner()
SVG = "{http://www.w3.org/2000/svg}"


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
    assert not re.search(r"\b(src|href)\s*=\s*\"[^#]", html)  # nothing to fetch: no script, image or style by address
    assert set(re.findall(r"https?://[^\s\"'<)]+", html)) <= {"http://www.w3.org/2000/svg"}  # the SVG namespace
    assert "default-src 'none'" in html  # and the page's policy forbids fetching anyway


HOSTILE = """\
name: hostile
title: "</title><b>t</b>"
input: [3, 32, 32]
separator: "."
layers:
  - {type: conv, name: "</script><script>alert(1)</script>", out: 8, kernel: 3}
  - {type: relu, name: "[bold]x & \\u2028 \\x1b[31m \\u202e"}
"""


def test_user_text_is_escaped(write_spec, tmp_path: Path) -> None:
    path = write_spec(HOSTILE)
    html = make_report(tmp_path, str(path))
    assert "</script><script>alert(1)" not in html and "<b>t</b>" not in html
    assert "\u2028" not in html and "\x1b" not in html and "\u202e" not in html  # in the data as \u escapes only
    names = [layer["name"] for layer in blob(html)["summary"]["layers"]]
    assert names[0] == "</script><script>alert(1)</script>"  # the data keeps the name as it is
    svg = runner.invoke(app, ["draw", str(path)])
    assert svg.exit_code == 0
    root = ET.fromstring(svg.output)  # well-formed XML: every name escaped, control characters shown as \x1b
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert "&lt;/script&gt;" not in "".join(texts) and any("</script><script>" in t for t in texts)
    assert any("[bold]x & " in t and "\\x1b" in t and "\\u202e" in t for t in texts)


# ---------------------------------------------------------------- the bench file

def test_bench_timings(tmp_path: Path) -> None:
    bench = {"spec": "lenet5", "device": "cpu", "dtype": "fp32", "batch": 1, "gpu": False, "repeats": 3,
             "layers": [{"name": "c1", "forward": {"median_s": 0.0015}, "backward": None},
                        {"name": "c3", "forward": {"median_s": 0.5}, "backward": {"median_s": 1.0}}]}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(bench), encoding="utf-8")
    data = blob(make_report(tmp_path, "lenet5", "--bench", str(path)))
    assert data["bench"]["layers"] == [["c1", 0.0015, None], ["c3", 0.5, 1.0]]
    assert data["bench"]["device"] == "cpu" and data["bench"]["repeats"] == 3


def bench_with(median: str) -> str:
    return '{"layers": [{"name": "C1", "forward": {"median_s": ' + median + "}}]}"


@pytest.mark.parametrize("text, says", [
    ("not json", "is not JSON"), ('{"layers": 3}', "no 'layers' list"),
    (bench_with('"x"'), "not a duration"), (bench_with("NaN"), "NaN is not a number JSON allows"),
    (bench_with("Infinity"), "Infinity is not a number JSON allows"),
    (bench_with("-Infinity"), "-Infinity is not a number JSON allows"),
    (bench_with("1e308"), "not a duration"), (bench_with("1e999"), "not a duration"),  # 1e999 reads as inf
    (bench_with("-1"), "not a duration"), (bench_with("1" * 5000), "is not JSON"),
    ("[" * 100000 + "]" * 100000, "is not JSON"), ('{"layers": [], "device": 7}', "'device' is not text"),
    ('{"layers": [], "batch": 1.5}', "'batch' is not a count"),
])
def test_bad_bench_file_is_one_line(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "bench.json"
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["report", "lenet5", "--bench", str(path), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 2, result.output
    assert says in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()


def test_bench_file_is_read_up_to_its_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """/dev/zero and a file one byte over the limit are refused after reading the limit and one byte more."""
    if Path("/dev/zero").exists():
        result = runner.invoke(app, ["report", "lenet5", "--bench", "/dev/zero", "-o", str(tmp_path / "r.html")])
        assert result.exit_code == 2 and "is larger than 32 MiB" in result.output
    monkeypatch.setattr(bench_module, "MAX_BENCH_BYTES", 2**20)
    path = tmp_path / "bench.json"
    path.write_text('{"layers": []}' + " " * (2**20 - 14), encoding="utf-8")  # exactly the limit: read
    assert runner.invoke(app, ["report", "lenet5", "--bench", str(path), "-o", str(tmp_path / "r.html")]
                         ).exit_code == 0
    path.write_text('{"layers": []}' + " " * (2**20 - 13), encoding="utf-8")  # one byte more: refused
    result = runner.invoke(app, ["report", "lenet5", "--bench", str(path), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 2 and "is larger than 1 MiB" in result.output


# ---------------------------------------------------------------- paths a mailed report shows

def test_finding_files_are_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "specs" / "net.yaml"
    spec.parent.mkdir()
    spec.write_text((Path(ARCHITECTURES[0]).parent / "alexnet.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    html = make_report(tmp_path, str(spec.resolve()), "--input", "225")  # 225: AlexNet's divisions are not whole
    files = {f["file"] for f in blob(html)["findings"]}
    assert files == {"specs/net.yaml"}
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    html = make_report(tmp_path, str(spec.resolve()), "--input", "225")
    assert {f["file"] for f in blob(html)["findings"]} == {"net.yaml"}  # outside the working directory: its name
    assert str(tmp_path) not in html
    assert relative(None) is None and relative("a/b.yaml") == "a/b.yaml"


# ---------------------------------------------------------------- hyper-parameters on the boxes

def layers_of(name: str):  # type: ignore[no-untyped-def]
    return analyze(load(name)).layers


def test_box_shows_kernel_stride_padding_and_depthwise() -> None:
    resnet = {layer.name: layer for layer in layers_of("resnet50")}
    assert box_line(resnet["conv1"]) == "conv 7×7 stride 2 padding 3"  # out 64 is the edge's 64×112×112
    assert box_line(resnet["layer1.0.conv1"]) == "conv 1×1"
    assert box_line(resnet["layer2.0.conv2"]) == "conv 3×3 stride 2 padding 1"
    assert box_line(resnet["maxpool"]) == "maxpool 3×3 stride 2 padding 1"
    depthwise = [layer for layer in layers_of("mobilenet_v2") if layer.type == "conv"
                 and layer.spec.params["groups"] == layer.input_shapes[0][0] > 1]
    assert depthwise and all(box_line(layer).startswith("conv 3×3") and box_items(layer)[-1] == "dw"
                             for layer in depthwise)
    pointwise = [layer for layer in layers_of("mobilenet_v2") if layer.type == "conv"
                 and set(layer.spec.params["kernel"]) == {1}]
    assert pointwise and {box_line(layer) for layer in pointwise} == {"conv 1×1"}
    alexnet = {layer.name: layer for layer in layers_of("alexnet")}
    assert box_line(alexnet["conv2"]) == "conv 5×5 padding 2 groups 2"  # AlexNet's two GPUs
    assert box_line(alexnet["lrn1"]) == "lrn size 5 k 2"  # alpha 0.0001 and beta 0.75 are the defaults
    vit = {layer.type: layer for layer in layers_of("vit_b_16")}
    assert box_line(vit["attention"]) == "attention heads 12"


def test_box_line_drops_whole_items_never_a_number(write_spec) -> None:
    path = write_spec("name: n\ninput: [8, 64, 64]\nlayers:\n  - {type: conv, name: c, out: 8, kernel: [3, 5], "
                      "stride: [2, 1], padding: [3, 1], dilation: 2, groups: 4}\n")
    layer = analyze(load(str(path))).layers[0]
    assert box_items(layer) == ["3×5", "stride 2×1", "padding 3×1", "dilation 2", "groups 4"]
    line = box_line(layer)
    assert line == "conv 3×5 stride 2×1 padding 3×1 …" and len(line) <= 34


def test_number_text_is_exact() -> None:
    assert number_text(Fraction(1, 10000)) == "0.0001"
    assert number_text(Fraction(17159, 10000)) == "1.7159"
    assert number_text(Fraction(2, 3)) == "2/3"  # never rounded to 0.667
    assert number_text(Fraction(-1, 4)) == "-0.25" and number_text(Fraction(5)) == "5"


def test_panel_has_every_field(tmp_path: Path) -> None:
    data = blob(make_report(tmp_path, "alexnet"))
    names = [layer["name"] for layer in data["summary"]["layers"]]
    conv2 = data["fields"]["values"][names.index("conv2")]
    assert conv2["kernel"] == "5×5" and conv2["padding"] == "2×2" and conv2["groups"] == "2"
    defaults = {field[0]: field[1] for field in data["fields"]["types"]["conv"]}
    # a type's default is one number for every axis, as a spec writes it (stride: 1)
    assert defaults["stride"] == "1" and defaults["dilation"] == "1" and defaults["bias"] == "true"


# ---------------------------------------------------------------- the main path of the receptive-field chart

def test_main_path_leaves_out_shortcuts_and_side_heads() -> None:
    report = analyze(load("resnet18"))
    path = [report.layers[i].name for i in main_path(report)]
    # three projection shortcuts of two layers each are beside the main path; everything else is on it
    assert not any("downsample" in name for name in path) and len(path) == len(report.layers) - 3 * 2
    assert path == sorted(path, key=[layer.name for layer in report.layers].index)  # in graph order
    aux = analyze(load("googlenet+aux"))
    assert not any(aux.layers[i].name.startswith("aux") for i in main_path(aux))


# ---------------------------------------------------------------- draw

def draw(*args: str) -> ET.Element:
    result = runner.invoke(app, ["draw", *args])
    assert result.exit_code == 0, result.output
    return ET.fromstring(result.output)


def test_unwritable_output_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["draw", "lenet5", "-o", str(tmp_path / "missing" / "x.svg")])
    assert result.exit_code == 2 and result.output.startswith("error: cannot write")


def box_titles(root: ET.Element) -> list[str]:
    return [g.find(f"{SVG}title").text for g in root.iter(f"{SVG}g") if g.get("class") == "n"]


@pytest.mark.parametrize("path", ARCHITECTURES, ids=[p.stem for p in ARCHITECTURES])
def test_draw_every_bundled_network(path: Path) -> None:
    report = analyze(load(str(path)))
    titles = box_titles(draw(str(path), "--depth", "9"))
    for layer in report.layers:  # every layer has a box, titled with its name and type
        assert any(title.startswith(f"{layer.name} ({layer.type})") for title in titles)
    root = draw(str(path))  # the stage level: every layer in a box, or in a block's box
    shown = {g.get("data-id") for g in root.iter(f"{SVG}g") if g.get("class") == "n"}
    drawing = structure(report)
    for index in range(len(report.layers)):
        assert f"L{index}" in shown or any(a in shown for a in drawing.ancestors(f"L{index}"))


def aspect(svg: str) -> float:
    width, height = map(float, re.search(r'width="(\d+)" height="(\d+)"', svg).groups())
    return width / height


@pytest.mark.parametrize("name", ["resnet50", "vgg-d", "googlenet"])
def test_draw_fits_a_slide(name: str) -> None:
    """At the default depth the drawing is about 16:9 (1.78), not a strip: rows wrapped left to right."""
    report = analyze(load(name))
    drawing = structure(report)
    svg = network_svg(report, drawing, check(report))
    assert 1.3 <= aspect(svg) <= 2.4
    assert aspect(network_svg(report, drawing, [], layout="wide")) > 4  # one row
    assert aspect(network_svg(report, drawing, [], layout="tall")) < 1 / 4  # one column
    with pytest.raises(ValueError):
        network_svg(report, drawing, [], layout="diagonal")


# ---------------------------------------------------------------- the layout's structure and coordinates

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
    for horizontal in (True, False):
        placed = place(drawing, block.id, set(drawing.clusters), horizontal)
        conv1 = next(i for i in placed.x if drawing.nodes[i].label == "conv1")
        shortcut = next(i for i in placed.x if drawing.nodes[i].label == "downsample")
        assert placed.main(conv1) == placed.main(shortcut) and placed.cross(conv1) != placed.cross(shortcut)


def test_wrapped_rows_stay_within_the_limit() -> None:
    drawing = structure(analyze(load("vgg-d")))  # 39 layers in one chain
    whole = place(drawing, "B0", {"B0"})
    wrapped = place(drawing, "B0", {"B0"}, True, 600.0)
    assert whole.width > 3000 and wrapped.width <= 600 and len(wrapped.row_bottom) > 1
    assert {wrapped.x[f"L{i}"] < wrapped.x[f"L{i + 1}"] or wrapped.y[f"L{i}"] < wrapped.y[f"L{i + 1}"]
            for i in range(38)} == {True}  # in reading order: rightwards, or down to the next row


def test_every_layer_in_exactly_one_place(write_spec) -> None:
    lines = ["name: long", "input: [3, 8, 8]", "layers:"] + [f"  - {{type: relu, name: r{i}}}" for i in range(1000)]
    report = analyze(load(str(write_spec("\n".join(lines) + "\n"))))
    drawing = structure(report)
    held = [item for c in drawing.clusters.values() for row in c.ranks for item in row if item.startswith("L")]
    assert sorted(held) == sorted(f"L{i}" for i in range(1000))
    assert all(len(list(c.children)) <= RUN_LIMIT for c in drawing.clusters.values())
    assert len(drawing.clusters["B0"].children) <= RUN_LIMIT


# ---------------------------------------------------------------- the report's views

@pytest.mark.parametrize("path", ARCHITECTURES, ids=[p.stem for p in ARCHITECTURES])
def test_views(path: Path) -> None:
    report = analyze(load(str(path)))
    drawing = structure(report)
    views, own = report_views(drawing)
    stage = drawing.boxes("B0", views[0].expanded)
    assert min(STAGE_FEWEST, len(report.layers) + 1) <= stage <= STAGE_STRETCH
    assert set(own) == set(drawing.clusters) - {"B0"} and all(views[own[c]].root == c for c in own)
    assert all(drawing.boxes(v.root, v.expanded) <= max(LEVEL_MOST, STAGE_STRETCH) for v in views)
    assert default_expanded(drawing, None) == set(views[0].expanded)


def long_chain(layers: int) -> str:
    lines = ["name: long", "input: [3, 16, 16]", "layers:"]
    for i in range(layers // 2):
        lines += [f"  - {{type: conv, name: c{i}, out: 4, kernel: 3, padding: 1}}", f"  - {{type: relu, name: r{i}}}"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name", ["densenet121", "efficientnet_b0", "resnet50", "vit_b_16"])
def test_report_size_per_layer(name: str, tmp_path: Path) -> None:
    """Every view is drawn, but each holds a bounded number of boxes: a few KB a layer, all views included."""
    html = make_report(tmp_path, name)
    layers = len(blob(html)["summary"]["layers"])
    assert len(html.encode()) / layers < 5000


def test_report_grows_linearly(write_spec, tmp_path: Path) -> None:
    sizes = {}
    for layers in (500, 2000):
        html = make_report(tmp_path, str(write_spec(long_chain(layers), f"chain{layers}.yaml")))
        sizes[layers] = len(html.encode())
    assert sizes[2000] / sizes[500] < 4 * 1.15  # four times the layers, about four times the bytes


def test_report_does_not_import_torch(tmp_path: Path) -> None:
    code = ("import sys; from convaudit.cli import app\n"
            f"try: app(['report', 'googlenet', '-o', {str(tmp_path / 'r.html')!r}])\n"
            "except SystemExit: pass\n"
            f"try: app(['draw', 'googlenet', '-o', {str(tmp_path / 'r.svg')!r}])\n"
            "except SystemExit: pass\n"
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert (tmp_path / "r.html").exists() and (tmp_path / "r.svg").exists()

