"""The spec model (frozen records) and the parser from a YAML document to it.

A network is a directed acyclic graph of layers. A layer reads the previous
layer's output unless it names its inputs with `from:`, so a plain list of
layers is a chain. Every error names the file, line and key.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import SpecError, Where
from .fields import Field, Int, Names, Shape, Text
from .layers import REGISTRY, SYNONYMS
from .yamlsource import Document, KeyPath, load_document, read_text

INPUT = "input"  # the name of the network's input in `from:`

EXPECT_FIELDS = {
    "shape": Shape(),
    "params": Int(0),
    "trainable_params": Int(0),
    "weights": Int(0),
    "biases": Int(0),
    "macs": Int(0),
    "flops": Int(0),
    "activations": Int(1),
}
COMMON_LAYER_KEYS = ("type", "name", "from", "expect")
TOP_LEVEL_KEYS = ("name", "title", "source", "input", "layers", "aliases", "notes", "claims", "outputs",
                  "blocks", "variants")


@dataclass(frozen=True)
class LayerSpec:
    """One layer as the spec gives it, hyper-parameters normalised and defaults filled."""

    name: str
    type: str
    params: Mapping[str, Any]
    inputs: tuple[str, ...]
    expect: Mapping[str, Any]
    where: Where  # the layer's own line
    key_lines: Mapping[str, int] = field(default_factory=dict)
    block: tuple[str, ...] = ()  # enclosing block instances, outermost first

    def where_key(self, key: str | None) -> Where:
        if key is None:
            return self.where
        base = self.where.key or ""
        return Where(self.where.file, self.key_lines.get(key, self.where.line), f"{base}.{key}" if base else key)


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    input: tuple[int, int, int]
    layers: tuple[LayerSpec, ...]  # topological order
    title: str = ""
    source: str = ""
    file: str = "<spec>"
    aliases: tuple[str, ...] = ()
    notes: str = ""
    outputs: tuple[str, ...] = ()
    input_where: Where = Where()
    raw: Mapping[str, Any] = field(default_factory=dict)  # the whole document, for later sections

    def with_input(self, height: int, width: int) -> NetworkSpec:
        return replace(self, input=(self.input[0], height, width))

    def layer(self, name: str) -> LayerSpec:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)


def closest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """' (did you mean 'x'?)' or ''."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def load_spec(path: Path | str) -> NetworkSpec:
    path = Path(path)
    return parse_document(load_document(read_text(path), str(path)))


def parse_text(text: str, file: str = "<spec>") -> NetworkSpec:
    return parse_document(load_document(text, file))


def parse_document(doc: Document) -> NetworkSpec:
    data = doc.data
    if not isinstance(data, dict):
        raise SpecError("a spec must be a mapping with at least 'name', 'input' and 'layers'", doc.where(()))
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise doc.error((key,), f"unknown top-level key '{key}'{closest(key, TOP_LEVEL_KEYS)}")
    for key in ("name", "input", "layers"):
        if key not in data:
            raise doc.error((), f"the spec has no '{key}'")
    name = _field_value(doc, ("name",), Field("name", Text(), ""), data["name"])
    input_shape = _parse_input(doc, data["input"])
    aliases = data.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise doc.error(("aliases",), "expected a list of names")
    text_fields = {key: _field_value(doc, (key,), Field(key, Text(), ""), data[key])
                   for key in ("title", "source", "notes") if key in data}
    layers = LayerListParser(doc).parse(data["layers"], ("layers",))
    outputs = _parse_outputs(doc, data, layers)
    ordered = _topological(doc, layers, outputs)
    return NetworkSpec(
        name=name,
        input=input_shape,
        layers=ordered,
        file=doc.file,
        aliases=tuple(aliases),
        outputs=outputs,
        input_where=doc.where(("input",)),
        raw=data,
        **text_fields,
    )


def _field_value(doc: Document, path: KeyPath, spec_field: Field, value: Any) -> Any:
    try:
        parsed = spec_field.kind.parse(value)
    except ValueError as exc:
        raise doc.error(path, str(exc)) from None
    if spec_field.check is not None:
        problem = spec_field.check(parsed)
        if problem:
            raise doc.error(path, problem)
    return parsed


