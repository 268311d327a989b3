"""Run a split plan for real with torch.distributed, and measure what crosses between the processes. Imports torch.

Started the standard way: under `torchrun --nproc-per-node N -m convaudit bench ... --devices N` each process
reads RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; `convaudit bench --devices N` alone starts N workers
itself with torch.multiprocessing and the same environment. gloo on the CPU, NCCL on GPUs.

Each process builds only its own share of every layer, as the plan (core/plan.py) lays it out, and moves
tensors only with torch collectives, as the plan's exchanges say:

  gather      all_to_all_single: each process sends every other the channels it holds and that one reads
              (forward); backward sends the gradients of received channels back to their owners, which add them.
  all-reduce  all_reduce (sum): a row-parallel layer's output (forward), a replicated input's gradient
              (backward), each layer's gradients (data).

Measured bytes are the sizes of the tensors that really went through each collective, counted as the plan
counts them: what a process receives from the others for a gather, and the ring convention 2·(N−1)/N·S for
an all-reduce of S bytes (the collective library picks its own algorithm; the count is the convention's).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from fractions import Fraction
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from convaudit.core.analysis import LayerResult, analyze
from convaudit.core.plan import ALL, Exchange, LayerPlan, Plan, held_by, plan
from convaudit.errors import DeviceError
from convaudit.pytorch.builder import TORCH_DTYPES, build_layer, build_model, count_parameters
from convaudit.pytorch.runtime import synchronize

ENV_KEYS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Options:
    spec: str
    input_size: tuple[int, int] | None  # (height, width), or the spec's own
    variant: str | None
    batch: int
    dtype: str
    strategy: str
    devices: int
    warmup: int
    repeats: int
    gpu: bool


def launched_by_torchrun() -> bool:
    return all(key in os.environ for key in ENV_KEYS)


# ------------------------------------------------------------------ measuring

class Meter:
    """Bytes received and seconds spent in collectives, per layer and phase, for the current step."""

    def __init__(self, device: torch.device):
        self.device = device
        self.layer = ""
        self.bytes: dict[tuple[str, str], Fraction] = {}
        self.seconds: dict[str, float] = {}

    def reset(self) -> None:
        self.bytes, self.seconds = {}, {}

    @contextlib.contextmanager
    def timed(self, layer: str) -> Iterator[None]:
        synchronize(self.device)
        began = time.perf_counter()
        yield
        synchronize(self.device)
        self.seconds[layer] = self.seconds.get(layer, 0.0) + time.perf_counter() - began

    def add(self, layer: str, phase: str, nbytes: Fraction) -> None:
        self.bytes[(layer, phase)] = self.bytes.get((layer, phase), Fraction(0)) + nbytes


def ring_bytes(tensor: torch.Tensor, world: int) -> Fraction:
    return Fraction(2 * (world - 1), world) * tensor.numel() * tensor.element_size()


class Gather(torch.autograd.Function):
    """all_to_all_single of the channels each process reads from the others; backward returns gradients."""

    @staticmethod
    def forward(ctx: Any, local: torch.Tensor, send: list[torch.Tensor], receive: list[int], layer: str,
                meter: Meter, returns: bool) -> torch.Tensor:
        ctx.send, ctx.receive, ctx.layer, ctx.meter, ctx.returns = send, receive, layer, meter, returns
        ctx.local_shape = local.shape
        rest = tuple(local.shape[2:])
        per_channel = local.shape[0] * max(1, _elements(rest))
        outgoing = torch.cat([local.index_select(1, idx).transpose(0, 1).reshape(-1) for idx in send])
        incoming = torch.empty(sum(receive) * per_channel, dtype=local.dtype, device=local.device)
        with meter.timed(layer):
            dist.all_to_all_single(incoming, outgoing.contiguous(), [n * per_channel for n in receive],
                                   [len(idx) * per_channel for idx in send])
        rank = dist.get_rank()
        others = sum(n for peer, n in enumerate(receive) if peer != rank)
        meter.add(layer, "forward", Fraction(others * per_channel * local.element_size()))
        received = incoming.reshape(sum(receive), local.shape[0], *rest).transpose(0, 1)
        return received.contiguous()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        grad_local = None
        if ctx.returns:
            shape = ctx.local_shape
            rest = tuple(shape[2:])
            per_channel = shape[0] * max(1, _elements(rest))
            outgoing = grad.transpose(0, 1).reshape(-1).contiguous()
            incoming = torch.empty(sum(len(idx) for idx in ctx.send) * per_channel, dtype=grad.dtype,
                                   device=grad.device)
            with ctx.meter.timed(ctx.layer):
                dist.all_to_all_single(incoming, outgoing, [len(idx) * per_channel for idx in ctx.send],
                                       [n * per_channel for n in ctx.receive])
            rank = dist.get_rank()
            returned = sum(len(idx) for peer, idx in enumerate(ctx.send) if peer != rank)
            ctx.meter.add(ctx.layer, "backward", Fraction(returned * per_channel * grad.element_size()))
            parts = incoming.reshape(-1, shape[0], *rest).transpose(0, 1)
            grad_local = torch.zeros(shape, dtype=grad.dtype, device=grad.device)
            grad_local.index_add_(1, torch.cat(ctx.send), parts)
        return grad_local, None, None, None, None, None


class AllReduceForward(torch.autograd.Function):
    """Megatron's g: sum the partial outputs of a row-parallel layer; the gradient passes unchanged."""

    @staticmethod
    def forward(ctx: Any, partial: torch.Tensor, layer: str, meter: Meter) -> torch.Tensor:
        total = partial.clone()
        with meter.timed(layer):
            dist.all_reduce(total)
        meter.add(layer, "forward", ring_bytes(total, dist.get_world_size()))
        return total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        return grad, None, None


