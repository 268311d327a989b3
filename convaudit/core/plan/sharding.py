"""Sharded data parallelism: fsdp (torch.distributed.fsdp.fully_shard, ZeRO-3), zero1 and zero2.

Every device runs its share of the batch through the whole network, as under `data`; what is split is the
state. Each parameter tensor (its shape from the layer type's `parameter_shapes`, as the PyTorch module holds
it) is cut along dimension 0 exactly as fully_shard cuts it (torch/distributed/fsdp/_fully_shard/_fsdp_param.py:
`_chunk_with_empty(param, N, dim=0)`, i.e. torch.chunk, padded with empty chunks):

  chunk = ⌈rows/N⌉ rows; device d holds rows d·chunk … min((d+1)·chunk, rows) − 1: the first ⌊rows/chunk⌋
  devices a whole chunk, the next one the remainder (if any), the rest none. `p.to_local()` is that many rows
  (the real elements). Every device stores its shard padded to `chunk` rows (`padded_sharded_param_size`),
  the all-gather moves N padded shards (N·chunk rows), and the gradients' reduce-scatter pads each gradient
  to ⌈rows/N⌉·N = N·chunk rows (`_get_dim0_padded_size`) and leaves each device its padded shard, of which the
  gradient it keeps is a view of the real rows. The optimizer's state is made from the real shard, unpadded.

Units (fsdp): fully_shard on every layer that has parameters, then on the root (torch's recommended wrapping of
each block, with a layer as the block: the bytes moved are the same for any grouping, only the transient unit
grows with it). Per step and unit: all-gather before the forward, reshard after it, all-gather again before the
backward (when a gradient flows through the layer), reduce-scatter of the gradients (when it has trainable
parameters).

zero1 keeps whole parameters and gradients and shards the optimizer state; zero2 shards the gradients too (each
unit's are reduce-scattered in backward, the whole ones freed). Both all-gather the updated shards after the
optimizer step (phase `step`), so each device has whole parameters for the next forward: reduce-scatter +
all-gather, the bytes of one all-reduce, as the ZeRO paper counts them.
"""

from __future__ import annotations

from fractions import Fraction

from convaudit.core import collectives
from convaudit.core.analysis import LayerResult, Report
from convaudit.core.layers import REGISTRY, elements
from convaudit.core.plan.channels import batch_shares, name_grads, per_unit
from convaudit.core.plan.records import Exchange, LayerPlan, ShardedParameter, Share
from convaudit.core.plan.spread import Spread, combine
from convaudit.core.units import OPTIMIZER_STATES


def chunk_rows(rows: int, devices: int) -> tuple[int, Spread[int]]:
    """torch.chunk(rows, N) along dimension 0, empty chunks for the devices left over:
    (chunk size ⌈rows/N⌉, the real rows on each device)."""
    chunk = -(-rows // devices)
    whole, rest = divmod(rows, chunk) if chunk else (0, 0)
    runs = [(whole, chunk)] if whole else []
    if rest:
        runs.append((whole + 1, rest))
    if whole + (1 if rest else 0) < devices:
        runs.append((devices, 0))
    return chunk, Spread.from_runs(runs)


def sharded_parameters(layer: LayerResult, devices: int) -> tuple[ShardedParameter, ...]:
    """The layer's parameter tensors as fully_shard cuts them; their elements add up to the analysis' count."""
    shapes = REGISTRY[layer.type].parameter_shapes(list(layer.input_shapes), layer.spec.params)
    if sum(elements(shape) for shape in shapes) != layer.params:
        raise AssertionError(f"{layer.name}: parameter shapes {shapes} do not hold its {layer.params} parameters; "
                             "a layer type bug")
    trainable = layer.trainable_params > 0
    result = []
    for shape in shapes:
        chunk, rows = chunk_rows(shape[0], devices)
        result.append(ShardedParameter(tuple(shape), trainable, chunk, rows))
    return tuple(result)


class ShardedPlanner:
    def __init__(self, report: Report, strategy: str, devices: int, optimizer: str):
        self.report, self.strategy, self.n = report, strategy, devices
        self.states = OPTIMIZER_STATES[optimizer]
        self.size = report.layers[0].dtype_bytes if report.layers else 4
        self.batches = batch_shares(report.batch, devices)

    def plan_layer(self, layer: LayerResult) -> LayerPlan:
        n, batch = self.n, self.report.batch
        parameters = sharded_parameters(layer, n)
        trainable = layer.trainable_params > 0
        # Elements per device: the real rows of every shard; the padded shard is `chunk` rows on every device.
        real = combine(lambda *rows: sum(r * p.row_elements for r, p in zip(rows, parameters, strict=True)),
                       *(p.rows for p in parameters)) if parameters else Spread.uniform(n, 0)
        padded_shard = sum(p.chunk * p.row_elements for p in parameters)
        gathered = n * padded_shard  # N·chunk rows of each: what an all-gather or a reduce-scatter holds whole

        exchanges = []
        if self.strategy == "fsdp" and parameters:
            exchanges.append(self.collective("all-gather", "forward", layer.name, gathered))
            if layer.needs_input_grad or trainable:  # its backward runs: the unit is gathered again
                exchanges.append(self.collective("all-gather", "backward", layer.name, gathered))
        if trainable and parameters:
            exchanges.append(self.collective("reduce-scatter", "backward", name_grads(layer), gathered))
            if self.strategy != "fsdp":
                exchanges.append(self.collective("all-gather", "step", layer.name, gathered))
        received = {phase: sum((e.received[0] for e in exchanges if e.phase == phase), Fraction(0))
                    for phase in ("forward", "backward", "step")}

        def share(samples: int, held: int) -> Share:
            def part(count: int) -> int:  # the per-sample count × this device's samples
                return samples * per_unit(layer, count, batch)

            kept = held if self.strategy == "fsdp" else layer.params
            own_trainable = held if trainable else 0
            grads = {"zero1": layer.trainable_params}.get(self.strategy, own_trainable)
            gradient_padding = padded_shard - held if trainable and self.strategy != "zero1" else 0
            transient = {"fsdp": gathered * (2 if trainable else 1) if parameters else 0,
                         "zero2": gathered if trainable else 0}.get(self.strategy, 0)
            return Share(
                params=kept, trainable_params=kept if trainable else 0, flops=part(layer.flops),
                backward_flops=part(layer.backward_flops), other_ops=part(layer.other_ops),
                activations=part(layer.activations), received_forward=received["forward"],
                received_backward=received["backward"], received_step=received["step"],
                padding=padded_shard - held if self.strategy == "fsdp" else 0, gradients=grads,
                gradient_padding=gradient_padding, optimizer_state=self.states * own_trainable,
                transient=transient)

        shares = combine(share, self.batches, real)
        return LayerPlan(layer, self.strategy, (), (), tuple(exchanges), shares, self.batches, parameters)

    def collective(self, kind: str, phase: str, moves: str, gathered_elements: int) -> Exchange:
        formula = collectives.all_gather if kind == "all-gather" else collectives.reduce_scatter
        return Exchange(kind, phase, moves, Spread.uniform(self.n, formula(gathered_elements * self.size, self.n)))
