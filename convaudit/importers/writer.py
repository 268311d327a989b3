"""Write an imported network as a readable spec: one flow mapping per layer, defaults left out,
`from:` only where a layer does not read the one written before it."""

from __future__ import annotations

import json
import re
from typing import Any

from convaudit.core.layers import REGISTRY
from convaudit.core.model import INPUT, Untraced

PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*|\$[A-Za-z_]\w*( \* \d+)?")
YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {scalar(v)}" for k, v in value.items()) + "}"
    if value is None:
        return "null"
    text = str(value)
    if PLAIN.fullmatch(text) and text.lower() not in YAML_WORDS:
        return text
    return json.dumps(text, ensure_ascii=False)


def compact(value: Any) -> Any:
    """[3, 3] -> 3, [2, 2, 2] -> 2: a size with equal axes is written once (it then stands for every axis)."""
    if isinstance(value, (list, tuple)) and 1 <= len(value) <= 3 and len(set(value)) == 1 \
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return value[0]
    return value


def spreads(type_name: str, key: str) -> bool:
    """Whether this field takes one value for every axis (a Size): then [3, 3] is written 3."""
    field = next((f for f in REGISTRY[type_name].fields if f.name == key), None) if type_name in REGISTRY else None
    return field is not None and getattr(field.kind, "spreads", False)


def written(type_name: str, key: str, value: Any) -> Any:
    """A field's value as the spec writes it: a size with equal axes once."""
    return compact(value) if spreads(type_name, key) else value


def layer_fields(type_name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The fields worth writing: those that differ from the type's default."""
    fields = {f.name: f for f in REGISTRY[type_name].fields} if type_name in REGISTRY else {}
    written = {}
    for key, value in params.items():
        field = fields.get(key)
        default = field.default if field is not None else object()
        if field is not None and getattr(field.kind, "spreads", False):  # one value stands for every axis
            default = compact(list(default) if isinstance(default, tuple) else default)
            value = compact(value)
        elif isinstance(default, tuple):
            default = list(default)
        if value == default and type(value) is type(default):
            continue
        if field is not None and field.default_from and value == compact(params.get(field.default_from)):
            continue  # a pool's stride defaults to its kernel
        written[key] = value
    return written


def entry(type_name: str, name: str, params: dict[str, Any], inputs: tuple[str, ...] | None) -> str:
    parts = [f"type: {type_name}", f"name: {scalar(name)}"]
    parts += [f"{key}: {scalar(value)}" for key, value in layer_fields(type_name, params).items()]
    if inputs:  # none for a source, which reads nothing
        parts.append(f"from: {scalar(inputs[0]) if len(inputs) == 1 else scalar(list(inputs))}")
    return "{" + ", ".join(parts) + "}"


def header(lines: list[str]) -> str:
    return "".join(f"# {line}\n" if line else "#\n" for line in lines)


def top_level(name: str, title: str, source: str, origin: dict[str, Any], input_shape: tuple[int, int, int],
              separator: bool = True, untraced: Untraced | None = None) -> str:
    text = f"name: {scalar(name)}\n"
    if title:
        text += f"title: {scalar(title)}\n"
    if source:
        text += f"source: {scalar(source)}\n"
    imported = {"from": origin["from"]}
    if origin.get("args"):
        imported["args"] = origin["args"]
    text += f"imported: {scalar(imported)}\n"
    if untraced is not None:  # one flow mapping, as `imported:`; the parser reads it back (spec.parser)
        fields = {"op": untraced.op, "module": untraced.module, "reason": untraced.reason}
        text += f"untraced: {scalar({**fields, 'unreached': list(untraced.unreached)})}\n"
    text += f"input: {scalar(list(input_shape))}\n"
    if separator:
        text += 'separator: "."\n'
    return text


def reads_previous(inputs: tuple[str, ...], previous: str) -> bool:
    return len(inputs) == 1 and inputs[0] == previous


__all__ = ["entry", "header", "reads_previous", "scalar", "top_level", "INPUT"]
