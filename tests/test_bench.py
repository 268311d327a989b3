"""The bench harness on the CPU: order, statistics, output shapes, progress, Ctrl-C and out-of-memory."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from convaudit.cli import app
from convaudit.core.analysis import analyze
from convaudit.spec.library import load

pytestmark = pytest.mark.needs_torch

FAST = ("--repeats", "2", "--warmup", "0")


def run(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def cpu_bench(name: str = "lenet5", **kwargs):
    import torch

    from convaudit.pytorch.bench import bench_report

    kwargs.setdefault("warmup", 0)
    kwargs.setdefault("repeats", 2)
    return bench_report(analyze(load(name)), torch.device("cpu"), **kwargs)


def test_layers_in_graph_order_with_statistics() -> None:
    report = analyze(load("lenet5"))
    result = cpu_bench()
    assert [item.layer.name for item in result.layers] == [layer.name for layer in report.layers]
    for item in result.layers:
        assert item.status == "ok"
        assert len(item.forward.samples) == 2 and item.forward.minimum <= item.forward.median <= item.forward.maximum
    # C1 is the first trained layer: it has a backward (dW) though its input needs no gradient
    assert result.layers[0].backward is not None
    assert result.model.status == "ok" and result.model.forward_backward is not None
    forward_sum, both_sum = result.sum_of_medians
    assert 0 < forward_sum < both_sum


def test_no_backward() -> None:
    result = cpu_bench(backward=False)
    assert all(item.backward is None for item in result.layers)
    assert result.model.forward_backward is None


def test_progress_is_reported_in_order() -> None:
    calls = []
    cpu_bench(progress=lambda done, total, name: calls.append((done, total, name)))
    names = [layer.name for layer in analyze(load("lenet5")).layers]
    assert calls == [(i, len(names), name) for i, name in enumerate(names)] + [(len(names), len(names),
                                                                                "whole model")]


def test_ctrl_c_keeps_what_was_measured() -> None:
    def interrupt_at_third(done: int, total: int, name: str) -> None:
        if done == 2:
            raise KeyboardInterrupt

    result = cpu_bench(progress=interrupt_at_third)
    assert result.interrupted and len(result.layers) == 2 and result.model is None


def test_ctrl_c_from_the_cli_prints_partial_results(monkeypatch: pytest.MonkeyPatch) -> None:
    import convaudit.pytorch.bench as bench

    real = bench.bench_layer
    calls = []

    def layer_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(bench, "bench_layer", layer_then_interrupt)
    result = run("bench", "lenet5", *FAST)
    assert result.exit_code == 130
    assert "interrupted (Ctrl-C) after 2 layers" in result.stdout
    rows = [line.split()[0] for line in result.stdout.splitlines() if line.startswith(" ") and line.split()]
    assert "C1" in rows and "tanh1" in rows and "S2" not in rows


def test_out_of_memory_in_one_layer_is_reported_and_the_rest_continue(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import convaudit.pytorch.bench as bench

    real = bench.time_step

    def fail_on_c3(step, device, warmup, repeats, before=None):
        if fail_on_c3.layer == "C3":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(step, device, warmup, repeats, before)

    real_layer = bench.bench_layer

    def track(model, layer, *args, **kwargs):
        fail_on_c3.layer = layer.name
        return real_layer(model, layer, *args, **kwargs)

    fail_on_c3.layer = ""
    monkeypatch.setattr(bench, "time_step", fail_on_c3)
    monkeypatch.setattr(bench, "bench_layer", track)
    result = cpu_bench()
    statuses = {item.layer.name: item.status for item in result.layers}
    assert statuses["C3"] == "out-of-memory" and "Tried to allocate" in result.layers[4].note
    assert all(status == "ok" for name, status in statuses.items() if name != "C3")
    assert len(result.layers) == 13


def test_cli_table_says_cpu_timings_plainly() -> None:
    result = run("bench", "lenet5", *FAST, "--peak", "auto")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "CPU timings (no --gpu)" in out and "Fwd FLOP/s" in out and "These are CPU timings" in out
    assert "whole model: forward" in out and "layers sum" in out
    assert "ceiling:" in out and "ridge" in out
    assert "13/13" in result.stderr  # the progress bar, on stderr


def test_default_spec_is_alexnet() -> None:
    result = run("bench", "--repeats", "1", "--warmup", "0", "--no-backward", "--format", "json")
    assert json.loads(result.stdout)["spec"] == "alexnet"


def test_json_and_csv() -> None:
    data = json.loads(run("bench", "lenet5", *FAST, "--format", "json", "--batch", "4").stdout)
    assert data["batch"] == 4 and data["gpu"] is False and data["versions"]["torch"]
    c1 = data["layers"][0]
    assert c1["name"] == "C1" and c1["forward"]["repeats"] == 2
    assert c1["flops"] == 4 * 2 * 117_600  # 6·25·28·28 MACs per sample, batch 4, 2 FLOPs each
    assert c1["forward_flops_per_s"] == pytest.approx(c1["flops"] / c1["forward"]["median_s"])
    assert sum(layer["share_of_time"] for layer in data["layers"]) == pytest.approx(1)
    assert data["sum_of_layer_medians"]["forward_s"] > 0
    rows = list(csv.DictReader(io.StringIO(run("bench", "lenet5", *FAST, "--format", "csv").stdout)))
    assert [row["name"] for row in rows][:3] == ["C1", "tanh1", "S2"] and float(rows[0]["forward_median_s"]) > 0


def test_gpu_without_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = run("bench", "--gpu")
    assert result.exit_code == 2 and result.stderr.startswith("error: --gpu: CUDA is not available")


def test_bad_peak() -> None:
    result = run("bench", "lenet5", "--peak", "fast")
    assert result.exit_code == 2 and "--peak: expected 'auto' or a positive number" in result.stderr


def test_blocks_are_timed_as_sums_of_their_layers() -> None:
    result = run("bench", "resnet18", "--input", "64", "--repeats", "1", "--warmup", "0", "--no-backward",
                 "--format", "json")
    data = json.loads(result.stdout)
    blocks = {block["name"]: block for block in data["blocks"]}
    assert list(blocks)[:5] == ["conv1", "bn1", "relu", "maxpool", "layer1"]
    layer1 = [layer for layer in data["layers"] if layer["name"].startswith("layer1.")]
    assert blocks["layer1"]["layers"] == len(layer1) == 14
    assert blocks["layer1"]["forward_s"] == pytest.approx(sum(layer["forward"]["median_s"] for layer in layer1))
    assert sum(block["share_of_time"] for block in blocks.values()) == pytest.approx(1)


# ------------------------------------------------------------------ the GPU paths' defects, shown on the CPU

def _lenet_layer(name: str):
    import torch

    from convaudit.pytorch.builder import build_model

    report = analyze(load("lenet5"))
    return build_model(report), report.layer(name), torch.device("cpu")


def test_peak_is_reset_after_every_warm_up_and_before_timing(monkeypatch: pytest.MonkeyPatch) -> None:
    import convaudit.pytorch.bench as bench

    model, layer, cpu = _lenet_layer("C3")
    events: list[str] = []
    model.module_for("C3").register_forward_hook(lambda *a: events.append("forward"))
    monkeypatch.setattr(bench, "_reset_peak", lambda device: events.append("reset") or 0)
    real = bench.time_step
    monkeypatch.setattr(bench, "time_step", lambda *a, **k: events.append("timed") or real(*a, **k))
    bench.bench_layer(model, layer, cpu, __import__("torch").float32, 3, 1, True, False)
    first_timed = events.index("timed")
    assert events.index("reset") == first_timed - 1
    # 1 forward for the gradient's shape, then 3 warm-ups of forward + the forward that backward walks
    assert events[:first_timed - 1].count("forward") == 1 + 3 * 2


def test_warmup_zero_is_refused_on_a_gpu() -> None:
    import torch

    from convaudit.errors import DeviceError
    from convaudit.pytorch.bench import bench_report

    with pytest.raises(DeviceError, match="--warmup 0 on a GPU"):
        bench_report(analyze(load("lenet5")), torch.device("cuda"), warmup=0)


def test_the_previous_output_is_freed_before_the_next_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    import weakref

    import torch

    import convaudit.pytorch.bench as bench

    model, layer, cpu = _lenet_layer("C5")
    outputs: list[weakref.ref] = []
    alive_at_call: list[int] = []
    module = model.module_for("C5")
    module.register_forward_pre_hook(lambda *a: alive_at_call.append(sum(r() is not None for r in outputs)))
    module.register_forward_hook(lambda m, a, out: outputs.append(weakref.ref(out)))
    bench.bench_layer(model, layer, cpu, torch.float32, 2, 2, True, False)
    assert max(alive_at_call) == 0


def test_sparse_conv_indexes_with_buffers_on_the_models_device() -> None:
    import torch

    from convaudit.pytorch.builder import count_parameters
    from convaudit.pytorch.modules import SparseConv

    model, layer, _ = _lenet_layer("C3")
    module = model.module_for("C3")
    assert isinstance(module, SparseConv)
    assert all(name.startswith("rows") for name, _ in module.named_buffers())
    assert not any(key.startswith("rows") for key in module.state_dict())  # not state
    assert count_parameters(module) == (1516, 0)  # the paper's 1,516 trainable parameters, indices not counted
    moved = module.to("meta")
    assert all(b.device.type == "meta" for b in moved.buffers())
    x = torch.randn(1, 6, 14, 14)
    reference = _lenet_layer("C3")[0].module_for("C3")
    assert reference(x).shape == (1, 16, 10, 10)


def test_precision_uses_only_the_new_api_and_restores_it() -> None:
    import torch

    from convaudit.pytorch.runtime import precision

    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    before = (conv.fp32_precision, matmul.fp32_precision)
    with precision("fp32", torch.device("cpu")):
        assert (conv.fp32_precision, matmul.fp32_precision) == ("ieee", "ieee")
    with precision("tf32", torch.device("cpu")):
        assert (conv.fp32_precision, matmul.fp32_precision) == ("tf32", "tf32")
    assert (conv.fp32_precision, matmul.fp32_precision) == before


def test_dropout_mask_is_one_byte_per_element_on_cuda() -> None:
    from convaudit.core.memory import training_memory

    report = analyze(load("alexnet"))
    cpu, cuda = training_memory(report), training_memory(report, cuda=True)
    # two dropouts of 4096 outputs: the CPU keeps fp32 masks (4 bytes), CUDA bool masks (1 byte)
    assert cpu.saved_activations - cuda.saved_activations == 2 * 4096 * (4 - 1)


def test_verify_times_under_the_precision_it_names(monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib

    import torch

    import convaudit.pytorch.verify as verify

    calls = []

    @contextlib.contextmanager
    def record(dtype, device):
        calls.append(dtype)
        yield

    monkeypatch.setattr(verify, "precision", record)
    verify.verify_report(analyze(load("lenet5")), torch.device("cpu"), "fp32", 0, 1)
    assert calls == ["fp32"]


def test_each_timed_step_starts_after_its_untimed_setup_finished(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import convaudit.pytorch.runtime as runtime

    events = []
    monkeypatch.setattr(runtime, "synchronize", lambda device: events.append("sync"))
    runtime.time_step(lambda: events.append("step"), torch.device("cpu"), 0, 2, before=lambda: events.append("setup"))
    assert events == ["sync", "setup", "sync", "step", "setup", "sync", "step"]


def test_a_poisoned_cuda_context_stops_the_run() -> None:
    from convaudit.errors import DeviceError
    from convaudit.pytorch.bench import stop_if_poisoned

    with pytest.raises(DeviceError, match="cannot be used after this"):
        stop_if_poisoned(RuntimeError("CUDA error: an illegal memory access was encountered"), "conv1")
    stop_if_poisoned(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "conv1")  # reported, goes on


def test_cache_is_released_only_once_the_failed_layers_tensors_are_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    import weakref

    import torch

    import convaudit.pytorch.bench as bench

    model, layer, cpu = _lenet_layer("C3")
    made: list[weakref.ref] = []
    real_inputs = bench.layer_inputs

    def inputs(*args, **kwargs):
        tensors = real_inputs(*args, **kwargs)
        made.extend(weakref.ref(t) for t in tensors)
        return tensors

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    alive_at_release = []
    monkeypatch.setattr(bench, "layer_inputs", inputs)
    monkeypatch.setattr(bench, "time_step", out_of_memory)
    monkeypatch.setattr(bench, "_release", lambda device: alive_at_release.append(sum(r() is not None for r in made)))
    result = bench.bench_layer(model, layer, cpu, torch.float32, 0, 1, True, False)
    assert result.status == "out-of-memory" and alive_at_release == [0]
