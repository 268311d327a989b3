"""`check` on 1-D and 3-D networks, transposed convolutions and up-sampling: findings per axis with their own nouns,
padding fixes per axis, and the failure modes of up-sampling paths."""

from __future__ import annotations

from convaudit.core.analysis import analyze
from convaudit.core.checks import check
from convaudit.spec.parser import parse_text


def findings_for(text: str) -> list:
    return check(analyze(parse_text(text, "net.yaml")))


def by_kind(findings: list, kind: str) -> list:
    return [f for f in findings if f.kind == kind]


def test_a_1d_network_loses_samples() -> None:
    findings = findings_for("""\
name: audio
input: [1, 16001]
layers:
  - {type: conv, out: 8, kernel: 80, stride: 16}
""")
    (finding,) = by_kind(findings, "inexact-division")
    # (16001 − 80)/16 + 1 = 996.0625 → 996: the last window covers 15920..15999, so sample 16000 is never read.
    assert finding.severity == "warning"
    assert "L: (16001 − 80 + 2·0)/16 + 1 = 996.0625 is not an integer" in finding.message
    assert "so the last 1 input sample is never seen" in finding.message
    # Ceil: 997 windows, the last covering 15936..16015, 15 samples past the 16001.
    assert "would give 997, its last window reaching 15 samples past the padded input" in finding.message
    # 15921 + 2P is odd; 15 more samples make 15936 = 996·16: 7 before and 8 after.
    assert ("no symmetric padding makes it exact (15921 + 2P is odd); padding 7 before and 8 after on L "
            "(nn.ZeroPad1d) does: (16001 − 80 + 2·0 + 7 + 8)/16 + 1 = 997") in finding.suggestions
    # Exact where 16 divides x − 80: x ≡ 0 (mod 16).
    assert "nearest inputs where every layer divides exactly: 16000 (-1), 16016 (+15)" in finding.suggestions


def test_a_3d_cube_is_judged_on_every_axis_at_once() -> None:
    findings = findings_for("""\
name: video
input: [3, 17, 17, 17]
layers:
  - {type: maxpool, kernel: 2}
""")
    (finding,) = by_kind(findings, "inexact-division")
    # (17 − 2)/2 + 1 = 8.5 → 8 on D, H and W alike: the last slice, row and column are never read.
    assert "D, H and W: (17 − 2 + 2·0)/2 + 1 = 8.5 is not an integer" in finding.message
    assert "the last 1 input slice, row and column are never seen" in finding.message
    assert "its last window reaching 1 slice, row and column past the padded input" in finding.message
    assert ("no symmetric padding makes it exact (15 + 2P is odd); padding 0 before and 1 after on D, H and W "
            "(nn.ZeroPad3d) does: (17 − 2 + 2·0 + 0 + 1)/2 + 1 = 9") in finding.suggestions
    assert "nearest inputs where every layer divides exactly: 16×16×16 (-1), 18×18×18 (+1)" in finding.suggestions


def test_a_video_searches_frames_apart_from_height_and_width() -> None:
    findings = findings_for("""\
name: video
input: [3, 16, 112, 112]
layers:
  - {type: conv, out: 8, kernel: 3, stride: 2}
""")
    (finding,) = by_kind(findings, "inexact-division")
    # (16 − 3)/2 + 1 = 7.5 on D, (112 − 3)/2 + 1 = 55.5 on H and W: two clauses, slices then rows and columns.
    assert "D: (16 − 3 + 2·0)/2 + 1 = 7.5" in finding.message
    assert "the last 1 input slice is never seen" in finding.message
    assert "H and W: (112 − 3 + 2·0)/2 + 1 = 55.5" in finding.message
    assert "the last 1 input row and column are never seen" in finding.message
    # Odd sizes divide: D searched alone (15, 17), H and W together (111, 113), and the input taking the nearest
    # of each (the lower one on a tie).
    assert "nearest inputs where every layer divides exactly: depth 15 (-1), depth 17 (+1)" in finding.suggestions
    assert ("nearest inputs where every layer divides exactly: height and width 111×111 (-1), height and width "
            "113×113 (+1)") in finding.suggestions
    assert "nearest input where every layer divides exactly: 15×111×111" in finding.suggestions


