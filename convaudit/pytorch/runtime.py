"""Devices, the memory guard and timing, shared by verify and bench. Imports torch."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator

import torch

from convaudit.core.memory import RunMemory
from convaudit.core.timing import Timing
from convaudit.core.units import fmt_bytes
from convaudit.errors import DeviceError

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


def guard_memory(need: RunMemory, device: torch.device, force: bool, available: int | None = None) -> None:
    """Refuse (exit 2) a run that would not fit, before anything is allocated, unless --force."""
    free = available if available is not None else available_bytes(device)
    if force or free is None or need.total <= GUARD_FRACTION * free:
        return
    where = "GPU" if device.type == "cuda" else "host"
    raise DeviceError(
        f"the model needs about {fmt_bytes(need.total)} (parameters {fmt_bytes(need.params)}, gradients "
        f"{fmt_bytes(need.grads)}, activations {fmt_bytes(need.activations + need.activation_grads)}) but only "
        f"{fmt_bytes(free)} of {where} memory is free; lower --batch or --input, or pass --force to try anyway")


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)) or "out of memory" in str(error).lower()


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
    synchronize(device)
    samples = []
    for _ in range(repeats):
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
