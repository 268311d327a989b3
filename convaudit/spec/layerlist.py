"""Parse a `layers:` list into LayerSpecs, expanding reusable blocks.

A block is defined once under `blocks:` with parameters and its own layer list:

    blocks:
      inception:
        params: {c1: null, c3r: null, c3: null, c5r: null, c5: null, pool: null}   # null: required
        layers:
          - {type: conv, name: b1, out: $c1, kernel: 1, from: input}
          ...
          - {type: concat, name: out, from: [b1_relu, b2_relu, b3_relu, b4_relu]}

and used as a layer: `{block: inception, name: inception3a, c1: 64, ...}`, with
`repeat: N` (instances NAME/0 … NAME/N−1 with the default separator, numbered
from `start:`). Inside a block,
`input` is the instance's input and names are local; the instance's output is
its last layer (or the block's `output:`). Expanded layers get hierarchical
names, instance name + separator + local name: inception3a/b1, layer3.1.conv2.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from typing import Any

from convaudit.core.fields import Field, Int, Names
from convaudit.core.layers import REGISTRY, SYNONYMS
from convaudit.core.model import EXPECT_FIELDS, INPUT, LayerSpec
from convaudit.errors import SpecError
from convaudit.spec.expressions import substitute
from convaudit.spec.yamlsource import Document, KeyPath

COMMON_LAYER_KEYS = ("type", "name", "from", "expect", "shares")
INSTANCE_KEYS = ("block", "name", "from", "repeat", "start", "expect")
MAX_LAYERS = 20_000  # after expansion; refuses a `repeat:` that would not fit in any report
REQUIRED = None  # a block parameter without a default

Entry = tuple[Any, KeyPath]  # a layer item and where it is written


def closest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """' (did you mean 'x'?)' or ''."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def type_hint(type_name: Any) -> str:
    key = "".join(ch for ch in str(type_name).lower() if ch.isalnum())
    if key in SYNONYMS:
        return f" (did you mean '{SYNONYMS[key]}'?)"
    if key in REGISTRY:
        return f" (did you mean '{key}'?)"
    return closest(str(type_name), sorted(REGISTRY)) or f"; known types: {', '.join(sorted(REGISTRY))}"


@dataclass(frozen=True)
class BlockDef:
    name: str
    params: dict[str, Any]  # name -> default, or REQUIRED
    layers: tuple[Entry, ...]
    output: str | None
    path: KeyPath


def parse_blocks(doc: Document, value: Any, path: KeyPath) -> dict[str, BlockDef]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise doc.error(path, "expected a mapping of block names to {params, layers}")
    blocks = {}
    for name, body in value.items():
        where = path + (name,)
        if name in REGISTRY:
            raise doc.error(where, f"a block cannot be named '{name}': that is a layer type")
        if not isinstance(body, dict) or "layers" not in body:
            raise doc.error(where, "a block needs `layers:` (and may have `params:` and `output:`)")
        for key in body:
            if key not in ("params", "layers", "output", "description"):
                raise doc.error(where + (key,), f"a block takes params, layers, output and description, "
                                                f"not '{key}'{closest(str(key), ['params', 'layers', 'output'])}")
        params = body.get("params") or {}
        if isinstance(params, list):
            params = {str(p): REQUIRED for p in params}
        if not isinstance(params, dict):
            raise doc.error(where + ("params",), "expected a mapping of parameter names to defaults (null: required)")
        layers = body["layers"]
        if not isinstance(layers, list) or not layers:
            raise doc.error(where + ("layers",), "expected a non-empty list of layers")
        output = body.get("output")
        if output is not None and not isinstance(output, str):
            raise doc.error(where + ("output",), "expected the name of the block's output layer")
        entries = tuple((item, where + ("layers", i)) for i, item in enumerate(layers))
        blocks[name] = BlockDef(name, dict(params), entries, output, where)
    return blocks


@dataclass
class Scope:
    """Where a layer list is being parsed: the top level, or inside a block instance."""

    prefix: str = ""  # the instance's full name ("" at the top level)
    input: str = INPUT  # what `input` means here
    params: dict[str, Any] = field(default_factory=dict)
    blocks: tuple[tuple[str, str], ...] = ()  # enclosing (instance, block type), outermost first
    stack: tuple[str, ...] = ()  # block types being expanded, to refuse a block that uses itself