def test_output_padding_not_smaller_than_stride_or_dilation_is_an_error() -> None:
    findings = findings_for("""\
name: t
input: [4, 8, 8]
layers:
  - {type: convtranspose, out: 4, kernel: 3, stride: 2, output_padding: [0, 2]}
""")
    (finding,) = findings
    # PyTorch: "output padding must be smaller than either stride or dilation"; on W, 2 ≥ 2 and 2 ≥ 1.
    assert finding.severity == "error" and finding.kind == "output-padding"
    assert "W: output_padding 2 is not smaller than the stride 2 or the dilation 1" in finding.message
    assert finding.where.key == "layers[0].output_padding"


UP_ONE_SHORT = """\
name: t
input: [4, 32, 32]
layers:
  - {type: conv, name: enc, out: 4, kernel: 3, padding: 1}
  - {type: maxpool, name: pool, kernel: 2}
  - {type: conv, name: mid, out: 4, kernel: 3, padding: 1}
  - {type: convtranspose, name: up, out: 4, kernel: 3, stride: 2, padding: 1}
  - {type: concat, name: cat, from: [enc, up]}
  - {type: conv, name: head, out: 2, kernel: 1}
"""


def test_an_up_convolution_that_can_never_match_its_skip() -> None:
    findings = findings_for(UP_ONE_SHORT)
    (finding,) = findings
    # pool: 32/2 = 16; up: (16 − 1)·2 − 2·1 + (3 − 1) + 0 + 1 = 31 against the skip's 32, at every even x:
    # enc gives x, up gives 2·(x/2) − 1 = x − 1.
    assert finding.kind == "merge" and finding.layer == "cat"
    assert "H and W: 'enc' gives 32, 'up' gives 31: no division floors on one branch only" in finding.message
    assert "'up' is always 1 smaller than 'enc' (x − 1 against x at input x" in finding.message
    assert any(s.startswith("no input size makes every layer exact and every merge match: at cat, 'up' is always 1 "
                            "smaller") for s in finding.suggestions)
    # output_padding 1: (16 − 1)·2 − 2 + 2 + 1 + 1 = 32.
    assert "output_padding 1 at up makes every merge match: up then gives 32×32 as 'enc' does" in finding.suggestions
    (fix,) = finding.fixes
    fixed = analyze(fix.applied(parse_text(UP_ONE_SHORT, "net.yaml")))
    assert fixed.halted is None and fixed.layer("head").output_shape == (2, 32, 32)


def test_fractional_up_sampling_floors_as_information() -> None:
    findings = findings_for("""\
name: t
input: [4, 35, 35]
layers:
  - {type: upsample, name: up, scale: 1.5}
""")
    (finding,) = findings
    # 35 × 1.5 = 52.5: F.interpolate floors it to 52.
    assert finding.severity == "info" and finding.kind == "inexact-resize"
    assert finding.message == "up: H and W: 35 × 1.5 = 52.5 is not an integer; PyTorch floors it to 52"


def test_a_padding_that_would_break_a_residual_add_is_not_offered() -> None:
    text = """\
name: t
input: [4, 57, 57]
layers:
  - {type: conv, name: main, out: 4, kernel: 3, stride: 2}
  - {type: conv, name: shortcut, out: 4, kernel: 2, stride: 2, from: input}
  - {type: add, name: add, from: [main, shortcut]}
"""
    findings = findings_for(text)
    (finding,) = by_kind(findings, "inexact-division")
    # main: (57 − 3)/2 + 1 = 28; shortcut: (57 − 2)/2 + 1 = 28.5 → 28, row 56 unread. One more row of padding
    # makes the shortcut 29, and the add would then refuse 28 against 29.
    assert finding.layer == "shortcut" and finding.severity == "warning"
    assert not any("padding" in s for s in finding.suggestions)
    assert ("Padding alone does not fix it: padding 0 before and 1 after on H and W (nn.ZeroPad2d) would make it "
            "exact, but then add fails") in finding.message
    assert "'main' gives 4×28×28, 'shortcut' gives 4×29×29" in finding.message
    # (x − 3)/2 and (x − 2)/2 are never both whole: no input size is offered.
    assert finding.suggestions == ("no input within 256 of 57 makes every layer exact",)
