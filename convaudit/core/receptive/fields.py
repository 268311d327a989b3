"""Receptive fields: for each layer and spatial axis, the field size, the jump and the first field's centre.

Coordinates are network-input pixel indices, pixel i centred at i, on each axis (L; H, W; D, H, W). Through a
window layer with dilated kernel K' = D·(K − 1) + 1, stride S and padding P:

    jump_out  = jump_in · S                             pixels between neighbouring outputs
    rf_out    = rf_in + (K' − 1) · jump_in              field size
    start_out = start_in + ((K' − 1)/2 − P) · jump_in   centre of the first output's field

(Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural Networks", Distill 2019). Element-wise
layers pass the field through; a fully connected layer on a map, flatten and global pooling see the whole map (a
window as large as their input). A merge of inputs on one grid reads, at each position, what its inputs read
there (the union of their fields); inputs on different grids (jump or start) are flagged, and the largest field
is taken. Adaptive pooling whose windows vary is flagged, with the largest window and the
average step. Pixel unshuffle is a window of r at stride r: the r² channels of a block together read the block.

Layers that resample name, per output p, the input positions it reads (core/receptive/resampling.py):

  transposed conv   output p reads the i with i·S − P + k·D = p for a tap k < K: two outputs per input at S = 2
                    (jump/2); when S does not divide D·(K − 1) + 1 outputs read different numbers of positions
  upsample          PyTorch's source index (interpolation.py): σ = 1/scale or in/out input positions per output
                    ((in − 1)/(out − 1) with align_corners); nearest reads 1 position, linear modes 1 or 2,
                    bicubic up to 4 per axis
  pixel shuffle     output p reads ⌊p/r⌋ (its channel picks the sub-position): jump/r
  pad               output p reads p − before (zeros: nothing in the padding; reflect, replicate and circular read
                    the mirrored, edge or wrapped position)
  crop              output p reads p + ⌊(in − out)/2⌋ of the first input; the second gives the size, and is not read

Outputs that share input positions have fields of different sizes, centred off their grid (outputs 0 and 1 of a
2 × 2 stride-2 up-convolution both read input 0), so the recurrence follows every output's field, as a pattern
that repeats every few outputs (core/receptive/patterns.py):

    jump_out  = jump_in · σ                         σ input positions per output (a window: S)
    field_out(p) = the union of field_in(i) over the positions i that output p reads, borders ignored
    rf        = the largest field                   (a note gives the smallest where they differ)
    start     = where output 0's field is centred on average: the mean, over one period, of each output's field
                centre less p·jump; output 0's own centre wherever every output's field sits alike

For windows alone this is the recurrence above, exactly. A U-Net's up-convolution and its cropped skip then come
out on one grid (same jump and start) when the crop's offset lines them up, and are flagged when it does not.

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
from convaudit.core.receptive.patterns import PERIOD_LIMIT, AxisField, Pattern
from convaudit.core.receptive.supports import Supports
from convaudit.core.windows import axis_names, joined, merged_axes

RESAMPLING = ("window", "adaptive", "reads", "shift")  # reads that move the grid rather than widen it to the axis


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


IDENTITY = Pattern(Fraction(1), Fraction(0), (Fraction(0),), (Fraction(0),))  # pixel i reads pixel i
NOTHING = Pattern(Fraction(1), Fraction(0), (None,), (None,))  # no output reads any pixel

Patterns = tuple[Pattern, ...]
Inputs = list[tuple[Patterns, tuple[bool, ...]]]


def receptive_fields(report: Report) -> dict[str, LayerField]:
    """The field of every analysed layer, in graph order."""
    steps = layouts(report)
    support = Supports(report, steps)
    rank = len(report.input) - 1
    patterns: dict[str, Patterns] = {INPUT: (IDENTITY,) * rank}
    uniform: dict[str, tuple[bool, ...]] = {INPUT: (False,) * rank}  # per axis: every position reads it all
    result: dict[str, LayerField] = {}
    for layer in report.layers:
        axes, notes, uniform[layer.name] = _layer_axes(layer, [(patterns[s], uniform[s]) for s in layer.spec.inputs],
                                                       steps[layer.name])
        patterns[layer.name] = axes
        result[layer.name] = LayerField(layer.name, tuple(axis.field() for axis in axes), support.uncovered(layer),
                                        tuple(notes))
    return result


def _layer_axes(layer: LayerResult, inputs: Inputs, step: Step) -> tuple[Patterns, list, tuple[bool, ...]]:
    """The layer's fields from its inputs' (and whether each axis is uniform: every position of the output
    reads the whole of what the tensor reads, after attention, a layer norm along the axis, a broadcast gate)."""
    notes: list[str] = []
    read = [(source, entry, ops) for source, entry, ops in zip(layer.spec.inputs, inputs, step.ops, strict=True)
            if ops[0].kind != "unread"]  # a crop's second input gives the size only
    if not read:  # a source (a learned tensor or a constant used directly) reads no input position, anywhere
        rank = len(step.layout.sizes)
        return (NOTHING,) * rank, notes, (True,) * rank
    axes, uniform = read[0][1]
    if len(read) > 1:
        axes, uniform = _merged(read, notes)
    notes += step.notes
    if step.layout.kind == "unknown":
        return axes, notes, uniform
    # one input's reads; several inputs that each read every position (attention's queries, keys and values) read
    # the whole input as one
    every_whole = all(op.kind == "whole" for _, _, entry_ops in read for op in entry_ops)
    ops = read[0][2] if len(read) == 1 or every_whole else ()
    before = axes
    kind = ops[0].kind if ops else None
    if kind == "window":
        windows = [op.window for op in ops]
        axes = tuple(axis.window(w.kernel, w.stride, w.padding, w.dilation)  # type: ignore[union-attr]
                     for axis, w in zip(axes, windows, strict=True))
        for w in merged_axes([w for w in windows if not w.is_exact]):  # type: ignore[union-attr]
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
        axes, more = _resampled(axes, ops)
        notes += more
    elif kind == "shift":
        axes = tuple(axis.shifted(op.index) for axis, op in zip(axes, ops, strict=True))
    if kind in RESAMPLING and any(uniform):
        # a window over positions that all read the same pixels reads those pixels: only the grid steps
        axes = tuple(replace(old, jump=new.jump) if flag else new
                     for old, new, flag in zip(before, axes, uniform, strict=True))
    elif ops and kind not in RESAMPLING:
        axes = tuple(_read(axis, op, flag) for axis, op, flag in zip(axes, ops, uniform, strict=True))
        uniform = tuple(flag or op.kind == "whole" for flag, op in zip(uniform, ops, strict=True))
    if kind in RESAMPLING:
        notes += _variety_notes(layer, before, axes)
    return axes, notes, uniform


def _merged(read: list, notes: list[str]) -> tuple[Patterns, tuple[bool, ...]]:
    """add, concat, mul: on one grid, each position's field is the union of the inputs' at that position; on
    different grids (flagged), the largest field. A side broadcast over the map (a [C, 1, 1] gate), or one whose
    every position reads the whole input (attention's output on a residual), has no grid of its own."""
    axes, uniform = max((entry for _, entry, _ in read), key=lambda entry: math.prod(a.field().rf for a in entry[0]))
    gridded = [(source, a) for source, (a, flags), ops in read
               if not any(op.kind == "whole" for op in ops) and not all(flags)]
    grids = {tuple((axis.jump, axis.start) for axis in a) for _, a in gridded}
    if len(grids) > 1:
        described = ", ".join(f"'{source}' jump {show_axes([axis.jump for axis in a])} start "
                              f"{show_axes([axis.start for axis in a])}" for source, a in gridded)
        notes.append(f"merge of misaligned grids: {described}")
    elif any(a is axes for _, a in gridded):
        axes = tuple(_union(per_axis) for per_axis in zip(*(a for _, a in gridded), strict=True))
    return axes, uniform


def _union(patterns: tuple[Pattern, ...]) -> Pattern:
    result = patterns[0]
    for pattern in patterns[1:]:
        result = result.union(pattern)
    return result


def _resampled(axes: Patterns, ops: tuple[AxisOp, ...]) -> tuple[Patterns, list[str]]:
    """Through what a transposed convolution, up-sampling, pixel shuffle or padding reads (resampling.py)."""
    result, notes = [], []
    for axis, op in zip(axes, ops, strict=True):
        reads = op.reads
        assert reads is not None
        if axis.period * reads.period > PERIOD_LIMIT:
            axis = axis.regular()
            notes.append(f"fields repeat only every {axis.period * reads.period:,} outputs: followed as one centred "
                         f"field of the largest size")
        result.append(axis.through(reads.ideal, reads.period, reads.advance, reads.sigma, reads.offset))
    return tuple(result), notes


def _variety_notes(layer: LayerResult, before: Patterns, after: Patterns) -> list[str]:
    """Where outputs' fields come to differ in size, or some outputs come to read nothing: one note per alike
    axes, at the layer where it starts (or changes)."""
    by_text: dict[str, list[str]] = {}
    for name, old, new in zip(axis_names(len(after)), before, after, strict=True):
        if new.widths is not None and new.widths[0] != new.widths[1] and new.widths != old.widths:
            low, high = new.widths
            text = (f"fields of {show(low)}–{show(high)} pixels (outputs that share input positions see different "
                    f"context): RF is the largest")
            by_text.setdefault(text, []).append(name)
        if new.empty and (new.empty, new.period) != (old.empty, old.period):
            what = "all outputs read" if new.empty == new.period else \
                f"{new.empty} in every {new.period} outputs read"
            by_text.setdefault(f"{what} no input position (bias only)", []).append(name)
    return [f"{joined(names)}: {text}" for text, names in by_text.items()]


def _read(axis: Pattern, op: AxisOp, uniform: bool) -> Pattern:
    if op.kind == "whole":  # one window over the whole input: flatten, linear, global pooling, attention
        return axis if uniform else axis.window(op.n, 1, 0)  # once whole, reading it all again adds nothing
    if op.kind == "pick":  # one position: its own field, centred where that position's is
        return axis.picked(op.index)
    return axis


def _adaptive(axes: Patterns, sizes: tuple[int, ...], outputs: tuple[int, ...]) -> tuple[Patterns, list]:
    result, notes = [], []
    for axis, size, out in zip(axes, sizes, outputs, strict=True):
        lengths, steps = adaptive_lengths_and_steps(size, out)
        if len(lengths) == 1 and len(steps) <= 1:  # a plain window: K = S = size / out
            result.append(axis.window(min(lengths), min(steps) if steps else 1, 0))
            continue
        field = axis.field()
        widest = field.window(max(lengths), 1, 0)
        result.append(Pattern.centred(replace(widest, jump=field.jump * Fraction(size, out))))
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
