"""Golden numbers for the bundled 1-D, 3-D and encoder-decoder networks, the arithmetic written out; and each
network against the PyTorch module it describes (torchvision's, or the reference code written out below),
run on the meta device: shapes and counts without the compute."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from convaudit.core.analysis import analyze
from convaudit.core.layers import REGISTRY
from convaudit.spec.library import load
from convaudit.spec.parser import parse_text


def conv_params(c_in: int, c_out: int, taps: int, bias: bool = True) -> int:
    """A convolution's weights and biases: Cout·Cin·taps + Cout."""
    return c_out * c_in * taps + (c_out if bias else 0)


def block(report, prefix: str, quantity: str = "params") -> int:
    """The sum of a quantity over the layers whose names start with prefix."""
    return sum(getattr(layer, quantity) for layer in report.layers
               if layer.name == prefix or layer.name.startswith(prefix + "."))


# ------------------------------------------------------------------ U-Net (Ronneberger et al. 2015)

def test_unet_sizes_level_by_level_at_572() -> None:
    report = analyze(load("unet"))
    side = {layer.name: layer.output_shape[1] for layer in report.layers}
    # a valid 3×3 conv: W − 3 + 1 = W − 2; a 2×2 pool with stride 2: W/2, even at every level from 572
    assert [side[f"down1.{c}"] for c in ("conv1", "conv2")] + [side["pool1"]] == [570, 568, 284]
    assert [side[f"down2.{c}"] for c in ("conv1", "conv2")] + [side["pool2"]] == [282, 280, 140]
    assert [side[f"down3.{c}"] for c in ("conv1", "conv2")] + [side["pool3"]] == [138, 136, 68]
    assert [side[f"down4.{c}"] for c in ("conv1", "conv2")] + [side["pool4"]] == [66, 64, 32]
    assert [side["bottom.conv1"], side["bottom.conv2"]] == [30, 28]
    # a 2×2 up-conv with stride 2: (W − 1)·2 − 2·0 + 1·(2 − 1) + 0 + 1 = 2W; the skip is cropped to it
    for level, (up, skip, after) in {4: (56, 64, (54, 52)), 3: (104, 136, (102, 100)), 2: (200, 280, (198, 196)),
                                     1: (392, 568, (390, 388))}.items():
        assert side[f"up{level}"] == side[f"crop{level}"] == up
        assert side[f"down{level}.conv2"] == skip  # crop offset (skip − up)/2 on each side: 4, 16, 40, 88
        assert (side[f"dec{level}.conv1"], side[f"dec{level}.conv2"]) == after
    assert report.layer("classifier").output_shape == (2, 388, 388)
    assert report.layer("cat1").output_shape == (128, 392, 392)  # 64 up-sampled + 64 cropped
    assert all(window.is_exact for layer in report.layers for window in layer.windows)


def test_unet_parameters_level_by_level() -> None:
    report = analyze(load("unet"))
    # contracting path: two 3×3 convs per level, 1 → 64 → 128 → 256 → 512 → 1024 channels
    down = {
        "down1": conv_params(1, 64, 9) + conv_params(64, 64, 9),  # 640 + 36,928 = 37,568
        "down2": conv_params(64, 128, 9) + conv_params(128, 128, 9),  # 73,856 + 147,584 = 221,440
        "down3": conv_params(128, 256, 9) + conv_params(256, 256, 9),  # 295,168 + 590,080 = 885,248
        "down4": conv_params(256, 512, 9) + conv_params(512, 512, 9),  # 1,180,160 + 2,359,808 = 3,539,968
        "bottom": conv_params(512, 1024, 9) + conv_params(1024, 1024, 9),  # 4,719,616 + 9,438,208 = 14,157,824
    }
    assert down == {"down1": 37_568, "down2": 221_440, "down3": 885_248, "down4": 3_539_968, "bottom": 14_157_824}
    # expanding path: a 2×2 up-conv halving the channels ([Cin, Cout, 2, 2] + Cout), then two 3×3 convs reading the
    # concatenation of the up-sampled map and the cropped skip (2·Cout channels)
    up = {level: conv_params(2 * width, width, 4) for level, width in ((4, 512), (3, 256), (2, 128), (1, 64))}
    dec = {level: conv_params(2 * width, width, 9) + conv_params(width, width, 9)
           for level, width in ((4, 512), (3, 256), (2, 128), (1, 64))}
    assert up == {4: 2_097_664, 3: 524_544, 2: 131_200, 1: 32_832}
    assert dec == {4: 7_078_912, 3: 1_769_984, 2: 442_624, 1: 110_720}
    classifier = conv_params(64, 2, 1)  # 1×1 conv to 2 classes: 130
    for name, count in down.items():
        assert block(report, name) == count, name
    for level in up:
        assert report.layer(f"up{level}").params == up[level]
        assert block(report, f"dec{level}") == dec[level]
    total = sum(down.values()) + sum(up.values()) + sum(dec.values()) + classifier
    assert total == 31_030_658 == report.totals.params
    # 23 convolutional layers (section 2): 10 down, 4 up-convs, 8 in the decoder, the 1×1 classifier
    assert sum(layer.type in ("conv", "convtranspose") for layer in report.layers) == 23