class AllReduceBackward(torch.autograd.Function):
    """Megatron's f: identity forward; the partial gradients of a replicated input are summed in backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, layer: str, meter: Meter) -> torch.Tensor:
        ctx.layer, ctx.meter = layer, meter
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        total = grad.clone()
        with ctx.meter.timed(ctx.layer):
            dist.all_reduce(total)
        ctx.meter.add(ctx.layer, "backward", ring_bytes(total, dist.get_world_size()))
        return total, None, None


def _elements(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


# ------------------------------------------------------------------ one process's share of the model

def shard_module(item: LayerPlan, rank: int, world: int) -> nn.Module | None:
    """This rank's part of one layer, built by the same builders as the whole model."""
    problem = refusal(item, rank)
    if problem is not None:
        raise DeviceError(problem)
    layer = item.layer
    spec, shapes = layer.spec, layer.input_shapes
    reads = [per_device[rank] for per_device in item.reads]
    mode = item.mode
    if mode == "replicated" or (mode == "follow" and layer.type in ("concat", "add")):
        return build_layer(spec, shapes)
    if mode == "follow":
        shape = (len(reads[0]),) + tuple(shapes[0][1:])  # only the channels this rank holds
        return build_layer(spec, (shape,))
    params = dict(spec.params)
    if mode == "row":
        shape = (len(reads[0]),) + tuple(shapes[0][1:])
        if layer.type == "conv":
            params.update(groups=1)
        else:
            params["in"] = _elements(shape)
        params["bias"] = params.get("bias", False) and rank == 0
        return build_layer(replace(spec, params=params), (shape,))
    # column: this rank's output channels
    outputs = [c for c, owner in enumerate(column_of(item)) if owner == rank]
    params["out"] = len(outputs)
    shape = (len(reads[0]),) + tuple(shapes[0][1:])
    if layer.type == "conv":
        table = params.get("connections")
        if table is not None:
            position = {c: i for i, c in enumerate(reads[0])}
            params["connections"] = tuple(tuple(position[c] for c in table[out]) for out in outputs)
        else:
            groups, cout = params["groups"], layer.output_shape[0]
            per_group = cout // groups
            params["groups"] = max(1, len(outputs) // per_group) if groups > 1 else 1
    return build_layer(replace(spec, params=params), (shape,))


def refusal(item: LayerPlan, rank: int) -> str | None:
    """Why this rank cannot build its share of the layer, from the plan alone (no torch), or None.

    The parent asks it for every layer and rank before any worker starts, so bad input is one line."""
    layer = item.layer
    if item.mode.startswith("pinned"):
        return "bench --devices does not run placement pins yet; `convaudit split` plans them"
    if not item.mode.startswith("column") or layer.type != "conv" or layer.spec.params.get("connections") is not None:
        return None
    groups = layer.spec.params["groups"]
    per_group = layer.output_shape[0] // groups
    outputs = sum(1 for owner in column_of(item) if owner == rank)
    if groups > 1 and outputs % per_group:  # a grouped conv's share must hold whole groups
        return (f"{layer.name}: {outputs} output maps on device {rank} cut a group of {per_group}; "
                f"bench --devices needs groups divisible by the devices")
    return None


def check_runnable(the_plan: Plan) -> None:
    """Raise the first layer a worker could not build, before any worker starts (`data` builds the whole model)."""
    if the_plan.strategy == "data":
        return
    for item in the_plan.layers:
        for rank in range(the_plan.devices):
            problem = refusal(item, rank)
            if problem is not None:
                raise DeviceError(problem)


def column_of(item: LayerPlan) -> tuple[int, ...]:
    """Output owners before any output gather (a column layer that gathers its output ends replicated)."""
    from convaudit.core.plan import column_owners

    return column_owners(item.layer.output_shape[0], len(item.shares))


class Shard:
    """One rank's modules and the index tensors that pick the channels each layer reads, on the device."""

    def __init__(self, the_plan: Plan, rank: int, device: torch.device, dtype: torch.dtype):
        self.plan, self.rank, self.device = the_plan, rank, device
        self.world = the_plan.devices
        self.modules = nn.ModuleDict()
        for index, item in enumerate(the_plan.layers):
            module = shard_module(item, rank, self.world)
            if module is not None:
                self.modules[f"l{index}"] = module
        self.modules.to(device=device, dtype=dtype)

    def index(self, channels: tuple[int, ...] | list[int]) -> torch.Tensor:
        return torch.tensor(list(channels), dtype=torch.long, device=self.device)

    def forward(self, x: torch.Tensor, meter: Meter) -> list[torch.Tensor]:
        rank = self.rank
        # every tensor as (local part, global channel of each local position)
        values: dict[str, tuple[torch.Tensor, tuple[int, ...]]] = {"input": (x, tuple(range(x.shape[1])))}
        owners: dict[str, tuple[int, ...]] = {"input": (ALL,) * x.shape[1]}
        for index, item in enumerate(self.plan.layers):
            layer = item.layer
            inputs = []
            for slot, source in enumerate(layer.spec.inputs):
                local, held = values[source]
                wanted = item.reads[slot][rank]
                for exchange in item.exchanges:
                    if exchange.moves == source and exchange.kind == "all-reduce" and exchange.phase == "backward":
                        local = AllReduceBackward.apply(local, layer.name, meter)
                gather = _forward_gather(item.exchanges, source)
                inputs.append(self.assemble(local, held, owners[source], wanted, gather, layer.name, meter))
            if item.mode == "row" or item.mode == "follow" or item.mode.startswith("column") \
                    or item.mode == "replicated":
                out = self.modules[f"l{index}"](*inputs)
            else:  # pragma: no cover - every mode is handled above
                raise DeviceError(f"{layer.name}: mode {item.mode} cannot run")
            for exchange in item.exchanges:
                if exchange.kind == "all-reduce" and exchange.phase == "forward":
                    out = AllReduceForward.apply(out, layer.name, meter)
            own = _forward_gather(item.exchanges, layer.name)
            if own is not None:  # a column layer gathering its output for replicated readers
                column = column_of(item)
                mine = held_by(column, rank)
                out = self.assemble(out, mine, column, tuple(range(len(column))), own, layer.name, meter)
            values[layer.name] = (out, held_by(item.owners, rank))
            owners[layer.name] = item.owners
        outputs = [values[name][0] for name in self.plan.report.spec.outputs if name in values]
        return outputs

    def assemble(self, local: torch.Tensor, held: tuple[int, ...], owners: tuple[int, ...], wanted: tuple[int, ...],
                 gather: Exchange | None, layer: str, meter: Meter) -> torch.Tensor:
        """The channels `wanted`, in order: the local ones picked, the others received through the gather."""
        position = {c: i for i, c in enumerate(held)}
        if gather is None:
            if tuple(wanted) == tuple(held):
                return local
            return local.index_select(1, self.index([position[c] for c in wanted]))
        rank, world = self.rank, self.world
        send = [self.index([position[c] for c in gather.channels[peer] if owners[c] == rank])
                if peer != rank else self.index([]) for peer in range(world)]
        receive = [sum(1 for c in gather.channels[rank] if owners[c] == peer) if peer != rank else 0
                   for peer in range(world)]
        returns = any(e.kind == "gather" and e.phase == "backward" and e.moves == gather.moves
                      for e in self.plan.layers[self._index_of(layer)].exchanges)
        received = Gather.apply(local, send, receive, layer, meter, returns)
        # received channels come grouped by sender, each group in ascending order
        order = [c for peer in range(world) for c in gather.channels[rank] if owners[c] == peer]
        pool = torch.cat([local, received], dim=1)
        where = {c: position[c] for c in held}
        where.update({c: len(held) + i for i, c in enumerate(order)})
        return pool.index_select(1, self.index([where[c] for c in wanted]))

    def _index_of(self, name: str) -> int:
        return next(i for i, item in enumerate(self.plan.layers) if item.name == name)

    def parameters_per_layer(self) -> dict[str, int]:
        counts = {}
        for index, item in enumerate(self.plan.layers):
            key = f"l{index}"
            counts[item.name] = sum(count_parameters(self.modules[key])) if key in self.modules else 0
        return counts


def _forward_gather(exchanges: tuple[Exchange, ...], tensor: str) -> Exchange | None:
    return next((e for e in exchanges if e.kind == "gather" and e.phase == "forward" and e.moves == tensor), None)


# ------------------------------------------------------------------ a worker

def worker(options: Options, result_path: str | None = None) -> dict[str, Any] | None:
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
        with open(result_path, "w", encoding="utf-8") as handle:
            json.dump(result, handle)
    return result


def plan_for(options: Options, world: int) -> Plan:
    """The split plan the workers run: the spec analysed and planned over `world` devices."""
    from convaudit.spec.library import load

    network = load(options.spec, options.variant)
    if options.input_size is not None:
        network = network.with_input(*options.input_size)
    report = analyze(network, options.batch, options.dtype)
    if report.halted:
        raise DeviceError(f"{report.halted.layer.name}: {report.halted.problem.message} (see `convaudit check`)")
    return plan(report, options.strategy, world, pins=network.placement, pin_where=network.placement_where)


def measure(options: Options, device: torch.device, backend: str) -> dict[str, Any] | None:
    """Run one plan in the process group already started; rank 0 returns every rank's measurements."""
    rank, world = dist.get_rank(), dist.get_world_size()
    the_plan = plan_for(options, world)
    report = the_plan.report
    torch.manual_seed(0)
    dtype = TORCH_DTYPES[options.dtype]
    meter = Meter(device)
    if options.strategy == "data":
        params, steps = _run_data(the_plan, report.layers, rank, device, dtype, meter, options)
    else:
        params, steps = _run_split(the_plan, rank, device, dtype, meter, options)
    mine = {"rank": rank, "params": params, "steps": steps, "device": _describe(device)}
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, mine)
    return collect(the_plan, gathered, backend, options) if rank == 0 else None


