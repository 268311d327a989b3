"""Findings: what `check` says about inexact divisions, misfits and broken claims, and the fixes it offers."""

from __future__ import annotations

from convaudit.core.analysis import analyze
from convaudit.core.checks import check, exit_status
from convaudit.spec.library import load
from convaudit.spec.parser import parse_text


def findings_for(text: str, height: int | None = None) -> list:
    spec = parse_text(text, "net.yaml")
    if height:
        spec = spec.with_input(height, height)
    return check(analyze(spec))


def by_kind(findings: list, kind: str) -> list:
    return [f for f in findings if f.kind == kind]


def test_alexnet_224_flags_conv1_with_the_arithmetic() -> None:
    findings = check(analyze(load("alexnet").with_input(224, 224)))
    conv1 = [f for f in by_kind(findings, "inexact-division") if f.layer == "conv1"][0]
    assert conv1.severity == "warning"
    assert "(224 − 11 + 2·0)/4 + 1 = 54.25" in conv1.message
    # 213 = 53·4 + 1: the last window ends at row 222, so one row (223) is never read.
    assert "PyTorch floors it to 54, so the last 1 input row and column are never seen" in conv1.message
    # Ceil: 55 windows, the last covering 216..226, 3 rows past the 224-row input.
    assert "Caffe's ceil rounding (its pooling rule) would give 55" in conv1.message
    assert conv1.where.line is not None and conv1.where.key == "layers[0].stride"
    suggestions = " ".join(conv1.suggestions)
    assert "227×227 (+3)" in suggestions
    assert "227×227 is the nearest where every layer is exact and every pinned `in:` matches" in suggestions
    # 213 + 2P is odd, so no symmetric padding divides by 4; 1 before and 2 after gives 216/4 + 1 = 55.
    assert "padding 1 before and 2 after" in suggestions and "= 55" in suggestions


def test_alexnet_224_traces_fc6_back_to_conv1() -> None:
    findings = check(analyze(load("alexnet").with_input(224, 224)))
    fc6 = by_kind(findings, "in-mismatch")[0]
    assert fc6.severity == "error" and fc6.layer == "fc6"
    # pool5 gives 256·5·5 = 6400, not the pinned 6·6·256 = 9216.
    assert "fc6 pins in: 9216 but receives 256×5×5 = 6400" in fc6.message
    assert "a consequence of the inexact division at conv1 (54.25 → 54)" in fc6.message
    assert exit_status(findings) == 1


def test_bundled_alexnet_is_clean_at_227() -> None:
    assert check(analyze(load("alexnet"))) == []


def test_expectations_are_checked() -> None:
    findings = findings_for("""\
name: t
input: [3, 32, 32]
layers:
  - {type: conv, out: 8, kernel: 3, expect: {shape: [8, 32, 32], params: 224}}
""")
    # (32 − 3)/1 + 1 = 30, and 8·3·3·3 + 8 = 224
    assert [f.message for f in findings] == ["conv1: expected shape [8, 32, 32], computed [8, 30, 30]"]
    assert findings[0].where.key == "layers[0].expect"


def test_kernel_larger_than_input_stops_the_analysis() -> None:
    findings = findings_for("""\
name: t
input: [1, 8, 8]
layers:
  - {type: conv, out: 4, kernel: 5}
  - {type: conv, out: 4, kernel: 5}
""")
    # 8 − 5 + 1 = 4, then (4 − 5 + 0)/1 + 1 = 0
    (finding,) = findings
    assert finding.kind == "non-positive-output" and finding.layer == "conv2" and finding.severity == "error"
    assert "(4 − 5 + 2·0)/1 + 1 = 0" in finding.message and "larger than the padded input" in finding.message


def test_groups_that_do_not_divide_the_input_channels() -> None:
    findings = findings_for("""\
name: t
input: [3, 8, 8]
layers:
  - {type: conv, out: 4, kernel: 3, groups: 2}
""")
    (finding,) = findings
    assert finding.kind == "groups" and "input channels 3 are not divisible by groups 2" in finding.message
    assert finding.where.key == "layers[0].groups"


def test_ceil_rounding_is_information_not_a_warning() -> None:
    findings = findings_for("""\
name: t
input: [8, 112, 112]
layers:
  - {type: maxpool, kernel: 3, stride: 2, ceil: true}
""")
    (finding,) = findings
    # (112 − 3)/2 + 1 = 55.5 → 56; the last window covers 110..112, one past the edge.
    assert finding.severity == "info" and "rounded up to 56" in finding.message
    assert exit_status(findings) == 0 and exit_status(findings, strict=True) == 0