def _parse_input(doc: Document, value: Any) -> tuple[int, int, int]:
    if (not isinstance(value, list) or len(value) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise doc.error(("input",), f"expected [channels, height, width], got {value!r}")
    if any(v <= 0 for v in value):
        raise doc.error(("input",), f"sizes must be positive, got {value}")
    return value[0], value[1], value[2]


class LayerListParser:
    """Parses `layers:` into LayerSpecs with names, inputs and normalised hyper-parameters."""

    def __init__(self, doc: Document):
        self.doc = doc
        self.counters: dict[str, int] = {}
        self.taken: set[str] = set()

    def parse(self, items: Any, path: KeyPath) -> list[LayerSpec]:
        if not isinstance(items, list) or not items:
            raise self.doc.error(path, "expected a non-empty list of layers")
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                self.taken.add(item["name"])
        layers: list[LayerSpec] = []
        previous = INPUT
        seen: dict[str, KeyPath] = {}
        for index, item in enumerate(items):
            layer = self.parse_layer(item, path + (index,), previous)
            if layer.name in seen:
                raise self.doc.error(path + (index, "name"),
                                     f"layer name '{layer.name}' is used twice "
                                     f"(first at line {self.doc.where(seen[layer.name]).line})")
            seen[layer.name] = path + (index,)
            layers.append(layer)
            previous = layer.name
        known = {layer.name for layer in layers} | {INPUT}
        for index, layer in enumerate(layers):
            for source in layer.inputs:
                if source not in known:
                    raise self.doc.error(path + (index, "from"),
                                         f"'from' names '{source}', which is no layer here"
                                         f"{closest(source, sorted(known))}")
        return layers

    def parse_layer(self, item: Any, path: KeyPath, previous: str) -> LayerSpec:
        doc = self.doc
        if not isinstance(item, dict):
            raise doc.error(path, f"a layer must be a mapping such as {{type: conv, out: 64, kernel: 3}}, got {item!r}")
        if "type" not in item:
            raise doc.error(path, "the layer has no 'type'")
        type_name = item["type"]
        if not isinstance(type_name, str) or type_name not in REGISTRY:
            raise doc.error(path + ("type",), f"unknown layer type '{type_name}'{_type_hint(type_name)}")
        kind = REGISTRY[type_name]
        by_name = {f.name: f for f in kind.fields}
        for key in item:
            if key not in by_name and key not in COMMON_LAYER_KEYS:
                accepted = sorted(by_name) + list(COMMON_LAYER_KEYS)
                raise doc.error(path + (key,), f"{type_name} does not take '{key}'{closest(str(key), accepted)}; "
                                               f"it takes {', '.join(sorted(by_name)) or 'no settings'}")
        params: dict[str, Any] = {}
        for spec_field in kind.fields:
            if spec_field.name in item:
                value = item[spec_field.name]
                params[spec_field.name] = _field_value(doc, path + (spec_field.name,), spec_field, value)
            elif spec_field.required:
                raise doc.error(path, f"{type_name} needs '{spec_field.name}' ({spec_field.kind.description})")
            else:
                params[spec_field.name] = spec_field.default
        for key, problem in kind.static_problems(params):
            raise doc.error(path + (key,), problem)
        name = self._name(item, path, kind.prefix)
        inputs = (_field_value(doc, path + ("from",), Field("from", Names(), ""), item["from"])
                  if "from" in item else (previous,))
        if "from" in item and name in inputs:
            raise doc.error(path + ("from",), f"layer '{name}' takes its own output as input (a cycle)")
        if len(inputs) < kind.min_inputs:
            raise doc.error(path + ("from",) if "from" in item else path,
                            f"{type_name} merges {kind.min_inputs} or more inputs; name them with from: [a, b]")
        if kind.max_inputs is not None and len(inputs) > kind.max_inputs:
            raise doc.error(path + ("from",), f"{type_name} takes one input, got {len(inputs)}")
        expect = self._expect(item.get("expect"), path + ("expect",))
        key_lines = {key: doc.lines[path + (key,)] for key in item if path + (key,) in doc.lines}
        return LayerSpec(name=name, type=type_name, params=params, inputs=inputs, expect=expect,
                         where=doc.where(path), key_lines=key_lines)

    def _name(self, item: dict[str, Any], path: KeyPath, prefix: str) -> str:
        if "name" in item:
            name = item["name"]
            if not isinstance(name, str) or not name.strip():
                raise self.doc.error(path + ("name",), f"expected a layer name, got {name!r}")
            if name == INPUT:
                raise self.doc.error(path + ("name",), f"'{INPUT}' is reserved for the network's input")
            return name
        while True:  # the next free default name: conv1, conv2, ...
            self.counters[prefix] = self.counters.get(prefix, 0) + 1
            candidate = f"{prefix}{self.counters[prefix]}"
            if candidate not in self.taken:
                self.taken.add(candidate)
                return candidate

    def _expect(self, value: Any, path: KeyPath) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.doc.error(path, "expected a mapping such as {shape: [96, 55, 55], params: 34944}")
        expect = {}
        for key, raw in value.items():
            if key not in EXPECT_FIELDS:
                raise self.doc.error(path + (key,), f"unknown expectation '{key}'{closest(key, list(EXPECT_FIELDS))}; "
                                                    f"expect takes {', '.join(EXPECT_FIELDS)}")
            try:
                expect[key] = EXPECT_FIELDS[key].parse(raw)
            except ValueError as exc:
                raise self.doc.error(path + (key,), str(exc)) from None
        return expect


def _type_hint(type_name: Any) -> str:
    key = "".join(ch for ch in str(type_name).lower() if ch.isalnum())
    if key in SYNONYMS:
        return f" (did you mean '{SYNONYMS[key]}'?)"
    if key in REGISTRY:
        return f" (did you mean '{key}'?)"
    return closest(str(type_name), sorted(REGISTRY)) or f"; known types: {', '.join(sorted(REGISTRY))}"


def _parse_outputs(doc: Document, data: dict[str, Any], layers: list[LayerSpec]) -> tuple[str, ...]:
    """The `outputs:` named, or else the one layer nothing reads."""
    known = {layer.name for layer in layers}
    if "outputs" in data:
        names = _field_value(doc, ("outputs",), Field("outputs", Names(), ""), data["outputs"])
        for index, name in enumerate(names):
            if name not in known:
                raise doc.error(("outputs", index) if isinstance(data["outputs"], list) else ("outputs",),
                                f"'{name}' is no layer here{closest(name, sorted(known))}")
        return names
    read = {source for layer in layers for source in layer.inputs}
    sinks = [layer for layer in layers if layer.name not in read]
    if len(sinks) > 1:
        raise SpecError(f"the output of '{sinks[0].name}' is never used (nor that of "
                        f"{', '.join(repr(s.name) for s in sinks[1:])}); feed it to a layer with from:, "
                        f"or list the network's outputs under outputs:", sinks[0].where)
    return tuple(layer.name for layer in sinks) or (layers[-1].name,)


def _topological(doc: Document, layers: list[LayerSpec], outputs: tuple[str, ...]) -> tuple[LayerSpec, ...]:
    """Order layers so every input comes first, keeping the file's order where free; refuse cycles and unused layers."""
    by_name = {layer.name: layer for layer in layers}
    position = {layer.name: i for i, layer in enumerate(layers)}
    consumers: dict[str, list[str]] = {name: [] for name in by_name}
    waiting = {layer.name: len([s for s in layer.inputs if s != INPUT]) for layer in layers}
    for layer in layers:
        for source in layer.inputs:
            if source != INPUT:
                consumers[source].append(layer.name)
    ready = sorted((name for name, count in waiting.items() if count == 0), key=position.get)
    ordered: list[LayerSpec] = []
    while ready:
        name = ready.pop(0)
        ordered.append(by_name[name])
        for consumer in consumers[name]:
            waiting[consumer] -= 1
            if waiting[consumer] == 0:
                ready.append(consumer)
                ready.sort(key=position.get)
    if len(ordered) < len(layers):
        stuck = [layer for layer in layers if waiting[layer.name] > 0]
        cycle = _find_cycle(stuck)
        first = by_name[cycle[0]]
        raise SpecError(f"the layers form a cycle: {' → '.join(cycle + [cycle[0]])}", first.where_key("from"))
    unused = [layer for layer in layers if not consumers[layer.name] and layer.name not in outputs]
    if unused:
        layer = unused[0]
        raise SpecError(f"the output of '{layer.name}' is never used; feed it to a layer with from:, "
                        f"or list it under outputs:", layer.where)
    return tuple(ordered)


def _find_cycle(stuck: list[LayerSpec]) -> list[str]:
    inputs = {layer.name: [s for s in layer.inputs if s != INPUT] for layer in stuck}
    start = stuck[0].name
    path, seen = [start], {start: 0}
    while True:
        following = next(s for s in inputs[path[-1]] if s in inputs)
        if following in seen:
            return list(reversed(path[seen[following]:]))
        seen[following] = len(path)
        path.append(following)
