"""A layer's hyper-parameters as text: compactly on its box (as Netron does), in full in the report's panel.

Nothing here names a layer type: every type declares its fields (`convaudit.core.fields.Field`: name, kind,
default), and a layer's parsed values are in `spec.params`. The box shows, in declared order, the values that
differ from their defaults and that the shapes on the edges do not already show:

    conv 3×3 stride 2 padding 1     a strided 3×3 (the first window-size field is written bare)
    conv 3×3 dw                     depthwise: groups equal to the input channels
    conv 1×1                        a pointwise 1×1 (out 256 is the edge's shape, so it is left out)
    attention heads 12 · dropout p 0.1 · lrn size 5 alpha 0.0001 beta 0.75 k 2

Whole items are left out (and "…" added) when the line would be too long; a number is never cut.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from convaudit.core.analysis import LayerResult
from convaudit.core.fields import Field, Size, per_axis
from convaudit.core.layers import REGISTRY

BOX_CHARS = 34  # the box's second line: type and hyper-parameters
GROUPS = "groups"  # a groups field equal to the input channels reads "dw" (depthwise)


def value_text(field: Field, value: Any) -> str:
    """One value in full: sizes as 3×3, fractions as decimals when they end (else 2/3), lists in brackets."""
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Fraction):
        return number_text(value)
    if isinstance(value, tuple):
        if isinstance(field.kind, Size):
            return "×".join(str(v) for v in value)
        if all(isinstance(v, tuple) for v in value):  # a table: one row per output
            return " ".join("(" + " ".join(str(v) for v in row) + ")" for row in value)
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def number_text(value: Fraction) -> str:
    """A decimal when the fraction has one of at most 12 digits after the point, else p/q: never rounded."""
    if value.denominator == 1:
        return str(value.numerator)
    denominator, twos, fives = value.denominator, 0, 0
    while denominator % 2 == 0:
        denominator, twos = denominator // 2, twos + 1
    while denominator % 5 == 0:
        denominator, fives = denominator // 5, fives + 1
    places = max(twos, fives)
    if denominator != 1 or places > 12:
        return f"{value.numerator}/{value.denominator}"
    scaled = abs(value.numerator) * 10**places // value.denominator
    whole, part = divmod(scaled, 10**places)
    return f"{'-' if value < 0 else ''}{whole}.{part:0{places}d}"


def _at_default(field: Field, value: Any) -> bool:
    return value == field.default


def _per_axis(field: Field, value: Any, layer: LayerResult) -> Any:
    """A size written once for every axis (kernel: 3), shown for each of the map's axes (3×3, 3×3×3)."""
    if not (isinstance(field.kind, Size) and isinstance(value, tuple) and layer.input_shapes):
        return value
    return per_axis(value, max(1, len(layer.input_shapes[0]) - 1)) or value


def _shown_by_shapes(value: Any, layer: LayerResult) -> bool:
    """An int the edges already show: the output's channels or features (out), the flattened input (in)."""
    if not isinstance(value, int) or isinstance(value, bool):
        return False
    return value == layer.output_shape[0] or value == math.prod(layer.input_shapes[0])


def box_items(layer: LayerResult) -> list[str]:
    items: list[str] = []
    window_written = False
    for field in REGISTRY[layer.type].fields:
        value = layer.spec.params.get(field.name)
        if value is None or _at_default(field, value):
            continue
        value = _per_axis(field, value, layer)
        if isinstance(value, bool):
            if value and field.default is False:  # a switch turned on (ceil); one turned off stays in the panel
                items.append(field.name)
            continue
        if field.name == GROUPS and len(layer.input_shapes[0]) >= 2 and value == layer.input_shapes[0][0] > 1:
            items.append("dw")
            continue
        if _shown_by_shapes(value, layer):
            continue
        if isinstance(field.kind, Size):
            if not window_written:  # the first size a type declares is its window: written bare
                window_written = True
                items.append(value_text(field, value))
                continue
            if len(set(value)) == 1:  # square: one number
                items.append(f"{field.name} {value[0]}")
                continue
        if isinstance(value, tuple) and value and all(isinstance(v, tuple) for v in value):
            items.append(field.name)  # a table: named here, written out in the panel
            continue
        if isinstance(value, tuple) and list(value) == list(layer.output_shape):
            continue
        items.append(f"{field.name} {value_text(field, value)}")
    return items


def box_line(layer: LayerResult, limit: int = BOX_CHARS) -> str:
    """The box's second line: the type, then whole items while they fit."""
    line = layer.type
    items = box_items(layer)
    for index, item in enumerate(items):
        rest = len(items) - index - 1
        room = limit - (2 if rest else 0)  # keep room for " …" when more follow
        if len(line) + 1 + len(item) > room:
            return line + " …"
        line += " " + item
    return line


def type_fields(type_name: str) -> list[list[str]]:
    """Each field of a type as [name, default as text, description], for the panel."""
    return [[f.name, value_text(f, f.default), f.doc] for f in REGISTRY[type_name].fields]


def layer_values(layer: LayerResult) -> dict[str, str]:
    """The layer's values that differ from their defaults, as text (the panel marks the rest as defaults)."""
    values = {}
    for field in REGISTRY[layer.type].fields:
        value = layer.spec.params.get(field.name)
        if not _at_default(field, value):
            values[field.name] = value_text(field, _per_axis(field, value, layer))
    return values