def test_padding_fix_symmetric() -> None:
    findings = findings_for("""\
name: t
input: [3, 25, 25]
layers:
  - {type: conv, out: 4, kernel: 3, stride: 4}
""")
    (finding,) = by_kind(findings, "inexact-division")
    # (25 − 3)/4 + 1 = 6.5; two more rows make 24/4: padding 1 on each side gives 7.
    assert "padding 1 on H and W makes conv exact: (25 − 3 + 2·1)/4 + 1 = 7" in finding.suggestions


def test_padding_fix_asymmetric() -> None:
    findings = findings_for("""\
name: t
input: [3, 30, 30]
layers:
  - {type: conv, out: 4, kernel: 3, stride: 2}
""")
    (finding,) = by_kind(findings, "inexact-division")
    # (30 − 3)/2 + 1 = 14.5; one more row makes 28/2, which symmetric padding cannot add.
    assert any("padding 0 before and 1 after on H and W (nn.ZeroPad2d) does: (30 − 3 + 2·0 + 0 + 1)/2 + 1 = 15"
               in s for s in finding.suggestions)


def test_padding_only_drops_are_information() -> None:
    # torchvision's AlexNet: (224 − 11 + 2·2)/4 + 1 = 55.25; the last window ends at 54·4 + 11 = 227 of the
    # 228 padded rows, so only right padding is dropped.
    findings = check(analyze(load("alexnet-torchvision")))
    assert [(f.severity, f.kind) for f in findings] == [("info", "inexact-division")]
    assert "dropping only right padding, so no input is lost" in findings[0].message


def test_strict_fails_on_warnings() -> None:
    # AlexNet at 224: (224 − 11)/4 + 1 = 54.25 leaves the last input row unread: a warning (and the pools after
    # it floor too); fc6's pin is an error.
    findings = check(analyze(load("alexnet").with_input(224, 224)))
    assert [f.layer for f in findings if f.severity == "warning"][0] == "conv1"
    assert exit_status(findings, strict=True) == 1
    # Without the pin, the warning alone fails only --strict.
    warnings = [f for f in findings if f.severity != "error"]
    assert exit_status(warnings) == 0 and exit_status(warnings, strict=True) == 1


def test_a_window_narrower_than_its_stride_loses_nothing_more_at_the_end() -> None:
    # ResNet-18's 1×1 stride-2 shortcut: (56 − 1)/2 + 1 = 28.5; windows start at 0, 2, …, 54, so row 55 is never
    # read, but a 1-wide window at stride 2 skips every odd row (1, 3, …, 55) by design: nothing more is lost.
    findings = check(analyze(load("resnet18")))
    assert [f for f in findings if f.severity != "info"] == []
    shortcut = [f for f in findings if f.layer == "layer2.0.downsample.0"][0]
    assert "the last 1 input row and column are never seen, which the stride skips anyway" in shortcut.message
    assert "reads 1 of every 2 rows and columns, so nothing is lost beyond that" in shortcut.message
    assert shortcut.suggestions == () and exit_status(findings, strict=True) == 0


def test_a_gap_between_windows_counts_only_what_lies_beyond_it() -> None:
    findings = findings_for("""\
name: t
input: [3, 10, 10]
layers:
  - {type: conv, out: 4, kernel: 2, stride: 3}
""")
    (finding,) = by_kind(findings, "inexact-division")
    # (10 − 2)/3 + 1 = 3.67 → 3: windows at 0, 3, 6 end at 8; rows 8 and 9 are unread. A 2-wide window at stride
    # 3 skips row 8 (the gap after the window at 6) anyway; row 9 would have been read by a fourth window.
    assert finding.severity == "warning"
    assert "the last 2 input rows and columns are never seen, 1 more than the stride skips anyway" in finding.message


# ------------------------------------------------------------------ every axis judged; fixes that fix

def test_every_axis_is_judged_whichever_comes_first() -> None:
    for kernel, padding in (("[3, 3]", "[1, 0]"), ("[3, 3]", "[0, 1]")):
        findings = findings_for(f"""\
name: t
input: [3, 56, 56]
layers:
  - {{type: conv, out: 4, kernel: {kernel}, padding: {padding}, stride: 2}}
""")
        (finding,) = by_kind(findings, "inexact-division")
        # The padded axis: (56 − 3 + 2·1)/2 + 1 = 28.5; windows start at 0..54 of the 58 padded rows and end at
        # 56, so only right padding is dropped. The unpadded axis: (56 − 3)/2 + 1 = 27.5; the last window starts at
        # 52 and ends at 54, so input 55 is never read: a real column (or row) lost, whichever axis it is on.
        assert finding.severity == "warning", finding.message
        assert "dropping only right padding" in finding.message and "never seen" in finding.message


