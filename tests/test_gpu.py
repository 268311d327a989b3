"""The real --gpu paths. Skipped without CUDA; run them on a GPU machine."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from convaudit.cli import app

pytestmark = [pytest.mark.needs_torch, pytest.mark.needs_cuda]


def run(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "140"})


@pytest.mark.parametrize("spec", ["alexnet", "lenet5", "vgg16"])
def test_verify_on_gpu(spec: str) -> None:
    result = run("verify", spec, "--gpu", "--format", "json", "--repeats", "3")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["passed"] and "CUDA" in data["device"]
    assert data["timings"]["forward_backward"]["median_s"] > 0


def test_verify_bf16_on_gpu() -> None:
    result = run("verify", "alexnet", "--gpu", "--dtype", "bf16", "--repeats", "2")
    assert result.exit_code == 0, result.output
