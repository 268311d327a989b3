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
    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = dim

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.cat(inputs, dim=self.dim)


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
    def __init__(self, start: int, end: int, dim: int = 1, step: int = 1):
        super().__init__()
        self.index = (slice(None),) * dim + (slice(start, end, step),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[self.index]


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
    """A permutation of the full tensor's dimensions (the batch's included)."""

    def __init__(self, order: list[int]):
        super().__init__()
        self.order = order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(self.order)


class Reshape(nn.Module):
    """A reshape to sample shape `shape` (no −1 left); the batch goes to dimension `batch`, or multiplies it (`fold`).
    The batch size is the input's elements over the sample's, wherever the input holds it."""

    def __init__(self, shape: tuple[int, ...], batch: int | None = 0, fold: bool = False):
        super().__init__()
        self.shape, self.batch, self.fold = list(shape), batch, fold
        self.sample = math.prod(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape, batch = list(self.shape), x.numel() // self.sample
        if self.batch is None:  # a tensor no sample owns
            return x.reshape(shape)
        if self.fold:
            shape[self.batch] *= batch
        else:
            shape.insert(self.batch, batch)
        return x.reshape(shape)


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
    def __init__(self, index: int, dim: int = 1):
        super().__init__()
        self.index, self.dim = index, dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.select(self.dim, self.index)


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


class Operand(nn.Module):
    """A parameter operand as a layer holds it: `numel` parameters and `buffers` buffer elements (BEiT's zero k bias),
    used at `shape` (broadcast where it holds fewer: a layer scale, a table indexed)."""

    def __init__(self, shape: tuple[int, ...], numel: int | None = None, buffers: int = 0, scale: float = 0.02,
                 offset: float = 0.0):
        super().__init__()
        self.shape = list(shape)
        count = math.prod(self.shape) - buffers if numel is None else numel
        self.weight = nn.Parameter(torch.randn(count) * scale + offset)
        self.register_buffer("fixed", torch.zeros(buffers))

    def forward(self) -> torch.Tensor:
        value = torch.cat([self.weight, self.fixed]) if self.fixed.numel() else self.weight
        if value.numel() == math.prod(self.shape):
            return value.reshape(self.shape)
        return value.reshape([1] * (len(self.shape) - 1) + [-1]).expand(self.shape)


def operand(weight: tuple[int, ...] | None, numel: int | None, buffers: int, **values: float) -> Operand | None:
    return Operand(tuple(weight), numel, buffers, **values) if weight is not None else None


class MatMul(nn.Module):
    """torch.matmul of the inputs, or of the input and a parameter operand."""

    def __init__(self, weight: tuple[int, ...] | None, weight_first: bool, numel: int | None = None, buffers: int = 0):
        super().__init__()
        self.operand = operand(weight, numel, buffers)
        self.weight_first = weight_first

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.operand is None:
            return torch.matmul(*inputs)
        weight = self.operand()
        return torch.matmul(weight, inputs[0]) if self.weight_first else torch.matmul(inputs[0], weight)


class Einsum(nn.Module):
    """torch.einsum of two operands, one of them maybe a parameter operand."""

    def __init__(self, equation: str, weight: tuple[int, ...] | None, weight_first: bool, numel: int | None = None,
                 buffers: int = 0):
        super().__init__()
        self.equation = equation
        self.operand = operand(weight, numel, buffers)
        self.weight_first = weight_first

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        operands = list(inputs)
        if self.operand is not None:
            operands.insert(0 if self.weight_first else len(operands), self.operand())
        return torch.einsum(self.equation, *operands)


class SDPA(nn.Module):
    def __init__(self, causal: bool):
        super().__init__()
        self.causal = causal

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.causal)


class Pointwise(nn.Module):
    """An element-wise ATen operator over the inputs (and a parameter operand); a shape-true stand-in (add) where the
    operator needs arguments a spec does not record."""

    def __init__(self, op: str, weight: tuple[int, ...] | None, weight_first: bool, numel: int | None = None,
                 buffers: int = 0):
        super().__init__()
        self.op = getattr(torch.ops.aten, op, None)
        self.operand = operand(weight, numel, buffers, scale=0.1, offset=1.0)  # near 1: a scale, a gate
        self.weight_first = weight_first

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        operands = list(inputs)
        if self.operand is not None:
            operands.insert(0 if self.weight_first else len(operands), self.operand())
        if self.op is not None:
            try:
                return self.op(*operands)
            except (RuntimeError, TypeError):
                pass
        return functools.reduce(torch.add, operands)


class Reduce(nn.Module):
    def __init__(self, op: str, dims: tuple[int, ...], keepdim: bool):
        super().__init__()
        self.dims, self.keepdim = dims, keepdim
        self.op = {"mean": torch.mean, "amax": torch.amax, "amin": torch.amin, "var": torch.var,
                   "std": torch.std}.get(op, torch.sum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x, dim=self.dims, keepdim=self.keepdim)


class Traced(nn.Module):
    """An operator known only by its traced output shape: a stand-in of that shape (the batch where it sits)."""

    def __init__(self, shape: tuple[int, ...], batch: int | None, fold: bool):
        super().__init__()
        self.shape, self.batch, self.fold = list(shape), batch, fold

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        batch = inputs[0].shape[0] if inputs else 1
        shape = list(self.shape)
        if self.batch is None:  # no sample owns it
            pass
        elif self.fold:
            shape[self.batch] *= batch
        else:
            shape.insert(self.batch, batch)
        return inputs[0].new_zeros(shape) if inputs else torch.zeros(shape)


class Expand(nn.Module):
    def __init__(self, shape: tuple[int, ...], batch: int | None, folded: bool):
        super().__init__()
        self.shape, self.batch, self.folded = list(shape), batch, folded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = list(self.shape)
        if self.batch is not None and not self.folded:
            shape.insert(self.batch, -1)
        elif self.batch is not None:
            shape[self.batch] = -1
        return x.expand(shape)


class Copy(nn.Module):
    def __init__(self, always: bool):
        super().__init__()
        self.always = always

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone() if self.always else x.contiguous()


class Learned(nn.Module):
    """A learned tensor used directly: `numel` values (a parameter, or a buffer) expanded to `shape` (and over the
    batch at `batch`, or repeated along it when the batch is folded there) when it is used."""

    def __init__(self, shape: tuple[int, ...], numel: int | None, batch: int | None, trainable: bool,
                 fold: bool = False):
        super().__init__()
        self.shape, self.batch, self.fold = list(shape), batch, fold
        values = torch.randn(numel if numel is not None else math.prod(shape)) * 0.02
        if numel == 0:  # a constant (coordinates, a grid): zeros of its shape, made where the model runs
            values = torch.zeros(shape)
            self.register_buffer("weight", values, persistent=False)
        elif trainable:
            self.weight = nn.Parameter(values)
        else:
            self.register_buffer("weight", values)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        value = self.weight
        if value.numel() != math.prod(self.shape):  # expanded where it is used: broadcast the stored values
            value = value.reshape([1] * (len(self.shape) - 1) + [-1]).expand(self.shape)
        else:
            value = value.reshape(self.shape)
        if self.batch is not None and self.fold:  # B·n along `batch`: the sample's n, once per sample
            batch = inputs[0].shape[0] if inputs else 1
            value = value.repeat(*[batch if d == self.batch else 1 for d in range(len(self.shape))])
        elif self.batch is not None:
            batch = inputs[0].shape[0] if inputs else 1
            value = value.unsqueeze(self.batch).expand(*self.shape[:self.batch], batch, *self.shape[self.batch:])
        return value


class Recurrent(nn.Module):
    """nn.LSTM, nn.GRU or nn.RNN itself (its parameters as the model holds them), giving the one result the layer
    returns: the sequence output, h_n or c_n."""

    def __init__(self, kind: str, features: int, hidden: int, layers: int, bias: bool, batch_first: bool,
                 dropout: float, bidirectional: bool, proj_size: int, nonlinearity: str, returns: str):
        super().__init__()
        extra: dict[str, object] = {"proj_size": proj_size} if kind == "LSTM" else {}
        if kind == "RNN":
            extra["nonlinearity"] = nonlinearity
        self.rnn = getattr(nn, kind)(features, hidden, num_layers=layers, bias=bias, batch_first=batch_first,
                                     dropout=dropout, bidirectional=bidirectional, **extra)
        self.returns = returns

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output, state = self.rnn(x)
        if self.returns == "output":
            return output
        if isinstance(state, tuple):  # LSTM: (h_n, c_n)
            return state[0] if self.returns == "h_n" else state[1]
        return state
