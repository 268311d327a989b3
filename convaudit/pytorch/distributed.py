"""Run a split plan for real with torch.distributed, and measure what each process holds and what crosses between
them. Imports torch.

Started the standard way: under `torchrun --nproc-per-node N -m convaudit bench ... --devices N` each process
reads RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; `convaudit bench --devices N` alone starts N workers
itself with torch.multiprocessing and the same environment. gloo on the CPU, NCCL on GPUs.

columns, model and data run in split_run.py (each process its share, moved with torch collectives as the plan's
exchanges say); fsdp runs torch's own fully_shard in fsdp_run.py. Either way every byte is counted by
core/collectives.py on the tensors that really went through a collective, and `collect` sets each process's
measurements beside the plan in a `DistributedRun` (core/plan/measured.py): exit 1 on any difference.

Every worker resolves the same reference (a spec, a bundled name, or a target such as torchvision:alexnet) and
plans the same way, and the memory guard of plain `bench` (pytorch/runtime.py) applies to each worker's share
before any worker starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import platform
import socket
import statistics
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from fractions import Fraction

import torch
import torch.distributed as dist

from convaudit.core.analysis import analyze
from convaudit.core.layers import elements
from convaudit.core.memory import RunMemory
from convaudit.core.model import NetworkSpec
from convaudit.core.plan import CHANNEL_STRATEGIES, Plan, plan
from convaudit.core.plan.measured import DistributedRun, MeasuredLayer, MeasuredShare
from convaudit.errors import ConvauditError, DeviceError
from convaudit.pytorch.builder import TORCH_DTYPES
from convaudit.pytorch.measuring import UNPLANNED, Measured
from convaudit.pytorch.runtime import ModelNeed, available_bytes, guard_memory, model_need

ENV_KEYS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
RUNS = ("columns", "model", "data", "fsdp")  # the strategies a distributed run executes (zero1/zero2: plans only)
LOCAL_PROCESSES = 8  # a run started here (not by torchrun) on the CPU: at most max(this, the CPU count) workers


@dataclass(frozen=True)
class Options:
    spec: str  # a spec file, a bundled name, or a target (torchvision:NAME, package.module:function, model.onnx)
    input_size: tuple[int, int] | None  # (height, width), or the spec's own
    variant: str | None
    batch: int
    dtype: str
    strategy: str
    devices: int
    warmup: int
    repeats: int
    gpu: bool
    force: bool = False  # run even if the memory guard says a worker's share will not fit
    optimizer: str = "momentum"  # fsdp: the optimizer whose sharded state is measured


def launched_by_torchrun() -> bool:
    return all(key in os.environ for key in ENV_KEYS)


# ------------------------------------------------------------------ the plan every worker runs

def network_of(options: Options) -> NetworkSpec:
    """The network the reference names, at the input asked for: each worker resolves it the same way."""
    from convaudit.importers.targets import is_target

    if is_target(options.spec):
        if options.variant:
            raise ConvauditError("--variant applies to specs; an imported model has no variants")
        from convaudit.importers import load_target

        return load_target(options.spec, None, options.input_size)
    from convaudit.spec.library import load

    network = load(options.spec, options.variant)
    return network.with_input(*options.input_size) if options.input_size is not None else network


def plan_for(options: Options, world: int, network: NetworkSpec | None = None) -> Plan:
    """The split plan the workers run: the network analysed and planned over `world` devices."""
    if options.strategy not in RUNS:
        raise DeviceError(f"bench --devices runs {', '.join(RUNS)}; --strategy {options.strategy} is planned by "
                          "`convaudit split` only (torch has no fully_shard mode that shards only the optimizer "
                          "state or the gradients)")
    network = network or network_of(options)
    report = analyze(network, options.batch, options.dtype)
    if report.halted:
        raise DeviceError(f"{report.halted.layer.name}: {report.halted.problem.message} (see `convaudit check`)")
    return plan(report, options.strategy, world, options.optimizer, pins=network.placement,
                pin_where=network.placement_where)


def worker_needs(the_plan: Plan, network: NetworkSpec, options: Options) -> list[tuple[int, ModelNeed]]:
    """(workers, what each needs) for every kind of worker, by plain bench's estimate (pytorch/runtime.py):
    data and fsdp build the whole model (fsdp shards it once built) and run their share of the batch;
    columns and model hold their share of the parameters and activations, as the plan counts them."""
    if the_plan.strategy not in CHANNEL_STRATEGIES:
        largest = -(-options.batch // the_plan.devices)
        return [(the_plan.devices, model_need(analyze(network, largest, options.dtype)))]
    size, report = the_plan.dtype_bytes, the_plan.report
    inputs = elements(report.input) * report.batch * size
    return [(t.count, ModelNeed(RunMemory(t.params * size, t.trainable_params * size, t.activation_bytes,
                                          t.activation_bytes, inputs), 0, 0)) for t in the_plan.device_classes]


def guard_workers(the_plan: Plan, network: NetworkSpec, options: Options) -> None:
    """Plain bench's guard on each worker's share: on the CPU every worker shares this host's memory, so
    their needs add up; on GPUs each worker has its own device."""
    needs = worker_needs(the_plan, network, options)
    if options.gpu:
        for rank in range(the_plan.devices):
            device = torch.device("cuda", rank)
            guard_memory(max((need for _, need in needs), key=lambda need: need.total), device, options.force,
                         available_bytes(device))
        return
    total = RunMemory(*(sum(count * getattr(need.run, field) for count, need in needs)
                        for field in ("params", "grads", "activations", "activation_grads", "input")))
    guard_memory(ModelNeed(total, sum(count * need.saved_extra for count, need in needs),
                           sum(count * need.scratch for count, need in needs)), torch.device("cpu"), options.force)


def prepare(options: Options, world: int) -> Plan:
    """Everything a bad request fails on, before any process group forms: the network, the plan, the shares
    workers could not build, and the memory guard."""
    from convaudit.pytorch.split_run import check_runnable

    network = network_of(options)
    the_plan = plan_for(options, world, network)
    check_runnable(the_plan)
    guard_workers(the_plan, network, options)
    return the_plan


# ------------------------------------------------------------------ a worker

def worker(options: Options, result_path: str | None = None) -> DistributedRun | None:
    """One process of the run; rank 0 returns (and writes) the gathered measurements."""
    gpu = options.gpu and torch.cuda.is_available()
    backend = "nccl" if gpu else "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
    device = torch.device("cuda", local_rank) if gpu else torch.device("cpu")
    if gpu:
        torch.cuda.set_device(device)
    dist.init_process_group(backend, timeout=timedelta(seconds=120))
    try:
        result = measure(options, device, backend)
    finally:
        dist.destroy_process_group()
    if result is not None and result_path:
        with open(result_path, "wb") as handle:
            pickle.dump(result, handle)
    return result


def measure(options: Options, device: torch.device, backend: str) -> DistributedRun | None:
    """Run one plan in the process group already started; rank 0 returns every rank's measurements."""
    rank, world = dist.get_rank(), dist.get_world_size()
    the_plan = plan_for(options, world)
    torch.manual_seed(0)
    dtype = TORCH_DTYPES[options.dtype]
    if options.strategy == "fsdp":
        from convaudit.pytorch.fsdp_run import run_fsdp

        mine = run_fsdp(the_plan, rank, device, dtype, options.warmup, options.repeats, options.optimizer)
    elif options.strategy == "data":
        from convaudit.pytorch.split_run import run_data

        mine = run_data(the_plan, rank, device, dtype, options.warmup, options.repeats)
    else:
        from convaudit.pytorch.split_run import run_split

        mine = run_split(the_plan, rank, device, dtype, options.warmup, options.repeats)
    gathered: list[Measured | None] = [None] * world
    dist.all_gather_object(gathered, replace(mine, device=describe(device)))
    return collect(the_plan, [m for m in gathered if m is not None], backend, options) if rank == 0 else None


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as info:
        name = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), name)
    return f"CPU {name} ({torch.get_num_threads()} threads per process)"


