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


def test_bench_on_gpu_reports_cuda_timings_and_memory() -> None:
    result = run("bench", "alexnet", "--gpu", "--batch", "16", "--repeats", "5", "--warmup", "2",
                 "--peak", "auto", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["gpu"] and data["versions"]["cuda"]
    conv = next(layer for layer in data["layers"] if layer["name"] == "conv2")
    assert conv["status"] == "ok" and conv["peak_memory_bytes"] > 0 and conv["bound"] in ("compute", "memory")
    assert data["model"]["peak_memory_bytes"] > 0 and data["ceiling"]["flops_per_s"] > 1e12


@pytest.mark.parametrize("dtype", ["tf32", "bf16", "fp16"])
def test_bench_dtypes_on_gpu(dtype: str) -> None:
    result = run("bench", "lenet5", "--gpu", "--dtype", dtype, "--repeats", "3", "--channels-last")
    assert result.exit_code == 0, result.output
