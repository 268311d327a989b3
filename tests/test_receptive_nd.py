"""Receptive fields over 1, 2 or 3 spatial axes and through resampling layers: by hand, and against a brute-force
walk of every output's taps (tests/receptive_nets.py). PyTorch's own gradients: tests/test_receptive_jacobian.py."""

from __future__ import annotations

import json
import math
from fractions import Fraction

from hypothesis import assume, given, settings
from typer.testing import CliRunner

from convaudit.cli import app
from convaudit.core.analysis import analyze
from convaudit.core.fields import per_axis
from convaudit.core.receptive import Supports, receptive_fields
from convaudit.core.receptive.resampling import Transposed, Upsampled
from convaudit.spec.parser import parse_text
from tests.receptive_nets import KINDS, FreeWalk, resampling_network

F = Fraction


def fields_of(text: str) -> dict:
    return receptive_fields(analyze(parse_text(text)))


# ------------------------------------------------------------------ golden chains, arithmetic written out

ONE_D = """\
name: audio
input: [1, 100]
layers:
  - {type: conv, name: conv, out: 4, kernel: 5, stride: 2}
  - {type: maxpool, name: pool, kernel: 2}
  - {type: convtranspose, name: upconv, out: 4, kernel: 4, stride: 2, padding: 1}
  - {type: upsample, name: up, scale: 2}
"""


def test_a_1d_chain_by_hand() -> None:
    fields = fields_of(ONE_D)
    # conv K5 S2: rf 5, jump 2, first centre (5 − 1)/2 = 2; ⌊(100 − 5)/2⌋ + 1 = 48 windows end at 94 + 4 = 98:
    # pixel 99 is unseen
    assert (fields["conv"].rf, fields["conv"].jump, fields["conv"].start, fields["conv"].uncovered) == \
        ((5,), (2,), (2,), (1,))
    # pool K2 S2: 5 + 1·2 = 7, jump 4, centre 2 + 0.5·2 = 3
    assert (fields["pool"].rf, fields["pool"].jump, fields["pool"].start) == ((7,), (4,), (3,))
    # transposed K4 S2 P1: output p reads the i with 2i − 1 + k = p, k < 4: p = 2m reads m − 1 and m, p = 2m + 1
    # reads m and m + 1; always two neighbours: 7 + 1·4 = 11, jump 4/2 = 2, output 0 at (P − (K − 1)/2)/S =
    # (1 − 1.5)/2 = −1/4 of an input step: 3 − 4/4 = 2
    assert (fields["upconv"].rf, fields["upconv"].jump, fields["upconv"].start) == ((11,), (2,), (2,))
    # nearest ×2: output p reads ⌊p/2⌋, the field of one input (11); jump 1; outputs 2m and 2m + 1 sit a quarter of
    # an input step either side of input m: 2 − 2/4 = 1.5
    assert (fields["up"].rf, fields["up"].jump, fields["up"].start) == ((11,), (1,), (F(3, 2),))
    assert fields["up"].uncovered == (1,)  # pixel 99, lost at conv, stays lost
    assert not fields["up"].notes and not fields["upconv"].notes  # every output's field is 11 wide


C3D_LIKE = """\
name: c3d_like
input: [3, 16, 112, 112]
layers:
  - {type: conv, name: conv1, out: 8, kernel: 3, padding: 1}
  - {type: maxpool, name: pool1, kernel: [1, 2, 2], stride: [1, 2, 2]}
  - {type: conv, name: conv2, out: 8, kernel: 3, padding: 1}
  - {type: maxpool, name: pool2, kernel: 2, stride: 2}
  - {type: conv, name: conv3a, out: 8, kernel: 3, padding: 1}
  - {type: conv, name: conv3b, out: 8, kernel: 3, padding: 1}
  - {type: maxpool, name: pool3, kernel: 2, stride: 2}
"""


