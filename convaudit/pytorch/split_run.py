"""`bench --devices` for columns, model and data: each process builds its own share of every layer, as the
plan lays it out, and moves tensors only with torch collectives, as the plan's exchanges say. Imports torch.

  gather      all_to_all_single: each process sends every other the channels it holds and that one reads
              (forward); backward sends the gradients of received channels back to their owners, which add them.
  all-reduce  all_reduce (sum): a row-parallel layer's output (forward), a replicated input's gradient
              (backward), each layer's gradients (data).

Bytes are the sizes of the tensors that really went through each collective, counted by core/collectives.py.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from convaudit.core import collectives
from convaudit.core.layers import REGISTRY
from convaudit.core.plan import ALL, Exchange, LayerPlan, Plan, column_owners, held_by
from convaudit.errors import DeviceError
from convaudit.pytorch.builder import build_layer, build_model, count_parameters
from convaudit.pytorch.measuring import Measured, Meter
from convaudit.pytorch.runtime import synchronize


def tensor_bytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


class Gather(torch.autograd.Function):
    """all_to_all_single of the channels each process reads from the others; backward returns gradients."""

    @staticmethod
    def forward(ctx: Any, local: torch.Tensor, send: list[torch.Tensor], receive: list[int], layer: str,
                meter: Meter, returns: bool) -> torch.Tensor:
        ctx.send, ctx.receive, ctx.layer, ctx.meter, ctx.returns = send, receive, layer, meter, returns
        ctx.local_shape = local.shape
        rest = tuple(local.shape[2:])
        per_channel = local.shape[0] * max(1, math.prod(rest))
        outgoing = torch.cat([local.index_select(1, idx).transpose(0, 1).reshape(-1) for idx in send])
        incoming = torch.empty(sum(receive) * per_channel, dtype=local.dtype, device=local.device)
        with meter.timed(layer):
            dist.all_to_all_single(incoming, outgoing.contiguous(), [n * per_channel for n in receive],
                                   [len(idx) * per_channel for idx in send])
        rank = dist.get_rank()
        others = sum(n for peer, n in enumerate(receive) if peer != rank)
        meter.add(layer, "forward", collectives.gather(others * per_channel * local.element_size()))
        received = incoming.reshape(sum(receive), local.shape[0], *rest).transpose(0, 1)
        return received.contiguous()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        grad_local = None
        if ctx.returns:
            shape = ctx.local_shape
            rest = tuple(shape[2:])
            per_channel = shape[0] * max(1, math.prod(rest))
            outgoing = grad.transpose(0, 1).reshape(-1).contiguous()
            incoming = torch.empty(sum(len(idx) for idx in ctx.send) * per_channel, dtype=grad.dtype,
                                   device=grad.device)
            with ctx.meter.timed(ctx.layer):
                dist.all_to_all_single(incoming, outgoing, [len(idx) * per_channel for idx in ctx.send],
                                       [n * per_channel for n in ctx.receive])
            rank = dist.get_rank()
            returned = sum(len(idx) for peer, idx in enumerate(ctx.send) if peer != rank)
            ctx.meter.add(ctx.layer, "backward", collectives.gather(returned * per_channel * grad.element_size()))
            parts = incoming.reshape(-1, shape[0], *rest).transpose(0, 1)
            grad_local = torch.zeros(shape, dtype=grad.dtype, device=grad.device)
            grad_local.index_add_(1, torch.cat(ctx.send), parts)
        return grad_local, None, None, None, None, None


def all_reduce(tensor: torch.Tensor, layer: str, phase: str, meter: Meter) -> torch.Tensor:
    """Sum `tensor` over the processes in place; count 2·(N−1)/N of its bytes."""
    with meter.timed(layer):
        dist.all_reduce(tensor)
    meter.add(layer, phase, collectives.all_reduce(tensor_bytes(tensor), dist.get_world_size()))
    return tensor


class AllReduceForward(torch.autograd.Function):
    """Megatron's g: sum the partial outputs of a row-parallel layer; the gradient passes unchanged."""

    @staticmethod
    def forward(ctx: Any, partial: torch.Tensor, layer: str, meter: Meter) -> torch.Tensor:
        return all_reduce(partial.clone(), layer, "forward", meter)

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
        return all_reduce(grad.clone(), ctx.layer, "backward", ctx.meter), None, None


