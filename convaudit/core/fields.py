"""Typed fields of a layer: each parses one YAML value and describes itself in JSON Schema.

A layer type declares its fields once; the parser validates against them and
the published JSON Schema is generated from the same declarations, so the two
cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

Problem = str  # a human-readable reason a value was refused

# Limits on any number a spec, a claim or an option may state, checked before the number is built:
# Fraction("1e999999999") would compute 10**999999999, and Python refuses to read ints of more than
# 4,300 digits. Nothing a network is made of comes near 2**63 (a tensor of that many elements is 32 EiB at fp32).
MAX_MAGNITUDE = 2**63
MAX_NUMBER_TEXT = 100  # characters in a written number such as '60e6', '2/3' or '1.7159'
MAX_EXPONENT = 40  # |e| in '1e-40' … '1e40' (the magnitude limit then decides)
MAX_SPATIAL_AXES = 3  # 1-D (audio), 2-D (images), 3-D (video, volumes), as torch's ConvNd
DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)(?:[eE]([+-]?\d+))?")
RATIO = re.compile(r"[+-]?\d+/\d+")


class FieldKind:
    """How one kind of value is checked, normalised and described."""

    description = ""

    def parse(self, value: Any) -> Any:
        """Return the normalised value, or raise ValueError with the reason."""
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        raise NotImplementedError


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def describe_int(value: int) -> str:
    """An int as text, or its size when it is too long to write (Python refuses str() past 4,300 digits)."""
    if abs(value) < 10**30:
        return str(value)
    digits = int(abs(value).bit_length() * 0.30103) + 1  # ≈ log10: within one digit, and never calls str()
    return f"{'−' if value < 0 else ''}an integer of about {digits:,} digits"


def too_large(value: int | Fraction) -> bool:
    return abs(value) > MAX_MAGNITUDE


def describe(value: Any) -> str:
    """A value as an error message shows it: its kind and, when short, the value itself."""
    return _describe(value)


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"int {describe_int(value)}"
    if isinstance(value, str):
        if len(value) > 200:
            return f"a string of {len(value):,} characters"
        return f"string '{value}'"
    if value is None:
        return "nothing"
    if isinstance(value, list):
        text = f"list {value}" if len(value) <= 20 and not any(isinstance(v, (list, dict)) for v in value) else ""
        return text if text and len(text) <= 200 and not any(isinstance(v, int) and too_large(v) for v in value) \
            else f"a list of {len(value):,} items"
    if isinstance(value, dict):
        return "a mapping"
    return f"{type(value).__name__} {value}"


class Int(FieldKind):
    def __init__(self, minimum: int = 1):
        self.minimum = minimum
        self.description = "a positive integer" if minimum == 1 else f"an integer ≥ {minimum}"

    def parse(self, value: Any) -> int:
        if not _is_int(value) or value < self.minimum:
            raise ValueError(f"expected {self.description}, got {_describe(value)}")
        if too_large(value):
            raise ValueError(f"refused: {describe_int(value)} is larger than 2^63 (no network comes near)")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.minimum}


class Size(FieldKind):
    """One int for every spatial axis, or one per axis ([h, w], [l], [d, h, w]); normalised to a tuple, of one
    entry when it applies to every axis (`per_axis` spreads it once the input's axes are known)."""

    spreads = True  # a value written once stands for every axis
    def __init__(self, minimum: int = 1):
        self.axis = Int(minimum)
        self.description = f"{self.axis.description} or one per spatial axis such as [h, w]"

    def parse(self, value: Any) -> tuple[int, ...]:
        try:
            if _is_int(value):
                return (self.axis.parse(value),)
            if isinstance(value, list) and 1 <= len(value) <= MAX_SPATIAL_AXES and all(_is_int(v) for v in value):
                return tuple(self.axis.parse(v) for v in value)
        except ValueError:
            pass
        raise ValueError(f"expected {self.description}, got {_describe(value)}")

    def schema(self) -> dict[str, Any]:
        axis = self.axis.schema()
        return {"oneOf": [axis, {"type": "array", "items": axis, "minItems": 1, "maxItems": MAX_SPATIAL_AXES}]}


def per_axis(value: tuple[int, ...], axes: int) -> tuple[int, ...] | None:
    """A Size for `axes` spatial axes: one entry spread over all, or one per axis; None if the count differs."""
    if len(value) == 1:
        return value * axes
    return value if len(value) == axes else None


class Bool(FieldKind):
    description = "true or false"

    def parse(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {_describe(value)}")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


def parse_number(value: Any) -> Fraction:
    """An exact number from an int, a float's written value, or a string like '60e6' or '2/3'.

    Its size is bounded before it is built: at most MAX_NUMBER_TEXT characters, an exponent within ±MAX_EXPONENT
    and a magnitude within 2^63; past those, ValueError says so.
    """
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected a number, got {_describe(value)}")
    if isinstance(value, int):
        number = Fraction(value)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"expected a finite number, got {value}")
        number = _from_text(repr(value))  # the decimal the user wrote, not the binary float
    elif isinstance(value, str):
        number = _from_text(value.strip().replace("_", ""))
    else:
        raise ValueError(f"expected a number, got {_describe(value)}")
    if too_large(number):
        shown = describe_int(value) if isinstance(value, int) else _describe(value)
        raise ValueError(f"refused: {shown} is larger than 2^63 in magnitude")
    return number


def _from_text(text: str) -> Fraction:
    if len(text) > MAX_NUMBER_TEXT:
        raise ValueError(f"expected a number of at most {MAX_NUMBER_TEXT} characters, got {len(text):,}")
    decimal = DECIMAL.fullmatch(text)
    if decimal:
        exponent = int(decimal.group(2) or 0)
        if abs(exponent) > MAX_EXPONENT:
            raise ValueError(f"refused: the exponent in '{text}' is beyond ±{MAX_EXPONENT}")
        return Fraction(text)
    if RATIO.fullmatch(text):
        try:
            return Fraction(text)
        except ZeroDivisionError:
            raise ValueError(f"'{text}' divides by zero") from None
    raise ValueError(f"expected a number, got string '{text}'")


class Number(FieldKind):
    """A real number (kept exact), optionally bounded."""

    def __init__(self, minimum: Fraction | int | None = None, maximum: Fraction | int | None = None,
                 exclusive_minimum: bool = False, exclusive_maximum: bool = False):
        self.minimum, self.maximum = minimum, maximum
        self.exclusive_minimum, self.exclusive_maximum = exclusive_minimum, exclusive_maximum
        bounds = []
        if minimum is not None:
            bounds.append(f"{'>' if exclusive_minimum else '≥'} {minimum}")
        if maximum is not None:
            bounds.append(f"{'<' if exclusive_maximum else '≤'} {maximum}")
        self.description = "a number" + (f" {' and '.join(bounds)}" if bounds else "")

    def parse(self, value: Any) -> Fraction:
        try:
            number = parse_number(value)
        except ValueError as problem:
            if str(problem).startswith("refused"):
                raise
            raise ValueError(f"expected {self.description}, got {_describe(value)}") from None
        low_ok = self.minimum is None or (number > self.minimum if self.exclusive_minimum else number >= self.minimum)
        high_ok = self.maximum is None or (number < self.maximum if self.exclusive_maximum else number <= self.maximum)
        if not (low_ok and high_ok):
            raise ValueError(f"expected {self.description}, got {_describe(value)}")
        return number

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": ["number", "string"]}
        if self.minimum is not None:
            key = "exclusiveMinimum" if self.exclusive_minimum else "minimum"
            schema[key] = float(self.minimum)
        if self.maximum is not None:
            key = "exclusiveMaximum" if self.exclusive_maximum else "maximum"
            schema[key] = float(self.maximum)
        return schema


class Text(FieldKind):
    description = "a string"

    def parse(self, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError(f"expected a string, got {_describe(value)}")
        return str(value)

    def schema(self) -> dict[str, Any]:
        return {"type": "string"}


class Choice(FieldKind):
    def __init__(self, *choices: str):
        self.choices = choices
        self.description = "one of " + ", ".join(choices)

    def parse(self, value: Any) -> str:
        if value not in self.choices:
            raise ValueError(f"expected {self.description}, got {_describe(value)}")
        return value

    def schema(self) -> dict[str, Any]:
        return {"enum": list(self.choices)}


class Names(FieldKind):
    """A layer name or a list of them (the `from:` of a layer)."""

    description = "a layer name or a list of layer names"

    def parse(self, value: Any) -> tuple[str, ...]:
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(v, str) and v for v in items):
            raise ValueError(f"expected {self.description}, got {_describe(value)}")
        return tuple(items)

    def schema(self) -> dict[str, Any]:
        name = {"type": "string", "minLength": 1}
        return {"oneOf": [name, {"type": "array", "items": name, "minItems": 1}]}


class ConnectionTable(FieldKind):
    """For each output map, the input maps it reads: [[0, 1, 2], [1, 2, 3], ...]."""

    description = "a list giving, for each output map, the list of input maps it reads"

    def parse(self, value: Any) -> tuple[tuple[int, ...], ...]:
        if isinstance(value, dict):  # {0: [0, 1, 2], 1: [...]} keyed by output map
            keys = sorted(value, key=lambda k: int(k) if str(k).isdigit() else -1)
            if [str(k) for k in keys] != [str(i) for i in range(len(keys))]:
                raise ValueError("a connection table keyed by output map must use keys 0, 1, 2, ... in full")
            value = [value[k] for k in keys]
        if not isinstance(value, list) or not value:
            raise ValueError(f"expected {self.description}, got {_describe(value)}")
        rows = []
        for index, row in enumerate(value):
            if not isinstance(row, list) or not row or not all(_is_int(v) and v >= 0 for v in row):
                raise ValueError(f"output map {index}: expected a non-empty list of input map indices, "
                                 f"got {_describe(row)}")
            if len(set(row)) != len(row):
                raise ValueError(f"output map {index}: lists an input map twice: {row}")
            rows.append(tuple(sorted(row)))
        return tuple(rows)

    def schema(self) -> dict[str, Any]:
        row = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1, "uniqueItems": True}
        return {"type": "array", "items": row, "minItems": 1}


