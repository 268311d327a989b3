"""`check` on encoder-decoders: U-Nets written as YAML here (bundled `unet` specs come later). A padded U-Net at 570
fails at its deepest skip; the original valid-convolution U-Net (Ronneberger et al. 2015) works at 572 → 388.
Every size `check` names is checked here by brute force: a full analysis of every size in a range."""

from __future__ import annotations

from convaudit.core.analysis import analyze
from convaudit.core.checks import check
from convaudit.spec.parser import parse_text

DOUBLE = """\
blocks:
  double:
    params: {out: null, pad: 0}
    layers:
      - {type: conv, name: conv1, out: $out, kernel: 3, padding: $pad}
      - {type: relu, name: relu1}
      - {type: conv, name: conv2, out: $out, kernel: 3, padding: $pad}
      - {type: relu, name: relu2}
"""

# As users write it (milesial/Pytorch-UNet): padded 3×3 convs, 2×2 max-pool, 2×2 stride-2 up-convs, torch.cat.
PADDED_UNET = "name: unet_padded\ninput: [3, 570, 570]\n" + DOUBLE + """\
layers:
  - {block: double, name: inc, out: 64, pad: 1}
  - {type: maxpool, name: pool1, kernel: 2}
  - {block: double, name: down1, out: 128, pad: 1}
  - {type: maxpool, name: pool2, kernel: 2}
  - {block: double, name: down2, out: 256, pad: 1}
  - {type: maxpool, name: pool3, kernel: 2}
  - {block: double, name: down3, out: 512, pad: 1}
  - {type: maxpool, name: pool4, kernel: 2}
  - {block: double, name: down4, out: 1024, pad: 1}
  - {type: convtranspose, name: up1, out: 512, kernel: 2, stride: 2}
  - {type: concat, name: cat1, from: [down3/relu2, up1]}
  - {block: double, name: dec1, out: 512, pad: 1}
  - {type: convtranspose, name: up2, out: 256, kernel: 2, stride: 2}
  - {type: concat, name: cat2, from: [down2/relu2, up2]}
  - {block: double, name: dec2, out: 256, pad: 1}
  - {type: convtranspose, name: up3, out: 128, kernel: 2, stride: 2}
  - {type: concat, name: cat3, from: [down1/relu2, up3]}
  - {block: double, name: dec3, out: 128, pad: 1}
  - {type: convtranspose, name: up4, out: 64, kernel: 2, stride: 2}
  - {type: concat, name: cat4, from: [inc/relu2, up4]}
  - {block: double, name: dec4, out: 64, pad: 1}
  - {type: conv, name: outc, out: 2, kernel: 1}
"""

# The paper's: valid 3×3 convs, 2×2 max-pool, 2×2 up-conv, the skip centre-cropped to the up-path and concatenated.
VALID_UNET = "name: unet\ninput: [1, 572, 572]\n" + DOUBLE + """\
layers:
  - {block: double, name: down0, out: 64}
  - {type: maxpool, name: pool1, kernel: 2}
  - {block: double, name: down1, out: 128}
  - {type: maxpool, name: pool2, kernel: 2}
  - {block: double, name: down2, out: 256}
  - {type: maxpool, name: pool3, kernel: 2}
  - {block: double, name: down3, out: 512}
  - {type: maxpool, name: pool4, kernel: 2}
  - {block: double, name: bottom, out: 1024}
  - {type: convtranspose, name: up4, out: 512, kernel: 2, stride: 2}
  - {type: crop, name: crop4, from: [down3/relu2, up4]}
  - {type: concat, name: cat4, from: [crop4, up4]}
  - {block: double, name: dec4, out: 512}
  - {type: convtranspose, name: up3, out: 256, kernel: 2, stride: 2}
  - {type: crop, name: crop3, from: [down2/relu2, up3]}
  - {type: concat, name: cat3, from: [crop3, up3]}
  - {block: double, name: dec3, out: 256}
  - {type: convtranspose, name: up2, out: 128, kernel: 2, stride: 2}
  - {type: crop, name: crop2, from: [down1/relu2, up2]}
  - {type: concat, name: cat2, from: [crop2, up2]}
  - {block: double, name: dec2, out: 128}
  - {type: convtranspose, name: up1, out: 64, kernel: 2, stride: 2}
  - {type: crop, name: crop1, from: [down0/relu2, up1]}
  - {type: concat, name: cat1, from: [crop1, up1]}
  - {block: double, name: dec1, out: 64}
  - {type: conv, name: head, out: 2, kernel: 1}
"""


def passing(text: str, sizes: range) -> list[int]:
    """Brute force: the sizes at which a full analysis finishes with every division exact."""
    spec = parse_text(text, "unet.yaml")
    found = []
    for size in sizes:
        report = analyze(spec.with_input(size, size))
        if report.halted is None and not any(layer.inexact_upstream for layer in report.layers):
            found.append(size)
    return found


