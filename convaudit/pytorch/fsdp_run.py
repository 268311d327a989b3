"""`bench --devices N --strategy fsdp`: torch's own fully_shard runs the model, and we measure what it holds and
moves. Imports torch.

Nothing here does what FSDP does: the model built from the spec (builder.py) gets `fully_shard` on every layer
that has parameters, then on the root, exactly the units the plan (core/plan/sharding.py) assumes, and trains
with a torch optimizer. Measured, on each process:

  parameters       Σ p.to_local().numel() over the layer's DTensor parameters (the real rows of its shards)
  gradients        Σ p.grad.to_local().numel() after the backward
  optimizer state  Σ of the local elements of every optimizer-state tensor shaped like its parameter (momentum,
                   Adam's exp_avg and exp_avg_sq; Adam's step counter, one scalar per parameter, is left out)
  bytes            every collective FSDP issues, seen by `CollectiveLog` (torch's CommDebugMode, which also
                   keeps each tensor's size): an all-gather of an S-byte output and a reduce-scatter of an S-byte
                   input counted by core/collectives.py, as the plan counts them.

The collectives are attributed to layers in the order FSDP issues them: forward all-gathers in the layers'
order, backward all-gathers and reduce-scatters in reverse (a collective beyond the plan's is `unplanned`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.tensor.debug import CommDebugMode

from convaudit.core import collectives
from convaudit.core.plan import Plan
from convaudit.pytorch.builder import build_model
from convaudit.pytorch.measuring import UNPLANNED, Measured, Step
from convaudit.pytorch.runtime import synchronize

OPTIMIZERS: dict[str, Callable[[Any], torch.optim.Optimizer]] = {
    "sgd": lambda params: torch.optim.SGD(params, lr=1e-3),
    "momentum": lambda params: torch.optim.SGD(params, lr=1e-3, momentum=0.9),
    "adam": lambda params: torch.optim.Adam(params, lr=1e-3),
}


class CollectiveLog(CommDebugMode):
    """torch's CommDebugMode, keeping each all-gather's and reduce-scatter's bytes as core/collectives.py
    counts them, with the phase (set by the caller) it ran in."""

    def __init__(self, world: int):
        super().__init__()
        self.world = world
        self.phase = "forward"
        self.calls: list[tuple[str, str, Fraction]] = []  # (kind, phase, bytes received by this process)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        packet = getattr(func, "_overloadpacket", None)
        if packet is torch.ops.c10d._allgather_base_:  # (output, input, …): S = the gathered output
            gathered = args[0]
            self.calls.append(("all-gather", self.phase,
                               collectives.all_gather(gathered.numel() * gathered.element_size(), self.world)))
        elif packet is torch.ops.c10d._reduce_scatter_base_:  # (output, input, …): S = the input
            reduced = args[1]
            self.calls.append(("reduce-scatter", self.phase,
                               collectives.reduce_scatter(reduced.numel() * reduced.element_size(), self.world)))
        elif packet is not None and packet in COLLECTIVE_OPS:
            self.calls.append((str(packet), self.phase, Fraction(0)))  # a collective the plan has no formula for
        return super().__torch_dispatch__(func, types, args, kwargs)


def _collective_ops() -> set[Any]:
    from torch.distributed.tensor.debug._comm_mode import c10d_collective_ops

    return set(c10d_collective_ops)


COLLECTIVE_OPS = _collective_ops()


def attribute(the_plan: Plan, calls: list[tuple[str, str, Fraction]]) -> dict[tuple[str, str], Fraction]:
    """Bytes per (layer, phase): each kind's collectives matched to the layers that plan one, in FSDP's order."""
    expected: dict[tuple[str, str], list[str]] = {}
    for item in the_plan.layers:
        for exchange in item.exchanges:
            expected.setdefault((exchange.kind, exchange.phase), []).append(item.name)
    for key in expected:
        if key[1] != "forward":
            expected[key].reverse()  # backward runs the layers last to first
    measured: dict[tuple[str, str], Fraction] = {}
    taken: dict[tuple[str, str], int] = {}
    for kind, phase, received in calls:
        names = expected.get((kind, phase), [])
        index = taken.get((kind, phase), 0)
        taken[(kind, phase)] = index + 1
        name = names[index] if index < len(names) else UNPLANNED
        measured[(name, phase)] = measured.get((name, phase), Fraction(0)) + received
    return measured


def local_elements(tensor: torch.Tensor) -> int:
    to_local = getattr(tensor, "to_local", None)
    return (to_local() if to_local is not None else tensor).numel()


def run_fsdp(the_plan: Plan, rank: int, device: torch.device, dtype: torch.dtype, warmup: int, repeats: int,
             optimizer_name: str) -> Measured:
    """Train the fully-sharded model for warmup + repeats steps; this process's measurements of the last."""
    from torch.distributed.fsdp import fully_shard

    # Two warnings that are no fault of the run: the root returns a view (its last layer's output, a flatten or
    # a select) that nothing modifies in place, and CommDebugMode's module tracker fires on the first layer,
    # whose input needs no gradient.
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
    warnings.filterwarnings("ignore", message="Full backward hook is firing when gradients are computed with "
                                              "respect to module outputs since no inputs require gradients")
    report = the_plan.report
    world = dist.get_world_size()
    model = build_model(report).to(device=device, dtype=dtype).train()
    for item in the_plan.layers:
        module = model.module_for(item.name)
        if any(True for _ in module.parameters()):
            fully_shard(module)  # one unit per layer with parameters
    fully_shard(model)  # the root
    optimizer = OPTIMIZERS[optimizer_name]([p for p in model.parameters() if p.requires_grad])
    batch = the_plan.layers[0].batches[rank] if the_plan.layers else report.batch
    torch.manual_seed(1 + rank)
    x = torch.randn((batch, *report.input), device=device, dtype=dtype)
    steps = []
    gradients: dict[str, int] = {}
    for step in range(warmup + repeats):
        optimizer.zero_grad(set_to_none=True)
        log = CollectiveLog(world)
        synchronize(device)
        began = time.perf_counter()
        with log:
            outputs = model(x)
            outputs = outputs if isinstance(outputs, tuple) else (outputs,)
            loss = sum(out.float().sum() for out in outputs)
            log.phase = "backward"
            if loss.requires_grad:
                loss.backward()
        synchronize(device)
        seconds = time.perf_counter() - began
        if step == warmup + repeats - 1:
            gradients = {item.name: sum(local_elements(p.grad) for p in model.module_for(item.name).parameters()
                                        if p.grad is not None) for item in the_plan.layers}
        optimizer.step()
        if step >= warmup:
            steps.append(Step(attribute(the_plan, log.calls), None, seconds))
    state = {item.name: sum(local_elements(value) for p in model.module_for(item.name).parameters()
                            for value in optimizer.state.get(p, {}).values()
                            if isinstance(value, torch.Tensor) and value.shape == p.shape)
             for item in the_plan.layers}
    params = {item.name: sum(local_elements(p) for p in model.module_for(item.name).parameters())
              for item in the_plan.layers}
    return Measured(params, steps, gradients, state)
