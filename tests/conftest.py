"""Shared fixtures and the needs_torch / needs_cuda markers."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from hypothesis import settings

# Reproducible in CI: the same examples every run. HYPOTHESIS_PROFILE=explore draws fresh ones.
settings.register_profile("default", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# Tests pin their own widths. pytest-xdist's workers inherit COLUMNS=80 and LINES=24, which would make output
# that a test treats as piped (natural width) fit 80 columns instead.
for _variable in ("COLUMNS", "LINES"):
    os.environ.pop(_variable, None)

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURES = sorted((ROOT / "architectures").glob("*.yaml"))

HAS_TORCH = importlib.util.find_spec("torch") is not None

# 188 = 16·8 + 60: the smallest side the original U-Net takes (four 2×2 pools of even sizes, 4 × 4 left at the
# bottom after its valid convolutions)
SMALL_SIDES = (64, 67, 96, 99, 128, 188)


# Networks that between them hold every layer type, the longest names, the widest numbers and every rank: the
# checks that render every view of a network (no cut number, the report in Chromium) run on these.
REPRESENTATIVE = ("alexnet", "lenet5", "googlenet", "densenet121", "efficientnet_b0", "vit_b_16", "deeplabv3_resnet50",
                  "unet", "r3d_18", "m5", "shufflenet_v2_x1_0", "convnext_tiny")


def small_input(spec):
    """The network at the smallest of a few sides where it still analyses (what each layer saves or counts follows
    the same rules at any size, and PyTorch then runs a fraction of the work), else at its own input. The side sets
    H and W (L of a 1-D input; a 3-D input keeps its frames)."""
    import dataclasses

    from convaudit.core.analysis import analyze

    unpinned = dataclasses.replace(spec, layers=tuple(  # a linear's stated input size belongs to the full size
        dataclasses.replace(layer, params={**layer.params, "in": None}) if layer.params.get("in") else layer
        for layer in spec.layers))
    for side in SMALL_SIDES:
        if side < min(spec.input[1:][-2:]):
            report = analyze(unpinned.with_input(side))
            if report.halted is None:
                return report
    return analyze(spec)


def _has_cuda() -> bool:
    if not HAS_TORCH:
        return False
    import torch

    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_torch = pytest.mark.skip(reason="torch is not installed (pip install 'convaudit[torch]')")
    cuda = None
    for item in items:
        if "needs_torch" in item.keywords and not HAS_TORCH:
            item.add_marker(skip_torch)
        if "needs_cuda" in item.keywords:
            if cuda is None:
                cuda = _has_cuda()
            if not cuda:
                item.add_marker(pytest.mark.skip(reason="no CUDA GPU here"))


@pytest.fixture
def write_spec(tmp_path: Path):
    """Write YAML text to a file and return its path."""

    def write(text: str, name: str = "net.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