def _describe(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as info:
        name = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), name)
    return f"CPU {name} ({torch.get_num_threads()} threads per process)"


def _step_record(meter: Meter, seconds: float) -> dict[str, Any]:
    return {"bytes": {f"{layer}|{phase}": str(value) for (layer, phase), value in meter.bytes.items()},
            "comm_s": dict(meter.seconds), "step_s": seconds}


def _run_split(the_plan: Plan, rank: int, device: torch.device, dtype: torch.dtype, meter: Meter,
               options: Options) -> tuple[dict[str, int], list[dict[str, Any]]]:
    shard = Shard(the_plan, rank, device, dtype)
    report = the_plan.report
    torch.manual_seed(1)  # the same input on every rank: the network's input is replicated
    x = torch.randn((report.batch, *report.input), device=device, dtype=dtype)
    steps = []
    for step in range(options.warmup + options.repeats):
        meter.reset()
        shard.modules.zero_grad(set_to_none=True)
        synchronize(device)
        began = time.perf_counter()
        outputs = shard.forward(x, meter)
        loss = sum(out.float().sum() for out in outputs)
        if loss.requires_grad:
            loss.backward()
        synchronize(device)
        if step >= options.warmup:
            steps.append(_step_record(meter, time.perf_counter() - began))
    return shard.parameters_per_layer(), steps


