"""The distributed run: 2 gloo processes on 127.0.0.1; measured bytes and parameters equal the plan's exactly."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from fractions import Fraction

import pytest
from typer.testing import CliRunner

from convaudit.cli import app

pytestmark = pytest.mark.needs_torch

CASES = [("alexnet", "columns", 2), ("lenet5", "data", 3), ("lenet5", "model", 1)]


def _measure_all(index: int, port: int, folder: str) -> None:
    """One of two workers: every case in one process group, so the test pays for one start-up."""
    import torch.distributed as dist

    from convaudit.pytorch.distributed import Options, measure

    os.environ.update({"RANK": str(index), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    dist.init_process_group("gloo", timeout=timedelta(seconds=120))
    try:
        import torch

        results = [measure(Options(spec, None, None, batch, "fp32", strategy, 2, 0, 1, False),
                           torch.device("cpu"), "gloo") for spec, strategy, batch in CASES]
    finally:
        dist.destroy_process_group()
    if index == 0:
        with open(os.path.join(folder, "results.json"), "w", encoding="utf-8") as handle:
            json.dump(results, handle)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    import torch.multiprocessing as mp

    from convaudit.pytorch.distributed import free_port

    folder = tmp_path_factory.mktemp("distributed")
    mp.start_processes(_measure_all, args=(free_port(), str(folder)), nprocs=2, join=True, start_method="spawn")
    return json.loads((folder / "results.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", range(len(CASES)), ids=[f"{s}-{k}-b{b}" for s, k, b in CASES])
def test_measured_bytes_and_parameters_equal_the_plan(results: list[dict], case: int) -> None:
    result = results[case]
    for layer in result["layers"]:
        for device in layer["devices"]:
            assert device["measured_forward_bytes"] == device["planned_forward_bytes"], (layer["name"], device)
            assert device["measured_backward_bytes"] == device["planned_backward_bytes"], (layer["name"], device)
            assert device["measured_params"] == device["planned_params"], (layer["name"], device)
    assert result["bytes_match"] and result["params_match"]


def test_alexnet_columns_bytes_are_the_papers_shapes(results: list[dict]) -> None:
    by_name = {layer["name"]: layer["devices"] for layer in results[0]["layers"]}
    # conv3 gathers the other GPU's 128 maps of 13×13, batch 2, fp32 — measured in the real run
    assert Fraction(by_name["conv3"][0]["measured_forward_bytes"]) == 128 * 13 * 13 * 2 * 4
    moved = [name for name, devices in by_name.items() if any(Fraction(d["measured_forward_bytes"]) for d in devices)]
    assert moved == ["conv3", "fc6", "fc7", "fc8"]
    # each process really holds half of AlexNet's 60,965,224 parameters
    assert [sum(devices[d]["measured_params"] for devices in by_name.values()) for d in (0, 1)] == [30_482_612] * 2


def test_data_measures_the_gradient_all_reduce(results: list[dict]) -> None:
    total = sum(Fraction(layer["devices"][0]["measured_backward_bytes"]) for layer in results[1]["layers"])
    # LeNet-5's trainable parameters (the RBF centres are fixed): C1 6·(25 + 1), S2 6·2, C3 1,516 (the paper's
    # table), S4 16·2, C5 120·(400 + 1), F6 84·(120 + 1); ring all-reduce over 2 processes: 2·1/2·S each
    trainable = 6 * 26 + 12 + 1516 + 32 + 120 * 401 + 84 * 121
    assert trainable == 60_000
    assert total == Fraction(2 * 1, 2) * trainable * 4


def test_cli_launches_its_own_workers() -> None:
    result = CliRunner().invoke(app, ["bench", "lenet5", "--devices", "2", "--repeats", "1", "--warmup", "0",
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["backend"] == "gloo" and data["devices"] == 2 and data["bytes_match"] and data["params_match"]
