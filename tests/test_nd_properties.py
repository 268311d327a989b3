"""Random 1-D, 2-D and 3-D networks and small encoder-decoders against PyTorch itself (CPU, float32).

Each network is built by convaudit.pytorch.builder from its spec and run. PyTorch gives, per layer: the output
shape (forward hooks), the parameters (numel), the forward and backward FLOPs (FlopCounterMode, whose
forward count for conv, transposed conv and linear is 2 per multiply-accumulate) and the bytes autograd saves
for backward, put down to the layer that saved them first (saved_tensors_hooks, tests/torch_oracles.py). The
analysis must agree with every one.

The networks are drawn one layer at a time, the partial network analysed after each draw: a layer the analysis
refuses is dropped, and PyTorch must refuse it too.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convaudit.core.analysis import Report, analyze
from convaudit.core.layers import elements
from convaudit.core.memory import training_memory
from convaudit.errors import SpecError
from convaudit.spec.parser import parse_text

pytestmark = pytest.mark.needs_torch

SIDES = {1: (5, 40), 2: (4, 16), 3: (3, 8)}  # per spatial axis: small enough for the CPU, large enough to shrink
MODES = {1: ("nearest", "nearest-exact", "linear"), 2: ("nearest", "nearest-exact", "bilinear", "bicubic"),
         3: ("nearest", "nearest-exact", "trilinear")}
LINEAR_MODES = ("linear", "bilinear", "bicubic", "trilinear")
# 1.5 and 2.5 land between integers; 0.57 and 0.29 are below what they print (100 × 0.57 = 56.99999999999999
# in double precision, which PyTorch floors to 56, not 57); 1/3 is no double at all
SCALES = ("0.57", "1.5", "1/3", "2.5", "0.29", "0.75", "2", "3", "0.5")


def yaml_list(values: list) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"


def spec_text(input_shape: list[int], layers: list[str]) -> str:
    return f"name: random\ninput: {yaml_list(input_shape)}\nlayers:\n" + "".join(f"  - {x}\n" for x in layers)


class Builder:
    """A network drawn one layer at a time: each new layer is kept only if the analysis accepts the network."""

    def __init__(self, input_shape: list[int]):
        self.input = input_shape
        self.layers: list[str] = []
        self.refused: list[str] = []  # networks whose last layer the analysis refused while running
        self.report = analyze(parse_text(spec_text(input_shape, ["{type: relu, name: l0}"])))

    @property
    def shape(self) -> tuple[int, ...]:
        return self.report.layers[-1].output_shape if self.layers else tuple(self.input)

    @property
    def last(self) -> str:
        return self.report.layers[-1].name if self.layers else "input"

    def shape_of(self, name: str) -> tuple[int, ...]:
        return tuple(self.input) if name == "input" else self.report.layer(name).output_shape

    def add(self, layer: str) -> bool:
        text = spec_text(self.input, [*self.layers, layer])
        try:
            report = analyze(parse_text(text))
        except SpecError:
            return False  # refused as written (align_corners on nearest, say): nothing to run
        if report.halted is not None:
            self.refused.append(text)
            return False
        self.layers.append(layer)
        self.report = report
        return True

    def text(self) -> str:
        return spec_text(self.input, self.layers)


def draw_axes(draw: st.DrawFn, dims: int, low: int, high: int) -> list[int]:
    return [draw(st.integers(low, high)) for _ in range(dims)]


def draw_layer(draw: st.DrawFn, net: Builder, name: str, dims: int) -> list[str]:
    """One window or resampling layer valid in kind for `dims` spatial axes (its sizes may still be refused),
    with the layers it needs before it."""
    c = net.shape[0]
    kind = draw(st.sampled_from(["upsample", "conv", "convtranspose", "pad", "maxpool", "upsample", "avgpool",
                                 "convtranspose", "adaptiveavgpool", "pad", "conv", "batchnorm", "relu"]
                                + (["pixelshuffle", "pixelunshuffle"] if dims == 2 else [])))
    if kind in ("conv", "convtranspose"):
        groups = draw(st.sampled_from([g for g in (1, 2, 3) if c % g == 0]))
        out = groups * draw(st.integers(1, 3))
        stride = draw_axes(draw, dims, 1, 3)
        dilation = draw_axes(draw, dims, 1, 2)
        common = (f"out: {out}, kernel: {yaml_list(draw_axes(draw, dims, 1, 3))}, stride: {yaml_list(stride)}, "
                  f"padding: {yaml_list(draw_axes(draw, dims, 0, 2))}, dilation: {yaml_list(dilation)}, "
                  f"groups: {groups}, bias: {str(draw(st.booleans())).lower()}")
        if kind == "convtranspose":  # output_padding below the stride or the dilation on each axis
            extra = [draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation, strict=True)]
            common += f", output_padding: {yaml_list(extra)}"
        return [f"{{type: {kind}, name: {name}, {common}}}"]
    if kind in ("maxpool", "avgpool"):
        kernel = draw_axes(draw, dims, 1, 3)
        padding = [draw(st.integers(0, k // 2)) for k in kernel]
        dilation = f", dilation: {yaml_list(draw_axes(draw, dims, 1, 2))}" if kind == "maxpool" else ""
        return [f"{{type: {kind}, name: {name}, kernel: {yaml_list(kernel)}, "
                f"stride: {yaml_list(draw_axes(draw, dims, 1, 3))}, padding: {yaml_list(padding)}, "
                f"ceil: {str(draw(st.booleans())).lower()}{dilation}}}"]
    if kind == "adaptiveavgpool":
        output = [draw(st.integers(1, size)) for size in net.shape[1:]]
        return [f"{{type: adaptiveavgpool, name: {name}, output: {yaml_list(output)}}}"]
    if kind in ("batchnorm", "relu"):
        return [f"{{type: {kind}, name: {name}}}"]
    if kind == "upsample":
        mode = draw(st.sampled_from(MODES[dims][::-1]))  # the interpolating mode first
        corners = f", align_corners: {str(draw(st.booleans())).lower()}" if mode in LINEAR_MODES else ""
        if draw(st.booleans()):
            scale = [draw(st.sampled_from(SCALES)) for _ in range(dims)] if draw(st.booleans()) \
                else draw(st.sampled_from(SCALES))
            how = f"scale: {yaml_list(scale) if isinstance(scale, list) else scale}"
        else:
            how = f"size: {yaml_list([draw(st.integers(1, 2 * size)) for size in net.shape[1:]])}"
        return [f"{{type: upsample, name: {name}, mode: {mode}, {how}{corners}}}"]
    if kind == "pad":
        mode = draw(st.sampled_from(["reflect", "replicate", "circular", "zeros"]))
        return [f"{{type: pad, name: {name}, before: {yaml_list(draw_axes(draw, dims, 0, 2))}, "
                f"after: {yaml_list(draw_axes(draw, dims, 0, 2))}, mode: {mode}}}"]
    factor = draw(st.sampled_from([2, 3]))
    if kind == "pixelshuffle" and c % (factor * factor):  # a 1×1 conv to r²·k channels first
        return [f"{{type: conv, name: {name}c, out: {factor * factor * draw(st.integers(1, 2))}, kernel: 1}}",
                f"{{type: pixelshuffle, name: {name}, factor: {factor}}}"]
    return [f"{{type: {kind}, name: {name}, factor: {factor}}}"]


@st.composite
def random_chains(draw: st.DrawFn, dims: int) -> tuple[str, int, list[str]]:
    """A chain over `dims` spatial axes, the batch, and the networks whose last layer the analysis refused."""
    low, high = SIDES[dims]
    net = Builder([draw(st.integers(1, 4)), *draw_axes(draw, dims, low, high)])
    for index in range(draw(st.integers(1, 6))):
        for layer in draw_layer(draw, net, f"l{index}", dims):
            if not net.add(layer):
                break
    if not net.layers:
        net.add("{type: relu, name: l0}")
    return net.text(), draw(st.integers(1, 2)), net.refused[:1]


@st.composite
def encoder_decoders(draw: st.DrawFn, dims: int) -> tuple[str, int, list[str]]:
    """A U-Net-like graph: levels that convolve and shrink, then levels that up-sample (transposed conv, scale,
    or the skip's own size), match the skip's size (crop either side, or up-sample to it), and concatenate or
    add it."""
    low, high = SIDES[dims]
    net = Builder([draw(st.integers(1, 3)), *draw_axes(draw, dims, 2 * low, 2 * high)])
    width = draw(st.integers(1, 3))
    skips = []
    for level in range(draw(st.integers(1, 2))):
        padding = draw(st.integers(0, 1))  # valid or padded 3-wide convs, as in the two U-Nets
        net.add(f"{{type: conv, name: e{level}, out: {width}, kernel: 3, padding: {padding}}}")
        net.add(f"{{type: relu, name: e{level}r}}")
        skips.append(net.last)
        down = draw(st.sampled_from(["maxpool", "avgpool", "conv"]))
        if down == "conv":
            net.add(f"{{type: conv, name: d{level}, out: {width}, kernel: 2, stride: 2}}")
        else:
            net.add(f"{{type: {down}, name: d{level}, kernel: 2, ceil: {str(draw(st.booleans())).lower()}}}")
        width *= 2
    net.add(f"{{type: conv, name: bottom, out: {width}, kernel: 3, padding: 1}}")
    for level, skip in reversed(list(enumerate(skips))):
        up = draw(st.sampled_from(["convtranspose", "scale", "like"]))
        mode = draw(st.sampled_from(MODES[dims][::-1]))
        if up == "convtranspose":
            width //= 2
            net.add(f"{{type: convtranspose, name: u{level}, out: {width}, kernel: 2, stride: 2, "
                    f"output_padding: {draw(st.integers(0, 1))}}}")
        elif up == "scale":
            net.add(f"{{type: upsample, name: u{level}, scale: 2, mode: {mode}}}")
        else:  # F.interpolate(x, size=skip.shape[2:]), as FCN and DeepLabV3 do
            net.add(f"{{type: upsample, name: u{level}, mode: {mode}, from: [{net.last}, {skip}]}}")
        upsampled, sizes, target = net.last, net.shape[1:], net.shape_of(skip)[1:]
        if sizes != target:
            if all(s >= t for s, t in zip(sizes, target, strict=True)):
                net.add(f"{{type: crop, name: c{level}, from: [{upsampled}, {skip}]}}")
            elif all(s <= t for s, t in zip(sizes, target, strict=True)):
                net.add(f"{{type: crop, name: c{level}, from: [{skip}, {upsampled}]}}")  # U-Net's copy and crop
                skip = net.last
            else:
                net.add(f"{{type: upsample, name: c{level}, from: [{upsampled}, {skip}]}}")
        merge = draw(st.sampled_from(["concat", "add"]))
        if merge == "add" and net.shape[0] != net.shape_of(skip)[0]:
            net.add(f"{{type: conv, name: p{level}, out: {net.shape_of(skip)[0]}, kernel: 1}}")
        order = [net.last, skip] if draw(st.booleans()) else [skip, net.last]
        net.add(f"{{type: {merge}, name: m{level}, from: {yaml_list(order)}}}")
        net.add(f"{{type: conv, name: m{level}c, out: {max(width, 1)}, kernel: 3, padding: 1}}")
    return net.text(), draw(st.integers(1, 2)), net.refused[:1]


def pytorch_agrees(report: Report, text: str) -> None:
    """Every layer's shape, parameters, FLOPs and saved bytes against PyTorch's, as described above."""
    import torch

    from convaudit.pytorch.builder import build_model, count_parameters
    from convaudit.pytorch.verify import flop_counter_counts, torch_backward_cell, torch_forward_cell

    from .torch_oracles import saved_bytes_by_layer

    if any(layer.type == "batchnorm" and report.batch * elements(layer.input_shapes[0][1:]) == 1
           for layer in report.layers):
        report = analyze(report.spec, batch=2)  # PyTorch will not train a batchnorm on one value per channel
    torch.manual_seed(0)
    model = build_model(report).train()
    shapes: dict[str, tuple[int, ...]] = {}
    exact: dict[int, int] = {}

    def record(name: str, out: torch.Tensor) -> None:
        shapes[name] = tuple(out.shape[1:])
        storage = out.untyped_storage()
        if report.layer(name).type == "convtranspose" and storage.nbytes() > out.nbytes:
            # torch's CPU kernel for a 3-D transposed conv (slow_conv_transpose3d, taken instead of oneDNN's on
            # some sizes) allocates its output as empty_like(input) and resizes it: the storage keeps
            # max(input, output) elements. An exact allocation (oneDNN, CUDA) holds the output alone, as counted.
            assert len(out.shape) == 5 and storage.nbytes() == max(out.numel(), elements(
                (report.batch, *report.layer(name).input_shapes[0]))) * out.element_size(), (name, text)
            exact[storage.data_ptr()] = out.nbytes

    for _key, name, _sources in model.plan:
        model.module_for(name).register_forward_hook(lambda m, a, out, name=name: record(name, out))
    saved = saved_bytes_by_layer(model, torch.randn(report.batch, *report.input), counted_as=exact)
    forward, backward = flop_counter_counts(report, torch.float32)
    for layer in report.layers:
        assert shapes[layer.name] == layer.output_shape, (layer.name, shapes[layer.name], text)
        assert sum(count_parameters(model.module_for(layer.name))) == layer.params, (layer.name, text)
        # conv and transposed conv: FlopCounterMode's 2 per multiply-accumulate (Cin·Cout/g·K per input position
        # for the transposed one); every other type here: nothing
        assert torch_forward_cell(layer, forward.per_layer[layer.name]).status in ("match", "none"), \
            (layer.name, forward.per_layer[layer.name], layer.flops, text)
        if layer.type in ("conv", "convtranspose"):
            assert forward.per_layer[layer.name] == 2 * layer.macs, (layer.name, text)
        cell = torch_backward_cell(layer, backward.per_layer[layer.name])
        assert cell.status in ("match", "none", "torch-overcount"), (layer.name, cell, text)
    ours = {name: nbytes for name, nbytes in training_memory(report).saved_by_layer.items() if nbytes}
    assert ours == saved, (ours, saved, text)


def pytorch_refuses(text: str) -> None:
    """The analysis refused the network's last layer: PyTorch cannot build or run it either."""
    import torch

    from convaudit.pytorch.builder import build_model

    report = analyze(parse_text(text))
    with pytest.raises((RuntimeError, ValueError, IndexError)):
        out = build_model(report).eval()(torch.zeros(1, *report.input))  # the model ends in the refused layer
        # A transposed conv whose size formula gives 0 is "Output size is too small" to torch, except on its
        # grouped 2-D path, which returns an empty map instead: refused here too.
        if out.numel() == 0 and report.halted.layer.type == "convtranspose":
            raise RuntimeError("an empty output")


SLOW_OK = settings(max_examples=12, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
AXES = pytest.mark.parametrize("dims", [1, 2, 3], ids=["1d", "2d", "3d"])


@AXES
@SLOW_OK
@given(data=st.data())
def test_random_nd_chains_match_pytorch(dims: int, data: st.DataObject) -> None:
    text, batch, refused = data.draw(random_chains(dims))
    pytorch_agrees(analyze(parse_text(text), batch=batch), text)
    for refused_text in refused:
        pytorch_refuses(refused_text)


@AXES
@SLOW_OK
@given(data=st.data())
def test_random_encoder_decoders_match_pytorch(dims: int, data: st.DataObject) -> None:
    text, batch, refused = data.draw(encoder_decoders(dims))
    report = analyze(parse_text(text), batch=batch)
    assert report.halted is None, (report.halted, text)
    pytorch_agrees(report, text)
    for refused_text in refused:
        pytorch_refuses(refused_text)


# ------------------------------------------------------------------ fractional scales, by hand

@pytest.mark.parametrize("size, scale, exact, torch_size", [
    (100, "0.57", 57, 56),  # 100 × 0.57 = 56.99999999999999 in double precision
    (100, "0.29", 29, 28),  # 28.999999999999996
    (100, "0.58", 58, 57),  # 57.99999999999999
    (7, "1.5", 10, 10),  # 10.5 either way
])
def test_fractional_scale_floors_as_pytorch_does(size: int, scale: str, exact: int, torch_size: int) -> None:
    import torch

    from convaudit.pytorch.builder import build_model

    for dims, mode in ((1, "linear"), (2, "bilinear"), (3, "nearest")):
        shape = [1] + [size] * dims
        text = spec_text(shape, [f"{{type: upsample, name: up, scale: {scale}, mode: {mode}}}"])
        report = analyze(parse_text(text))
        assert report.layers[-1].output_shape == (1, *[torch_size] * dims)
        assert int(size * __import__("fractions").Fraction(scale)) == exact  # what exact arithmetic would give
        output = build_model(report)(torch.zeros(1, *shape))
        assert tuple(output.shape[2:]) == (torch_size,) * dims
