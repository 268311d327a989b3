"""Receptive fields: for each layer and spatial axis, the field size, the jump and the first field's centre.

Coordinates are network-input pixel indices, pixel i centred at i, on each axis (L; H, W; D, H, W). Through a
window layer with dilated kernel K' = D·(K − 1) + 1, stride S and padding P:

    jump_out  = jump_in · S                             pixels between neighbouring outputs
    rf_out    = rf_in + (K' − 1) · jump_in              field size
    start_out = start_in + ((K' − 1)/2 − P) · jump_in   centre of the first output's field

(Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural Networks", Distill 2019). Element-wise
layers pass the field through; a fully connected layer on a map, flatten and global pooling see the whole map (a
window as large as their input). Merges take the largest field of their inputs, and inputs on different grids
(jump or start) are flagged. Adaptive pooling whose windows vary is flagged, with the largest window and the
average step. Pixel unshuffle is a window of r at stride r: the r² channels of a block together read the block.

Layers that resample name, per output p, the input positions it reads (core/receptive/resampling.py), and

    jump_out  = jump_in · σ             σ input positions per output position
    rf_out    = rf_in + w · jump_in     w the widest last − first an output reads (the rf of the widest output)
    start_out = start_in + o · jump_in  o where output 0 sits on the input axis

  transposed conv   output p reads the i with i·S − P + k·D = p for a tap k < K: σ = 1/S, o = (P − D·(K − 1)/2)/S.
                    When S does not divide D·(K − 1) + 1 outputs read different numbers of positions (noted)
  upsample          PyTorch's source index, reproduced in its own float arithmetic (interpolation.py): σ = 1/scale
                    or in/out ((in − 1)/(out − 1) with align_corners); nearest reads 1 position, linear modes 1–2,
                    bicubic up to 4 per axis
  pixel shuffle     output p reads ⌊p/r⌋: σ = 1/r, o = −(r − 1)/(2r), the r outputs of one input around it
  pad               output p reads p − before (zeros: nothing in the padding; reflect, replicate and circular
                    read the mirrored, edge or wrapped position): o = −before
  crop              output p reads p + ⌊(in − out)/2⌋ of the first input; the second gives the size, and is not read

Where outputs read different numbers of positions, o is the grid the outputs follow on average (output 0 of a
2 × 2 stride-2 up-convolution sits a quarter of an input step before the input it reads, output 1 a quarter
after), so that a U-Net's up-sampled map and its cropped skip come out on one grid when their arithmetic agrees.

The recurrence ignores borders. The *support* of an output unit is the input range its value really depends on:
its taps clipped to the input, followed back layer by layer (core/receptive/supports.py). Floor rounding drops
the last windows, so some input pixels reach no output at all; `uncovered` counts them from the supports of the
first and last outputs, and a pixel lost at one layer stays lost downstream.

Tokens and permuted maps (core/receptive/layout.py). Positions keep their fields through anything that acts on one
position (activations, scale, position embeddings, a layer norm or `flatten: false` linear over features); an
operation that reads every entry along a spatial dimension (attention over tokens, a layer norm or linear along
W, flatten, global pooling, a broadcast [C, 1, 1] gate) is one window as large as the axis, once: after it every
position reads the same pixels, and reading them all again adds nothing. A reshape that keeps neither the spatial
axes nor a token grid keeps Unseen px (it reads nothing new) but not per-position fields, and what mixes its
elements after it is not followed (Unseen px None, with a note) rather than guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction

from convaudit.core.analysis import LayerResult, Report
from convaudit.core.model import INPUT
from convaudit.core.receptive.layout import AxisOp, Step, layouts
from convaudit.core.receptive.resampling import Reads, Transposed
from convaudit.core.receptive.supports import Supports
from convaudit.core.windows import WindowAxis, axis_names, joined, merged_axes

RESAMPLING = ("window", "adaptive", "reads", "shift")  # reads that move the grid rather than widen it to the axis


@dataclass(frozen=True)
class AxisField:
    rf: Fraction
    jump: Fraction
    start: Fraction

    def window(self, kernel: int, stride: int, padding: int, dilation: int = 1) -> AxisField:
        span = dilation * (kernel - 1) + 1
        return AxisField(self.rf + (span - 1) * self.jump, self.jump * stride,
                         self.start + (Fraction(span - 1, 2) - padding) * self.jump)

    def resampled(self, reads: Reads) -> AxisField:
        return AxisField(self.rf + reads.widest * self.jump, self.jump * reads.sigma,
                         self.start + reads.offset * self.jump)

    def shifted(self, offset: int) -> AxisField:
        return replace(self, start=self.start + offset * self.jump)


@dataclass(frozen=True)
class LayerField:
    name: str
    axes: tuple[AxisField, ...]  # one per spatial axis: L; H, W; D, H, W
    uncovered: tuple[int, ...] | None  # network-input pixels per axis no output depends on (None: not followed)
    notes: tuple[str, ...] = ()

    @property
    def rf(self) -> tuple[Fraction, ...]:
        return tuple(axis.rf for axis in self.axes)

    @property
    def jump(self) -> tuple[Fraction, ...]:
        return tuple(axis.jump for axis in self.axes)

    @property
    def start(self) -> tuple[Fraction, ...]:
        return tuple(axis.start for axis in self.axes)


IDENTITY = AxisField(Fraction(1), Fraction(1), Fraction(0))

Inputs = list[tuple[tuple[AxisField, ...], tuple[bool, ...]]]


def receptive_fields(report: Report) -> dict[str, LayerField]:
    """The field of every analysed layer, in graph order."""
    steps = layouts(report)
    support = Supports(report, steps)
    rank = len(report.input) - 1
    fields: dict[str, tuple[AxisField, ...]] = {INPUT: (IDENTITY,) * rank}
    uniform: dict[str, tuple[bool, ...]] = {INPUT: (False,) * rank}  # per axis: every position reads it all
    result: dict[str, LayerField] = {}
    for layer in report.layers:
        axes, notes, uniform[layer.name] = _layer_axes(layer, [(fields[s], uniform[s]) for s in layer.spec.inputs],
                                                       steps[layer.name])
        fields[layer.name] = axes
        result[layer.name] = LayerField(layer.name, axes, support.uncovered(layer), tuple(notes))
    return result


def _layer_axes(layer: LayerResult, inputs: Inputs, step: Step) -> tuple[tuple, list, tuple[bool, ...]]:
    """The layer's fields from its inputs' (and whether each axis is uniform: every position of the output
    reads the whole of what the tensor reads, after attention, a layer norm along the axis, a broadcast gate)."""
    notes: list[str] = []
    read = [(source, entry, ops) for source, entry, ops in zip(layer.spec.inputs, inputs, step.ops, strict=True)
            if ops[0].kind != "unread"]  # a crop's second input gives the size only
    axes, uniform = read[0][1]
    if len(read) > 1:
        axes, uniform = max((entry for _, entry, _ in read), key=lambda entry: math.prod(a.rf for a in entry[0]))
        # a side broadcast over the map (a [C, 1, 1] gate), or one whose every position reads the whole input
        # (attention's output on a residual), has no grid of its own
        gridded = [(source, a) for source, (a, flags), ops in read
                   if not any(op.kind == "whole" for op in ops) and not all(flags)]
        grids = {tuple((axis.jump, axis.start) for axis in a) for _, a in gridded}
        if len(grids) > 1:
            described = ", ".join(f"'{source}' jump {show_axes([axis.jump for axis in a])} start "
                                  f"{show_axes([axis.start for axis in a])}" for source, a in gridded)
            notes.append(f"merge of misaligned grids: {described}")
    notes += step.notes
    if step.layout.kind == "unknown":
        return axes, notes, uniform
    ops = read[0][2] if len(read) == 1 else ()
    before = axes
    kind = ops[0].kind if ops else None
    if kind == "window":
        windows = [op.window for op in ops]
        axes = _windowed(axes, windows)
        for w in merged_axes([w for w in windows if not w.is_exact]):
            if w.ceil:
                notes.append(f"{w.axis}: {w.formula()} rounded up to {w.out}: RF and jump are unchanged; the last "
                             f"window reaches past the input")
            else:
                notes.append(f"{w.axis}: {w.formula()} floored to {w.out}: RF and jump are unchanged, but the pixels "
                             f"only the dropped window would read go unseen (see Unseen px)")
    elif kind == "adaptive":
        axes, more = _adaptive(axes, layer.input_shapes[0][1:], layer.output_shape[1:])
        notes += more
    elif kind == "reads":
        axes = tuple(field.resampled(op.reads) for field, op in zip(axes, ops, strict=True))
        notes += _reads_notes(layer, ops)
    elif kind == "shift":
        axes = tuple(field.shifted(op.index) for field, op in zip(axes, ops, strict=True))
    if kind in RESAMPLING and any(uniform):
        # a window over positions that all read the same pixels reads those pixels: only the grid steps
        axes = tuple(replace(old, jump=new.jump) if flag else new
                     for old, new, flag in zip(before, axes, uniform, strict=True))
    elif ops and kind not in RESAMPLING:
        axes = tuple(_read(field, op, flag) for field, op, flag in zip(axes, ops, uniform, strict=True))
        uniform = tuple(flag or op.kind == "whole" for flag, op in zip(uniform, ops, strict=True))
    return axes, notes, uniform


def _windowed(axes: tuple[AxisField, ...], windows: list[WindowAxis | None]) -> tuple[AxisField, ...]:
    """Each axis through its window; axes whose field and window are alike (a square) are computed once."""
    done: dict[tuple[AxisField, WindowAxis], AxisField] = {}
    result = []
    for field, w in zip(axes, windows, strict=True):
        assert w is not None
        key = (field, replace(w, axis=""))
        if key not in done:
            done[key] = field.window(w.kernel, w.stride, w.padding, w.dilation)
        result.append(done[key])
    return tuple(result)


def _reads_notes(layer: LayerResult, ops: tuple[AxisOp, ...]) -> list[str]:
    """Where outputs read different numbers of positions (or some read none), one note per alike axes."""
    by_text: dict[str, list[str]] = {}
    for name, op in zip(axis_names(len(ops)), ops, strict=True):
        reads = op.reads
        assert reads is not None
        fewest, most = reads.counts
        missing = sum(reads.span(p) is None for p in reads.pattern)
        if fewest == most and not missing:
            continue
        text = f"outputs read {fewest}–{most} input positions" if fewest != most else \
            f"outputs read {most} input position{'s' if most > 1 else ''}"
        if isinstance(reads, Transposed):
            s, span = reads.stride, reads.dilation * (reads.kernel - 1) + 1
            text += f" (stride {s} does not divide the dilated kernel {span})" if span % s else ""
            text += f", {missing} in every {s} read none (bias only)" if missing else ""
        by_text.setdefault(f"{text}: rf uses the most, jump {show(reads.sigma)} of the input's", []).append(name)
    return [f"{joined(names)}: {layer.type} {text}" for text, names in by_text.items()]


def _read(field: AxisField, op: AxisOp, uniform: bool) -> AxisField:
    if op.kind == "whole":  # one window over the whole input: flatten, linear, global pooling, attention
        return field if uniform else field.window(op.n, 1, 0)  # once whole, reading it all again adds nothing
    if op.kind == "pick":  # one position: its own field, centred where that position's is
        return replace(field, start=field.start + op.index * field.jump)
    return field


def _adaptive(axes: tuple[AxisField, ...], sizes: tuple[int, ...], outputs: tuple[int, ...]) -> tuple[tuple, list]:
    result, notes = [], []
    for field, size, out in zip(axes, sizes, outputs, strict=True):
        lengths, steps = adaptive_lengths_and_steps(size, out)
        if len(lengths) == 1 and len(steps) <= 1:  # a plain window: K = S = size / out
            result.append(field.window(min(lengths), min(steps) if steps else 1, 0))
            continue
        result.append(replace(field.window(max(lengths), 1, 0), jump=field.jump * Fraction(size, out)))
        notes.append(f"adaptive pool {size} → {out}: windows of {min(lengths)}–{max(lengths)} pixels at varying "
                     f"steps; rf uses the largest, jump the average {show(Fraction(size, out))}")
    return tuple(result), notes


def adaptive_lengths_and_steps(size: int, out: int) -> tuple[set[int], set[int]]:
    """The window lengths and the steps between window starts of PyTorch's adaptive pooling, without listing
    the windows: [⌊i·n/o⌋, ⌈(i+1)·n/o⌉) for i < o.

    With n = q·o + r: a start advances by q + (⌊(i+1)·r/o⌋ − ⌊i·r/o⌋), so by q always (r < o) and by q + 1
    somewhere iff (o − 1)·r ≥ o. A window is q + ⌈(i+1)·r/o⌉ − ⌊i·r/o⌋ long: q + 1 for i = 0 (when r > 0), and
    q + 2 iff a multiple k·o falls strictly between i·r and (i+1)·r, which happens iff r does not divide o.
    """
    q, r = divmod(size, out)
    steps = set() if out == 1 else {q} | ({q + 1} if (out - 1) * r >= out else set())
    lengths = {q} if r == 0 else {q + 1} | ({q + 2} if out % r else set())
    return lengths, steps


def show(value: Fraction | int) -> str:
    """'4', '1.5', or '13/6' for a jump or start that is not a whole or half pixel."""
    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    if value.denominator in (2, 4, 8):
        return str(float(value))
    return f"{value.numerator}/{value.denominator}"


def show_axes(values: tuple | list) -> str:
    """One value where every axis agrees ('11'), else one per axis ('3×11×11', D × H × W)."""
    return show(values[0]) if all(v == values[0] for v in values) else "×".join(show(v) for v in values)
