"""Typed fields of a layer: each parses one YAML value and describes itself in JSON Schema.

A layer type declares its fields once; the parser validates against them and
the published JSON Schema is generated from the same declarations, so the two
cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

Problem = str  # a human-readable reason a value was refused


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


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"string '{value}'"
    if value is None:
        return "nothing"
    if isinstance(value, list):
        return f"list {value}"
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
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.minimum}


class Size(FieldKind):
    """An int for both axes, or [h, w]; normalised to (h, w)."""

    def __init__(self, minimum: int = 1):
        self.axis = Int(minimum)
        self.description = f"{self.axis.description} or [h, w]"

    def parse(self, value: Any) -> tuple[int, int]:
        try:
            if _is_int(value):
                return (self.axis.parse(value),) * 2
            if isinstance(value, list) and len(value) == 2 and all(_is_int(v) for v in value):
                return self.axis.parse(value[0]), self.axis.parse(value[1])
        except ValueError:
            pass
        raise ValueError(f"expected {self.description}, got {_describe(value)}")

    def schema(self) -> dict[str, Any]:
        axis = self.axis.schema()
        return {"oneOf": [axis, {"type": "array", "items": axis, "minItems": 2, "maxItems": 2}]}


class Bool(FieldKind):
    description = "true or false"

    def parse(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {_describe(value)}")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


def parse_number(value: Any) -> Fraction:
    """An exact number from an int, a float's written value, or a string like '60e6', '2/3' or '5%'."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected a number, got {_describe(value)}")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(repr(value))  # the decimal the user wrote, not the binary float
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        try:
            return Fraction(text)
        except (ValueError, ZeroDivisionError):
            pass
    raise ValueError(f"expected a number, got {_describe(value)}")


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
        except ValueError:
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
        if not isinstance(value, list) or not 1 <= len(value) <= 3 or not all(_is_int(v) and v > 0 for v in value):
            raise ValueError(f"expected {self.description}, got {_describe(value)}")
        return tuple(value)

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1, "maxItems": 3}


@dataclass(frozen=True)
class Field:
    """One key a layer accepts."""

    name: str
    kind: FieldKind
    doc: str
    default: Any = None
    required: bool = False
    check: Callable[[Any], Problem | None] | None = None  # extra rule beyond the kind

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
