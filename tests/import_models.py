"""Small nn.Module factories that tests import by target (`tests.import_models:NAME`)."""

from __future__ import annotations

import torch
from torch import nn


class Tokens(nn.Module):
    """Parameters used outside any submodule: a class token, a position embedding and a layer scale,
    as in ViT and ConvNeXt."""

    def __init__(self, dim: int = 8):
        super().__init__()
        self.conv = nn.Conv2d(3, dim, 4, stride=4)
        self.gamma = nn.Parameter(torch.ones(dim, 1, 1))
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.zeros(1, 17, dim))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.gamma * self.conv(x)  # [N, dim, 4, 4]
        x = x.flatten(2).permute(0, 2, 1)  # [N, 16, dim]
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embedding
        return self.head(self.norm(x)[:, 0])


class Branches(nn.Module):
    """Batchnorm, a squeeze-excitation product, a channel split and a concat, identities and dropout."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(8, 8, 1), nn.Sigmoid())
        self.left = nn.Conv2d(4, 4, 3, padding=1)
        self.skip = nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.25)
        self.fc = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x * self.se(x)
        a, b = x.chunk(2, dim=1)
        x = torch.cat([self.left(a), self.skip(b)], dim=1)
        return self.fc(self.drop(torch.flatten(self.pool(x), 1)))


class Sorted(nn.Module):
    """An operator convaudit cannot count (a sort), inside a named submodule."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3), SortChannels())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class SortChannels(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sort(x, dim=1).values


class AuxMean(nn.Module):
    """GoogLeNet's and ShuffleNet's habits: an auxiliary classifier with batchnorm that runs only in training,
    and a global pool written as x.mean([2, 3]) in forward (an operator fvcore cannot count)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.aux = nn.Sequential(nn.Conv2d(8, 4, 1, bias=False), nn.BatchNorm2d(4), nn.Flatten(),
                                 nn.Linear(4 * 16 * 16, 5))
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        out = self.fc(x.mean([2, 3]))
        return out + self.aux(x) if self.training else out


def tokens(dim: int = 8) -> nn.Module:
    return Tokens(dim)


def branches(classes: int = 10) -> nn.Module:
    return Branches(classes)


def sorted_channels() -> nn.Module:
    return Sorted()


def aux_mean() -> nn.Module:
    return AuxMean()


class Audio(nn.Module):
    """A 1-D raw-audio net (M5-like, small): Conv1d, BatchNorm1d, MaxPool1d, a mean over time, a linear."""

    def __init__(self, classes: int = 4):
        super().__init__()
        self.features = nn.Sequential(nn.Conv1d(1, 8, 80, stride=4), nn.BatchNorm1d(8), nn.ReLU(), nn.MaxPool1d(4),
                                      nn.Conv1d(8, 16, 3), nn.ReLU())
        self.fc = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(-1))


def audio(classes: int = 4) -> nn.Module:
    return Audio(classes)


class Window(nn.Module):
    """A conv and a channel slice starting at `start`: two of them fold into one block whose slices differ."""

    def __init__(self, start: int):
        super().__init__()
        self.conv, self.start = nn.Conv2d(8, 8, 1), start

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return torch.cat([y[:, self.start:self.start + 4], y[:, :4]], dim=1)


def windows() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 1), Window(1), Window(3))


class Quirks(nn.Module):
    """Habits of timm's transformers, small: a qkv bias of cat(q_bias, zero k buffer, v_bias) (BEiT, Swin V2), a
    position table made by an MLP from constant coordinates (Swin V2's cpb_mlp), a conv on a constant grid
    (XCiT's and EdgeNeXt's Fourier encoding) and an in-place write into a slice of a constant (ConViT)."""

    def __init__(self, dim: int = 8):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_bias, self.v_bias = nn.Parameter(torch.zeros(dim)), nn.Parameter(torch.zeros(dim))
        self.register_buffer("k_bias", torch.zeros(dim), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, dim))
        self.fourier = nn.Conv2d(4, dim, 1)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        qkv = nn.functional.linear(x, self.qkv.weight, torch.cat((self.q_bias, self.k_bias, self.v_bias)))
        coords = torch.stack(torch.meshgrid(torch.arange(n, device=x.device), torch.arange(1, device=x.device),
                                            indexing="ij"), -1).float().reshape(n, 2)
        table = self.mlp(coords)  # [n, dim], the same for every sample
        grid = torch.zeros(1, 4, n, 1, device=x.device)
        grid[:, 2] = 1.0  # written in place into a slice
        encoding = self.fourier(grid).reshape(self.dim, n).t()
        return qkv[..., :self.dim] + table + encoding


def quirks() -> nn.Module:
    return Quirks()


class RelativeLogits(nn.Module):
    """A module without children whose own forward runs several operators (timm's RelPosEmb): a learned table
    read through a reshape, a product with the input and a sum."""

    def __init__(self, width: int = 6, dim: int = 4):
        super().__init__()
        self.table = nn.Parameter(torch.randn(width, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = x.reshape(b, c, h * w).transpose(1, 2)  # B, HW, C
        return (q @ self.table.t()).sum(-1).reshape(b, 1, h, w)


class WithLogits(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.logits = RelativeLogits()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.conv(x))


def with_logits() -> nn.Module:
    return WithLogits()
class Recurrent(nn.Module):
    """nn.LSTM, nn.GRU or nn.RNN over [T, F] features, batch first, then a linear on every step (a tagger), or on
    the last layer's h_n (a classifier: the sequence transposed to [T, B, F], as nn's default layout takes it)."""

    def __init__(self, kind: str = "LSTM", classify: bool = False, **options: object):
        super().__init__()
        self.classify = classify
        self.rnn = getattr(nn, kind)(6, 8, batch_first=not classify, **options)
        out = options.get("proj_size") or 8
        self.head = nn.Linear(out if classify else out * (2 if options.get("bidirectional") else 1), 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.classify:
            return self.head(self.rnn(x)[0])
        state = self.rnn(x.transpose(0, 1))[1]
        return self.head((state[0] if isinstance(state, tuple) else state)[-1])


class RecurrentMisuse(nn.Module):
    """What the recurrent layers do not model: an initial state of the model's own, both results of one call, a
    PackedSequence."""

    def __init__(self, how: str):
        super().__init__()
        self.how = how
        self.rnn = nn.GRU(6, 8, batch_first=True) if how != "packed" else nn.LSTM(6, 8)
        self.h0 = nn.Parameter(torch.zeros(1, 1, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.how == "state":
            return self.rnn(x, self.h0.repeat(1, x.shape[0], 1))[0]
        if self.how == "both":
            out, h = self.rnn(x)
            return out[:, -1] + h[0]
        steps = torch.full((x.shape[1],), x.shape[0], dtype=torch.long, device="cpu")  # every sequence whole
        return self.rnn(nn.utils.rnn.PackedSequence(x.transpose(0, 1).reshape(-1, 6), steps))[0].data