@pytest.mark.needs_torch
def test_unet_built_from_the_spec_maps_572_to_388() -> None:
    import torch

    from convaudit.pytorch.builder import build_model

    report = analyze(load("unet"))
    with torch.device("meta"):
        model = build_model(report).eval()
        assert tuple(model(torch.empty(1, 1, 572, 572)).shape) == (1, 2, 388, 388)


def test_unet_at_570_floors_three_pools_and_crops_off_centre() -> None:
    # 570 → 566 ↓ 283 → 279 ↓ 139.5 → 139 → 135 ↓ 67.5 → 67 → 63 ↓ 31.5 → 31 → 27: three pools drop a row
    report = analyze(load("unet").with_input(570))
    pools = {name: report.layer(name).windows[0] for name in ("pool1", "pool2", "pool3", "pool4")}
    assert {name: (w.exact, w.out) for name, w in pools.items()} == {
        "pool1": (283, 283), "pool2": (Fraction(279, 2), 139), "pool3": (Fraction(135, 2), 67),
        "pool4": (Fraction(63, 2), 31)}
    # the crops still fit, off centre: (63 − 54)/2 = 4.5, offset ⌊4.5⌋ = 4; the map ends at 4·… → 372
    assert report.layer("up4").output_shape[1:] == (54, 54) and report.layer("down4.conv2").output_shape[1] == 63
    assert report.halted is None and report.layer("classifier").output_shape == (2, 372, 372)


# ------------------------------------------------------------------ the padded U-Net: milesial/Pytorch-UNet

