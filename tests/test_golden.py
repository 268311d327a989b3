"""Golden per-layer numbers, each derived here from the paper's arithmetic, never from our own output."""

from __future__ import annotations

from convaudit.core.analysis import analyze
from convaudit.spec.library import load


def conv_numbers(cin: int, cout: int, k: int, out: int, groups: int = 1) -> tuple[int, int]:
    """(params, MACs) of a square conv with bias: weights Cout·(Cin/g)·K², MACs weights·out²."""
    weights = cout * (cin // groups) * k * k
    return weights + cout, weights * out * out


# ------------------------------------------------------------------ AlexNet (227, two GPUs)

def test_alexnet_per_layer() -> None:
    report = analyze(load("alexnet"))
    # Spatial sizes, (W − K + 2P)/S + 1 at each layer:
    s1 = (227 - 11) // 4 + 1  # conv1: 216/4 + 1 = 55
    p1 = (s1 - 3) // 2 + 1  # pool1: 52/2 + 1 = 27
    s2 = (p1 - 5 + 2 * 2) // 1 + 1  # conv2: 27
    p2 = (s2 - 3) // 2 + 1  # pool2: 13
    s3 = (p2 - 3 + 2) // 1 + 1  # conv3-5: 13
    p5 = (s3 - 3) // 2 + 1  # pool5: 6
    assert (s1, p1, s2, p2, s3, p5) == (55, 27, 27, 13, 13, 6)
    expected = {
        # name: (output shape, params, MACs)
        "conv1": ((96, 55, 55),) + conv_numbers(3, 96, 11, 55),
        "conv2": ((256, 27, 27),) + conv_numbers(96, 256, 5, 27, groups=2),  # each half reads 48 maps
        "conv3": ((384, 13, 13),) + conv_numbers(256, 384, 3, 13),  # across both GPUs
        "conv4": ((384, 13, 13),) + conv_numbers(384, 384, 3, 13, groups=2),
        "conv5": ((256, 13, 13),) + conv_numbers(384, 256, 3, 13, groups=2),
        "fc6": ((4096,), 6 * 6 * 256 * 4096 + 4096, 9216 * 4096),
        "fc7": ((4096,), 4096 * 4096 + 4096, 4096 * 4096),
        "fc8": ((1000,), 4096 * 1000 + 1000, 4096 * 1000),
    }
    for name, (shape, params, macs) in expected.items():
        layer = report.layer(name)
        assert (layer.output_shape, layer.params, layer.macs) == (shape, params, macs), name
        assert layer.flops == 2 * macs
    assert report.layer("conv1").params == 34944  # 96·(11·11·3) + 96, as the spec's expect says
    assert report.layer("pool5").output_shape == (256, 6, 6)
    total_params = sum(p for _, p, _ in expected.values())
    assert report.totals.params == total_params == 60_965_224  # "60 million parameters" (abstract)
    assert report.totals.macs == sum(m for _, _, m in expected.values())
    # LRN: (2·5 + 3) ops per element on conv1's and conv2's outputs.
    assert report.layer("lrn1").other_ops == 13 * 96 * 55 * 55
    # Max-pool 3×3: 8 comparisons per output.
    assert report.layer("pool1").other_ops == 8 * 96 * 27 * 27


def test_alexnet_at_224_floors_to_54_and_starves_fc6() -> None:
    report = analyze(load("alexnet").with_input(224, 224))
    s1 = (224 - 11) // 4 + 1  # 213/4 + 1 = 54.25 → 54
    p1 = (s1 - 3) // 2 + 1  # 51/2 + 1 = 26.5 → 26
    p2 = (p1 - 3) // 2 + 1  # 23/2 + 1 = 12.5 → 12
    p5 = (p2 - 3) // 2 + 1  # 9/2 + 1 = 5.5 → 5
    assert report.layer("conv1").output_shape == (96, 54, 54)
    assert report.layer("fc6").outcome.in_features == 256 * p5 * p5 == 6400


def test_batch_scales_operations_not_parameters() -> None:
    one, eight = analyze(load("alexnet")), analyze(load("alexnet"), batch=8)
    assert eight.totals.macs == 8 * one.totals.macs
    assert eight.totals.activations == 8 * one.totals.activations
    assert eight.totals.params == one.totals.params


def test_dtype_sets_bytes() -> None:
    fp32, fp16 = analyze(load("alexnet")), analyze(load("alexnet"), dtype="fp16")
    assert fp32.totals.param_bytes == 4 * 60_965_224
    assert fp16.totals.param_bytes == 2 * 60_965_224
    assert fp16.totals.activation_bytes * 2 == fp32.totals.activation_bytes


# ------------------------------------------------------------------ VGG-16 (configuration D)

def test_vgg16_per_layer() -> None:
    report = analyze(load("vgg16"))
    stages = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]  # Table 1, column D
    cin, size, params, macs = 3, 224, 0, 0
    for stage, (width, count) in enumerate(stages, start=1):
        for index in range(1, count + 1):
            # 3×3, pad 1, stride 1 keeps the size: (W − 3 + 2)/1 + 1 = W
            p, m = conv_numbers(cin, width, 3, size)
            layer = report.layer(f"conv{stage}_{index}")
            assert (layer.output_shape, layer.params, layer.macs) == ((width, size, size), p, m)
            params, macs, cin = params + p, macs + m, width
        size //= 2  # 2×2 max-pool, stride 2
        assert report.layer(f"pool{stage}").output_shape == (width, size, size)
    assert size == 7
    for name, fan_in, out in (("fc6", 7 * 7 * 512, 4096), ("fc7", 4096, 4096), ("fc8", 4096, 1000)):
        layer = report.layer(name)
        assert (layer.params, layer.macs) == (fan_in * out + out, fan_in * out)
        params, macs = params + fan_in * out + out, macs + fan_in * out
    assert report.totals.params == params == 138_357_544  # Table 2 says 138 million
    assert report.totals.macs == macs
    assert round(report.totals.macs / 1e9, 2) == 15.47  # the commonly quoted 15.5 GMACs


