"""The distributed run: 2 gloo processes on 127.0.0.1; measured bytes, parameters and (fsdp) gradient and
optimizer-state elements equal the plan's exactly."""

from __future__ import annotations

import os
import pickle
from datetime import timedelta
from fractions import Fraction

import pytest
from typer.testing import CliRunner

from convaudit.cli import app
from convaudit.core.plan.measured import DistributedRun

pytestmark = pytest.mark.needs_torch

# (reference, input, batch, strategy, optimizer); every reference is resolved by each worker
CASES = [("alexnet", None, 2, "columns", "momentum"), ("lenet5", None, 3, "data", "momentum"),
         ("lenet5", None, 1, "model", "momentum"),
         # fsdp: LeNet-5's table conv is 16 Conv2d(|row|, 1): one row each, so device 1's shards are empty;
         # its RBF centres are frozen (sharded and gathered, never reduce-scattered)
         ("lenet5", None, 2, "fsdp", "adam"),
         # a class token [1, 1, 8], a position embedding [1, 17, 8], a layer scale [8, 1, 1], layernorm, a
         # linear on tokens; batch 3 over 2 processes: 2 and 1 samples
         ("tests.import_models:tokens", (16, 16), 3, "fsdp", "momentum"),
         # batchnorm, a squeeze-excitation product, a channel split, a concat and a linear of 10 outputs
         ("tests.import_models:branches", (16, 16), 2, "fsdp", "adam")]
IDS = [f"{ref.split(':')[-1]}-{strategy}-b{batch}" for ref, _, batch, strategy, _ in CASES]