def test_the_padded_unet_at_570_fails_at_its_deepest_skip_and_says_why() -> None:
    spec = parse_text(PADDED_UNET, "unet.yaml")
    findings = check(analyze(spec))
    error = [f for f in findings if f.severity == "error"]
    (merge,) = error
    # 570 → 285 → 142.5 floored to 142 → 71 → 35.5 floored to 35; up1 doubles it to 70 against the skip's 71:
    # torch.cat would say "Expected size 71 but got size 70". pool2's floor is upstream of both, pool4's of up1 only.
    assert merge.kind == "merge" and merge.layer == "cat1"
    assert ("H and W: 'down3/relu2' gives 71, 'up1' gives 70: floor at pool4: (71 − 2 + 2·0)/2 + 1 = 35.5 → 35, "
            "then ×2 at up1 = 70") in merge.message
    # Every level divides and every merge matches where 16 divides the input (4 halvings).
    good = passing(PADDED_UNET, range(530, 611))
    assert good == [s for s in range(530, 611) if s % 16 == 0]
    below, above = max(s for s in good if s < 570), min(s for s in good if s > 570)
    assert (below, above) == (560, 576)
    assert (f"nearest inputs where every layer divides exactly and every merge matches: {above}×{above} (+6), "
            f"{below}×{below} (-10)") in merge.suggestions
    assert {fix.sizes for fix in merge.fixes if hasattr(fix, "sizes")} == {(560, 560), (576, 576)}
    # Or keep 570 and let the up-convolutions make up the floors: up1 2·35 + 1 = 71 as its skip, then 142 matches,
    # then up3 2·142 + 1 = 285 as down1's 285 (output_padding 1 < stride 2, which PyTorch allows).
    assert ("output_padding 1 at up1 and up3 makes every merge match: up1 then gives 71×71 as 'down3/relu2' does, "
            "up3 285×285") in merge.suggestions
    # pool4's own padding would make it 36, and up1 72 against 71: not offered, and said why.
    (pool4,) = [f for f in findings if f.layer == "pool4"]
    assert not any("ZeroPad" in s for s in pool4.suggestions)
    assert "but then cat1 fails" in pool4.message and "'up1' gives 512×72×72" in pool4.message


def test_the_padded_unet_passes_at_multiples_of_16() -> None:
    spec = parse_text(PADDED_UNET, "unet.yaml")
    assert check(analyze(spec.with_input(576, 576))) == []


def test_the_valid_unet_gives_388_at_572() -> None:
    spec = parse_text(VALID_UNET, "unet.yaml")
    report = analyze(spec)
    # 572 − 4 = 568, /2 = 284, − 4 = 280, 140, 136, 68, 64, 32, 28 at the bottom; up: 56 − 4 = 52, 104 − 4 = 100,
    # 200 − 4 = 196, 392 − 4 = 388.
    assert report.layer("head").output_shape == (2, 388, 388)
    assert check(report) == []


def test_the_valid_unet_at_570_names_the_failing_level_and_suggests_572_and_556() -> None:
    spec = parse_text(VALID_UNET, "unet.yaml").with_input(570, 570)
    findings = check(analyze(spec))
    first = findings[0]
    # 570 − 4 = 566 → 283 → 283 − 4 = 279 → (279 − 2)/2 + 1 = 139.5: pool2 is the first level that does not divide.
    assert first.layer == "pool2" and first.severity == "warning"
    assert "(279 − 2 + 2·0)/2 + 1 = 139.5 is not an integer" in first.message
    good = passing(VALID_UNET, range(520, 621))
    assert good == [s for s in range(520, 621) if s % 16 == 572 % 16]  # 540, 556, 572, 588, 604
    assert "nearest inputs where every layer divides exactly: 572×572 (+2), 556×556 (-14)" in first.suggestions
    assert all(f.severity != "error" for f in findings)  # the crops absorb the odd sizes: only warnings


def test_every_fix_offered_at_570_holds() -> None:
    for text in (PADDED_UNET, VALID_UNET):
        spec = parse_text(text, "unet.yaml").with_input(570, 570)
        findings = check(analyze(spec))
        for finding in findings:
            for fix in finding.fixes:
                fixed = analyze(fix.applied(spec))
                assert fixed.halted is None, (finding.layer, fix)
                if hasattr(fix, "layer"):  # a padding: that division is exact now
                    assert all(fixed.layer(fix.layer).windows[axis].is_exact for axis in fix.axes)


def test_the_readme_examples_are_these_networks() -> None:
    from pathlib import Path

    from convaudit.spec.parser import load_spec

    examples = Path(__file__).resolve().parent.parent / "docs" / "examples"
    for text, file in ((PADDED_UNET, "unet_padded.yaml"), (VALID_UNET, "unet.yaml")):
        ours, shown = parse_text(text, "unet.yaml"), load_spec(examples / file)
        assert shown.input == ours.input
        assert [(layer.name, layer.type, dict(layer.params), layer.inputs) for layer in shown.layers] == \
            [(layer.name, layer.type, dict(layer.params), layer.inputs) for layer in ours.layers]
