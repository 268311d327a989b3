"""Build a real torch.nn.Module from an analysed spec. Imported only by verify and bench.

Every layer becomes one module in `SpecModel.layers`, keyed by a sanitised
layer name, so per-module counts from fvcore and FlopCounterMode map back to
spec layers. LeNet-5's pieces are small modules of their own: the sparse
convolution really holds only the weights its table names.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from convaudit.core.analysis import Report
from convaudit.core.layers import Shape
from convaudit.core.model import INPUT, LayerSpec

TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

Builder = Callable[[LayerSpec, tuple[Shape, ...]], nn.Module]
BUILDERS: dict[str, Builder] = {}


def builds(type_name: str) -> Callable[[Builder], Builder]:
    def register(builder: Builder) -> Builder:
        BUILDERS[type_name] = builder
        return builder

    return register


# ------------------------------------------------------------------ custom modules

class SparseConv2d(nn.Module):
    """A convolution whose output map j reads only the input maps in table[j] (LeNet-5's C3).

    One small Conv2d per output map, so the parameters are exactly the table's:
    Σ_j |table[j]|·Kh·Kw weights plus one bias per map.
    """

    def __init__(self, table: tuple[tuple[int, ...], ...], kernel: tuple[int, int], stride: tuple[int, int],
                 padding: tuple[int, int], dilation: tuple[int, int], bias: bool):
        super().__init__()
        self.table = [list(row) for row in table]
        self.maps = nn.ModuleList(
            nn.Conv2d(len(row), 1, kernel, stride, padding, dilation, bias=bias) for row in table)
        # Index tensors made once, moved with the model: indexing with a Python list would copy the index from
        # the host to the device on every call. Non-persistent buffers: not state, not counted as parameters.
        for j, row in enumerate(table):
            self.register_buffer(f"rows{j}", torch.tensor(row, dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([conv(x.index_select(1, getattr(self, f"rows{j}"))) for j, conv in enumerate(self.maps)],
                         dim=1)


class Subsample(nn.Module):
    """LeNet-5's S2/S4: per map, coefficient · (window sum) + bias."""

    def __init__(self, channels: int, kernel: tuple[int, int], stride: tuple[int, int]):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        window_sum = F.avg_pool2d(x, self.kernel, self.stride) * (self.kernel[0] * self.kernel[1])
        return window_sum * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class RBF(nn.Module):
    """Euclidean RBF units with fixed centres: y_i = Σ_j (x_j − w_ij)²."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        centres = torch.randint(0, 2, (out_features, in_features)).float() * 2 - 1  # ±1, as the paper's bitmaps
        self.weight = nn.Parameter(centres, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.flatten(1).unsqueeze(1) - self.weight) ** 2).sum(-1)


class ScaledTanh(nn.Module):
    def __init__(self, amplitude: Fraction, slope: Fraction):
        super().__init__()
        self.amplitude, self.slope = float(amplitude), float(slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.tanh(self.slope * x)


class FlattenLinear(nn.Linear):
    """nn.Linear that flattens a feature map first, as the spec's `linear` does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.flatten(1), self.weight, self.bias)


class Concat(nn.Module):
    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.cat(inputs, dim=1)


class Add(nn.Module):
    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return functools.reduce(operator.add, inputs)


# ------------------------------------------------------------------ builders

@builds("conv")
def _conv(layer: LayerSpec, inputs: tuple[Shape, ...]) -> nn.Module:
    p = layer.params
    if p.get("connections") is not None:
        return SparseConv2d(p["connections"], p["kernel"], p["stride"], p["padding"], p["dilation"], p["bias"])
    return nn.Conv2d(inputs[0][0], p["out"], p["kernel"], p["stride"], p["padding"], p["dilation"],
                     groups=p["groups"], bias=p["bias"])


def _stride(params: dict) -> tuple[int, int]:
    return params["stride"] if params.get("stride") is not None else params["kernel"]


@builds("maxpool")
def _maxpool(layer: LayerSpec, inputs: tuple[Shape, ...]) -> nn.Module:
    p = layer.params
    return nn.MaxPool2d(p["kernel"], _stride(p), p["padding"], p["dilation"], ceil_mode=p["ceil"])


@builds("avgpool")
def _avgpool(layer: LayerSpec, inputs: tuple[Shape, ...]) -> nn.Module:
    p = layer.params
    return nn.AvgPool2d(p["kernel"], _stride(p), p["padding"], ceil_mode=p["ceil"])


@builds("adaptiveavgpool")
def _adaptive(layer: LayerSpec, inputs: tuple[Shape, ...]) -> nn.Module:
    return nn.AdaptiveAvgPool2d(layer.params["output"])


@builds("globalavgpool")
def _global(layer: LayerSpec, inputs: tuple[Shape, ...]) -> nn.Module:
    return nn.AdaptiveAvgPool2d(1)


@builds("subsample")
def _subsample(layer: LayerSpec, inputs: tuple[Shape, ...]) -> nn.Module:
    return Subsample(inputs[0][0], layer.params["kernel"], _stride(layer.params))


@builds("lrn")
def _lrn(layer: LayerSpec, inputs: tuple[Shape, ...]) -> nn.Module:
    p = layer.params
    return nn.LocalResponseNorm(p["size"], float(p["alpha"]), float(p["beta"]), float(p["k"]))


@builds("batchnorm")
def _batchnorm(layer: LayerSpec, inputs: tuple[Shape, ...]) -> nn.Module:
    cls = nn.BatchNorm2d if len(inputs[0]) == 3 else nn.BatchNorm1d
    return cls(inputs[0][0], affine=layer.params["affine"])


@builds("linear")
def _linear(layer: LayerSpec, inputs: tuple[Shape, ...]) -> nn.Module:
    if not layer.params.get("flatten", True):  # nn.Linear itself: the last dimension
        return nn.Linear(layer.params.get("in") or inputs[0][-1], layer.params["out"], bias=layer.params["bias"])
    features = layer.params.get("in") or _elements(inputs[0])  # a pinned `in:` is what the model is built with
    return FlattenLinear(features, layer.params["out"], bias=layer.params["bias"])


@builds("rbf")
def _rbf(layer: LayerSpec, inputs: tuple[Shape, ...]) -> nn.Module:
    return RBF(layer.params.get("in") or _elements(inputs[0]), layer.params["out"])


@builds("softmax")
def _softmax(layer: LayerSpec, inputs: tuple[Shape, ...]) -> nn.Module:
    return nn.Softmax(dim=1)


@builds("dropout")
def _dropout(layer: LayerSpec, inputs: tuple[Shape, ...]) -> nn.Module:
    return nn.Dropout(float(layer.params["p"]))


@builds("scaledtanh")
def _scaledtanh(layer: LayerSpec, inputs: tuple[Shape, ...]) -> nn.Module:
    return ScaledTanh(layer.params["amplitude"], layer.params["slope"])


for _name, _module in (("relu", nn.ReLU), ("tanh", nn.Tanh), ("sigmoid", nn.Sigmoid), ("flatten", nn.Flatten),
                       ("concat", Concat), ("add", Add)):
    BUILDERS[_name] = (lambda cls: lambda layer, inputs: cls())(_module)


def _elements(shape: Shape) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


# ------------------------------------------------------------------ the operators of modern CNNs and ViT

class Mul(nn.Module):
    """Element-wise product, broadcasting size-1 dimensions (the squeeze-excite gate)."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return functools.reduce(operator.mul, inputs)


class Scale(nn.Module):
    """A learned vector along the first sample dimension ([C, 1, 1], ConvNeXt's layer scale) or the last."""

    def __init__(self, shape: Shape, over: str):
        super().__init__()
        size = shape[0] if over == "channels" else shape[-1]
        view = (size,) + (1,) * (len(shape) - 1) if over == "channels" else (size,)
        self.weight = nn.Parameter(torch.full(view, 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


class ChannelsLayerNorm(nn.LayerNorm):
    """nn.LayerNorm over the first sample dimension: torchvision's LayerNorm2d, moved and moved back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


class Slice(nn.Module):
    def __init__(self, start: int, end: int):
        super().__init__()
        self.start, self.end = start, end

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.start:self.end]


class ChannelShuffle(nn.Module):
    """torchvision's channel_shuffle: view as [groups, C/groups], transpose, flatten back."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, rest = x.shape[0], x.shape[1], x.shape[2:]
        x = x.reshape(batch, self.groups, channels // self.groups, *rest).transpose(1, 2).contiguous()
        return x.view(batch, channels, *rest)  # reshape, not view, first: the input may be a permuted view


class Permute(nn.Module):
    def __init__(self, order: tuple[int, ...]):
        super().__init__()
        self.order = (0,) + tuple(i + 1 for i in order)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(self.order)


class Reshape(nn.Module):
    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)


class ClassToken(nn.Module):
    """ViT's class token, prepended to every sample's tokens."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.weight.expand(x.shape[0], -1, -1), x), dim=1)


class PosEmbedding(nn.Module):
    def __init__(self, shape: Shape):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(1, *shape).normal_(std=0.02))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight


class SelfAttention(nn.Module):
    """nn.MultiheadAttention's parameters with query = key = value, run through its explicit path
    (F.multi_head_attention_forward: in-projection linear, bmm, softmax, bmm, out-projection linear), which
    fvcore and FlopCounterMode both count, in every mode and on every device. Calling the module itself
    would not do: under no_grad in eval (fvcore's trace, inference timing) it takes the fused
    aten::_native_multi_head_attention, which fvcore cannot count, even with need_weights=True."""

    def __init__(self, dim: int, heads: int, bias: bool):
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, bias=bias, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attention
        x = x.transpose(0, 1)  # (tokens, batch, dim): one tensor as query, key and value, as the module passes it
        out, _ = F.multi_head_attention_forward(
            x, x, x, a.embed_dim, a.num_heads, a.in_proj_weight, a.in_proj_bias, a.bias_k, a.bias_v,
            a.add_zero_attn, a.dropout, a.out_proj.weight, a.out_proj.bias, training=self.training,
            need_weights=True, average_attn_weights=False)
        return out.transpose(0, 1)


class Select(nn.Module):
    def __init__(self, index: int):
        super().__init__()
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.index]


@builds("scale")
def _scale(layer: LayerSpec, inputs: tuple[Shape, ...]) -> nn.Module:
    return Scale(inputs[0], layer.params["over"])


@builds("layernorm")
def _layernorm(layer: LayerSpec, inputs: tuple[Shape, ...]) -> nn.Module:
    shape, affine = inputs[0], layer.params["affine"]
    if layer.params["over"] == "channels" and len(shape) > 1:
        return ChannelsLayerNorm(shape[0], elementwise_affine=affine)
    return nn.LayerNorm(shape[-1], elementwise_affine=affine)


@builds("slice")
def _slice(layer: LayerSpec, inputs: tuple[Shape, ...]) -> nn.Module:
    return Slice(layer.params["start"], layer.params["end"])


@builds("shuffle")
def _shuffle(layer: LayerSpec, inputs: tuple[Shape, ...]) -> nn.Module:
    return ChannelShuffle(layer.params["groups"])


@builds("permute")
def _permute(layer: LayerSpec, inputs: tuple[Shape, ...]) -> nn.Module:
    return Permute(layer.params["order"])


@builds("reshape")
def _reshape(layer: LayerSpec, inputs: tuple[Shape, ...]) -> nn.Module:
    return Reshape(layer.params["shape"])


@builds("classtoken")
def _classtoken(layer: LayerSpec, inputs: tuple[Shape, ...]) -> nn.Module:
    return ClassToken(inputs[0][-1])


@builds("posembedding")
def _posembedding(layer: LayerSpec, inputs: tuple[Shape, ...]) -> nn.Module:
    return PosEmbedding(inputs[0])


@builds("attention")
def _attention(layer: LayerSpec, inputs: tuple[Shape, ...]) -> nn.Module:
    return SelfAttention(inputs[0][-1], layer.params["heads"], layer.params["bias"])


@builds("select")
def _select(layer: LayerSpec, inputs: tuple[Shape, ...]) -> nn.Module:
    return Select(layer.params["index"])


for _name, _module in (("gelu", nn.GELU), ("silu", nn.SiLU), ("swish", nn.SiLU), ("relu6", nn.ReLU6),
                       ("hardswish", nn.Hardswish), ("hardsigmoid", nn.Hardsigmoid), ("mul", Mul)):
    BUILDERS[_name] = (lambda cls: lambda layer, inputs: cls())(_module)


# ------------------------------------------------------------------ the model

def module_key(name: str, taken: set[str]) -> str:
    """A ModuleDict key for a layer name: letters, digits and _ only (fvcore splits scopes on '.' and '/')."""
    key = re.sub(r"\W", "_", name) or "layer"
    if key[0].isdigit():
        key = f"l_{key}"
    base, index = key, 1
    while key in taken:
        index += 1
        key = f"{base}_{index}"
    taken.add(key)
    return key


class SpecModel(nn.Module):
    """Runs spec layers in graph order; `keys` maps each spec layer name to its module key."""

    def __init__(self, plan: list[tuple[str, str, tuple[str, ...]]], modules: dict[str, nn.Module],
                 outputs: tuple[str, ...]):
        super().__init__()
        self.layers = nn.ModuleDict(modules)
        self.plan = plan  # (module key, layer name, input names)
        self.outputs = outputs
        self.keys = {name: key for key, name, _ in plan}

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        values = {INPUT: x}
        for key, name, sources in self.plan:
            values[name] = self.layers[key](*(values[source] for source in sources))
        results = tuple(values[name] for name in self.outputs if name in values)
        return results[0] if len(results) == 1 else results

    def module_for(self, name: str) -> nn.Module:
        return self.layers[self.keys[name]]


def build_model(report: Report) -> SpecModel:
    """The analysed layers, plus the layer the analysis stopped at (so PyTorch can raise its own error)."""
    layers = [(result.spec, result.input_shapes) for result in report.layers]
    if report.halted:
        layers.append((report.halted.layer, report.halted.input_shapes))
    taken: set[str] = set()
    plan, modules = [], {}
    for spec, input_shapes in layers:
        key = module_key(spec.name, taken)
        modules[key] = BUILDERS[spec.type](spec, input_shapes)
        plan.append((key, spec.name, spec.inputs))
    outputs = report.spec.outputs if not report.halted else (report.halted.layer.name,)
    return SpecModel(plan, modules, outputs)


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(trainable, non-trainable): parameters with and without requires_grad; their sum is
    sum(p.numel() for p in module.parameters()), the headline count. LeNet's fixed RBF centres are
    parameters with requires_grad=False, so they count here as non-trainable."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    fixed = sum(p.numel() for p in module.parameters() if not p.requires_grad)
    return trainable, fixed


def count_buffers(module: nn.Module) -> int:
    """Buffers: batchnorm's running mean and variance. `num_batches_tracked` is a counter and is left out."""
    return sum(b.numel() for m in module.modules() for name, b in m._buffers.items()  # non-persistent: indices
               if b is not None and name != "num_batches_tracked" and name not in m._non_persistent_buffers_set)
