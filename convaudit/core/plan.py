"""Plan a network across N devices: per layer and device, parameters, FLOPs, memory and the bytes that cross.

Pure and exact: no torch; counts are integers, bytes that a ring all-reduce moves are Fractions.

Layout. Every tensor is split by channels (by features, for a vector): each channel lives on one device, or
on every device (ALL: the network's input, and what a row-parallel layer or an output gather leaves). One
channel of a [C, H, W] tensor at batch B is B·H·W elements.

The communication rules, each stated once (the distributed run executes these very records):

  gather      forward: a device receives every channel it reads but does not hold (counted at the receiver).
              backward: the gradients of those channels go back to their owners, which add them to their
              own (a reduce-scatter): the same bytes, counted at the owner; nothing when no gradient flows
              into that tensor, or when the readers are replicated (each device already has the whole
              gradient and keeps its own channels: Megatron's gather_output).
  all-reduce  ring convention: each device sends and receives 2·(N−1)/N·S for a tensor of S bytes
              (a reduce-scatter then an all-gather, N−1 steps of S/N each).
              model: a row-parallel layer all-reduces its output (forward); a layer reading a replicated
              tensor that needs a gradient all-reduces that gradient (backward, Megatron's f).
              data: each trainable layer's gradients after backward.

Strategies.
  columns  AlexNet's two-GPU scheme (Krizhevsky et al. 2012, section 3.2): a weight layer is column-split
           (Megatron's ColumnParallel): output channel c goes to device ⌊c·N/C⌋, so a conv whose groups
           are a multiple of N keeps whole groups on a device and reads only its own maps; a layer that
           reads every channel gathers the other devices' maps first. A spec's `placement:` pins a layer
           whole to one device.
  model    Megatron-LM's tensor parallelism: like columns, except that a layer reading every channel of an
           input already split across the devices is row-parallel: each device multiplies its own input
           channels by its slice of the weights and the partial outputs are all-reduced (bias on device
           0). Pins are ignored.
  data     every device holds the whole model and runs ⌊B/N⌋ samples (the first B mod N devices one more);
           gradients are all-reduced after backward. Batchnorm statistics stay per device.

Layers that follow their input's layout, reading only the channels they hold: activations, pooling,
batchnorm, dropout, subsampling, flatten, and LRN, which normalises over the maps on its own device (as
the paper's GPUs did). A parameter-free layer that reads every channel (softmax) runs whole on every
device; when it reads a column-split layer directly, that layer gathers its output. Any other layer (an
unknown type, a pointwise linear) runs whole on every device after gathering its input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from convaudit.core.analysis import LayerResult, Report
from convaudit.core.layers import elements
from convaudit.core.memory import OPTIMIZER_STATES
from convaudit.core.model import INPUT
from convaudit.errors import ConvauditError, Where

STRATEGIES = ("columns", "model", "data")
ALL = -1  # a channel every device holds

FOLLOW = ("relu", "tanh", "sigmoid", "scaledtanh", "dropout", "batchnorm", "maxpool", "avgpool",
          "adaptiveavgpool", "globalavgpool", "subsample", "lrn", "flatten")
WHOLE_INPUT_WEIGHTS = ("linear", "rbf")  # and conv with groups: 1
WHOLE_INPUT_FREE = ("softmax",)

CONVENTIONS = {
    "bytes": "bytes crossing between devices per training step, counted at the receiving device",
    "gather": "forward: the channels a device reads but does not hold; backward: their gradients, returned to "
              "the owner (none when no gradient flows there or the readers are replicated)",
    "all-reduce": "ring: 2·(N−1)/N·S per device for a tensor of S bytes",
    "flops": "forward FLOPs = 2 × MACs of the device's share; backward as the analysis counts it (dW + dX)",
    "memory": "training memory per device = parameters + gradients + optimizer state of what it holds + every "
              "activation it holds (its outputs and the copies it received), at the dtype",
    "time": "estimated step time per device = (forward + backward FLOPs) / throughput + bytes / bandwidth, "
            "no overlap; the step waits for the busiest device",
}


@dataclass(frozen=True)
class Profile:
    name: str
    flops_per_s: float  # sustained FP32 throughput
    bytes_per_s: float  # between two devices, one direction
    memory: int
    description: str


PROFILES = {
    "gtx580": Profile("gtx580", 1.5811e12, 8e9, 3 * 2**30,
                      "GTX 580 (3 GB, as the paper's): 512 cores × 1544 MHz × 2 = 1.58 TFLOP/s FP32; "
                      "PCIe 2.0 x16, 8 GB/s each way"),
    "h100": Profile("h100", 67e12, 450e9, 80 * 2**30,
                    "H100 SXM: 67 TFLOP/s FP32 (no tensor cores); NVLink 4, 450 GB/s each way; 80 GiB"),
}


@dataclass(frozen=True)
class Exchange:
    """One collective a layer runs. `moves` is the tensor that moves (a layer name, or 'input')."""

    kind: str  # gather | all-reduce
    phase: str  # forward | backward
    moves: str
    received: tuple[Fraction, ...]  # bytes into each device
    # gather only: for each device, the channels it receives (global indices into `moves`), in order
    channels: tuple[tuple[int, ...], ...] = ()

    @property
    def total(self) -> Fraction:
        return sum(self.received, Fraction(0))


@dataclass(frozen=True)
class Share:
    """One layer's work and memory on one device."""

    params: int = 0
    trainable_params: int = 0
    flops: int = 0
    backward_flops: int = 0
    other_ops: int = 0
    activations: int = 0  # output elements this device holds
    received_forward: Fraction = Fraction(0)
    received_backward: Fraction = Fraction(0)

    @property
    def received(self) -> Fraction:
        return self.received_forward + self.received_backward