def _measure_all(index: int, port: int, folder: str) -> None:
    """One of two workers: every case in one process group, so the test pays for one start-up."""
    import torch.distributed as dist

    from convaudit.pytorch.distributed import Options, measure

    os.environ.update({"RANK": str(index), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    dist.init_process_group("gloo", timeout=timedelta(seconds=120))
    try:
        import torch

        results = [measure(Options(ref, size, None, batch, "fp32", strategy, 2, 0, 2, False, optimizer=optimizer),
                           torch.device("cpu"), "gloo") for ref, size, batch, strategy, optimizer in CASES]
    finally:
        dist.destroy_process_group()
    if index == 0:
        with open(os.path.join(folder, "results.pickle"), "wb") as handle:
            pickle.dump(results, handle)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[DistributedRun]:
    import torch.multiprocessing as mp

    from convaudit.pytorch.distributed import free_port

    folder = tmp_path_factory.mktemp("distributed")
    mp.start_processes(_measure_all, args=(free_port(), str(folder)), nprocs=2, join=True, start_method="spawn")
    return pickle.loads((folder / "results.pickle").read_bytes())


@pytest.mark.parametrize("case", range(len(CASES)), ids=IDS)
def test_measured_equals_the_plan(results: list[DistributedRun], case: int) -> None:
    result = results[case]
    for layer in result.layers:
        for device in layer.devices:
            assert device.measured_forward_bytes == device.planned_forward_bytes, (layer.name, device)
            assert device.measured_backward_bytes == device.planned_backward_bytes, (layer.name, device)
            assert device.measured_params == device.planned_params, (layer.name, device)
            assert device.measured_gradients == device.planned_gradients, (layer.name, device)
            assert device.measured_optimizer_state == device.planned_optimizer_state, (layer.name, device)
            assert device.same_every_step
    assert result.bytes_match and result.params_match and result.state_match and result.matches
    assert "(unplanned)" not in [layer.name for layer in result.layers]


def test_alexnet_columns_bytes_are_the_papers_shapes(results: list[DistributedRun]) -> None:
    by_name = {layer.name: layer.devices for layer in results[0].layers}
    # conv3 gathers the other GPU's 128 maps of 13×13, batch 2, fp32 — measured in the real run
    assert by_name["conv3"][0].measured_forward_bytes == 128 * 13 * 13 * 2 * 4
    moved = [name for name, devices in by_name.items() if any(d.measured_forward_bytes for d in devices)]
    assert moved == ["conv3", "fc6", "fc7", "fc8"]
    # each process really holds half of AlexNet's 60,965,224 parameters
    assert [sum(devices[d].measured_params for devices in by_name.values()) for d in (0, 1)] == [30_482_612] * 2


def test_data_measures_the_gradient_all_reduce(results: list[DistributedRun]) -> None:
    total = sum(layer.devices[0].measured_backward_bytes for layer in results[1].layers)
    # LeNet-5's trainable parameters (the RBF centres are fixed): C1 6·(25 + 1), S2 6·2, C3 1,516 (the paper's
    # table), S4 16·2, C5 120·(400 + 1), F6 84·(120 + 1); ring all-reduce over 2 processes: 2·1/2·S each
    trainable = 6 * 26 + 12 + 1516 + 32 + 120 * 401 + 84 * 121
    assert trainable == 60_000
    assert total == Fraction(2 * 1, 2) * trainable * 4


def test_fsdp_lenet5_shards_are_torch_chunks(results: list[DistributedRun]) -> None:
    by_name = {layer.name: layer.devices for layer in results[3].layers}
    # C5 (conv, 120 maps of 16·5·5 + a bias each): torch.chunk over 2 is 60 and 60 rows
    assert [d.measured_params for d in by_name["C5"]] == [60 * 400 + 60] * 2
    # F6 (linear 120 → 84): 42 and 42 rows; Adam keeps exp_avg and exp_avg_sq of each local element
    assert [d.measured_optimizer_state for d in by_name["F6"]] == [2 * (42 * 120 + 42)] * 2
    # C3's 16 maps are 16 Conv2d(|row|, 1, 5): each weight [1, |row|, 5, 5] and bias [1] is one row, all of it
    # on device 0 (torch.chunk(·, 2) of one row is one chunk); the table's 60 entries · 25 + 16 biases
    assert [d.measured_params for d in by_name["C3"]] == [60 * 25 + 16, 0]
    # the RBF's centres (10 × 84, frozen): sharded 5 and 5 rows, no gradient, no optimizer state
    assert [(d.measured_params, d.measured_gradients, d.measured_optimizer_state) for d in by_name["OUTPUT"]] \
        == [(5 * 84, 0, 0)] * 2


def test_fsdp_collectives_are_all_gathers_and_reduce_scatters_of_padded_shards(results: list[DistributedRun]
                                                                               ) -> None:
    by_name = {layer.name: layer.devices for layer in results[3].layers}
    # C1 (conv 1 → 6 maps of 5·5, + 6 biases): chunk 3 rows of each, nothing padded. Forward: one all-gather
    # of the whole 156 fp32 elements, each process receiving the other's half: (2 − 1)/2 · 156 · 4 = 312 B.
    # Backward: all-gathered again (312 B), its gradients reduce-scattered ((2 − 1)/2 · 156 · 4 = 312 B).
    assert [d.measured_forward_bytes for d in by_name["C1"]] == [312, 312]
    assert [d.measured_backward_bytes for d in by_name["C1"]] == [624, 624]
    # C3's 16 one-row tensors pad to 2 rows each (chunk 1 · N 2): 2 · (60 · 25 + 16) elements gathered,
    # half of them received: 1,516 · 4 B forward
    assert by_name["C3"][1].measured_forward_bytes == (60 * 25 + 16) * 4


def test_fsdp_tokens_uneven_batch_and_single_row_parameters(results: list[DistributedRun]) -> None:
    result = results[4]
    params = {layer.name: [d.measured_params for d in layer.devices] for layer in result.layers}
    # every parameter of the model adds up over the processes; the one-row ones ([1, 1, 8] class token,
    # [1, 17, 8] position embedding) live whole on process 0
    total = 8 * 3 * 4 * 4 + 8 + 8 + 8 + 17 * 8 + 2 * 8 + 8 * 5 + 5
    assert sum(sum(v) for v in params.values()) == total
    one_row = [name for name, values in params.items() if values in ([8, 0], [17 * 8, 0])]
    assert len(one_row) == 2


def test_cli_launches_its_own_workers() -> None:
    result = CliRunner().invoke(app, ["bench", "lenet5", "--devices", "2", "--repeats", "1", "--warmup", "0",
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    import json

    data = json.loads(result.stdout)
    assert data["backend"] == "gloo" and data["devices"] == 2 and data["bytes_match"] and data["params_match"]