class Shape(FieldKind):
    """An expected tensor shape: [C, H, W] or [features]."""

    description = "a shape such as [96, 55, 55] or [4096]"

    def parse(self, value: Any) -> tuple[int, ...]:
        if not isinstance(value, list) or not 1 <= len(value) <= 1 + MAX_SPATIAL_AXES \
                or not all(_is_int(v) and v > 0 for v in value):
            raise ValueError(f"expected {self.description}, got {_describe(value)}")
        if any(too_large(v) for v in value):
            raise ValueError("refused: a size larger than 2^63")
        return tuple(value)

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1,
                "maxItems": 1 + MAX_SPATIAL_AXES}


@dataclass(frozen=True)
class Field:
    """One key a layer accepts."""

    name: str
    kind: FieldKind
    doc: str
    default: Any = None
    required: bool = False
    check: Callable[[Any], Problem | None] | None = None  # extra rule beyond the kind
    default_from: str | None = None  # left out, it takes this other field's value (a pool's stride: its kernel)

    def schema(self) -> dict[str, Any]:
        schema = {**self.kind.schema(), "description": self.doc}
        if self.default is not None and not self.required:
            default = list(self.default) if isinstance(self.default, tuple) else self.default
            if isinstance(default, Fraction):
                default = float(default)
            if isinstance(default, list) and len(set(default)) == 1 and isinstance(self.kind, Size):
                default = default[0]
            schema["default"] = default
        return schema