def test_a_3d_chain_by_hand() -> None:
    fields = fields_of(C3D_LIKE)
    # D, H, W: conv 3 → 3, 3, 3; pool1 pools H and W only: D 3 (jump 1), H and W 3 + 1 = 4 (jump 2, centre 0.5)
    assert (fields["pool1"].rf, fields["pool1"].jump, fields["pool1"].start) == \
        ((3, 4, 4), (1, 2, 2), (0, F(1, 2), F(1, 2)))
    # conv2: D 3 + 2·1 = 5, H 4 + 2·2 = 8; pool2: D 5 + 1 = 6 (jump 2, centre 0.5), H 8 + 2 = 10 (jump 4, 0.5 + 1)
    assert (fields["pool2"].rf, fields["pool2"].jump) == ((6, 10, 10), (2, 4, 4))
    # conv3a, conv3b: D 6 + 2·2 + 2·2 = 14, H 10 + 2·4 + 2·4 = 26; pool3: D 14 + 2 = 16, H 26 + 4 = 30;
    # centres D 0.5 + 0.5·2 = 1.5, H 1.5 + 0.5·4 = 3.5
    assert (fields["pool3"].rf, fields["pool3"].jump, fields["pool3"].start) == \
        ((16, 30, 30), (4, 8, 8), (F(3, 2), F(7, 2), F(7, 2)))
    assert all(field.uncovered == (0, 0, 0) for field in fields.values())


def test_a_stride_2_transposed_conv_has_jump_one_half() -> None:
    fields = fields_of("name: t\ninput: [1, 8]\nlayers:\n"
                       "  - {type: convtranspose, name: up, out: 1, kernel: 3, stride: 2, padding: 1, "
                       "output_padding: 1}\n")
    (axis,) = fields["up"].axes
    # output p reads the i with 2i − 1 + k = p (k < 3): p = 2m reads m alone, p = 2m + 1 reads m and m + 1:
    # fields of 1 and 2 pixels (RF the largest), two outputs per input (jump 1/2), output 0 at (1 − 1)/2 = 0
    assert (axis.rf, axis.jump, axis.start) == (2, F(1, 2), 0)
    assert fields["up"].uncovered == (0,)
    assert fields["up"].notes == ("L: fields of 1–2 pixels (outputs that share input positions see different "
                                  "context): RF is the largest",)


def unet(size: int) -> str:
    """Ronneberger et al. 2015: valid 3×3 convolutions, 2×2 max pools, 2×2 stride-2 up-convolutions, and each
    skip centre-cropped to the up-sampled map before the concat."""
    lines, channels = [], [64, 128, 256, 512]
    for level, c in enumerate(channels, 1):
        lines += [f"{{type: conv, name: enc{level}a, out: {c}, kernel: 3}}", "{type: relu}",
                  f"{{type: conv, name: enc{level}b, out: {c}, kernel: 3}}", f"{{type: relu, name: enc{level}}}",
                  f"{{type: maxpool, name: down{level}, kernel: 2}}"]
    lines += ["{type: conv, out: 1024, kernel: 3}", "{type: relu}", "{type: conv, out: 1024, kernel: 3}",
              "{type: relu, name: bottom}"]
    for level, c in reversed(list(enumerate(channels, 1))):
        lines += [f"{{type: convtranspose, name: up{level}, out: {c}, kernel: 2, stride: 2}}",
                  f"{{type: crop, name: crop{level}, from: [enc{level}, up{level}]}}",
                  f"{{type: concat, name: cat{level}, from: [crop{level}, up{level}]}}",
                  f"{{type: conv, out: {c}, kernel: 3}}", "{type: relu}",
                  f"{{type: conv, name: dec{level}, out: {c}, kernel: 3}}", "{type: relu}"]
    lines.append("{type: conv, name: head, out: 2, kernel: 1}")
    return f"name: unet\ninput: [1, {size}, {size}]\nlayers:\n" + "".join(f"  - {line}\n" for line in lines)