def test_a_pin_finding_offers_only_inputs_that_satisfy_the_pin() -> None:
    findings = check(analyze(load("lenet5").with_input(224, 224)))
    # 224 divides exactly everywhere (stride-2 subsampling of 220 and 106), so inputs that "divide exactly"
    # would fix nothing; F6's pin (120 = 120·1·1) holds only at 32: 32 − 4 = 28, 14, 10, 5, 1.
    suggestions = [s for f in findings for s in f.suggestions]
    assert not any("divides exactly" in s for s in suggestions)
    pin = by_kind(findings, "in-mismatch")[0]
    assert pin.suggestions == ("32×32 is the nearest where every layer is exact and every pinned `in:` matches",)


def brute_force(spec, size: int, axes: tuple[int, ...] | None = None) -> bool | None:
    """The slow reference: a full analysis at this input (`axes` at `size`, the others as they are; default: a
    square image's H and W), judged along `axes`."""
    from convaudit.core.checks import _verdict

    if axes is None:
        return _verdict(spec, size, size)
    spatial = spec.input[1:]
    return _verdict(spec, *(size if i in axes else old for i, old in enumerate(spatial)), axes=axes)


def test_one_pass_search_agrees_with_brute_force_on_every_bundled_network() -> None:
    from convaudit.core.checks import ExactModel

    from .conftest import ARCHITECTURES

    modelled = 0
    for path in ARCHITECTURES:
        spec = load(str(path))
        spatial = spec.input[1:]
        axes = tuple(i for i, size in enumerate(spatial) if size == spatial[-1])  # H and W; L of a 1-D input
        model = ExactModel.of(analyze(spec), axes)
        if model is None:  # ceil pools (GoogLeNet): the brute-force search runs instead
            continue
        modelled += 1
        current = spatial[-1]
        for size in range(max(1, current - 36), current + 37, 3):
            assert model.verdict(size) == brute_force(spec, size, axes), (path.name, size)
    assert modelled >= 10


def test_suggestions_match_brute_force_at_inexact_inputs() -> None:
    from convaudit.core.checks import SEARCH_SPAN, InputFixes

    for name, size in (("alexnet", 224), ("vgg-d", 225), ("resnet18", 230), ("lenet5", 30)):
        spec = load(name).with_input(size, size)
        exact = [s for d in range(1, SEARCH_SPAN + 1) for s in (size - d, size + d)
                 if s >= 1 and brute_force(spec, s) is not None]
        (found,) = InputFixes(spec).searches()
        below = max((s for s in exact if s < size), default=None)
        above = min((s for s in exact if s > size), default=None)
        assert (found.below, found.above) == (below, above), name


def test_the_search_is_linear_in_layers() -> None:
    # 19,999 layers: one inexact stride-2 conv, then 1×1 convs and ReLUs. The old search ran 512 analyses.
    lines = ["name: big", "input: [4, 224, 224]", "layers:", "  - {type: conv, out: 4, kernel: 3, stride: 2}"]
    lines += ["  - {type: relu}" if i % 2 else "  - {type: conv, out: 4, kernel: 1}" for i in range(19_998)]
    findings = check(analyze(parse_text("\n".join(lines) + "\n", "big.yaml")))
    # (224 − 3)/2 + 1 = 111.5; odd inputs divide: 223 and 225.
    assert findings[0].suggestions[0] == "nearest inputs where every layer divides exactly: 223×223 (-1), 225×225 (+1)"


def test_a_layer_without_padding_is_offered_a_pad_in_front() -> None:
    text = """\
name: t
input: [1, 10, 10]
layers:
  - {type: subsample, kernel: 3}
"""
    (finding,) = by_kind(findings_for(text), "inexact-division")
    # (10 − 3)/3 + 1 = 3.33 → 3; two more positions make 9/3: one on each side, but subsample takes no padding:
    # a zero pad in front of it, re-analysed: (12 − 3)/3 + 1 = 4.
    assert ("no symmetric padding makes it exact (subsample takes no padding); padding 1 before and 1 after on H "
            "and W (nn.ZeroPad2d) does: (10 − 3 + 2·0 + 1 + 1)/3 + 1 = 4") in finding.suggestions
    (pad,) = [fix for fix in finding.fixes if not hasattr(fix, "sizes")]
    fixed = analyze(pad.applied(parse_text(text, "net.yaml")))
    assert [layer.type for layer in fixed.layers] == ["pad", "subsample"]
    assert fixed.layers[-1].output_shape == (1, 4, 4)
