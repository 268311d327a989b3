"""Devices, the memory guard and timing, shared by verify and bench. Imports torch."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from convaudit.core.analysis import LayerResult, Report
from convaudit.core.layers import REGISTRY
from convaudit.core.memory import RunMemory, dtype_size, run_memory, saved_tensors
from convaudit.core.timing import Timing
from convaudit.core.units import fmt_bytes
from convaudit.errors import DeviceError
from convaudit.interrupts import interrupted

GUARD_FRACTION = 0.9  # refuse a run that needs more than this share of what is free


def pick_device(gpu: bool) -> torch.device:
    if not gpu:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise DeviceError(f"--gpu: CUDA is not available here (torch {torch.__version__}, {build}); "
                          "drop --gpu to run on the CPU")
    return torch.device("cuda")


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}, torch {torch.__version__})"
    threads = torch.get_num_threads()
    return f"CPU ({threads} thread{'s' if threads != 1 else ''}, torch {torch.__version__})"


def host_available_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def available_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return free
    return host_available_bytes()


@dataclass(frozen=True)
class ModelNeed:
    """Every tensor a run of the torch model holds at once, from core/memory.py's model (as `summary`'s figures):
    parameters, gradients, all outputs and their gradients, and the workspaces no output shows, namely the
    tensors layers save for backward beyond their inputs and outputs (a sparse conv's gathered copies and
    indices, the RBF's B × out × in differences, attention's weights, max-pool indices) plus the largest
    forward scratch (those same copies are made without autograd too)."""

    run: RunMemory
    saved_extra: int  # private tensors saved for backward, all alive at once
    scratch: int  # the largest one layer makes during its forward
    refused_layer: int = 0  # parameters of the layer the analysis stopped at (verify builds it)

    @property
    def workspaces(self) -> int:
        return self.saved_extra + self.scratch

    @property
    def total(self) -> int:
        return self.run.total + self.workspaces + self.refused_layer


def forward_scratch(layer: LayerResult, report: Report) -> int:
    """Bytes one layer's forward allocates beyond its output: the copies its module makes, which are the
    tensors it saves of its own (a sparse conv's gathered inputs), `forward_copies` times (the RBF makes x − W
    and its square)."""
    own = sum(nbytes for key, nbytes in saved_tensors(layer, report) if "#" in key)
    return REGISTRY[layer.type].forward_copies * own


def model_need(report: Report, backward: bool = True, refused_layer_params: int = 0) -> ModelNeed:
    saved = sum(nbytes for layer in report.layers for key, nbytes in saved_tensors(layer, report)
                if "#" in key) if backward else 0
    scratch = max((forward_scratch(layer, report) for layer in report.layers), default=0)
    return ModelNeed(run_memory(report, backward), saved, scratch, refused_layer_params * dtype_size(report))


def guard_memory(need: ModelNeed | RunMemory, device: torch.device, force: bool, available: int | None = None) -> None:
    """Refuse (exit 2) a run that would not fit, before anything is allocated, unless --force."""
    if isinstance(need, RunMemory):
        need = ModelNeed(need, 0, 0)
    free = available if available is not None else available_bytes(device)
    if force or free is None or need.total <= GUARD_FRACTION * free:
        return
    where = "GPU" if device.type == "cuda" else "host"
    run = need.run
    parts = [f"parameters {fmt_bytes(run.params + need.refused_layer)}", f"gradients {fmt_bytes(run.grads)}",
             f"activations {fmt_bytes(run.activations + run.activation_grads + run.input)}"]
    if need.workspaces:
        parts.append(f"workspaces {fmt_bytes(need.workspaces)}")
    raise DeviceError(
        f"the model needs about {fmt_bytes(need.total)} ({', '.join(parts)}) but only {fmt_bytes(free)} of {where} "
        "memory is free; lower --batch or --input, or pass --force to try anyway")


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    text = str(error).lower()
    return "out of memory" in text or "can't allocate memory" in text or "cannot allocate memory" in text


def allocation_error(error: BaseException, doing: str) -> DeviceError:
    """The allocator's failure as one line (exit 2): with --force past the guard, or an estimate that fell short."""
    first_line = (str(error).strip().splitlines() or [""])[0][:200]
    return DeviceError(f"out of memory {doing} ({type(error).__name__}: {first_line}); lower --batch or --input")


def stop_if_interrupted() -> None:
    """Ctrl-C that a library swallowed (torch can lose a KeyboardInterrupt raised inside its C++ code)."""
    if interrupted():
        raise KeyboardInterrupt


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def precision(dtype: str, device: torch.device) -> Iterator[None]:
    """cudnn autotuning on a GPU, and TF32 only when asked (PyTorch lets cudnn use TF32 for fp32 by default).

    Only the fp32_precision API: reading the legacy allow_tf32 flags once fp32_precision is set raises
    "mix of the legacy and new APIs".
    """
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    saved = (torch.backends.cudnn.benchmark, conv.fp32_precision, matmul.fp32_precision)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    conv.fp32_precision = matmul.fp32_precision = "tf32" if dtype == "tf32" else "ieee"
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark, conv.fp32_precision, matmul.fp32_precision = saved


def time_step(step: Callable[[], object], device: torch.device, warmup: int, repeats: int,
              before: Callable[[], object] | None = None) -> Timing:
    """Warm up, then time `repeats` runs of `step`: CUDA events on a GPU, perf_counter on the CPU.

    `before` runs untimed ahead of each repeat (clearing gradients, say).
    """
    for _ in range(warmup):
        if before:
            before()
        step()
        stop_if_interrupted()
    synchronize(device)
    samples = []
    for _ in range(repeats):
        stop_if_interrupted()
        if before:
            before()
            synchronize(device)  # its launches (an untimed forward) must not run into the timed step
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / 1000)
        else:
            began = time.perf_counter()
            step()
            samples.append(time.perf_counter() - began)
    return Timing(tuple(samples))