def test_the_original_unet_at_572_by_hand() -> None:
    report = analyze(parse_text(unet(572)))
    assert report.layers[-1].output_shape == (2, 388, 388)
    fields = receptive_fields(report)
    # encoder: every valid 3×3 conv adds 2 jumps, every pool 1 and doubles the jump: the bottleneck's positions
    # (jump 16) see 140 pixels, position b the pixels 16·b … 16·b + 139
    bottom = fields["bottom"]
    assert (bottom.rf, bottom.jump, bottom.start) == ((140, 140), (16, 16), (F(139, 2), F(139, 2)))
    # Decoder, counted in bottleneck positions. A head output reads 5 consecutive positions of cat1 (two 3×3
    # convs); up1 halves them to 3 of dec2; dec2's two convs make 5, up2 7 positions of cat2 … of dec3 4; then 8
    # of cat3, of which dec4 holds 4 or 5 (as the 8 start on an even or odd position); then 8 or 9 of cat4: 4 or
    # 5 bottleneck positions. The skips' fields are narrower. So every head output sees 140 + 16·3 = 188 or
    # 140 + 16·4 = 204 pixels: RF is the largest, 204.
    head = fields["head"]
    assert (head.rf, head.jump) == ((204, 204), (1, 1))
    assert any("fields of 188–204 pixels" in note for field in fields.values() for note in field.notes)
    # the 388 outputs sit at (572 − 388)/2 = 92, 93, …: centred on the input, as the paper's tiling needs
    assert head.start == (92, 92)
    # each crop's offset puts the skip on the up-convolution's grid: no merge is flagged
    assert not any("misaligned" in note for field in fields.values() for note in field.notes)
    for level in (1, 2, 3, 4):
        assert fields[f"crop{level}"].start == fields[f"up{level}"].start
        assert fields[f"crop{level}"].jump == fields[f"up{level}"].jump
    # crop4 keeps enc4's positions 4 … 59 of 64 (offset (64 − 56)/2 = 4); enc4 position q reads 8q … 8q + 67:
    # pixels 32 … 539 of 572, so 32 + 32 = 64 unseen on each axis
    assert fields["crop4"].uncovered == (64, 64)
    # every head output's support (exact, per position) agrees: 188 or 204 pixels, none clipped
    supports = Supports(report)
    widths = {supports.high("head", 0, i) - supports.low("head", 0, i) + 1 for i in range(388)}
    assert widths == {188, 204}


def test_a_misaligned_unet_crop_is_flagged() -> None:
    # one zero row padded after up4 (56 → 57 rows) leaves its grid where it was, but the crop to 57 rows takes
    # offset ⌊(64 − 57)/2⌋ = 3 instead of 4: the skip moves one step (8 pixels) up on H, and the concat mixes
    # positions 8 pixels apart
    text = unet(572).replace("{type: crop, name: crop4, from: [enc4, up4]}",
                             "{type: pad, name: shifted4, before: 0, after: [1, 0], from: up4}\n"
                             "  - {type: crop, name: crop4, from: [enc4, shifted4]}")
    text = text.replace("{type: concat, name: cat4, from: [crop4, up4]}",
                        "{type: concat, name: cat4, from: [crop4, shifted4]}")
    fields = fields_of(text)
    (note,) = [note for note in fields["cat4"].notes if "misaligned" in note]
    assert note == "merge of misaligned grids: 'crop4' jump 8 start 57.5×65.5, 'shifted4' jump 8 start 65.5"


# ------------------------------------------------------------------ each rule's numbers, against its definition

def test_transposed_taps_follow_the_definition() -> None:
    for kernel in range(1, 5):
        for stride in range(1, 5):
            for padding in range(0, 3):
                for dilation in range(1, 4):
                    reads = Transposed(9, 20, kernel, stride, padding, dilation)
                    for p in range(-3, 25):
                        taps = sorted({(p + padding - k * dilation) // stride for k in range(kernel)
                                       if (p + padding - k * dilation) % stride == 0})
                        span = reads.span(p)
                        listed = [] if span is None else list(range(span[0], span[2] + 1, span[1]))
                        assert listed == taps, (kernel, stride, padding, dilation, p)


def test_nearest_upsampling_starts_at_the_average_position() -> None:
    # nearest reads ⌊p·σ⌋: over b outputs (σ = a/b) the fractional parts of p·σ are 0, 1/b, …, (b − 1)/b, so the
    # outputs' fields sit on average (b − 1)/(2b) of an input step before p·σ
    for n, out in ((4, 12), (5, 7), (7, 3), (3, 8)):
        b = F(n, out).denominator
        text = f"name: t\ninput: [1, {n}]\nlayers:\n  - {{type: upsample, name: up, size: {out}}}\n"
        assert fields_of(text)["up"].start == (-F(b - 1, 2 * b),), (n, out)


# ------------------------------------------------------------------ the recurrence against every output's field

