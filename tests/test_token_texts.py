"""What the footer, `check` and `audit` say about the token-era layer types (attention, a flatten: false linear,
layernorm, embeddings): conventions that name them, and arithmetic that is right for them."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from convaudit.cli import app
from convaudit.core.analysis import CONVENTIONS, analyze
from convaudit.core.checks import ExactModel, _verdict, check
from convaudit.core.claims import audit
from convaudit.core.layers import REGISTRY
from convaudit.render.summary import convention_lines
from convaudit.spec.parser import parse_text

# 3×32×32 → conv 8/8 → 64×4×4 → reshape 64×16 → permute 16×64 (16 tokens of 64) → class token 17×64.
TINY = """\
name: tiny
input: [3, 32, 32]
layers:
  - {type: conv, name: patch, out: 64, kernel: 8, stride: 8}
  - {type: reshape, name: tok, shape: [64, 16]}
  - {type: permute, name: perm, order: [1, 0]}
  - {type: classtoken, name: cls}
  - {type: posembedding, name: pos}
  - {type: layernorm, name: ln}
  - {type: attention, name: attn, heads: 4}
  - {type: linear, name: mlp, out: 128, flatten: false%s}
  - {type: gelu, name: act}
  - {type: select, name: first}
  - {type: linear, name: head, out: 10}
"""

CLAIMS = """\
claims:
  attn.macs: {value: 1, source: t}
  attn.params: {value: 1, source: t}
  attn.connections: {value: 1, source: t}
  mlp.macs: {value: 1, source: t}
  mlp.connections: {value: 1, source: t}
  ln.params: {value: 1, source: t}
  ln.neurons: {value: 1, source: t}
  pos.weights: {value: 1, source: t}
  cls.weights: {value: 1, source: t}
  perm.channels: {value: 1, source: t}
  depth: {value: 1, source: t}
"""

MAC_NAMES = {"rbf": "RBF"}  # how the conventions spell a MAC type's name


def tiny(pin: str = "", claims: str = ""):
    return parse_text(TINY % pin + claims, "tiny.yaml")


def test_every_mac_type_is_named_in_the_footer_and_the_json_conventions() -> None:
    mac_types = sorted(name for name, kind in REGISTRY.items() if kind.has_macs and not kind.convention)
    assert "attention" in mac_types
    footer = convention_lines(analyze(tiny()))[0]
    for name in mac_types:  # a MAC type with a convention of its own states it under every network that holds it
        assert MAC_NAMES.get(name, name) in footer, name
        assert MAC_NAMES.get(name, name) in CONVENTIONS["macs"], name
        assert MAC_NAMES.get(name, name) in CONVENTIONS["neurons"], name
    # README: attention's MACs are its projections plus the weightless Q·Kᵀ and A·V products.
    assert "Q·Kᵀ and A·V" in footer and "Q·Kᵀ and A·V" in CONVENTIONS["macs"]
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    assert "N²·D for Q·Kᵀ and N²·D for A·V" in readme


def test_summary_footer_and_json_name_attention(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY % "", encoding="utf-8")
    text = CliRunner().invoke(app, ["summary", str(path)], env={"COLUMNS": "200"})
    assert text.exit_code == 0, text.output
    assert "MACs: multiply-accumulates of conv, linear, subsample, RBF and attention layers" in text.output
    assert "subsample and RBF layers" not in text.output
    result = CliRunner().invoke(app, ["summary", str(path), "--format", "json"])
    conventions = json.loads(result.output)["conventions"]
    assert conventions == CONVENTIONS and "attention" in conventions["macs"]


def test_pin_message_for_a_flatten_false_linear_names_the_last_dimension() -> None:
    (finding,) = [f for f in check(analyze(tiny(", in: 32"))) if f.kind == "in-mismatch"]
    # mlp reads [17, 64] tokens: nn.Linear sees the last dimension, 64; 17·64 = 1088 would be the flattened size.
    assert finding.message == "mlp pins in: 32 but receives 17×64, whose last dimension is 64 (flatten: false)"
    assert "= 64" not in finding.message
    assert not [f for f in check(analyze(tiny(", in: 64"))) if f.kind == "in-mismatch"]


def test_pin_message_for_a_flattening_linear_still_multiplies_out() -> None:
    spec = parse_text("name: n\ninput: [2, 3, 5]\nlayers:\n  - {type: linear, name: fc, out: 4, in: 31}\n", "n.yaml")
    (finding,) = [f for f in check(analyze(spec)) if f.kind == "in-mismatch"]
    assert finding.message.startswith("fc pins in: 31 but receives 2×3×5 = 30")  # 2·3·5 = 30


def test_exact_search_models_slice_shuffle_and_layernorm() -> None:
    # ShuffleNet-like: stride-2 conv, then size-keeping slice, shuffle and layernorm over channels, then a pool.
    spec = parse_text("""\
name: s
input: [8, 30, 30]
layers:
  - {type: conv, name: c1, out: 8, kernel: 3, stride: 2}
  - {type: slice, name: half, end: 4}
  - {type: shuffle, name: mix, groups: 2}
  - {type: layernorm, name: ln, over: channels}
  - {type: swish, name: act}
  - {type: maxpool, name: pool, kernel: 2}
""", "s.yaml")
    model = ExactModel.of(analyze(spec), (0, 1))
    assert model is not None
    for size in range(5, 60):
        assert model.verdict(size) == _verdict(spec, size, size), size
    # (x − 3)/2 + 1 whole needs x odd; then (x − 1)/2 must be even for the 2/2 pool: x ≡ 1 (mod 4).
    assert [x for x in range(5, 30) if model.verdict(x)] == [5, 9, 13, 17, 21, 25, 29]


def test_audit_arithmetic_for_the_new_types() -> None:
    verdicts = {v.claim.target: v.arithmetic for v in audit(tiny(claims=CLAIMS))}
    # attention, N = 17, D = 64: projections 4·17·64² = 278,528; Q·Kᵀ and A·V 2·17²·64 = 36,992.
    assert verdicts["attn.macs"] == ("projections 4·17·64² = 278,528 + Q·Kᵀ and A·V 2·17²·64 = 36,992 "
                                     "= 315,520")
    # weights 4·64² = 16,384, biases 4·64 = 256.
    assert verdicts["attn.params"] == ("4·64² = 16,384 weights (Q, K, V and output projections) + 256 biases "
                                       "= 16,640")
    # bias terms 4·N·D = 4·17·64 = 4,352; 315,520 + 4,352 = 319,872.
    assert verdicts["attn.connections"] == "315,520 multiply-adds + 4·17·64 bias terms = 319,872"
    # flatten: false: 17 vectors of 64, each × a 64×128 matrix: 17·64·128 = 139,264; bias terms 17·128 = 2,176.
    assert verdicts["mlp.macs"] == "17 positions (17·64 / 64) × 64·128 = 139,264"
    assert verdicts["mlp.connections"] == "17 positions (17·64 / 64) × 64·128 + 17·128 bias terms = 141,440"
    assert verdicts["ln.params"] == "64 scales + 64 biases = 128"
    assert verdicts["pos.weights"] == "17·64 = 1,088 position embeddings"
    assert verdicts["cls.weights"] == "D = 64 class-token weights"
    assert "does no multiply-adds" in verdicts["ln.neurons"] and "has no weights" not in verdicts["ln.neurons"]
    assert verdicts["perm.channels"].startswith("perm (permute) gives 16×64: its first dimension, 16, taken as")
    assert verdicts["depth"] == "4 weight layers on the longest path: patch, attn, mlp, head"