@dataclass
class Pending:
    """A parsed layer whose `from:` names are still local to its scope."""

    layer: LayerSpec
    raw_from: tuple[str, ...] | None
    from_path: KeyPath


class LayerListParser:
    def __init__(self, doc: Document, blocks: dict[str, BlockDef], separator: str):
        self.doc = doc
        self.blocks = blocks
        self.separator = separator
        self.count = 0

    def full(self, scope: Scope, local: str) -> str:
        return f"{scope.prefix}{self.separator}{local}" if scope.prefix else local

    # -------------------------------------------------------------- a list of layers

    def parse_list(self, entries: list[Entry] | tuple[Entry, ...], scope: Scope,
                   list_path: KeyPath) -> tuple[list[LayerSpec], str, dict[str, str]]:
        """(layers, the list's output, local name -> full name) for one scope."""
        if not entries:
            raise self.doc.error(list_path, "expected a non-empty list of layers")
        taken = {item["name"] for item, _ in entries if isinstance(item, dict) and isinstance(item.get("name"), str)}
        counters: dict[str, int] = {}
        local: dict[str, str] = {}
        where_local: dict[str, KeyPath] = {}
        sequence: list[LayerSpec | Pending] = []  # in the order written, instances expanded in place
        previous = scope.input
        for item, path in entries:
            item = self.substituted(item, path, scope)
            if isinstance(item, dict) and "block" in item:
                name = self.default_name(item, path, str(item["block"]), counters, taken)
                self.reserve_name(name, path, where_local)
                source = self.instance_input(item, path, scope, local, previous)
                layers, output = self.expand(item, path, scope, name, source)
                sequence += layers
                local[name] = output
                previous = output
                continue
            layer, raw_from = self.parse_layer(item, path, scope, previous, counters, taken)
            short = layer.name[len(scope.prefix) + len(self.separator):] if scope.prefix else layer.name
            self.reserve_name(short, path, where_local)
            local[short] = layer.name
            sequence.append(Pending(layer, raw_from, path + ("from",)))
            previous = layer.name
        layers = [self.resolve(item, scope, local) if isinstance(item, Pending) else item for item in sequence]
        return layers, previous, local

    def reserve_name(self, name: str, path: KeyPath, seen: dict[str, KeyPath]) -> None:
        if name == INPUT:
            raise self.doc.error(path + ("name",), f"'{INPUT}' is reserved for the network's (or block's) input")
        if name in seen:
            raise self.doc.error(path + ("name",), f"layer name '{name}' is used twice "
                                                   f"(first at line {self.doc.where(seen[name]).line})")
        seen[name] = path

    def default_name(self, item: dict[str, Any], path: KeyPath, prefix: str, counters: dict[str, int],
                     taken: set[str]) -> str:
        if "name" in item:
            name = item["name"]
            if not isinstance(name, str) or not name.strip():
                raise self.doc.error(path + ("name",), f"expected a layer name, got {name!r}")
            return name
        while True:  # the next free default name: conv1, conv2, ...
            counters[prefix] = counters.get(prefix, 0) + 1
            candidate = f"{prefix}{counters[prefix]}"
            if candidate not in taken:
                taken.add(candidate)
                return candidate

    def substituted(self, item: Any, path: KeyPath, scope: Scope) -> Any:
        if not scope.params and not scope.prefix:
            return item
        try:
            return substitute(item, scope.params)
        except ValueError as problem:
            raise self.doc.error(path, str(problem)) from None

    def resolve(self, pending: Pending, scope: Scope, local: dict[str, str]) -> LayerSpec:
        shares = pending.layer.shares
        if shares is not None and shares in local:
            pending = replace(pending, layer=replace(pending.layer, shares=local[shares]))
        if pending.raw_from is None:
            return pending.layer
        inputs = []
        for name in pending.raw_from:
            if name == INPUT:
                inputs.append(scope.input)
            elif name in local:
                inputs.append(local[name])
            elif not scope.prefix:
                inputs.append(name)  # a hierarchical name (inception4a/b1): checked once all layers exist
            else:
                raise self.doc.error(pending.from_path, f"'from' names '{name}', which is no layer of this block"
                                                        f"{closest(name, sorted(local))}; use `input` for the "
                                                        "block's input")
        if pending.layer.name in inputs:
            raise self.doc.error(pending.from_path, f"layer '{pending.layer.name}' takes its own output as input "
                                                    "(a cycle)")
        return replace(pending.layer, inputs=tuple(inputs))

    # -------------------------------------------------------------- one layer

    def parse_layer(self, item: Any, path: KeyPath, scope: Scope, previous: str, counters: dict[str, int],
                    taken: set[str]) -> tuple[LayerSpec, tuple[str, ...] | None]:
        doc = self.doc
        if not isinstance(item, dict):
            raise doc.error(path, f"a layer must be a mapping such as {{type: conv, out: 64, kernel: 3}}, got {item!r}")
        if "type" not in item:
            raise doc.error(path, "the layer has no 'type' (or 'block')")
        type_name = item["type"]
        if not isinstance(type_name, str) or type_name not in REGISTRY:
            hint = type_hint(type_name)
            if isinstance(type_name, str) and type_name in self.blocks:
                hint = f" (to use the block '{type_name}', write block: {type_name})"
            raise doc.error(path + ("type",), f"unknown layer type '{type_name}'{hint}")
        kind = REGISTRY[type_name]
        by_name = _FIELDS_BY_NAME.get(id(kind))
        if by_name is None or by_name[0] is not kind:
            by_name = _FIELDS_BY_NAME[id(kind)] = (kind, {f.name: f for f in kind.fields})
        by_name = by_name[1]
        for key in item:
            if key not in by_name and key not in COMMON_LAYER_KEYS:
                accepted = sorted(by_name) + list(COMMON_LAYER_KEYS)
                raise doc.error(path + (key,), f"{type_name} does not take '{key}'{closest(str(key), accepted)}; "
                                               f"it takes {', '.join(sorted(by_name)) or 'no settings'}")
        params: dict[str, Any] = {}
        for spec_field in kind.fields:
            if spec_field.name in item:
                params[spec_field.name] = field_value(doc, path + (spec_field.name,), spec_field,
                                                      item[spec_field.name])
            elif spec_field.required:
                raise doc.error(path, f"{type_name} needs '{spec_field.name}' ({spec_field.kind.description})")
            else:
                params[spec_field.name] = spec_field.default
        for key, problem in kind.static_problems(params):
            raise doc.error(path + (key,), problem)
        name = self.full(scope, self.default_name(item, path, kind.prefix, counters, taken))
        raw_from = field_value(doc, path + ("from",), Field("from", Names(), ""), item["from"]) if "from" in item \
            else None
        inputs = (previous,) if raw_from is None else raw_from
        if kind.max_inputs == 0:  # a source (a learned tensor used directly): it reads nothing
            if raw_from:
                raise doc.error(path + ("from",), f"{type_name} reads no input; leave out from:")
            inputs, raw_from = (), ()
        if len(inputs) < kind.min_inputs:
            raise doc.error(path + ("from",) if "from" in item else path,
                            f"{type_name} merges {kind.min_inputs} or more inputs; name them with from: [a, b]")
        if kind.max_inputs is not None and len(inputs) > kind.max_inputs:
            raise doc.error(path + ("from",), f"{type_name} takes one input, got {len(inputs)}")
        expect = self.expect(item.get("expect"), path + ("expect",))
        key_lines = {key: doc.lines[path + (key,)] for key in item if path + (key,) in doc.lines}
        self.count += 1
        if self.count > MAX_LAYERS:
            raise doc.error(path, f"refused: the network expands to more than {MAX_LAYERS} layers")
        shares = None
        if "shares" in item:  # resolved like from: (a name in this block), once the block's names are known
            shares = field_value(doc, path + ("shares",), Field("shares", Names(), ""), item["shares"])
            if len(shares) != 1:
                raise doc.error(path + ("shares",), "shares: names one layer, whose weights this one uses")
            shares = shares[0]
        layer = LayerSpec(name=name, type=type_name, params=params, inputs=inputs, expect=expect,
                          where=doc.where(path), key_lines=key_lines, blocks=scope.blocks, shares=shares)
        return layer, raw_from

    def expect(self, value: Any, path: KeyPath) -> dict[str, Any]:
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

    # -------------------------------------------------------------- block instances

    def instance_input(self, item: dict[str, Any], path: KeyPath, scope: Scope, local: dict[str, str],
                       previous: str) -> str:
        if "from" not in item:
            return previous
        names = field_value(self.doc, path + ("from",), Field("from", Names(), ""), item["from"])
        if len(names) != 1:
            raise self.doc.error(path + ("from",), "a block instance takes one input")
        name = names[0]
        if name == INPUT:
            return scope.input
        if name in local:
            return local[name]
        raise self.doc.error(path + ("from",), f"a block instance's from: must name an earlier layer; "
                                               f"'{name}' is not one{closest(name, sorted(local))}")

    def expand(self, item: dict[str, Any], path: KeyPath, scope: Scope, name: str,
               source: str) -> tuple[list[LayerSpec], str]:
        doc = self.doc
        block_name = item["block"]
        if not isinstance(block_name, str) or block_name not in self.blocks:
            known = sorted(self.blocks)
            hint = closest(str(block_name), known) or (f"; blocks here: {', '.join(known)}" if known else
                                                       "; define it under blocks:")
            raise doc.error(path + ("block",), f"unknown block '{block_name}'{hint}")
        if block_name in scope.stack:
            chain = " → ".join(scope.stack + (block_name,))
            raise doc.error(path + ("block",), f"block '{block_name}' uses itself ({chain})")
        block = self.blocks[block_name]
        params = dict(block.params)
        for key, value in item.items():
            if key in INSTANCE_KEYS:
                continue
            if key not in block.params:
                accepted = sorted(block.params) or ["(none)"]
                raise doc.error(path + (key,), f"block '{block_name}' has no parameter '{key}'"
                                               f"{closest(str(key), sorted(block.params))}; its parameters: "
                                               f"{', '.join(accepted)}")
            params[key] = value
        missing = [key for key, value in params.items() if value is REQUIRED]
        if missing:
            raise doc.error(path, f"block '{block_name}' needs {', '.join(repr(m) for m in missing)}")
        repeat = field_value(doc, path + ("repeat",), Field("repeat", Int(), ""), item.get("repeat", 1))
        start = field_value(doc, path + ("start",), Field("start", Int(0), ""), item.get("start", 0))
        repeated = "repeat" in item or "start" in item
        layers: list[LayerSpec] = []
        for index in range(start, start + repeat):
            instance = self.full(scope, f"{name}{self.separator}{index}" if repeated else name)
            child = Scope(prefix=instance, input=source, params=params,
                          blocks=scope.blocks + ((instance, block_name),), stack=scope.stack + (block_name,))
            try:
                expanded, output, local = self.parse_list(block.layers, child, block.path + ("layers",))
            except SpecError as error:
                raise SpecError(f"{error.message} (in {instance}, a '{block_name}' block)", error.where) from None
            if block.output is not None:
                if block.output not in local:
                    raise doc.error(block.path + ("output",), f"the block's output '{block.output}' is no layer "
                                                              f"of it{closest(block.output, sorted(local))}")
                output = local[block.output]
            layers += expanded
            source = output
        if "expect" in item:  # a claim about the instance's output (the last one, when repeated)
            expect = self.expect(item["expect"], path + ("expect",))
            where = self.doc.where(path + ("expect",))
            layers = [replace(layer, expect={**layer.expect, **expect}, expect_where=where)
                      if layer.name == source else layer for layer in layers]
        return layers, source


_FIELDS_BY_NAME: dict[int, tuple[Any, dict[str, Field]]] = {}  # each layer type's fields by name, made once


def field_value(doc: Document, path: KeyPath, spec_field: Field, value: Any) -> Any:
    try:
        parsed = spec_field.kind.parse(value)
    except ValueError as exc:
        raise doc.error(path, str(exc)) from None
    if spec_field.check is not None:
        problem = spec_field.check(parsed)
        if problem:
            raise doc.error(path, problem)
    return parsed