@settings(max_examples=60, deadline=None)
@given(resampling_network(kinds=tuple(k for k in KINDS if k != "merge")))
def test_rf_is_the_largest_field_and_start_the_average_position(text: str) -> None:
    report = analyze(parse_text(text))
    rank = len(report.input) - 1
    period = 1  # every output pattern repeats within the product of the layers' own periods
    for layer in report.layers:
        params = layer.spec.params
        for axis in range(rank):
            if layer.type == "convtranspose":
                period *= per_axis(params["stride"], rank)[axis]
            elif layer.type == "upsample":
                n, out = layer.input_shapes[0][1 + axis], layer.output_shape[1 + axis]
                period *= Upsampled(n, out, params["mode"], params["align_corners"],
                                    None if params.get("scale") is None else per_axis(params["scale"], rank)[axis],
                                    layer.input_shapes[0][1:] == layer.output_shape[1:] and
                                    params["mode"] == "bicubic").sigma.denominator
            elif layer.type == "pixelshuffle":
                period *= params["factor"]
    assume(period <= 200)
    fields, walk = receptive_fields(report), FreeWalk(report)
    for layer in report.layers:
        for axis in range(rank):
            found = [(p, walk.edges(layer.name, axis, p)) for p in range(period)]
            found = [(p, edges) for p, edges in found if edges is not None]
            field = fields[layer.name].axes[axis]
            assert field.rf == max((hi - lo + 1 for _, (lo, hi) in found), default=0), (text, layer.name, axis)
            if found and len(found) == period:  # every output reads something: the grid is their average place
                mean = sum((F(lo + hi, 2) - p * field.jump for p, (lo, hi) in found), F(0)) / len(found)
                assert field.start == mean, (text, layer.name, axis)


# ------------------------------------------------------------------ the tables

def test_rf_table_and_json_give_one_value_per_axis_where_they_differ(write_spec) -> None:
    path = str(write_spec(C3D_LIKE))
    table = CliRunner().invoke(app, ["rf", path], env={"COLUMNS": "120"})
    assert table.exit_code == 0
    row = next(line for line in table.stdout.splitlines() if line.lstrip().startswith("pool3"))
    assert row.split()[3:6] == ["16×30×30", "4×8×8", "1.5×3.5×3.5"]  # D×H×W
    conv1 = next(line for line in table.stdout.splitlines() if line.lstrip().startswith("conv1"))
    assert conv1.split()[3:6] == ["3", "1", "0"]  # every axis alike: one value
    assert "D×H×W" in table.stdout
    data = json.loads(CliRunner().invoke(app, ["rf", path, "--format", "json"]).stdout)
    pool3 = next(layer for layer in data["layers"] if layer["name"] == "pool3")
    assert (pool3["rf"], pool3["jump"], pool3["rf_start"], pool3["uncovered"]) == \
        ([16, 30, 30], [4, 8, 8], [1.5, 3.5, 3.5], [0, 0, 0])
    one = json.loads(CliRunner().invoke(app, ["rf", str(write_spec(ONE_D, "a.yaml")), "--format", "json"]).stdout)
    assert [layer["rf"] for layer in one["layers"]] == [[5], [7], [11], [11]]


def test_fields_follow_every_axis_of_a_volume_separately() -> None:
    fields = fields_of("name: t\ninput: [1, 6, 9, 12]\nlayers:\n"
                       "  - {type: conv, name: c, out: 1, kernel: [1, 3, 5], stride: [1, 2, 3]}\n"
                       "  - {type: upsample, name: u, scale: [1, 2, 3]}\n")
    # D: K1 S1; H: K3 S2 (⌊(9 − 3)/2⌋ + 1 = 4 windows reach 8: none unseen); W: K5 S3 (⌊7/3⌋ + 1 = 3 windows
    # reach 6 + 4 = 10: pixel 11 unseen)
    assert (fields["c"].rf, fields["c"].jump, fields["c"].uncovered) == ((1, 3, 5), (1, 2, 3), (0, 0, 1))
    # nearest by 1, 2, 3: D copies (σ 1), H halves (σ 1/2, offset −1/4), W thirds (σ 1/3, offset −1/3)
    assert fields["u"].jump == (1, 1, 1) and fields["u"].start == (0, 1 - F(2, 4), 2 - F(3, 3))
    assert math.prod(fields["u"].rf) == 1 * 3 * 5


def test_the_readme_shows_the_example_spec_it_runs() -> None:
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    spec = (ROOT / "docs" / "examples" / "tiny_unet.yaml").read_text(encoding="utf-8")
    assert f"```yaml\n{spec}```" in readme