# ------------------------------------------------------------------ the result, plan beside measurement

def collect(the_plan: Plan, gathered: list[Measured], backend: str, options: Options) -> DistributedRun:
    """Per layer and device: planned and measured bytes, parameters (and under fsdp gradient and optimizer-state
    elements), and time in collectives."""
    sharded = the_plan.strategy == "fsdp"
    layers = []
    for item in the_plan.layers:
        devices = []
        for rank, record in enumerate(gathered):
            last = record.steps[-1].bytes if record.steps else {}
            timed = [step.comm_s.get(item.name, 0.0) for step in record.steps if step.comm_s is not None]
            share = item.shares[rank]
            devices.append(MeasuredShare(
                device=rank,
                planned_forward_bytes=share.received_forward,
                measured_forward_bytes=last.get((item.name, "forward"), Fraction(0)),
                planned_backward_bytes=share.received_backward,
                measured_backward_bytes=last.get((item.name, "backward"), Fraction(0)),
                planned_params=share.params, measured_params=record.params.get(item.name, 0),
                comm_s=statistics.median(timed) if timed else None,
                same_every_step=all(step.bytes == last for step in record.steps),
                planned_gradients=share.gradients if sharded else None,
                measured_gradients=(record.gradients or {}).get(item.name, 0) if sharded else None,
                planned_optimizer_state=share.optimizer_state if sharded else None,
                measured_optimizer_state=(record.optimizer_state or {}).get(item.name, 0) if sharded else None))
        layers.append(MeasuredLayer(item.name, item.mode, tuple(devices)))
    names = {item.name for item in the_plan.layers}
    unplanned = [(rank, phase, value) for rank, record in enumerate(gathered) if record.steps
                 for (name, phase), value in record.steps[-1].bytes.items() if name not in names]
    if unplanned:  # collectives the plan has no layer for: a row of their own, planned 0
        layers.append(MeasuredLayer(UNPLANNED, "", tuple(
            MeasuredShare(rank, Fraction(0), sum((v for r, p, v in unplanned if r == rank and p == "forward"),
                                                 Fraction(0)),
                          Fraction(0), sum((v for r, p, v in unplanned if r == rank and p != "forward"), Fraction(0)),
                          0, 0, None, True) for rank in range(len(gathered)))))
    steps = [statistics.median(record.steps[i].step_s for record in gathered)
             for i in range(len(gathered[0].steps))]
    report = the_plan.report
    return DistributedRun(
        spec=report.spec.label, input=tuple(report.input), batch=report.batch, dtype=report.dtype,
        strategy=the_plan.strategy, devices=the_plan.devices, backend=backend, device=gathered[0].device,
        warmup=options.warmup, repeats=options.repeats, torch=torch.__version__,
        step_s=statistics.median(steps) if steps else None, layers=tuple(layers),
        optimizer=options.optimizer if sharded else None)