# ------------------------------------------------------------------ LeNet-5

C3_TABLE = [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [0, 4, 5], [0, 1, 5],
            [0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5], [0, 3, 4, 5], [0, 1, 4, 5], [0, 1, 2, 5],
            [0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5], [0, 1, 2, 3, 4, 5]]


def test_lenet5_per_layer() -> None:
    report = analyze(load("lenet5"))
    # The paper's figures (section II.B):
    c1 = 6 * (5 * 5 * 1) + 6  # 156 trainable parameters
    s2 = 6 * 2  # a coefficient and a bias per map: 12
    c3 = sum(len(row) for row in C3_TABLE) * 25 + 16  # (6·3 + 9·4 + 1·6)·25 + 16 = 1516
    s4 = 16 * 2  # 32
    c5 = 120 * (16 * 25) + 120  # 48,120
    f6 = 84 * 120 + 84  # 10,164
    assert (c1, s2, c3, s4, c5, f6) == (156, 12, 1516, 32, 48120, 10164)
    for name, params in (("C1", c1), ("S2", s2), ("C3", c3), ("S4", s4), ("C5", c5), ("F6", f6)):
        assert report.layer(name).trainable_params == params, name
    assert report.layer("C3").output_shape == (16, 10, 10)
    assert report.layer("C3").macs == (c3 - 16) * 10 * 10  # 150,000 = connections less the bias terms
    assert report.layer("C5").output_shape == (120, 1, 1)
    rbf = report.layer("OUTPUT")
    assert (rbf.trainable_params, rbf.non_trainable_params) == (0, 84 * 10)
    assert report.totals.trainable_params == c1 + s2 + c3 + s4 + c5 + f6 == 60_000
    assert report.totals.non_trainable_params == 840


# ------------------------------------------------------------------ ResNet-50: the headline convention

def test_resnet50_headline_params_leave_running_statistics_apart() -> None:
    report = analyze(load("resnet50"))
    # Batchnorm channels: stem 64; per bottleneck width, width, 4·width (+ 4·width for the downsample).
    channels = 64
    for width, units in ((64, 3), (128, 4), (256, 6), (512, 3)):
        channels += units * (width + width + 4 * width) + 4 * width
    # torchvision, torchinfo, fvcore, ptflops and thop all report sum(p.numel()) = 25,557,032; the running
    # mean and variance (2 per channel) are buffers.
    assert report.totals.params == 25_557_032
    assert report.totals.buffers == 2 * channels == 53_120
    assert report.totals.non_trainable_params == 0