def milesial_unet(n_channels: int = 3, n_classes: int = 2):
    """UNet(n_channels, n_classes, bilinear=False) of github.com/milesial/Pytorch-UNet (unet/unet_model.py and
    unet/unet_parts.py), written out with the same module paths."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    def double_conv(c_in: int, c_out: int) -> nn.Module:
        module = nn.Module()
        module.double_conv = nn.Sequential(
            nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True))
        module.forward = module.double_conv.forward
        return module

    def down(c_in: int, c_out: int) -> nn.Module:
        module = nn.Module()
        module.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), double_conv(c_in, c_out))
        module.forward = module.maxpool_conv.forward
        return module

    class Up(nn.Module):
        def __init__(self, c_in: int, c_out: int):
            super().__init__()
            self.up = nn.ConvTranspose2d(c_in, c_in // 2, kernel_size=2, stride=2)
            self.conv = double_conv(c_in, c_out)

        def forward(self, x1, x2):
            x1 = self.up(x1)
            diff_y, diff_x = x2.size()[2] - x1.size()[2], x2.size()[3] - x1.size()[3]
            x1 = F.pad(x1, [diff_x // 2, diff_x - diff_x // 2, diff_y // 2, diff_y - diff_y // 2])
            return self.conv(torch.cat([x2, x1], dim=1))

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.inc = double_conv(n_channels, 64)
            self.down1, self.down2, self.down3, self.down4 = down(64, 128), down(128, 256), down(256, 512), \
                down(512, 1024)
            self.up1, self.up2, self.up3, self.up4 = Up(1024, 512), Up(512, 256), Up(256, 128), Up(128, 64)
            self.outc = nn.Module()
            self.outc.conv = nn.Conv2d(64, n_classes, kernel_size=1)

        def forward(self, x):
            x1 = self.inc(x)
            x2 = self.down1(x1)
            x3 = self.down2(x2)
            x4 = self.down3(x3)
            x5 = self.down4(x4)
            x = self.up1(x5, x4)
            x = self.up2(x, x3)
            x = self.up3(x, x2)
            x = self.up4(x, x1)
            return self.outc.conv(x)

    return UNet()


def against_module(report, model, x, run=None) -> list[str]:
    """Every spec layer named as one of the module's submodules: its last output shape (a forward hook on the meta
    device) and its own parameters; the whole module's parameters; FlopCounterMode's forward FLOPs, 2 per
    multiply-accumulate of conv and linear (its count of nothing else here), against the analysis. Returns the
    layers compared. `run` calls the model (default: the model itself)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    modules = dict(model.named_modules())
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in report.layers:
        if layer.name in modules:
            modules[layer.name].register_forward_hook(
                lambda m, a, out, name=layer.name: shapes.__setitem__(name, tuple(out.shape[1:])))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        (run or (lambda m, t: m(t)))(model.eval(), x)
    compared = [layer.name for layer in report.layers if layer.name in shapes]
    for name in compared:
        layer = report.layer(name)
        assert shapes[name] == layer.output_shape, name
        if not any(True for _ in modules[name].children()):
            assert sum(p.numel() for p in modules[name].parameters()) == layer.params, name
    assert sum(p.numel() for p in model.parameters()) == report.totals.params
    assert counter.get_total_flops() == 2 * report.totals.macs
    return compared


