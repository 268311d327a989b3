"""Time every layer's forward and backward, and the whole model, on the CPU or a GPU. Imports torch.

Each layer runs alone, on random inputs of exactly the shapes the analysis
predicts: its forward without autograd, then its backward alone (the forward
that builds the graph runs untimed before each repeat). On a GPU, CUDA events
time the kernels, cudnn.benchmark picks algorithms during warm-up, and nothing
crosses between host and device inside a timed region.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from convaudit.core.analysis import LayerResult, Report
from convaudit.core.memory import layer_step_bytes, run_memory, training_memory
from convaudit.core.throughput import Ceiling
from convaudit.core.timing import Timing
from convaudit.errors import DeviceError
from convaudit.interrupts import interrupted
from convaudit.pytorch.builder import TORCH_DTYPES, SpecModel, build_model
from convaudit.pytorch.runtime import (
    describe_device,
    guard_memory,
    is_out_of_memory,
    model_need,
    precision,
    synchronize,
    time_step,
)
from convaudit.pytorch.verify import forward_backward

Progress = Callable[[int, int, str], None]  # (layers done, layers in all, the layer starting now)


@dataclass(frozen=True)
class LayerBench:
    layer: LayerResult
    status: str  # ok | out-of-memory | error
    forward: Timing | None = None
    backward: Timing | None = None  # None when no gradient flows through this layer
    peak_memory: int | None = None  # GPU: bytes the step allocated beyond what was resident
    memory_estimate: int = 0
    note: str = ""


@dataclass(frozen=True)
class ModelBench:
    status: str
    forward: Timing | None = None
    forward_backward: Timing | None = None
    peak_memory: int | None = None  # GPU: max allocated during forward+backward, weights included
    memory_estimate: int = 0
    note: str = ""


@dataclass(frozen=True)
class BenchResult:
    spec: str
    input: tuple[int, int, int]
    batch: int
    dtype: str
    device: str
    gpu: bool
    channels_last: bool
    backward: bool
    warmup: int
    repeats: int
    layers: tuple[LayerBench, ...]
    model: ModelBench | None
    ceiling: Ceiling | None
    interrupted: bool = False
    versions: dict[str, str] = field(default_factory=dict)
    separator: str = "/"
    has_blocks: bool = False

    def layer_total(self, layer: LayerBench) -> float:
        return sum(t.median for t in (layer.forward, layer.backward) if t)

    @property
    def sum_of_medians(self) -> tuple[float, float]:
        """(forward, forward + backward) summed over the layers that ran."""
        forward = sum(item.forward.median for item in self.layers if item.forward)
        backward = sum(item.backward.median for item in self.layers if item.backward)
        return forward, forward + backward


def storage_dtype(dtype: str) -> str:
    return "fp32" if dtype == "tf32" else dtype  # TF32 is a compute mode over fp32 storage


def _matmul_rate(device: torch.device, dtype: str, size: int) -> float:
    torch_dtype = TORCH_DTYPES[storage_dtype(dtype)]
    a = torch.randn(size, size, device=device, dtype=torch_dtype)
    b = torch.randn(size, size, device=device, dtype=torch_dtype)
    timing = time_step(lambda: torch.mm(a, b), device, warmup=3, repeats=10)
    return 2 * size**3 / timing.median  # 2 FLOPs per multiply-add


def _copy_rate(device: torch.device, size: int) -> float:
    source = torch.empty(size, device=device, dtype=torch.uint8)
    target = torch.empty_like(source)
    timing = time_step(lambda: target.copy_(source), device, warmup=3, repeats=10)
    return 2 * size / timing.median  # each byte read once and written once


def measure_ceiling(device: torch.device, dtype: str) -> Ceiling:
    """A large dense matmul at this dtype (peak FLOP/s) and a large copy (bandwidth)."""
    size = 8192 if device.type == "cuda" else 2048
    copy_bytes = 2**30 if device.type == "cuda" else 2**27
    return Ceiling(_matmul_rate(device, dtype, size), _copy_rate(device, copy_bytes),
                   f"measured: {size}×{size} matmul at {dtype}, {copy_bytes // 2**20} MiB copy")


def given_ceiling(device: torch.device, tflops: float, bandwidth_gbps: float | None) -> Ceiling:
    if bandwidth_gbps is None:
        copy_bytes = 2**30 if device.type == "cuda" else 2**27
        return Ceiling(tflops * 1e12, _copy_rate(device, copy_bytes), f"given: {tflops:g} TFLOP/s; bandwidth measured")
    return Ceiling(tflops * 1e12, bandwidth_gbps * 1e9, f"given: {tflops:g} TFLOP/s, {bandwidth_gbps:g} GB/s")


def layer_inputs(layer: LayerResult, device: torch.device, dtype: torch.dtype, channels_last: bool,
                 requires_grad: bool) -> list[torch.Tensor]:
    tensors = []
    for shape, placement in zip(layer.input_shapes, layer.placements, strict=True):
        tensor = torch.randn(placement.full(shape, layer.batch), device=device, dtype=dtype)
        if channels_last and tensor.dim() == 4:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        tensors.append(tensor.requires_grad_(requires_grad))
    return tensors


def bench_layer(model: SpecModel, layer: LayerResult, device: torch.device, dtype: torch.dtype, warmup: int,
                repeats: int, backward: bool, channels_last: bool) -> LayerBench:
    estimate = layer_step_bytes(layer, backward)
    failure = None
    try:
        return _bench_layer(model, layer, device, dtype, warmup, repeats, backward, channels_last, estimate)
    except Exception as error:  # Ctrl-C is not an Exception: it reaches bench_report
        if interrupted():  # unless torch turned it into one (a RuntimeError from inside a kernel, say)
            raise KeyboardInterrupt from None
        stop_if_poisoned(error, layer.name)
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        failure = ("out-of-memory" if is_out_of_memory(error) else "error", f"{type(error).__name__}: {first_line}")
    # Here, past the except block, the error and its traceback are gone, and with them the frame that held the
    # layer's tensors: only now can the cache hand their memory back.
    _release(device)
    return LayerBench(layer, failure[0], memory_estimate=estimate, note=failure[1])


def _bench_layer(model: SpecModel, layer: LayerResult, device: torch.device, dtype: torch.dtype, warmup: int,
                 repeats: int, backward: bool, channels_last: bool, estimate: int) -> LayerBench:
    module = model.module_for(layer.name)
    needs_backward = backward and (layer.trainable_params > 0 or layer.needs_input_grad)
    inputs = layer_inputs(layer, device, dtype, channels_last, backward and layer.needs_input_grad)

    def forward() -> None:
        with torch.no_grad():
            module(*inputs)

    graph: dict[str, torch.Tensor] = {}
    gradient = None
    if needs_backward:
        gradient = torch.randn_like(module(*inputs))

    def build() -> None:  # untimed: clear gradients, run the forward that backward will walk
        graph.pop("out", None)  # free the previous output first: it must not count in this step's peak
        module.zero_grad(set_to_none=True)
        for tensor in inputs:
            tensor.grad = None
        graph["out"] = module(*inputs)

    def backward_step() -> None:
        graph["out"].backward(gradient)

    # Every warm-up (cudnn.benchmark tries its algorithms here, with their workspaces) before the peak is reset.
    for _ in range(warmup):
        forward()
        if needs_backward:
            build()
            backward_step()
            graph.pop("out", None)
        if interrupted():
            raise KeyboardInterrupt
    graph.pop("out", None)
    synchronize(device)
    base = _reset_peak(device)
    forward_timing = time_step(forward, device, 0, repeats)
    backward_timing = time_step(backward_step, device, 0, repeats, before=build) if needs_backward else None
    graph.pop("out", None)
    peak = _peak_since(device, base)
    return LayerBench(layer, "ok", forward_timing, backward_timing, peak, estimate,
                      "" if needs_backward or not backward else "no gradient flows here")


def stop_if_poisoned(error: BaseException, where: str) -> None:
    """A CUDA error other than out-of-memory (an illegal access, a device-side assert) poisons the context:
    every later call fails too. Stop the run with one line instead of reporting each layer as failed."""
    if is_out_of_memory(error):
        return
    accelerator = getattr(torch, "AcceleratorError", ())
    text = str(error)
    if (accelerator and isinstance(error, accelerator)) or "CUDA error" in text or "device-side assert" in text:
        first_line = (text.strip().splitlines() or [type(error).__name__])[0]
        raise DeviceError(f"{where}: the GPU failed ({type(error).__name__}: {first_line}); the CUDA context "
                          "cannot be used after this, so the run stops here") from None


def bench_model(model: SpecModel, report: Report, device: torch.device, dtype: torch.dtype, warmup: int,
                repeats: int, backward: bool, channels_last: bool) -> ModelBench:
    # forward+backward without an optimizer step: parameters, gradients and the tensors saved for backward
    cuda = device.type == "cuda"  # CUDA's dropout keeps a one-byte mask; the CPU's, one at the dtype
    estimate = training_memory(report, "sgd", cuda).training_total if backward else run_memory(report, False).total
    try:
        return _bench_model(model, report, device, dtype, warmup, repeats, backward, channels_last, estimate)
    except Exception as error:
        if interrupted():
            raise KeyboardInterrupt from None
        stop_if_poisoned(error, "whole model")
        failure = ("out-of-memory" if is_out_of_memory(error) else "error", f"{type(error).__name__}: "
                   f"{str(error)[:200]}")
    _release(device)  # after the except block: the traceback no longer holds the model's tensors
    return ModelBench(failure[0], memory_estimate=estimate, note=failure[1])


def _bench_model(model: SpecModel, report: Report, device: torch.device, dtype: torch.dtype, warmup: int,
                 repeats: int, backward: bool, channels_last: bool, estimate: int) -> ModelBench:
    x = torch.randn((report.batch, *report.input), device=device, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def forward() -> None:
        with torch.no_grad():
            model(x)

    forward_timing = time_step(forward, device, warmup, repeats)
    both = None
    peak = None
    if backward:
        clear = lambda: model.zero_grad(set_to_none=True)  # noqa: E731
        for _ in range(warmup):  # autotuning of the backward kernels stays out of the peak
            clear()
            forward_backward(model, x)
        clear()
        synchronize(device)
        _reset_peak(device)
        both = time_step(lambda: forward_backward(model, x), device, 0, repeats, before=clear)
        peak = _peak_since(device, 0)  # weights included, as the estimate counts them
    return ModelBench("ok", forward_timing, both, peak, estimate)


def _reset_peak(device: torch.device) -> int:
    if device.type != "cuda":
        return 0
    torch.cuda.reset_peak_memory_stats(device)
    return torch.cuda.memory_allocated(device)


def _peak_since(device: torch.device, base: int) -> int | None:
    if device.type != "cuda":
        return None
    synchronize(device)
    return torch.cuda.max_memory_allocated(device) - base


def _release(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def bench_report(report: Report, device: torch.device, dtype: str = "fp32", warmup: int = 5, repeats: int = 20,
                 backward: bool = True, channels_last: bool = False, peak: str | None = None,
                 bandwidth_gbps: float | None = None, progress: Progress | None = None,
                 force: bool = False) -> BenchResult:
    """Bench every layer in graph order, then the whole model. Ctrl-C keeps what was measured."""
    if device.type == "cuda" and warmup < 1:
        raise DeviceError("--warmup 0 on a GPU would time cudnn's autotuning and the first launches; "
                          "use --warmup 1 or more")
    guard_memory(model_need(report, backward), device, force)  # every tensor, workspaces included
    torch.manual_seed(0)
    torch_dtype = TORCH_DTYPES[storage_dtype(dtype)]
    model = build_model(report).to(device=device, dtype=torch_dtype).train(backward)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    layers: list[LayerBench] = []
    model_bench = None
    ceiling = None
    interrupted = False
    with precision(dtype, device):
        try:
            if peak == "auto":
                ceiling = measure_ceiling(device, dtype)
            elif peak is not None:
                ceiling = given_ceiling(device, float(peak), bandwidth_gbps)
            for index, layer in enumerate(report.layers):
                if progress:
                    progress(index, len(report.layers), layer.name)
                layers.append(bench_layer(model, layer, device, torch_dtype, warmup, repeats, backward,
                                          channels_last))
            if progress:
                progress(len(report.layers), len(report.layers), "whole model")
            model_bench = bench_model(model, report, device, torch_dtype, warmup, repeats, backward, channels_last)
        except KeyboardInterrupt:
            interrupted = True
    return BenchResult(
        spec=report.spec.label, input=report.input, batch=report.batch, dtype=dtype, device=describe_device(device),
        gpu=device.type == "cuda", channels_last=channels_last, backward=backward, warmup=warmup, repeats=repeats,
        layers=tuple(layers), model=model_bench, ceiling=ceiling, interrupted=interrupted,
        versions=versions(device), separator=report.spec.separator,
        has_blocks=any(layer.spec.blocks for layer in report.layers),
    )


def versions(device: torch.device) -> dict[str, str]:
    import platform

    from convaudit import __version__

    found = {"convaudit": __version__, "torch": torch.__version__, "python": platform.python_version()}
    if device.type == "cuda":
        found["cuda"] = str(torch.version.cuda)
        found["cudnn"] = str(torch.backends.cudnn.version())
        found["gpu"] = torch.cuda.get_device_name(device)
    return found
