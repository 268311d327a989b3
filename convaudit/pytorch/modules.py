"""The modules a layer type builds that torch.nn does not have as such (LeNet-5's pieces, merges, views, ViT's
parts), and the namespace every type's `module` trait builds from. Imports torch.

LeNet-5's pieces are small modules of their own: the sparse convolution really holds only the weights its
table names.
"""

from __future__ import annotations

import functools
import math
import operator
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from convaudit.core.layers import Shape

__all__ = ["F", "nn", "torch"]  # with the classes below: what a layer type's `module(lib, ...)` reads


class SparseConv(nn.Module):
    """A convolution whose output map j reads only the input maps in table[j] (LeNet-5's C3).

    One small convolution per output map, so the parameters are exactly the table's:
    Σ_j |table[j]|·Kh·Kw weights plus one bias per map.
    """

    def __init__(self, table: tuple[tuple[int, ...], ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                 padding: tuple[int, ...], dilation: tuple[int, ...], bias: bool):
        super().__init__()
        self.table = [list(row) for row in table]
        conv = getattr(nn, f"Conv{len(kernel)}d")
        self.maps = nn.ModuleList(
            conv(len(row), 1, kernel, stride, padding, dilation, bias=bias) for row in table)
        # Index tensors made once, moved with the model: indexing with a Python list would copy the index from
        # the host to the device on every call. Non-persistent buffers: not state, not counted as parameters.
        for j, row in enumerate(table):
            self.register_buffer(f"rows{j}", torch.tensor(row, dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([conv(x.index_select(1, getattr(self, f"rows{j}"))) for j, conv in enumerate(self.maps)],
                         dim=1)


class Subsample(nn.Module):
    """LeNet-5's S2/S4: per map, coefficient · (window sum) + bias."""

    def __init__(self, channels: int, kernel: tuple[int, ...], stride: tuple[int, ...]):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.pool = getattr(F, f"avg_pool{len(kernel)}d")
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        window_sum = self.pool(x, self.kernel, self.stride) * math.prod(self.kernel)
        view = (1, -1) + (1,) * len(self.kernel)
        return window_sum * self.weight.view(view) + self.bias.view(view)


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


class CenterCrop(nn.Module):
    """Crop the first input to the second's spatial size, centred: offset ⌊(in − out)/2⌋ per axis (a view)."""

    def forward(self, x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        index = [slice(None), slice(None)]
        for size, out in zip(x.shape[2:], reference.shape[2:], strict=True):
            start = (size - out) // 2
            index.append(slice(start, start + out))
        return x[tuple(index)]


class UpsampleLike(nn.Module):
    """F.interpolate to the second input's spatial size (FCN's and DeepLabV3's heads)."""

    def __init__(self, mode: str, align_corners: bool | None):
        super().__init__()
        self.mode, self.align_corners = mode, align_corners

    def forward(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=like.shape[2:], mode=self.mode, align_corners=self.align_corners)