@pytest.mark.needs_torch
def test_unet_padded_is_milesials_unet() -> None:
    import torch

    report = analyze(load("unet-padded"))
    with torch.device("meta"):
        model = milesial_unet()
        compared = against_module(report, model, torch.empty(1, 3, 576, 576))
    # every conv, batchnorm, pool and up-conv is a module there (the ReLUs too; the concatenations are not)
    assert len(compared) == sum(layer.type != "concat" for layer in report.layers)
    # 3×3 convs without bias (batchnorm follows): 9·Cin·Cout, batchnorm 2·C, up-convs 4·Cin·Cin/2 + Cin/2
    double = {(c_in, c_out): 9 * c_in * c_out + 9 * c_out * c_out + 4 * c_out for c_in, c_out in (
        (3, 64), (64, 128), (128, 256), (256, 512), (512, 1024), (1024, 512), (512, 256), (256, 128), (128, 64))}
    ups = sum(4 * c * (c // 2) + c // 2 for c in (1024, 512, 256, 128))
    assert sum(double.values()) + ups + conv_params(64, 2, 1) == 31_037_698 == report.totals.params


@pytest.mark.needs_torch
def test_unet_padded_at_570_fails_where_the_analysis_stops() -> None:
    """570/16 = 35.625: down4 floors 71.25 to 35, up1 gives 70 against the skip's 71, and torch.cat refuses the
    concatenation that milesial's F.pad would have hidden."""
    import torch

    report = analyze(load("unet-padded").with_input(570))
    assert report.halted is not None and report.halted.layer.name == "up1.cat"
    assert report.layer("up1.up").output_shape == (512, 70, 70)
    assert report.layer("down3.maxpool_conv.1.double_conv.5").output_shape[1:] == (71, 71)
    with pytest.raises(RuntimeError, match="Expected size 71 but got size 70"):
        torch.cat([torch.zeros(1, 1, 71, 71), torch.zeros(1, 1, 70, 70)], dim=1)


# ------------------------------------------------------------------ torchvision's segmentation and video models

TORCHVISION = {  # bundled name: (builder, its arguments, an input to trace it at on the meta device)
    "fcn_resnet50": ("segmentation.fcn_resnet50", {}, (3, 224, 224)),
    "fcn_resnet50+aux": ("segmentation.fcn_resnet50", {"aux_loss": True}, (3, 520, 520)),
    "deeplabv3_resnet50": ("segmentation.deeplabv3_resnet50", {}, (3, 224, 224)),
    "deeplabv3_resnet50+aux": ("segmentation.deeplabv3_resnet50", {"aux_loss": True}, (3, 520, 520)),
    "r3d_18": ("video.r3d_18", {}, (3, 16, 112, 112)),
}


@pytest.mark.needs_torch
@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_models_match_the_bundled_specs(name: str) -> None:
    import importlib

    import torch

    import convaudit  # noqa: F401  (prepares torchvision's import next to CPU torch)

    path, args, shape = TORCHVISION[name]
    package, function = path.rsplit(".", 1)
    build = getattr(importlib.import_module(f"torchvision.models.{package}"), function)
    extra = {"weights_backbone": None} if package == "segmentation" else {}
    spec = load(name)
    report = analyze(spec.with_input(*shape[1:]) if tuple(spec.input) != shape else spec)
    with torch.device("meta"):
        model = build(weights=None, **extra, **args)
        compared = against_module(report, model, torch.empty(1, *shape), run=every_output)
    weighted = [layer.name for layer in report.layers if layer.params]
    assert set(weighted) <= set(compared)  # every layer holding parameters was compared as a module


def every_output(model, x):
    """torchvision's segmentation models return {"out": …, "aux": …}; the video models a tensor."""
    out = model(x)
    return list(out.values()) if isinstance(out, dict) else out


def test_segmentation_heads_by_hand() -> None:
    fcn, deeplab = analyze(load("fcn_resnet50")), analyze(load("deeplabv3_resnet50"))
    backbone = block(fcn, "backbone")
    # ResNet-50 without avgpool and fc: 25,557,032 − 2,049,000
    assert backbone == block(deeplab, "backbone") == 23_508_032
    # FCNHead(2048, 21): 3×3 conv to 512 without bias, batchnorm, 1×1 conv to 21 with bias
    assert block(fcn, "classifier") == 9 * 2048 * 512 + 2 * 512 + conv_params(512, 21, 1) == 9_448_981
    # ASPP: 1×1 and three dilated 3×3 convs to 256 and a pooled 1×1 branch, each with batchnorm; 5·256 → 256
    aspp = (2048 * 256 + 3 * 9 * 2048 * 256 + 2048 * 256) + 5 * 2 * 256 + 1280 * 256 + 2 * 256
    head = aspp + 9 * 256 * 256 + 2 * 256 + conv_params(256, 21, 1)
    assert block(deeplab, "classifier") == head == 16_130_837
    # output stride 8: layer3 and layer4 dilate instead of striding, so 224 → 28, and the logits go back to 224
    assert fcn.layer("backbone.layer4.2.relu").output_shape == (2048, 28, 28)
    assert fcn.layer("upsample").output_shape == deeplab.layer("upsample").output_shape == (21, 224, 224)
    assert deeplab.layer("classifier.0.convs.4.upsample").output_shape == (256, 28, 28)


# ------------------------------------------------------------------ M5 (Dai et al. 2017): 1-D

def test_m5_lengths_and_counts() -> None:
    report = analyze(load("m5"))
    length = {layer.name: layer.output_shape[1] for layer in report.layers if len(layer.output_shape) == 2}
    # conv1: (32000 + 2·38 − 80)/4 + 1 = 8000; pools of 4 (stride 4); the 3-wide convs pad 1 and keep the length
    assert (32000 + 2 * 38 - 80) // 4 + 1 == 8000 == length["conv1"]
    assert [length[f"pool{i}"] for i in (1, 2, 3)] == [8000 // 4, 2000 // 4, 500 // 4] == [2000, 500, 125]
    assert [length[f"conv{i}"] for i in (2, 3, 4)] == [2000, 500, 125]
    # (125 − 4)/4 + 1 = 31.25: floored to 31, the last sample (index 124) never read
    (pool4,) = report.layer("pool4").windows
    assert (pool4.out, pool4.exact, pool4.unseen) == (31, Fraction(125, 4), 1)
    assert report.layer("fc").output_shape == (10,)
    weights = {
        "conv1": conv_params(1, 128, 80),  # 10,368
        "conv2": conv_params(128, 128, 3),  # 49,280
        "conv3": conv_params(128, 256, 3),  # 98,560
        "conv4": conv_params(256, 512, 3),  # 393,728
        "fc": 512 * 10 + 10,  # 5,130
    }
    batchnorm = 2 * (128 + 128 + 256 + 512)  # a scale and a shift per channel: 2,048
    assert sum(weights.values()) + batchnorm == 559_114 == report.totals.params
    # the authors' Keras reproduction (assets/m5.out) counts 561,162: the same plus 2,048 running statistics
    assert report.totals.params + report.totals.buffers == 561_162
    macs = 128 * 80 * 8000 + 128 * 128 * 3 * 2000 + 256 * 128 * 3 * 500 + 512 * 256 * 3 * 125 + 512 * 10
    assert report.totals.macs == macs == 278_533_120


@pytest.mark.needs_torch
def test_m5_runs_in_pytorch() -> None:
    import torch

    from convaudit.pytorch.builder import build_model

    model = build_model(analyze(load("m5"))).eval()
    with torch.no_grad():
        assert tuple(model(torch.randn(2, 1, 32000)).shape) == (2, 10)


# ------------------------------------------------------------------ C3D (Tran et al. 2015): 3-D

C3D_CONVS = [("conv1", 3, 64), ("conv2", 64, 128), ("conv3a", 128, 256), ("conv3b", 256, 256), ("conv4a", 256, 512),
             ("conv4b", 512, 512), ("conv5a", 512, 512), ("conv5b", 512, 512)]


def test_c3d_shapes_and_counts() -> None:
    report = analyze(load("c3d"))
    # pool1 1×2×2 keeps the 16 frames; pools 2–4 halve D, H and W; pool5 pads H and W by 1:
    # (7 + 2·1 − 2)/2 + 1 = 4.5, floored to 4 (the dropped half window reads only right padding)
    assert [report.layer(f"pool{i}").output_shape for i in range(1, 6)] == [
        (64, 16, 56, 56), (128, 8, 28, 28), (256, 4, 14, 14), (512, 2, 7, 7), (512, 1, 4, 4)]
    assert [window.unseen for window in report.layer("pool5").windows] == [0, 0, 0]
    positions = {"conv1": 16 * 112 * 112, "conv2": 16 * 56 * 56, "conv3a": 8 * 28 * 28, "conv3b": 8 * 28 * 28,
                 "conv4a": 4 * 14 * 14, "conv4b": 4 * 14 * 14, "conv5a": 2 * 7 * 7, "conv5b": 2 * 7 * 7}
    for name, c_in, c_out in C3D_CONVS:  # 3·3·3 = 27 taps
        layer = report.layer(name)
        assert layer.params == conv_params(c_in, c_out, 27), name
        assert layer.macs == 27 * c_in * c_out * positions[name], name
    fc = {"fc6": 512 * 4 * 4 * 4096 + 4096, "fc7": 4096 * 4096 + 4096, "fc8": 4096 * 487 + 487}
    assert fc == {"fc6": 33_558_528, "fc7": 16_781_312, "fc8": 1_995_239}
    convs = sum(conv_params(c_in, c_out, 27) for _, c_in, c_out in C3D_CONVS)
    assert convs == 5_248 + 221_312 + 884_992 + 1_769_728 + 3_539_456 + 3 * 7_078_400
    assert report.totals.params == convs + sum(fc.values()) == 27_655_936 + 52_335_079 == 79_991_015


@pytest.mark.needs_torch
def test_c3d_is_the_pytorch_port() -> None:
    """DavideA/c3d-pytorch's C3D_model.py, written out: the same shapes, parameters and FLOPs."""
    import torch
    from torch import nn

    class C3D(nn.Module):
        def __init__(self):
            super().__init__()
            for name, c_in, c_out in C3D_CONVS:
                setattr(self, name, nn.Conv3d(c_in, c_out, kernel_size=(3, 3, 3), padding=(1, 1, 1)))
            self.pool1 = nn.MaxPool3d(kernel_size=(1, 2, 2), stride=(1, 2, 2))
            for name in ("pool2", "pool3", "pool4"):
                setattr(self, name, nn.MaxPool3d(kernel_size=(2, 2, 2), stride=(2, 2, 2)))
            self.pool5 = nn.MaxPool3d(kernel_size=(2, 2, 2), stride=(2, 2, 2), padding=(0, 1, 1))
            self.fc6, self.fc7, self.fc8 = nn.Linear(8192, 4096), nn.Linear(4096, 4096), nn.Linear(4096, 487)
            self.relu = nn.ReLU()

        def forward(self, x):
            h = self.pool1(self.relu(self.conv1(x)))
            h = self.pool2(self.relu(self.conv2(h)))
            h = self.pool3(self.relu(self.conv3b(self.relu(self.conv3a(h)))))
            h = self.pool4(self.relu(self.conv4b(self.relu(self.conv4a(h)))))
            h = self.pool5(self.relu(self.conv5b(self.relu(self.conv5a(h)))))
            h = self.relu(self.fc6(h.view(-1, 8192)))
            return self.fc8(self.relu(self.fc7(h)))

    report = analyze(load("c3d"))
    with torch.device("meta"):
        compared = against_module(report, C3D(), torch.empty(1, 3, 16, 112, 112))
    assert {f"pool{i}" for i in range(1, 6)} | {name for name, _, _ in C3D_CONVS} <= set(compared)


# ------------------------------------------------------------------ transposed convolution, by its formula

@pytest.mark.parametrize("size, kernel, stride, padding, dilation, output_padding, groups", [
    ((28,), 2, 2, 0, 1, 0, 1),  # U-Net's up-conv: (28 − 1)·2 − 0 + 1·1 + 0 + 1 = 56
    ((7, 9), 3, 2, 1, 1, 1, 1),  # (7 − 1)·2 − 2 + 2 + 1 + 1 = 14; (9 − 1)·2 − 2 + 2 + 1 + 1 = 18
    ((5, 6, 4), (3, 1, 2), (1, 2, 3), (0, 0, 1), (2, 1, 1), (0, 1, 2), 2),
    ((10,), 4, 3, 2, 3, 2, 3),  # (10 − 1)·3 − 4 + 3·3 + 2 + 1 = 35
])
def test_transposed_conv_output_size_and_macs(size, kernel, stride, padding, dilation, output_padding, groups) -> None:
    n = len(size)
    spread = [v if isinstance(v, tuple) else (v,) * n for v in (kernel, stride, padding, dilation, output_padding)]
    c_in, c_out = 6, 3 * groups
    text = (f"name: t\ninput: [{c_in}, {', '.join(map(str, size))}]\nlayers:\n"
            f"  - {{type: convtranspose, name: up, out: {c_out}, kernel: {list(spread[0])}, stride: {list(spread[1])}, "
            f"padding: {list(spread[2])}, dilation: {list(spread[3])}, output_padding: {list(spread[4])}, "
            f"groups: {groups}}}\n")
    layer = analyze(parse_text(text)).layer("up")
    expected = tuple((w - 1) * s - 2 * p + d * (k - 1) + op + 1
                     for w, k, s, p, d, op in zip(size, *spread, strict=True))
    assert layer.output_shape == (c_out, *expected)
    # weights [Cin, Cout/g, K…]; torch counts them all at every input position
    taps = math.prod(spread[0])
    assert layer.weights == c_in * (c_out // groups) * taps
    assert layer.macs == c_in * (c_out // groups) * taps * math.prod(size)
    assert REGISTRY["convtranspose"].has_macs


@pytest.mark.needs_torch
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_transposed_conv_matches_torch_and_flop_counter(dims: int) -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from convaudit.pytorch.builder import build_model

    size = [5, 4, 3][:dims]
    text = (f"name: t\ninput: [4, {', '.join(map(str, size))}]\nlayers:\n"
            "  - {type: convtranspose, name: up, out: 6, kernel: 3, stride: 2, padding: 1, output_padding: 1, "
            "groups: 2}\n")
    report = analyze(parse_text(text))
    model = build_model(report)
    with FlopCounterMode(display=False) as counter:
        out = model(torch.randn(1, 4, *size))
    assert tuple(out.shape[1:]) == report.layer("up").output_shape == (6, *[2 * w for w in size])
    # 4 · (6/2) · 3^d weights at each of the input's positions, 2 FLOPs each
    assert counter.get_total_flops() == 2 * report.totals.macs == 2 * 4 * 3 * 3 ** dims * math.prod(size)
