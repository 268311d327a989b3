"""importers.batchdims.propagate: batch dimensions by rule from one trace, against the second trace at batch 2.

The oracle is the two-run answer (`with_batch_dims`): PyTorch itself run at batch 1 and batch 2, the dimension
that doubled being the batch. Wherever the rules answer, every tensor's batch dimension and fold, and every
operator's batch-dependent arguments, must be what the two runs find; where they cannot (a reshape written by the
model), they must say so (None) and the trace runs twice.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.needs_torch
torch = pytest.importorskip("torch")
nn = torch.nn

from convaudit.importers import trace as tracing  # noqa: E402
from convaudit.importers.batchdims import propagate  # noqa: E402


def both(model, shape, monkeypatch):
    """(the rules' answer from one run or None, the two runs' answer)."""
    by_rule = propagate(tracing.trace(model, shape, batch_dims=False))
    with monkeypatch.context() as patched:
        patched.setattr(tracing, "propagate", lambda graph: None)
        by_runs = tracing.trace(model, shape)
    return by_rule, by_runs


def batch_facts(graph):
    return ([(t.shape, t.batch_dim, t.batch_folded) for t in graph.tensors],
            [(n.overload, sorted(n.batch_args)) for n in graph.nodes],
            graph.batch_known, graph.batch_irregular, graph.batch_unknown)


@pytest.mark.parametrize(("name", "applies"), [("resnet18", True), ("mobilenet_v3_small", True),
                                               ("efficientnet_b0", True), ("densenet121", True),
                                               ("convnext_tiny", True), ("shufflenet_v2_x0_5", False)])
def test_torchvision_models_by_rule_or_by_two_runs(name, applies, monkeypatch):
    from convaudit.importers.targets import build

    model = build(f"torchvision:{name}", {}).eval()
    by_rule, by_runs = both(model, (3, 64, 64), monkeypatch)
    assert (by_rule is not None) == applies  # shufflenet's channel shuffle: x.view(batchsize, groups, ...)
    if by_rule is not None:
        assert batch_facts(by_rule) == batch_facts(by_runs)


class Shuffle(nn.Module):
    """A reshape written by the model: its sizes hold the batch (x.size(0)), which one run cannot tell."""

    def forward(self, x):
        b, c, h, w = x.shape
        return x.view(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)


class SqueezeExcite(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc = nn.Conv2d(c, c, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc(x.mean((2, 3), keepdim=True)))


class Branches(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.a, self.b = nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x)], dim=1)


class ChannelsLast(nn.Module):
    """ConvNeXt's block: permute, LayerNorm and Linear over channels, permute back."""

    def __init__(self, c):
        super().__init__()
        self.norm, self.fc = nn.LayerNorm(c), nn.Linear(c, c)

    def forward(self, x):
        return self.fc(self.norm(x.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)


class Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return x + self.conv(x)


PIECES = ["conv", "stride", "bn", "relu", "hardswish", "gelu", "pool", "se", "branches", "channels_last",
          "residual", "shuffle"]


def network(pieces, channels):
    layers, c, side = [], channels, 8
    for piece in pieces:
        if piece == "conv":
            layers.append(nn.Conv2d(c, c + 1, 3, padding=1))
            c += 1
        elif piece == "stride" and side >= 2:
            layers.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
            side = (side + 1) // 2
        elif piece == "bn":
            layers.append(nn.BatchNorm2d(c))
        elif piece in ("relu", "hardswish", "gelu"):
            layers.append({"relu": nn.ReLU(inplace=True), "hardswish": nn.Hardswish(), "gelu": nn.GELU()}[piece])
        elif piece == "pool" and side >= 2:
            layers.append(nn.MaxPool2d(2))
            side //= 2
        elif piece == "se":
            layers.append(SqueezeExcite(c))
        elif piece == "branches":
            layers.append(Branches(c))
            c *= 2
        elif piece == "channels_last":
            layers.append(ChannelsLast(c))
        elif piece == "residual":
            layers.append(Residual(c))
        elif piece == "shuffle" and c % 2 == 0:
            layers.append(Shuffle())
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 3)]
    return nn.Sequential(*layers).eval()


@settings(max_examples=25, deadline=None)
@given(pieces=st.lists(st.sampled_from(PIECES), max_size=6), channels=st.integers(1, 4))
def test_random_networks_by_rule_agree_with_two_runs(pieces, channels):
    with pytest.MonkeyPatch.context() as monkeypatch:
        model = network(pieces, channels)
        by_rule, by_runs = both(model, (channels, 8, 8), monkeypatch)
    if by_rule is None:
        return
    assert not any(isinstance(m, Shuffle) for m in model)  # the model's own reshape always takes two runs
    assert batch_facts(by_rule) == batch_facts(by_runs)
