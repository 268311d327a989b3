"""Claims audits, neurons and connections as the papers count them, and side-by-side diffs."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from convaudit.cli import app
from convaudit.core.analysis import analyze
from convaudit.core.claims import audit, longest_weight_path
from convaudit.core.diff import align
from convaudit.errors import SpecError
from convaudit.spec.library import load
from convaudit.spec.parser import load_spec, parse_text


def run(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "160"})


def verdicts(name: str) -> dict[tuple[str, object], object]:
    spec = load(name)
    return {(v.claim.target, v.claim.at): v for v in audit(spec, lambda variant: load(name, variant))}


# ------------------------------------------------------------------ neurons and connections

def test_alexnet_neurons_as_the_paper_counts_them() -> None:
    report = analyze(load("alexnet"))
    # output units of the weight layers at 227: 55·55·96 + 27·27·256 + 13·13·384·2 + 13·13·256 + 4096·2 + 1000
    expected = 55 * 55 * 96 + 27 * 27 * 256 + 2 * 13 * 13 * 384 + 13 * 13 * 256 + 2 * 4096 + 1000
    assert report.totals.neurons == expected == 659_272  # the abstract's "650,000 neurons", within 1.4%


def test_lenet5_connections_layer_by_layer() -> None:
    report = analyze(load("lenet5"))
    # each unit's inputs plus its bias, times the units (section II.B's figures)
    assert report.layer("C1").connections == (5 * 5 * 1 + 1) * 6 * 28 * 28 == 122_304
    assert report.layer("S2").connections == (2 * 2 + 1) * 6 * 14 * 14 == 5_880
    assert report.layer("C3").connections == (6 * 3 + 9 * 4 + 1 * 6) * 25 * 100 + 16 * 100 == 151_600
    assert report.layer("S4").connections == (2 * 2 + 1) * 16 * 5 * 5 == 2_000
    assert report.layer("C5").connections == (16 * 25 + 1) * 120 == 48_120
    assert report.layer("F6").connections == 120 * 84 + 84 == 10_164
    assert report.totals.connections == 122_304 + 5_880 + 151_600 + 2_000 + 48_120 + 10_164 + 84 * 10 == 340_908


@pytest.mark.parametrize("name, depth", [("alexnet", 8), ("vgg11", 11), ("vgg16", 16), ("vgg19", 19),
                                         ("lenet5", 7), ("googlenet", 22), ("resnet18", 18), ("resnet50", 50)])
def test_depth_counts_weight_layers_on_the_longest_path(name: str, depth: int) -> None:
    # the papers' own counts: AlexNet "eight learned layers", GoogLeNet "22 layers deep when counting only
    # layers with parameters", ResNet-50 1 + 3·(3 + 4 + 6 + 3) + 1; projections run beside the main path
    assert len(longest_weight_path(analyze(load(name)))) == depth


# ------------------------------------------------------------------ the bundled claims

def test_alexnet_paper_claims() -> None:
    results = verdicts("alexnet")
    assert results[("params", None)].holds and results[("neurons", None)].holds
    # Fig. 2's first figure is wrong: 55·55·96 = 290,400, not 253,440
    neurons = results[("conv1.neurons", None)]
    assert not neurons.holds and neurons.computed == 290_400 and "96·55·55" in neurons.arithmetic
    # 630 million connections fits a 224 input (643.6 M, +2.2%), not 227 (725.1 M, +15.1%)
    assert not results[("connections", None)].holds and results[("connections", (224, 224))].holds
    assert results[("input_elements", (224, 224))].computed == 224 * 224 * 3 == 150_528


def test_seed_articles_are_audited_plainly() -> None:
    results = verdicts("alexnet-seeds")
    channels = results[("conv1.channels", None)]
    assert not channels.holds and channels.computed == 96  # the translation's "224 kernels"
    weights = results[("conv2.weights", None)]
    assert not weights.holds and "256·48·5·5 = 307,200" in weights.arithmetic  # not 5×5×3
    shape = results[("conv1.shape", (224, 224))]
    assert not shape.holds and shape.computed == (96, 54, 54)
    assert "(224 − 11 + 2·0)/4 + 1 = 54.25 → 54 (PyTorch floors" in shape.arithmetic
    assert results[("conv1.params", None)].holds  # 11·11·3·96 + 96 = 34,944 is right


def test_resnet50_claims_on_two_forms() -> None:
    macs = {v.claim.variant: v for v in audit(load("resnet50"), lambda variant: load("resnet50", variant))
            if v.claim.quantity == "macs"}
    # Table 1's 3.8×10⁹ is for the paper's form (stride on the 1×1); torchvision's 4.09 G for its own
    assert macs["v1"].holds and macs["v1"].computed == analyze(load("resnet50", "v1")).totals.macs
    assert macs[None].holds and macs[None].computed == analyze(load("resnet50")).totals.macs


def test_every_bundled_claim_that_should_hold_holds() -> None:
    wrong = {(v.claim.target) for name in ("lenet5", "vgg16", "resnet18", "alexnet-torchvision")
             for v in audit(load(name)) if not v.holds}
    assert wrong == set()


# ------------------------------------------------------------------ claim parsing

SPEC = "name: t\ninput: [1, 8, 8]\nlayers:\n  - {type: conv, name: c, out: 2, kernel: 3}\nclaims:\n"


def claims_of(text: str):
    return parse_text(SPEC + text, "net.yaml").claims


def test_claim_forms() -> None:
    (a, b, c) = claims_of("  params: 20\n  c.shape: [2, 6, 6]\n  macs: {value: '4.3e2', tol: 5%, at: 10}\n")
    assert (a.quantity, a.layer, a.value) == ("params", None, 20)
    assert (b.quantity, b.layer, b.value) == ("shape", "c", (2, 6, 6))
    assert c.relative == pytest.approx(0.05) and c.at == (10, 10) and c.value == 430
    spec = parse_text(SPEC + "  params: 20\n")
    (verdict,) = audit(spec)
    assert verdict.holds and verdict.computed == 2 * 9 + 2  # 2·1·3·3 weights + 2 biases


@pytest.mark.parametrize("text, needle", [
    ("  parms: 20\n", "unknown claim 'parms' (did you mean 'params'?)"),
    ("  d.shape: [2, 6, 6]\n", "'d' in 'd.shape' is no layer or block here"),
    ("  c.volume: 3\n", "unknown quantity 'volume'"),
    ("  params: {value: 20, tolerance: 1}\n", "a claim takes claim, value, tol"),
    ("  params: {tol: 1}\n", "the claim has no value"),
    ("  c.shape: 36\n", "a shape claim needs a list"),
    ("  params: {value: 20, at: 0}\n", "expected an input size"),
])
def test_claim_errors_are_located(text: str, needle: str) -> None:
    with pytest.raises(SpecError) as caught:
        claims_of(text)
    assert needle in str(caught.value) and str(caught.value).startswith("net.yaml:6")


def test_extends_reuses_a_network(tmp_path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nextends: lenet5\nclaims:\n  C1.params: 156\n", encoding="utf-8")
    spec = load_spec(path)
    assert spec.name == "mine" and len(spec.layers) == len(load("lenet5").layers)
    (verdict,) = audit(spec)
    assert verdict.holds
    path.write_text("name: mine\nextends: lenet5\nlayers: []\n", encoding="utf-8")
    with pytest.raises(SpecError, match="may set name, title"):
        load_spec(path)


# ------------------------------------------------------------------ the CLI

def test_audit_cli_exit_codes_and_formats() -> None:
    result = run("audit", "lenet5")
    assert result.exit_code == 0 and "lenet5: 13 of 13 claims hold" in result.stdout
    result = run("audit", "alexnet-seeds")
    assert result.exit_code == 1
    assert "✗ conv1.channels: stated 224, computed conv1 gives 96 channels" in result.stdout
    data = json.loads(run("audit", "alexnet", "--format", "json").stdout)
    assert data["audits"][0]["contradicted"] == 2
    assert run("audit", "vgg16", "--format", "markdown").stdout.startswith("### vgg-d")
    assert run("audit", "lenet5", "--explain").stdout.count("✓ ") >= 13


# ------------------------------------------------------------------ diff

def test_diff_of_one_spec_at_two_inputs() -> None:
    left = analyze(load("alexnet").with_input(224, 224))
    right = analyze(load("alexnet"))
    pairs = align(left, right)
    assert [p.status for p in pairs].count("added") == 0 and len(pairs) == len(left.layers)
    fc6 = next(p for p in pairs if p.name == "fc6")
    # 6400 vs 9216 inputs: the weight matrix grows by (9216 − 6400)·4096
    assert fc6.changes == ("params", "macs") and fc6.right.params - fc6.left.params == (9216 - 6400) * 4096


def test_diff_aligns_by_name_then_position() -> None:
    pairs = align(analyze(load("alexnet")), analyze(load("alexnet-torchvision")))
    by_name = {p.name: p for p in pairs}
    assert by_name["conv1"].left.output_shape == (96, 55, 55) and by_name["conv1"].right.output_shape == (64, 55, 55)
    assert by_name["lrn1"].status == "removed" and by_name["avgpool"].status == "added"


def test_diff_cli() -> None:
    result = run("diff", "alexnet", "--input", "224", "--input", "227")
    assert result.exit_code == 0 and "alexnet at 3×224×224  →  alexnet at 3×227×227" in result.stdout
    assert "+11,534,336" in result.stdout  # fc6's MACs: (9216 − 6400)·4096
    data = json.loads(run("diff", "resnet50", "resnet50+v1", "--format", "json").stdout)
    changed = [row["left"]["name"] for row in data["layers"] if row["status"] == "changed"]
    assert "layer2.0.conv1" in changed
    md = run("diff", "vgg11", "vgg13", "--format", "markdown").stdout
    assert md.startswith("### vgg-a at 3×224×224 → vgg-b at 3×224×224")
    bad = run("diff", "alexnet")
    assert bad.exit_code == 2 and "diff needs two specs, or one spec and two --input sizes" in bad.stderr