@dataclass(frozen=True)
class LayerPlan:
    layer: LayerResult
    mode: str  # column | row | follow | replicated | pinned:<d> | local | data
    owners: tuple[int, ...]  # device of each output channel (ALL: every device); data: ()
    reads: tuple[tuple[tuple[int, ...], ...], ...]  # per input, per device: the input channels it reads
    exchanges: tuple[Exchange, ...]
    shares: tuple[Share, ...]
    batches: tuple[int, ...]  # samples each device runs

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def communicates(self) -> bool:
        return any(exchange.total for exchange in self.exchanges)


@dataclass(frozen=True)
class DeviceTotals:
    device: int
    params: int
    trainable_params: int
    flops: int
    backward_flops: int
    other_ops: int
    activation_bytes: int  # outputs held plus copies received in the forward pass
    received_forward: Fraction
    received_backward: Fraction
    training_memory: int

    @property
    def work(self) -> int:
        return self.flops + self.backward_flops

    @property
    def received(self) -> Fraction:
        return self.received_forward + self.received_backward


@dataclass(frozen=True)
class Plan:
    report: Report
    strategy: str
    devices: int
    optimizer: str
    layers: tuple[LayerPlan, ...]
    notes: tuple[str, ...] = ()
    profile: Profile | None = None
    device_memory: int | None = None  # bytes each device has, when given
    pins: Mapping[str, int] = field(default_factory=dict)

    @property
    def dtype_bytes(self) -> int:
        return self.report.layers[0].dtype_bytes if self.report.layers else 4

    @property
    def per_device(self) -> tuple[DeviceTotals, ...]:
        size = self.dtype_bytes
        states = OPTIMIZER_STATES[self.optimizer]
        result = []
        for d in range(self.devices):
            shares = [layer.shares[d] for layer in self.layers]
            params = sum(s.params for s in shares)
            trainable = sum(s.trainable_params for s in shares)
            forward_copies = sum((s.received_forward for s in shares), Fraction(0))
            held = sum(s.activations for s in shares) * size + int(forward_copies)
            result.append(DeviceTotals(
                device=d, params=params, trainable_params=trainable,
                flops=sum(s.flops for s in shares), backward_flops=sum(s.backward_flops for s in shares),
                other_ops=sum(s.other_ops for s in shares), activation_bytes=held,
                received_forward=forward_copies,
                received_backward=sum((s.received_backward for s in shares), Fraction(0)),
                training_memory=params * size + trainable * size * (1 + states) + held,
            ))
        return tuple(result)

    @property
    def busiest(self) -> DeviceTotals:
        return max(self.per_device, key=lambda t: (t.work, t.received))

    @property
    def busiest_share(self) -> Fraction:
        """The busiest device's share of all devices' forward + backward FLOPs (1/N when perfectly even)."""
        total = sum(t.work for t in self.per_device)
        return Fraction(self.busiest.work, total) if total else Fraction(0)

    @property
    def total_received(self) -> Fraction:
        return sum((t.received for t in self.per_device), Fraction(0))

    @property
    def bytes_per_flop(self) -> Fraction:
        """Bytes crossing per FLOP computed, over all devices: communication as a fraction of computation."""
        work = sum(t.work for t in self.per_device)
        return self.total_received / work if work else Fraction(0)

    def step_time(self, flops_per_s: float, bytes_per_s: float) -> tuple[float, float, float]:
        """(compute, communication, step) seconds of the slowest device; estimates, no overlap."""
        worst = (0.0, 0.0, 0.0)
        for t in self.per_device:
            compute, comm = t.work / flops_per_s, float(t.received) / bytes_per_s
            if compute + comm > worst[2]:
                worst = (compute, comm, compute + comm)
        return worst

    def fits(self) -> tuple[bool, ...] | None:
        if self.device_memory is None:
            return None
        return tuple(t.training_memory <= self.device_memory for t in self.per_device)


