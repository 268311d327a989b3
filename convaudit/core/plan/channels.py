"""Plans that split layers by channels (columns, model) or replicate them (data); the rules in __init__.py.

Layouts are per channel (independent of N); per-device values are Spreads, built from the few devices that hold
something different: a layer's work here grows with its channels, never with the number of devices.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from convaudit.core import collectives
from convaudit.core.analysis import LayerResult, Report
from convaudit.core.layers import REGISTRY, elements
from convaudit.core.layers.splitting import ColumnSplit
from convaudit.core.model import INPUT
from convaudit.core.plan.records import ALL, Exchange, LayerPlan, ReadSet, Share
from convaudit.core.plan.spread import Spread, combine
from convaudit.core.units import OPTIMIZER_STATES


def column_owners(channels: int, devices: int) -> tuple[int, ...]:
    """Output channel c on device ⌊c·N/C⌋: contiguous shares that differ by at most one channel."""
    return tuple(c * devices // channels for c in range(channels))


def channel_elements(shape: tuple[int, ...], batch: int) -> int:
    """Elements of one channel (one feature, for a vector) over the batch."""
    return elements(shape[1:]) * batch if len(shape) > 1 else batch


def channels_by_device(owners: tuple[int, ...]) -> dict[int, tuple[int, ...]]:
    """The channels each device holds alone (ALL channels left out), for the devices holding any."""
    found: dict[int, list[int]] = {}
    for c, owner in enumerate(owners):
        if owner != ALL:
            found.setdefault(owner, []).append(c)
    return {d: tuple(channels) for d, channels in found.items()}


def held_counts(owners: tuple[int, ...], devices: int) -> Spread[int]:
    """How many channels of a layout each device holds (its own and those every device holds)."""
    everyone = owners.count(ALL)
    counts = Counter(o for o in owners if o != ALL)
    return Spread.sparse(devices, everyone, {d: everyone + k for d, k in counts.items()})


def batch_shares(batch: int, devices: int) -> Spread[int]:
    """⌊B/N⌋ samples per device, the first B mod N devices one more."""
    each, extra = divmod(batch, devices)
    return Spread.from_runs([(extra, each + 1), (devices, each)] if extra else [(devices, each)])


@dataclass(frozen=True)
class Counts:
    params: int = 0
    trainable_params: int = 0
    flops: int = 0
    backward_flops: int = 0
    other_ops: int = 0


def per_unit(layer: LayerResult, count: int, units: int) -> int:
    """One unit's part of a count the layer's formula makes `units` equal parts of (channels, features, samples).

    A conv's weights are Cout·(Cin/g)·Kh·Kw: (Cin/g)·Kh·Kw per output channel, Cout·Kh·Kw per input channel
    (g = 1). Biases are one per output channel and none per input channel: they never go through here for an
    input split. A remainder is a planner bug (a count that does not scale with what is split), not user input.
    """
    per, rest = divmod(count, units)
    if rest:
        raise AssertionError(f"{layer.name}: {count} is not {units} equal parts; a planner bug")
    return per


def unit_share(layer: LayerResult, owned: int, units: int) -> Counts:
    """The counts of `owned` of a layer's `units` output channels (or samples), each costing the same.

    Every count is owned × the count of one unit, a whole number: never a fraction of a whole-layer count.
    """
    def part(count: int) -> int:
        return owned * per_unit(layer, count, units)

    params = part(layer.weights) + part(layer.biases)
    return Counts(params, params if layer.trainable_params else 0, part(layer.flops), part(layer.backward_flops),
                  part(layer.other_ops))


def row_share(layer: LayerResult, split: ColumnSplit, owned: int, inputs: int, first: bool) -> Counts:
    """Megatron's RowParallel share: `owned` of the layer's `inputs` input channels (features, for a vector).

    Weights, forward MACs and both backward products (dW and dX) are Cout·Kh·Kw·(Hout·Wout) per input channel
    (out per feature, for linear and rbf). The biases and their adds run once, on the first device, after the
    partial outputs are summed; other ops that scale with the inputs (rbf's x_j − w_ij) split with them.
    """
    def part(count: int) -> int:
        return owned * per_unit(layer, count, inputs)

    params = part(layer.weights) + (layer.biases if first else 0)
    other = part(layer.other_ops) if split.other_ops_per_input else (layer.other_ops if first else 0)
    return Counts(params, params if layer.trainable_params else 0, part(layer.flops), part(layer.backward_flops),
                  other)


def whole(layer: LayerResult, held: bool = True) -> Counts:
    """The whole layer (held) or none of it."""
    return unit_share(layer, int(held), 1)


def table_share(layer: LayerResult, split: ColumnSplit, outputs: tuple[int, ...]) -> Counts:
    """A conv with a connection table: output map j holds |row j|·Kh·Kw weights and one bias."""
    entries = split.table_entries(outputs)
    weights = entries * per_unit(layer, layer.weights, split.table_entries(range(len(split.table or ()))))
    cout = layer.output_shape[0]

    def per_weight(count: int) -> int:  # MACs are weights × Hout·Wout (× batch): the same for every weight
        return weights * per_unit(layer, count, layer.weights) if layer.weights else 0

    biases = len(outputs) * per_unit(layer, layer.biases, cout)  # one per output map, or none
    trainable = weights + biases if layer.trainable_params else 0
    return Counts(weights + biases, trainable, per_weight(layer.flops), per_weight(layer.backward_flops),
                  len(outputs) * per_unit(layer, layer.other_ops, cout))


def name_grads(layer: LayerResult) -> str:
    return f"{layer.name}.grad"


def total_of(spreads: list[Spread[Fraction]], devices: int) -> Spread[Fraction]:
    if not spreads:
        return Spread.uniform(devices, Fraction(0))
    if len(spreads) == 1:
        return spreads[0]
    return combine(lambda *values: sum(values, Fraction(0)), *spreads)


class ChannelPlanner:
    """Lays out each layer's channels over the devices, in graph order (columns, model), or its batch (data)."""

    def __init__(self, report: Report, strategy: str, devices: int, optimizer: str, pins: Mapping[str, int]):
        self.report, self.strategy, self.n, self.pins = report, strategy, devices, pins
        self.states = OPTIMIZER_STATES[optimizer]
        self.size = report.layers[0].dtype_bytes if report.layers else 4
        self.owners: dict[str, tuple[int, ...]] = {INPUT: (ALL,) * report.input[0]}
        self.shapes: dict[str, tuple[int, ...]] = {INPUT: report.input}
        self.needs_grad: dict[str, bool] = {INPUT: False}  # does a gradient flow into this tensor?
        self.readers: dict[str, list[LayerResult]] = {}
        for layer in report.layers:
            for source in layer.spec.inputs:
                self.readers.setdefault(source, []).append(layer)
        self.gathered_outputs: set[str] = set()
        self.notes: list[str] = []

    def channel_bytes(self, tensor: str) -> int:
        return channel_elements(self.shapes[tensor], self.report.batch) * self.size

    # -- collectives

    def gather(self, tensor: str, reads: ReadSet, returns_gradient: bool) -> list[Exchange]:
        """Each device receives the channels of `tensor` it reads and lacks; backward returns their gradients.

        Counted per channel, not per device: a channel every device reads reaches the N − 1 that lack it."""
        owners, n = self.owners[tensor], self.n
        per_channel = self.channel_bytes(tensor)
        adjust: Counter[int] = Counter()  # bytes each device receives
        back: Counter[int] = Counter()  # gradients returned to each owner
        everyone = 0  # bytes every device receives besides `adjust`
        if reads.kind == "all":  # by counts: channel c reaches every reader but its owner
            own = Counter(o for o in owners if o != ALL)
            spread = sum(own.values()) * per_channel
            readers = set(range(n)) if reads.readers is None else set(reads.readers)
            if reads.readers is None:
                everyone = spread
                adjust.update({d: -k * per_channel for d, k in own.items()})
            else:
                adjust.update({r: spread - own[r] * per_channel for r in readers})
            back.update({o: k * per_channel * (len(readers) - (o in readers)) for o, k in own.items()})
        elif reads.kind == "held":  # channel c is read where the layout `reads.owners` puts it
            for c, owner in enumerate(owners):
                reader = reads.owners[c]
                if owner == ALL or reader == owner:
                    continue
                if reader == ALL:
                    everyone += per_channel
                    adjust[owner] -= per_channel
                    back[owner] += (n - 1) * per_channel
                else:
                    adjust[reader] += per_channel
                    back[owner] += per_channel
        else:
            for device, channels in reads.listed:
                for c in channels:
                    if owners[c] not in (device, ALL):
                        adjust[device] += per_channel
                        back[owners[c]] += per_channel
        forward = Spread.sparse(n, collectives.gather(everyone),
                                {d: collectives.gather(everyone + extra) for d, extra in adjust.items()})
        if not forward.largest():
            return []
        exchanges = [Exchange("gather", "forward", tensor, forward, owners, reads)]
        if returns_gradient and self.needs_grad[tensor]:
            returned = Spread.sparse(n, Fraction(0), {d: collectives.gather(b) for d, b in back.items()})
            exchanges.append(Exchange("gather", "backward", tensor, returned, owners, reads))
        return exchanges

    def all_reduce(self, tensor_bytes: int, phase: str, moves: str) -> Exchange:
        each = collectives.all_reduce(tensor_bytes, self.n)
        return Exchange("all-reduce", phase, moves, Spread.uniform(self.n, each))

    # -- per layer

    def plan_layer(self, layer: LayerResult) -> LayerPlan:
        name = layer.name
        self.shapes[name] = layer.output_shape
        self.needs_grad[name] = layer.needs_input_grad or layer.trainable_params > 0
        if self.strategy == "data":
            return self.data_layer(layer)
        plan = self.model_layer(layer)
        self.owners[name] = plan.owners
        return plan

    def share(self, counts: Counts, activations: int, forward: Fraction, backward: Fraction) -> Share:
        return Share(counts.params, counts.trainable_params, counts.flops, counts.backward_flops, counts.other_ops,
                     activations, forward, backward, copies=forward, gradients=counts.trainable_params,
                     optimizer_state=self.states * counts.trainable_params)

    def data_layer(self, layer: LayerResult) -> LayerPlan:
        batch = self.report.batch
        batches = batch_shares(batch, self.n)
        exchanges = []
        if layer.trainable_params:
            exchanges.append(self.all_reduce(layer.trainable_params * self.size, "backward", name_grads(layer)))
        back = exchanges[0].received[0] if exchanges else Fraction(0)

        def samples(b: int) -> Share:  # b samples: the per-sample count × b; every device holds the whole model
            def part(count: int) -> int:
                return b * per_unit(layer, count, batch)

            counts = Counts(layer.params, layer.trainable_params, part(layer.flops), part(layer.backward_flops),
                            part(layer.other_ops))
            return self.share(counts, part(layer.activations), Fraction(0), back)

        return LayerPlan(layer, "data", (), (), tuple(exchanges), batches.map(samples), batches)

    def model_layer(self, layer: LayerResult) -> LayerPlan:
        n, batch, sources = self.n, self.report.batch, layer.spec.inputs
        channels = layer.output_shape[0]
        in_owners = [self.owners[s] for s in sources]
        layer_type = REGISTRY[layer.type]
        role = layer_type.plan_role
        split = layer_type.column_split(list(layer.input_shapes), layer.spec.params) if role == "columns" else None
        pinned = self.pins.get(layer.name) if self.strategy == "columns" else None
        exchanges: list[Exchange] = []
        reads: list[ReadSet] = []
        parts: Spread[Counts]

        if pinned is not None:
            mode, owners = f"pinned:{pinned}", (pinned,) * channels
            for s, o in zip(sources, in_owners, strict=True):
                reads.append(ReadSet("all", len(o), readers=(pinned,)))
                exchanges += self.gather(s, reads[-1], True)
            parts = Spread.sparse(n, whole(layer, False), {pinned: whole(layer)})
        elif split is not None and self.row_parallel(split, in_owners[0]):
            mode, owners = "row", (ALL,) * channels
            reads.append(ReadSet("held", len(in_owners[0]), in_owners[0]))
            cin = len(in_owners[0])
            first = Spread.sparse(n, False, {0: True})
            parts = combine(lambda owned, is_first: row_share(layer, split, owned, cin, is_first),
                            held_counts(in_owners[0], n), first)
            exchanges.append(self.all_reduce(layer.activations * self.size, "forward", layer.name))
        elif split is not None:
            mode = "column"
            owners = column_owners(channels, n)
            outputs = channels_by_device(owners)
            cin = len(in_owners[0])
            if split.reads_every_channel:  # every device with outputs reads every input channel
                reads.append(ReadSet("all", cin, readers=None if len(outputs) == n else tuple(sorted(outputs))))
            else:
                reads.append(ReadSet("listed", cin, listed=tuple(
                    (d, split.reads(outs, cin, channels)) for d, outs in outputs.items())))
            if self.gathers_output(layer):
                self.gathered_outputs.add(layer.name)
            if all(owner == ALL for owner in in_owners[0]):
                if layer.needs_input_grad:  # each device's partial dX covers the whole replicated input
                    in_bytes = elements(layer.input_shapes[0]) * batch * self.size
                    exchanges.append(self.all_reduce(in_bytes, "backward", sources[0]))
            else:
                exchanges += self.gather(sources[0], reads[0], True)
            if split.table is not None:
                parts = Spread.sparse(n, Counts(), {d: table_share(layer, split, outs) for d, outs in outputs.items()})
            else:
                parts = held_counts(owners, n).map(lambda owned: unit_share(layer, owned, channels))
            if layer.name in self.gathered_outputs:
                mode = "column+gather"
                self.owners[layer.name] = owners
                exchanges += self.gather(layer.name, ReadSet("all", channels), False)
                owners = (ALL,) * channels
        elif role == "follow":
            mode = "follow"
            source_owners = in_owners[0]
            # Each input channel becomes C_out/C_in output channels: 1, or H·W for a flatten of [C, H, W]
            # (channel-major, so channel c's elements stay together).
            per = per_unit(layer, channels, len(source_owners))
            owners = tuple(o for o in source_owners for _ in range(per))
            reads.append(ReadSet("held", len(source_owners), source_owners))
            parts = held_counts(source_owners, n).map(lambda owned: unit_share(layer, owned, len(source_owners)))
        elif role == "concat":
            mode = "follow"
            owners = tuple(o for source_owners in in_owners for o in source_owners)
            reads += [ReadSet("held", len(o), o) for o in in_owners]
            parts = Spread.uniform(n, whole(layer, False))
        elif role == "add" and all(len(o) == channels for o in in_owners):
            mode = "follow"
            owners = in_owners[0]
            mine = ReadSet("held", channels, owners)
            for s in sources:
                reads.append(mine)
                exchanges += self.gather(s, mine, True)
            parts = held_counts(owners, n).map(lambda owned: unit_share(layer, owned, channels))
        else:  # a parameter-free layer reading every channel (softmax), and whatever is not split: whole everywhere
            mode = "replicated"
            owners = (ALL,) * channels
            for s, o in zip(sources, in_owners, strict=True):
                reads.append(ReadSet("all", len(o)))
                # every device computes the same whole gradient, so owners already hold theirs: none returns
                exchanges += self.gather(s, reads[-1], False)
            parts = Spread.uniform(n, whole(layer))
            if role != "whole-free":
                self.notes.append(f"{layer.name}: a {layer.type} layer is not split; it runs whole on every device")

        per_out = channel_elements(layer.output_shape, batch)
        activations = held_counts(owners, n).map(lambda held: held * per_out)
        forward = total_of([e.received for e in exchanges if e.phase == "forward"], n)
        backward = total_of([e.received for e in exchanges if e.phase == "backward"], n)
        shares = combine(self.share, parts, activations, forward, backward)
        return LayerPlan(layer, mode, owners, tuple(reads), tuple(exchanges), shares, Spread.uniform(n, batch))

    def row_parallel(self, split: ColumnSplit, owners: tuple[int, ...]) -> bool:
        """Megatron's RowParallel: only for `model`, a layer reading every channel of an input split over every
        device."""
        return (self.strategy == "model" and split.reads_every_channel and ALL not in owners
                and len(set(owners)) == self.n)

    def gathers_output(self, layer: LayerResult) -> bool:
        """Gather this column layer's output when only parameter-free whole-input layers read it (softmax)."""
        readers = self.readers.get(layer.name, [])
        return bool(readers) and all(REGISTRY[r.type].plan_role == "whole-free" for r in readers) \
            and layer.name not in self.report.spec.outputs