def _run_data(the_plan: Plan, layers: tuple[LayerResult, ...], rank: int, device: torch.device,
              dtype: torch.dtype, meter: Meter, options: Options) -> tuple[dict[str, int], list[dict[str, Any]]]:
    from convaudit.pytorch.verify import forward_backward

    report = the_plan.report
    model = build_model(report).to(device=device, dtype=dtype).train()
    batch = the_plan.layers[0].batches[rank]
    torch.manual_seed(1 + rank)
    x = torch.randn((batch, *report.input), device=device, dtype=dtype)
    steps = []
    for step in range(options.warmup + options.repeats):
        meter.reset()
        model.zero_grad(set_to_none=True)
        synchronize(device)
        began = time.perf_counter()
        forward_backward(model, x)
        for layer in layers:
            grads = [p.grad.reshape(-1) for p in model.module_for(layer.name).parameters() if p.grad is not None]
            if not grads:
                continue
            flat = torch.cat(grads)
            with meter.timed(layer.name):
                dist.all_reduce(flat)
            meter.add(layer.name, "backward", ring_bytes(flat, dist.get_world_size()))
        synchronize(device)
        if step >= options.warmup:
            steps.append(_step_record(meter, time.perf_counter() - began))
    params = {layer.name: sum(count_parameters(model.module_for(layer.name))) for layer in layers}
    return params, steps