# ------------------------------------------------------------------ the rules, on channel layouts

def column_owners(channels: int, devices: int) -> tuple[int, ...]:
    """Output channel c on device ⌊c·N/C⌋: contiguous shares that differ by at most one channel."""
    return tuple(c * devices // channels for c in range(channels))


def channel_elements(shape: tuple[int, ...], batch: int) -> int:
    """Elements of one channel (one feature, for a vector) over the batch."""
    return elements(shape[1:]) * batch if len(shape) > 1 else batch


def held_by(owners: tuple[int, ...], device: int) -> tuple[int, ...]:
    return tuple(c for c, owner in enumerate(owners) if owner in (device, ALL))


def _per_unit(layer: LayerResult, count: int, units: int) -> int:
    """One unit's part of a count the layer's formula makes `units` equal parts of (channels, features, samples).

    A conv's weights are Cout·(Cin/g)·Kh·Kw: (Cin/g)·Kh·Kw per output channel, Cout·Kh·Kw per input channel
    (g = 1). Biases are one per output channel and none per input channel: they never go through here for an
    input split. A remainder is a planner bug (a count that does not scale with what is split), not user input.
    """
    per, rest = divmod(count, units)
    if rest:
        raise AssertionError(f"{layer.name}: {count} is not {units} equal parts; a planner bug")
    return per


def _unit_share(layer: LayerResult, owned: int, units: int) -> dict[str, int]:
    """The counts of `owned` of a layer's `units` output channels (or samples), each costing the same.

    Every count is owned × the count of one unit, a whole number: never a fraction of a whole-layer count.
    """
    def part(count: int) -> int:
        return owned * _per_unit(layer, count, units)

    params = part(layer.weights) + part(layer.biases)
    return {"params": params, "trainable_params": params if layer.trainable_params else 0,
            "flops": part(layer.flops), "backward_flops": part(layer.backward_flops),
            "other_ops": part(layer.other_ops)}


def _row_share(layer: LayerResult, owned: int, inputs: int, first: bool) -> dict[str, int]:
    """Megatron's RowParallel share: `owned` of the layer's `inputs` input channels (features, for a vector).

    Weights, forward MACs and both backward products (dW and dX) are Cout·Kh·Kw·(Hout·Wout) per input channel
    (out per feature, for linear and rbf). The biases and their adds run once, on the first device, after the
    partial outputs are summed; rbf's subtractions (x_j − w_ij) are per input feature and split with them.
    """
    def part(count: int) -> int:
        return owned * _per_unit(layer, count, inputs)

    params = part(layer.weights) + (layer.biases if first else 0)
    if layer.type == "rbf":
        other = part(layer.other_ops)
    else:
        other = layer.other_ops if first else 0
    return {"params": params, "trainable_params": params if layer.trainable_params else 0,
            "flops": part(layer.flops), "backward_flops": part(layer.backward_flops), "other_ops": other}


def _whole(layer: LayerResult, held: bool = True) -> dict[str, int]:
    """The whole layer (held) or none of it."""
    return _unit_share(layer, int(held), 1)


def _sparse_share(layer: LayerResult, outputs: tuple[int, ...]) -> dict[str, int]:
    """A conv with a connection table: output map j holds |row j|·Kh·Kw weights and one bias."""
    table = layer.spec.params["connections"]
    taps = layer.weights // sum(len(row) for row in table)  # Kh·Kw weights per input map a row reads
    reads = sum(len(table[c]) for c in outputs)
    weights = reads * taps
    cout = layer.output_shape[0]

    def per_weight(count: int) -> int:  # MACs are weights × Hout·Wout (× batch): the same for every weight
        return weights * _per_unit(layer, count, layer.weights) if layer.weights else 0

    biases = len(outputs) * _per_unit(layer, layer.biases, cout)  # one per output map, or none
    trainable = weights + biases if layer.trainable_params else 0
    return {"params": weights + biases, "trainable_params": trainable, "flops": per_weight(layer.flops),
            "backward_flops": per_weight(layer.backward_flops),
            "other_ops": len(outputs) * _per_unit(layer, layer.other_ops, cout)}


def _conv_reads(layer: LayerResult, outputs: tuple[int, ...]) -> tuple[int, ...]:
    """The input maps that these output maps of a conv read: their groups' maps, or their table rows."""
    table = layer.spec.params.get("connections")
    if table is not None:
        return tuple(sorted({c for out in outputs for c in table[out]}))
    groups = layer.spec.params["groups"]
    cin, cout = layer.input_shapes[0][0], layer.output_shape[0]
    per_in, per_out = cin // groups, cout // groups
    touched = sorted({out // per_out for out in outputs})
    return tuple(c for g in touched for c in range(g * per_in, (g + 1) * per_in))


def _reads_every_channel(layer: LayerResult) -> bool:
    if layer.type == "conv":
        return layer.spec.params["groups"] == 1 and layer.spec.params.get("connections") is None
    return layer.type in WHOLE_INPUT_WEIGHTS


def _splittable(layer: LayerResult) -> bool:
    """A weight layer whose outputs are channels (dim 0) that we can share out."""
    if layer.type == "conv":
        return True
    if layer.type in WHOLE_INPUT_WEIGHTS:
        return layer.spec.params.get("flatten", True) and len(layer.output_shape) == 1
    return False


class _Planner:
    def __init__(self, report: Report, strategy: str, devices: int, pins: Mapping[str, int]):
        self.report, self.strategy, self.n, self.pins = report, strategy, devices, pins
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

    def gather(self, tensor: str, reads: list[tuple[int, ...]], returns_gradient: bool) -> list[Exchange]:
        """Each device receives the channels of `tensor` it reads and lacks; backward returns their gradients."""
        owners = self.owners[tensor]
        per_channel = self.channel_bytes(tensor)
        moved = [tuple(c for c in reads[d] if owners[c] not in (d, ALL)) for d in range(self.n)]
        if not any(moved):
            return []
        forward = Exchange("gather", "forward", tensor, tuple(Fraction(len(m) * per_channel) for m in moved),
                           tuple(moved))
        if not (returns_gradient and self.needs_grad[tensor]):
            return [forward]
        back = [Fraction(0)] * self.n
        for d in range(self.n):
            for c in moved[d]:
                back[owners[c]] += per_channel
        return [forward, Exchange("gather", "backward", tensor, tuple(back), tuple(moved))]

    def all_reduce(self, tensor_bytes: int, phase: str, moves: str) -> Exchange:
        each = Fraction(2 * (self.n - 1), self.n) * tensor_bytes
        return Exchange("all-reduce", phase, moves, (each,) * self.n)

    # -- per layer

    def plan_layer(self, layer: LayerResult) -> LayerPlan:
        name, sources = layer.name, layer.spec.inputs
        self.shapes[name] = layer.output_shape
        self.needs_grad[name] = layer.needs_input_grad or layer.trainable_params > 0
        if self.strategy == "data":
            return self.data_layer(layer)
        plan = self.model_layer(layer, sources)
        self.owners[name] = plan.owners
        return plan

    def data_layer(self, layer: LayerResult) -> LayerPlan:
        batch = self.report.batch
        batches = tuple(batch // self.n + (1 if d < batch % self.n else 0) for d in range(self.n))
        exchanges = []
        if layer.trainable_params:
            exchanges.append(self.all_reduce(layer.trainable_params * self.size, "backward", name_grads(layer)))
        shares = []
        for d, b in enumerate(batches):
            def samples(count: int, b: int = b) -> int:  # b samples: the per-sample count × b
                return b * _per_unit(layer, count, batch)

            back = exchanges[0].received[d] if exchanges else Fraction(0)
            shares.append(Share(  # every device holds the whole model
                params=layer.params, trainable_params=layer.trainable_params, flops=samples(layer.flops),
                backward_flops=samples(layer.backward_flops), other_ops=samples(layer.other_ops),
                activations=samples(layer.activations), received_backward=back))
        return LayerPlan(layer, "data", (), (), tuple(exchanges), tuple(shares), batches)

    def model_layer(self, layer: LayerResult, sources: tuple[str, ...]) -> LayerPlan:
        n, batch = self.n, self.report.batch
        channels = layer.output_shape[0]
        in_owners = [self.owners[s] for s in sources]
        per_out = channel_elements(layer.output_shape, batch)
        pinned = self.pins.get(layer.name) if self.strategy == "columns" else None
        exchanges: list[Exchange] = []
        reads: list[list[tuple[int, ...]]] = []
        kind = layer.type
        parts: list[dict[str, int]]

        if pinned is not None:
            mode, owners = f"pinned:{pinned}", (pinned,) * channels
            for s, o in zip(sources, in_owners, strict=True):
                reads.append([tuple(range(len(o))) if d == pinned else () for d in range(n)])
                exchanges += self.gather(s, reads[-1], True)
            parts = [_whole(layer, d == pinned) for d in range(n)]
        elif _splittable(layer) and self.row_parallel(layer, in_owners[0]):
            mode, owners = "row", (ALL,) * channels
            reads.append([held_by(in_owners[0], d) for d in range(n)])
            cin = len(in_owners[0])
            parts = [_row_share(layer, len(reads[0][d]), cin, d == 0) for d in range(n)]
            exchanges.append(self.all_reduce(layer.activations * self.size, "forward", layer.name))
        elif _splittable(layer):
            mode = "column"
            owners = column_owners(channels, n)
            outputs = [tuple(c for c in range(channels) if owners[c] == d) for d in range(n)]
            if kind == "conv":
                reads.append([_conv_reads(layer, outputs[d]) for d in range(n)])
            else:
                reads.append([tuple(range(len(in_owners[0])))] * n)
            if self.gathers_output(layer):
                self.gathered_outputs.add(layer.name)
            if all(owner == ALL for owner in in_owners[0]):
                if layer.needs_input_grad:  # each device's partial dX covers the whole replicated input
                    in_bytes = elements(layer.input_shapes[0]) * batch * self.size
                    exchanges.append(self.all_reduce(in_bytes, "backward", sources[0]))
            else:
                exchanges += self.gather(sources[0], reads[0], True)
            if kind == "conv" and layer.spec.params.get("connections") is not None:
                parts = [_sparse_share(layer, outputs[d]) for d in range(n)]
            else:
                parts = [_unit_share(layer, len(outputs[d]), channels) for d in range(n)]
            if layer.name in self.gathered_outputs:
                mode = "column+gather"
                reader_reads = [tuple(range(channels))] * n
                self.owners[layer.name] = owners
                exchanges += self.gather(layer.name, reader_reads, False)
                owners = (ALL,) * channels
        elif kind in FOLLOW:
            mode = "follow"
            source_owners = in_owners[0]
            if kind == "flatten":
                per = channel_elements(layer.input_shapes[0], 1)
                owners = tuple(o for o in source_owners for _ in range(per))
            else:
                owners = source_owners
            reads.append([held_by(source_owners, d) for d in range(n)])
            parts = [_unit_share(layer, len(reads[0][d]), len(source_owners)) for d in range(n)]
        elif kind == "concat":
            mode = "follow"
            owners = tuple(o for source_owners in in_owners for o in source_owners)
            for o in in_owners:
                reads.append([held_by(o, d) for d in range(n)])
            parts = [_whole(layer, False)] * n
        elif kind == "add" and all(len(o) == channels for o in in_owners):
            mode = "follow"
            owners = in_owners[0]
            mine = [held_by(owners, d) for d in range(n)]
            for s in sources:
                reads.append(mine)
                exchanges += self.gather(s, mine, True)
            parts = [_unit_share(layer, len(mine[d]), channels) for d in range(n)]
        else:  # softmax, and whatever we cannot split: whole on every device
            mode = "replicated"
            owners = (ALL,) * channels
            for s, o in zip(sources, in_owners, strict=True):
                reads.append([tuple(range(len(o)))] * n)
                # every device computes the same whole gradient, so owners already hold theirs: none returns
                exchanges += self.gather(s, reads[-1], False)
            parts = [_whole(layer)] * n
            if kind not in WHOLE_INPUT_FREE:
                self.notes.append(f"{layer.name}: a {kind} layer is not split; it runs whole on every device")

        received = [[Fraction(0), Fraction(0)] for _ in range(n)]
        for exchange in exchanges:
            for d in range(n):
                received[d][exchange.phase == "backward"] += exchange.received[d]
        shares = tuple(
            Share(**parts[d], activations=sum(1 for o in owners if o in (d, ALL)) * per_out,
                  received_forward=received[d][0], received_backward=received[d][1])
            for d in range(n))
        frozen_reads = tuple(tuple(per_device) for per_device in reads)
        return LayerPlan(layer, mode, owners, frozen_reads, tuple(exchanges), shares, (batch,) * n)

    def row_parallel(self, layer: LayerResult, owners: tuple[int, ...]) -> bool:
        """Megatron's RowParallel: only for `model`, a layer reading every channel of a fully split input."""
        return (self.strategy == "model" and _reads_every_channel(layer) and ALL not in owners
                and len(set(owners)) == self.n)

    def gathers_output(self, layer: LayerResult) -> bool:
        """Gather this column layer's output when only parameter-free whole-input layers read it (softmax)."""
        readers = self.readers.get(layer.name, [])
        return bool(readers) and all(r.type in WHOLE_INPUT_FREE for r in readers) \
            and layer.name not in self.report.spec.outputs


def name_grads(layer: LayerResult) -> str:
    return f"{layer.name}.grad"


def plan(report: Report, strategy: str, devices: int, optimizer: str = "sgd", pins: Mapping[str, int] | None = None,
         profile: Profile | None = None, device_memory: int | None = None,
         pin_where: Where | None = None) -> Plan:
    """Plan `report` over `devices` devices with one of STRATEGIES."""
    if strategy not in STRATEGIES:
        raise ConvauditError(f"unknown strategy '{strategy}'; choose one of {', '.join(STRATEGIES)}")
    if devices < 1:
        raise ConvauditError(f"--devices must be a positive integer, got {devices}")
    if optimizer not in OPTIMIZER_STATES:
        raise ConvauditError(f"unknown optimizer '{optimizer}'; choose one of {', '.join(OPTIMIZER_STATES)}")
    pins = dict(pins or {})
    if strategy == "columns":
        for name, device in pins.items():
            if not 0 <= device < devices:
                raise ConvauditError(f"placement pins '{name}' to device {device}, but there are {devices} devices "
                                     f"(0–{devices - 1})", pin_where)
    if strategy == "data" and report.batch < devices:
        raise ConvauditError(f"--strategy data splits the batch: --batch {report.batch} leaves devices idle; "
                             f"use at least --batch {devices}")
    planner = _Planner(report, strategy, devices, pins if strategy == "columns" else {})
    layers = tuple(planner.plan_layer(layer) for layer in report.layers)
    notes = list(planner.notes)
    if strategy == "model" and pins:
        notes.append("placement: pins apply to --strategy columns only")
    if strategy != "data" and any(layer.type == "lrn" for layer in report.layers):
        notes.append("LRN normalises over the maps on its own device (as the paper's GPUs did)")
    if strategy == "data" and any(layer.type == "batchnorm" for layer in report.layers):
        notes.append("batchnorm statistics are per device (not synchronised)")
    return Plan(report, strategy, devices, optimizer, layers, tuple(notes), profile, device_memory, pins)


SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
              "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str) -> int:
    """'3GiB' -> 3221225472, '1.5 GB' -> 1500000000, '4096' -> 4096: exact, whole bytes (rounded down)."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?i?[bB]?)\s*", text)
    unit = match.group(2).lower() if match else ""
    if unit and not unit.endswith("b"):
        unit += "b"  # 3G, 3Gi: bytes understood
    if not match or unit not in SIZE_UNITS:
        raise ConvauditError(f"--device-memory: expected a size such as 3GiB, 1.5GB or 4096, got '{text}'")
    size = int(Fraction(match.group(1)) * SIZE_UNITS[unit])
    if size < 1:
        raise ConvauditError(f"--device-memory: a size must be at least one byte, got '{text}'")
    return size


def with_rates(profile: Profile | None, tflops: float | None, gbps: float | None) -> Profile | None:
    """A profile with --throughput (TFLOP/s) and --bandwidth (GB/s) given by hand; both needed without one."""
    if tflops is None and gbps is None:
        return profile
    if profile is None and (tflops is None or gbps is None):
        raise ConvauditError("a time estimate needs --throughput and --bandwidth, or a --profile such as gtx580")
    base = profile or Profile("given", 0.0, 0.0, 0, "")
    flops = tflops * 1e12 if tflops is not None else base.flops_per_s
    rate = gbps * 1e9 if gbps is not None else base.bytes_per_s
    text = f"{flops / 1e12:g} TFLOP/s, {rate / 1e9:g} GB/s" + (f" (from {base.name})" if profile else "")
    return Profile(base.name if profile else "given", flops, rate, base.memory, text)