# ------------------------------------------------------------------ one process's share of the model

def column_of(item: LayerPlan) -> tuple[int, ...]:
    """Output owners before any output gather (a column layer that gathers its output ends replicated)."""
    return column_owners(item.layer.output_shape[0], item.shares.devices)


def shard_module(item: LayerPlan, rank: int) -> nn.Module:
    """This rank's part of one layer, built by the same builders as the whole model."""
    problem = refusal(item, rank)
    if problem is not None:
        raise DeviceError(problem)
    layer = item.layer
    spec, shapes = layer.spec, layer.input_shapes
    role = REGISTRY[layer.type].plan_role
    reads = [read_set.of(rank) for read_set in item.reads]
    if item.mode == "replicated" or role in ("concat", "add"):
        return build_layer(spec, shapes)
    shape = (len(reads[0]),) + tuple(shapes[0][1:])  # only the channels this rank reads
    if item.mode == "follow":
        return build_layer(spec, (shape,))
    split = REGISTRY[layer.type].column_split(list(shapes), spec.params)
    assert split is not None
    if item.mode == "row":
        params = split.share_params(spec.params, None, reads[0], layer.output_shape[0], bias=rank == 0)
    else:  # column: this rank's output channels
        outputs = [c for c, owner in enumerate(column_of(item)) if owner == rank]
        params = split.share_params(spec.params, outputs, reads[0], layer.output_shape[0], bias=True)
    return build_layer(replace(spec, params=params), (shape,))


def refusal(item: LayerPlan, rank: int) -> str | None:
    """Why this rank cannot build its share of the layer, from the plan alone (no torch), or None.

    The parent asks it for every layer and rank before any worker starts, so bad input is one line."""
    layer = item.layer
    if item.mode.startswith("pinned"):
        return "bench --devices does not run placement pins yet; `convaudit split` plans them"
    if not item.mode.startswith("column"):
        return None
    outputs = sum(1 for owner in column_of(item) if owner == rank)
    if not outputs:
        return (f"{layer.name}: device {rank} would hold none of its {layer.output_shape[0]} output channels; "
                "bench --devices needs at most as many devices as a split layer has channels")
    split = REGISTRY[layer.type].column_split(list(layer.input_shapes), layer.spec.params)
    per_group = split.cuts_a_group(outputs, layer.output_shape[0]) if split is not None else None
    if per_group is not None and split is not None and split.table is None:  # a share must hold whole groups
        return (f"{layer.name}: {outputs} output maps on device {rank} cut a group of {per_group}; "
                f"bench --devices needs groups divisible by the devices")
    return None


def check_runnable(the_plan: Plan) -> None:
    """Raise the first layer a worker could not build, before any worker starts (data and fsdp build the whole
    model)."""
    if the_plan.strategy not in ("columns", "model"):
        return
    for item in the_plan.layers:
        for rank in range(the_plan.devices):
            problem = refusal(item, rank)
            if problem is not None:
                raise DeviceError(problem)


def forward_gather(exchanges: tuple[Exchange, ...], tensor: str) -> Exchange | None:
    return next((e for e in exchanges if e.kind == "gather" and e.phase == "forward" and e.moves == tensor), None)