# ------------------------------------------------------------------ the result, plan beside measurement

def collect(the_plan: Plan, gathered: list[dict[str, Any]], backend: str, options: Options) -> dict[str, Any]:
    """Per layer and device: planned and measured bytes (forward, backward), parameters and communication time."""
    world = the_plan.devices
    layers = []
    for item in the_plan.layers:
        devices = []
        for rank in range(world):
            record = gathered[rank]
            last = record["steps"][-1] if record["steps"] else {"bytes": {}}
            measured = {phase: Fraction(last["bytes"].get(f"{item.name}|{phase}", "0"))
                        for phase in ("forward", "backward")}
            comm = [step["comm_s"].get(item.name, 0.0) for step in record["steps"]]
            share = item.shares[rank]
            devices.append({
                "device": rank,
                "planned_forward_bytes": str(share.received_forward),
                "measured_forward_bytes": str(measured["forward"]),
                "planned_backward_bytes": str(share.received_backward),
                "measured_backward_bytes": str(measured["backward"]),
                "planned_params": share.params, "measured_params": record["params"].get(item.name, 0),
                "comm_s": statistics.median(comm) if comm else 0.0,
                "same_every_step": all(step["bytes"] == last["bytes"] for step in record["steps"]),
            })
        layers.append({"name": item.name, "mode": item.mode, "devices": devices})
    step_times = [statistics.median(r["steps"][i]["step_s"] for r in gathered)
                  for i in range(len(gathered[0]["steps"]))]
    return {
        "spec": the_plan.report.spec.label, "input": list(the_plan.report.input), "batch": the_plan.report.batch,
        "dtype": the_plan.report.dtype, "strategy": the_plan.strategy, "devices": world, "backend": backend,
        "device": gathered[0]["device"], "warmup": options.warmup, "repeats": options.repeats,
        "torch": torch.__version__, "step_s": statistics.median(step_times) if step_times else None,
        "layers": layers,
        "bytes_match": all(d["planned_forward_bytes"] == d["measured_forward_bytes"]
                           and d["planned_backward_bytes"] == d["measured_backward_bytes"]
                           for layer in layers for d in layer["devices"]),
        "params_match": all(d["planned_params"] == d["measured_params"] for layer in layers for d in layer["devices"]),
    }


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


def bench_distributed(options: Options) -> dict[str, Any] | None:
    """Under torchrun: this process is one worker (rank 0 returns the result). Alone: start the workers."""
    if launched_by_torchrun():
        world = int(os.environ["WORLD_SIZE"])
        if world != options.devices:
            raise DeviceError(f"--devices {options.devices} but torchrun started {world} processes")
        check_runnable(plan_for(options, world))  # every rank refuses alike, before joining the group
        return worker(options)
    if options.gpu and torch.cuda.device_count() < options.devices:
        raise DeviceError(f"--gpu --devices {options.devices}: only {torch.cuda.device_count()} CUDA devices here")
    check_runnable(plan_for(options, options.devices))  # bad input: one line, before any worker starts
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as folder, quiet_spawn():
        path = os.path.join(folder, "result.json")
        try:
            mp.start_processes(_spawned, args=(options, free_port(), path), nprocs=options.devices, join=True,
                               start_method="spawn")
        except mp.ProcessRaisedException as error:
            lines = [line for line in str(error).strip().splitlines() if line.strip()]
            raise DeviceError(f"a worker failed: {lines[-1] if lines else error}") from None
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