# ------------------------------------------------------------------ launching

@contextlib.contextmanager
def quiet_spawn() -> Iterator[None]:
    """Hush torch.multiprocessing's 'Terminating process … via signal SIGTERM' warnings: when one worker fails,
    stopping the others is the expected shutdown, and the failure itself is reported in one line."""
    log = logging.getLogger("torch.multiprocessing.spawn")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _spawned(index: int, options: Options, port: int, result_path: str) -> None:
    os.environ.update({"RANK": str(index), "LOCAL_RANK": str(index), "WORLD_SIZE": str(options.devices),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(max(1, torch.get_num_threads() // options.devices))
    worker(options, result_path if index == 0 else None)


def bench_distributed(options: Options) -> DistributedRun | None:
    """Under torchrun: this process is one worker (rank 0 returns the result). Alone: start the workers."""
    if launched_by_torchrun():
        world = int(os.environ["WORLD_SIZE"])
        if world != options.devices:
            raise DeviceError(f"--devices {options.devices} but torchrun started {world} processes")
        prepare(options, world)  # every rank refuses alike, before joining the group
        return worker(options)
    if options.gpu and torch.cuda.device_count() < options.devices:
        raise DeviceError(f"--gpu --devices {options.devices}: only {torch.cuda.device_count()} CUDA devices here")
    most = max(LOCAL_PROCESSES, os.cpu_count() or 1)
    if not options.gpu and options.devices > most:
        raise DeviceError(f"--devices {options.devices}: bench starts one process per device on this machine, at "
                          f"most {most} here (its CPU count, or {LOCAL_PROCESSES}); under torchrun, as many as it "
                          "starts")
    prepare(options, options.devices)  # bad input: one line, before any worker starts
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as folder, quiet_spawn():
        path = os.path.join(folder, "result.pickle")
        try:
            mp.start_processes(_spawned, args=(options, free_port(), path), nprocs=options.devices, join=True,
                               start_method="spawn")
        except mp.ProcessRaisedException as error:
            lines = [line for line in str(error).strip().splitlines() if line.strip()]
            raise DeviceError(f"a worker failed: {lines[-1] if lines else error}") from None
        with open(path, "rb") as handle:
            return pickle.load(handle)  # our own worker's record, in our own private folder