class Shard:
    """One rank's modules and the index tensors that pick the channels each layer reads, on the device."""

    def __init__(self, the_plan: Plan, rank: int, device: torch.device, dtype: torch.dtype):
        self.plan, self.rank, self.device = the_plan, rank, device
        self.world = the_plan.devices
        self.modules = nn.ModuleDict({f"l{index}": shard_module(item, rank)
                                      for index, item in enumerate(the_plan.layers)})
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
                wanted = item.reads[slot].of(rank)
                for exchange in item.exchanges:
                    if exchange.moves == source and exchange.kind == "all-reduce" and exchange.phase == "backward":
                        local = AllReduceBackward.apply(local, layer.name, meter)
                gather = forward_gather(item.exchanges, source)
                inputs.append(self.assemble(item, local, held, owners[source], wanted, gather, meter))
            out = self.modules[f"l{index}"](*inputs)
            for exchange in item.exchanges:
                if exchange.kind == "all-reduce" and exchange.phase == "forward":
                    out = AllReduceForward.apply(out, layer.name, meter)
            own = forward_gather(item.exchanges, layer.name)
            if own is not None:  # a column layer gathering its output for replicated readers
                column = column_of(item)
                out = self.assemble(item, out, held_by(column, rank), column, tuple(range(len(column))), own, meter)
            values[layer.name] = (out, held_by(item.owners, rank))
            owners[layer.name] = item.owners
        return [values[name][0] for name in self.plan.report.spec.outputs if name in values]

    def assemble(self, item: LayerPlan, local: torch.Tensor, held: tuple[int, ...], owners: tuple[int, ...],
                 wanted: tuple[int, ...], gather: Exchange | None, meter: Meter) -> torch.Tensor:
        """The channels `wanted`, in order: the local ones picked, the others received through the gather."""
        position = {c: i for i, c in enumerate(held)}
        if gather is None:
            if tuple(wanted) == tuple(held):
                return local
            return local.index_select(1, self.index([position[c] for c in wanted]))
        rank, world = self.rank, self.world
        mine = gather.channels(rank)
        send = [self.index([position[c] for c in gather.channels(peer) if owners[c] == rank])
                if peer != rank else self.index([]) for peer in range(world)]
        receive = [sum(1 for c in mine if owners[c] == peer) if peer != rank else 0 for peer in range(world)]
        returns = any(e.kind == "gather" and e.phase == "backward" and e.moves == gather.moves
                      for e in item.exchanges)
        received = Gather.apply(local, send, receive, item.name, meter, returns)
        # received channels come grouped by sender, each group in ascending order
        order = [c for peer in range(world) for c in mine if owners[c] == peer]
        pool = torch.cat([local, received], dim=1)
        where = {c: position[c] for c in held}
        where.update({c: len(held) + i for i, c in enumerate(order)})
        return pool.index_select(1, self.index([where[c] for c in wanted]))

    def parameters_per_layer(self) -> dict[str, int]:
        return {item.name: sum(count_parameters(self.modules[f"l{index}"]))
                for index, item in enumerate(self.plan.layers)}


# ------------------------------------------------------------------ the two runs

def run_split(the_plan: Plan, rank: int, device: torch.device, dtype: torch.dtype, warmup: int,
              repeats: int) -> Measured:
    """columns and model: this rank's shard, the same input on every rank (the network's input is replicated)."""
    meter = Meter(device)
    shard = Shard(the_plan, rank, device, dtype)
    report = the_plan.report
    torch.manual_seed(1)
    x = torch.randn((report.batch, *report.input), device=device, dtype=dtype)
    steps = []
    for step in range(warmup + repeats):
        meter.reset()
        shard.modules.zero_grad(set_to_none=True)
        synchronize(device)
        began = time.perf_counter()
        outputs = shard.forward(x, meter)
        loss = sum(out.float().sum() for out in outputs)
        if isinstance(loss, torch.Tensor) and loss.requires_grad:
            loss.backward()
        synchronize(device)
        if step >= warmup:
            steps.append(meter.step(time.perf_counter() - began))
    return Measured(shard.parameters_per_layer(), steps)


def run_data(the_plan: Plan, rank: int, device: torch.device, dtype: torch.dtype, warmup: int,
             repeats: int) -> Measured:
    """data: the whole model on every rank, its share of the batch, each layer's gradients all-reduced."""
    from convaudit.pytorch.verify import forward_backward

    meter = Meter(device)
    report = the_plan.report
    model = build_model(report).to(device=device, dtype=dtype).train()
    batch = the_plan.layers[0].batches[rank]
    torch.manual_seed(1 + rank)
    x = torch.randn((batch, *report.input), device=device, dtype=dtype)
    steps = []
    for step in range(warmup + repeats):
        meter.reset()
        model.zero_grad(set_to_none=True)
        synchronize(device)
        began = time.perf_counter()
        forward_backward(model, x)
        for layer in report.layers:
            grads = [p.grad.reshape(-1) for p in model.module_for(layer.name).parameters() if p.grad is not None]
            if grads:
                all_reduce(torch.cat(grads), layer.name, "backward", meter)
        synchronize(device)
        if step >= warmup:
            steps.append(meter.step(time.perf_counter() - began))
    params = {layer.name: sum(count_parameters(model.module_for(layer.name))) for layer in report.layers}
    return Measured(params, steps)

