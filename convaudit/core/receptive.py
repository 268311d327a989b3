"""Receptive fields: for each layer and axis, the field size, the jump and the first field's centre.

Coordinates are network-input pixel indices, pixel i centred at i. Through a
window layer with dilated kernel K' = D·(K − 1) + 1, stride S and padding P:

    jump_out  = jump_in · S                             pixels between neighbouring outputs
    rf_out    = rf_in + (K' − 1) · jump_in              field size
    start_out = start_in + ((K' − 1)/2 − P) · jump_in   centre of the first output's field

(Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural
Networks", Distill 2019). Element-wise layers pass the field through; a fully
connected layer on a map, flatten and global pooling see the whole map (a window
as large as their input). Merges take the largest field of their inputs, and
inputs on different grids (jump or start) are flagged. Adaptive pooling whose
windows vary is flagged, with the largest window and the average step.

The recurrence ignores borders. The *support* of an output unit is the input
range its value really depends on: its windows clipped to the input, followed
back layer by layer. Floor rounding drops the last windows, so some input pixels
reach no output at all; `uncovered` counts them from the supports of the first
and last outputs, and a pixel lost at one layer stays lost downstream.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from functools import lru_cache

from convaudit.core.analysis import LayerResult, Report
from convaudit.core.layers import adaptive_windows
from convaudit.core.model import INPUT
from convaudit.core.windows import merged_axes


@dataclass(frozen=True)
class AxisField:
    rf: Fraction
    jump: Fraction
    start: Fraction

    def window(self, kernel: int, stride: int, padding: int, dilation: int = 1) -> AxisField:
        span = dilation * (kernel - 1) + 1
        return AxisField(self.rf + (span - 1) * self.jump, self.jump * stride,
                         self.start + (Fraction(span - 1, 2) - padding) * self.jump)


@dataclass(frozen=True)
class LayerField:
    name: str
    axes: tuple[AxisField, AxisField]  # H, W
    uncovered: tuple[int, int]  # network-input pixels per axis that no output depends on
    notes: tuple[str, ...] = ()

    @property
    def rf(self) -> tuple[Fraction, Fraction]:
        return self.axes[0].rf, self.axes[1].rf

    @property
    def jump(self) -> tuple[Fraction, Fraction]:
        return self.axes[0].jump, self.axes[1].jump

    @property
    def start(self) -> tuple[Fraction, Fraction]:
        return self.axes[0].start, self.axes[1].start


IDENTITY = AxisField(Fraction(1), Fraction(1), Fraction(0))
GLOBAL = ("globalavgpool", "flatten", "linear", "rbf")  # on a feature map: one window over all of it


def receptive_fields(report: Report) -> dict[str, LayerField]:
    """The field of every analysed layer, in graph order."""
    support = Supports(report)
    fields: dict[str, tuple[tuple[AxisField, AxisField], list[str]]] = {INPUT: ((IDENTITY, IDENTITY), [])}
    result: dict[str, LayerField] = {}
    for layer in report.layers:
        axes, notes = _layer_axes(layer, [fields[s][0] for s in layer.spec.inputs])
        fields[layer.name] = (axes, notes)
        result[layer.name] = LayerField(layer.name, axes, support.uncovered(layer), tuple(notes))
    return result


def _layer_axes(layer: LayerResult, inputs: list[tuple[AxisField, AxisField]]) -> tuple[tuple, list[str]]:
    notes: list[str] = []
    axes = inputs[0]
    if len(inputs) > 1:
        axes = max(inputs, key=lambda a: a[0].rf * a[1].rf)
        grids = {(a[0].jump, a[1].jump, a[0].start, a[1].start) for a in inputs}
        if len(grids) > 1:
            described = ", ".join(f"'{source}' jump {show(a[0].jump)} start {show(a[0].start)}"
                                  for source, a in zip(layer.spec.inputs, inputs, strict=True))
            notes.append(f"merge of misaligned grids: {described}")
    shape_in = layer.input_shapes[0]
    if layer.windows:
        axes = tuple(a.window(w.kernel, w.stride, w.padding, w.dilation)
                     for a, w in zip(axes, layer.windows, strict=True))
        for w in merged_axes([w for w in layer.windows if not w.is_exact]):
            axis = w.axis
            if w.ceil:
                notes.append(f"{axis}: {w.formula()} rounded up to {w.out}: RF and jump are unchanged; the last "
                             f"window reaches past the input")
            else:
                notes.append(f"{axis}: {w.formula()} floored to {w.out}: RF and jump are unchanged, but the pixels "
                             f"only the dropped window would read go unseen (see Unseen px)")
    elif layer.type in GLOBAL and len(shape_in) == 3:
        axes = tuple(a.window(size, 1, 0) for a, size in zip(axes, shape_in[1:], strict=True))
    elif layer.type == "adaptiveavgpool":
        axes, more = _adaptive(axes, shape_in[1:], layer.output_shape[1:])
        notes += more
    return axes, notes


def _adaptive(axes: tuple[AxisField, ...], sizes: tuple[int, ...], outputs: tuple[int, ...]) -> tuple[tuple, list]:
    result, notes = [], []
    for field, size, out in zip(axes, sizes, outputs, strict=True):
        windows = adaptive_windows(size, out)
        lengths = {end - start for start, end in windows}
        steps = {b[0] - a[0] for a, b in zip(windows, windows[1:], strict=False)}
        if len(lengths) == 1 and len(steps) <= 1:  # a plain window: K = S = size / out
            result.append(field.window(lengths.pop(), steps.pop() if steps else 1, 0))
            continue
        result.append(replace(field.window(max(lengths), 1, 0), jump=field.jump * Fraction(size, out)))
        notes.append(f"adaptive pool {size} → {out}: windows of {min(lengths)}–{max(lengths)} pixels at varying "
                     f"steps; rf uses the largest, jump the average {show(Fraction(size, out))}")
    return tuple(result), notes


class Supports:
    """The exact input range each output unit depends on, per axis, walking real windows back to the input."""

    def __init__(self, report: Report):
        self.layers = {layer.name: layer for layer in report.layers}
        self.network = report.input[1:]
        self.low = lru_cache(maxsize=None)(self._low)
        self.high = lru_cache(maxsize=None)(self._high)

    def size(self, name: str, axis: int) -> int:
        if name == INPUT:
            return self.network[axis]
        shape = self.layers[name].output_shape
        return shape[1 + axis] if len(shape) == 3 else 1

    def _taps(self, layer: LayerResult, axis: int, index: int) -> list[tuple[str, range | list[int]]]:
        """Every (input layer, input indices) that output `index` reads on this axis, clipped to the input."""
        taps: list[tuple[str, range | list[int]]] = []
        for source, shape in zip(layer.spec.inputs, layer.input_shapes, strict=True):
            size = self.size(source, axis)
            if layer.windows:
                w = layer.windows[axis]
                first = index * w.stride - w.padding
                taps.append((source, [t for t in range(first, first + w.effective_kernel, w.dilation)
                                      if 0 <= t < size]))
            elif layer.type == "adaptiveavgpool":
                start, end = adaptive_windows(size, layer.output_shape[1 + axis])[index]
                taps.append((source, range(start, end)))
            elif (layer.type in GLOBAL and len(shape) == 3) or len(layer.output_shape) == 1:
                taps.append((source, range(size)))  # the whole input
            else:
                taps.append((source, [index]))
        return taps

    def _low(self, name: str, axis: int, index: int) -> int:
        """The first input pixel output `index` depends on (the input size if it reads only padding)."""
        if name == INPUT:
            return index
        lows = [self.low(source, axis, t) for source, taps in self._taps(self.layers[name], axis, index)
                for t in taps]
        return min(lows, default=self.network[axis])

    def _high(self, name: str, axis: int, index: int) -> int:
        """The last input pixel output `index` depends on (−1 if it reads only padding)."""
        if name == INPUT:
            return index
        highs = [self.high(source, axis, t) for source, taps in self._taps(self.layers[name], axis, index)
                 for t in taps]
        return max(highs, default=-1)

    def uncovered(self, layer: LayerResult) -> tuple[int, int]:
        result = []
        for axis in (0, 1):
            outputs = self.size(layer.name, axis)
            first, last = self.low(layer.name, axis, 0), self.high(layer.name, axis, outputs - 1)
            result.append(first + (self.network[axis] - 1 - last))
        return result[0], result[1]


def show(value: Fraction | int) -> str:
    """'4', '1.5', or '13/6' for a jump or start that is not a whole or half pixel."""
    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    if value.denominator in (2, 4, 8):
        return str(float(value))
    return f"{value.numerator}/{value.denominator}"
