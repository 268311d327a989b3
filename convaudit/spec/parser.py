"""Parse a YAML document into a NetworkSpec: top-level keys, variants, outputs and graph order.

Every error names the file, line and key.
"""

from __future__ import annotations

import heapq
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from convaudit.core.analysis import gc_paused
from convaudit.core.fields import MAX_SPATIAL_AXES, Field, Names, Text, too_large
from convaudit.core.model import INPUT, LayerSpec, NetworkSpec, Untraced
from convaudit.errors import SpecError, Where
from convaudit.spec.claims import parse_claims
from convaudit.spec.layerlist import LayerListParser, Scope, closest, field_value, parse_blocks
from convaudit.spec.yamlsource import Document, load_document, read_text

TOP_LEVEL_KEYS = ("name", "title", "source", "input", "layers", "aliases", "notes", "claims", "outputs",
                  "blocks", "variants", "separator", "extends", "placement",
                  "imported", "untraced")
EXTENDING_KEYS = ("name", "title", "source", "notes", "aliases", "claims", "extends", "input")
MAX_EXTENDS = 8
EXTENDS_ANYWHERE = "CONVAUDIT_EXTENDS_ANYWHERE"  # set to 1: `extends:` may read any file
VARIANT_KEYS = ("description", "blocks", "layers", "outputs")


def load_spec(path: Path | str, variant: str | None = None) -> NetworkSpec:
    path = Path(path)
    text = read_text(path)
    with gc_paused():
        return parse_document(load_document(text, str(path)), variant)


def parse_text(text: str, file: str = "<spec>", variant: str | None = None) -> NetworkSpec:
    with gc_paused():
        return parse_document(load_document(text, file), variant)


def parse_document(doc: Document, variant: str | None = None, depth: int = 0) -> NetworkSpec:
    data = doc.data
    if not isinstance(data, dict):
        raise SpecError("a spec must be a mapping with at least 'name', 'input' and 'layers'", doc.where(()))
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise doc.error((key,), f"unknown top-level key '{key}'{closest(key, TOP_LEVEL_KEYS)}")
    if "extends" in data:
        return _extending(doc, data, variant, depth)
    for key in ("name", "input", "layers"):
        if key not in data:
            raise doc.error((), f"the spec has no '{key}'")
    name = field_value(doc, ("name",), Field("name", Text(), ""), data["name"])
    _check_imported(doc, data.get("imported"))
    input_shape = _parse_input(doc, data["input"])
    aliases = data.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise doc.error(("aliases",), "expected a list of names")
    text_fields = {key: field_value(doc, (key,), Field(key, Text(), ""), data[key])
                   for key in ("title", "source", "notes") if key in data}
    separator = data.get("separator", "/")
    if separator not in ("/", ".", "_", ":"):
        raise doc.error(("separator",), f"expected one of / . _ : between instance and layer names, got {separator!r}")

    variants = _parse_variants(doc, data.get("variants"))
    blocks = parse_blocks(doc, data.get("blocks"), ("blocks",))
    entries = _entries(doc, data["layers"], ("layers",))
    outputs_value, outputs_path = data.get("outputs"), ("outputs",)
    if variant is not None:
        if variant not in variants:
            known = ", ".join(sorted(variants)) or "none"
            raise SpecError(f"{name} has no variant '{variant}'{closest(variant, sorted(variants))}; "
                            f"variants: {known}", doc.where(("variants",)))
        body = data["variants"][variant]
        blocks = {**blocks, **parse_blocks(doc, body.get("blocks"), ("variants", variant, "blocks"))}
        if "layers" in body:
            entries += _entries(doc, body["layers"], ("variants", variant, "layers"))
        if "outputs" in body:
            outputs_value, outputs_path = body["outputs"], ("variants", variant, "outputs")

    parser = LayerListParser(doc, blocks, separator)
    layers, _, local = parser.parse_list(entries, Scope(), ("layers",))
    layers = _resolve_top_level(doc, layers, local)
    outputs = _parse_outputs(doc, outputs_value, outputs_path, layers, local)
    ordered = _topological(layers, outputs)
    placement = _parse_placement(doc, data.get("placement"), ordered, local)
    spec = NetworkSpec(
        name=name, input=input_shape, layers=ordered, file=doc.file, aliases=tuple(aliases), outputs=outputs,
        separator=separator, variant=variant, variants=variants, input_where=doc.where(("input",)), raw=data,
        placement=placement, placement_where=doc.where(("placement",)) if placement else Where(),
        untraced=_parse_untraced(doc, data.get("untraced")), **text_fields,
    )
    return replace(spec, claims=parse_claims(doc, data.get("claims"), spec))


def _extending(doc: Document, data: dict[str, Any], variant: str | None, depth: int) -> NetworkSpec:
    """A spec that reuses another's network (a path beside it, or a bundled name) and states its own claims."""
    for key in data:
        if key not in EXTENDING_KEYS:
            raise doc.error((key,), f"a spec that extends another may set {', '.join(EXTENDING_KEYS)}, not '{key}'")
    reference = data["extends"]
    if not isinstance(reference, str):
        raise doc.error(("extends",), "expected the path or bundled name of the spec to extend")
    if depth >= MAX_EXTENDS:
        raise doc.error(("extends",), f"refused: more than {MAX_EXTENDS} specs extend one another (a loop?)")
    path = _extended_path(doc, reference)
    try:
        base = parse_document(load_document(read_text(path), str(path)), variant, depth + 1)
    except SpecError as error:  # name the spec and line that led here, too
        if error.message.endswith(")") and "extended by " in error.message:
            raise
        raise SpecError(f"{error.message} (extended by {doc.where(('extends',))})", error.where) from None
    changes: dict[str, Any] = {key: field_value(doc, (key,), Field(key, Text(), ""), data[key])
                               for key in ("name", "title", "source", "notes") if key in data}
    changes["aliases"] = tuple(data.get("aliases", []))  # the base's names stay the base's
    if "input" in data:
        changes["input"] = _parse_input(doc, data["input"])
        changes["input_where"] = doc.where(("input",))
    spec = replace(base, file=doc.file, raw=data, **changes)
    return replace(spec, claims=parse_claims(doc, data.get("claims"), spec))


def extends_anywhere() -> bool:
    """Whether `extends:` may read files outside the extending spec's folder (CONVAUDIT_EXTENDS_ANYWHERE=1)."""
    return os.environ.get(EXTENDS_ANYWHERE, "") not in ("", "0")


def _extended_path(doc: Document, reference: str) -> Path:
    """The file `extends:` names: inside the spec's own folder (subfolders too), or a bundled name.

    A spec from elsewhere must not read /etc/passwd or /proc/self/environ and echo them back in an error;
    the folder is checked after symlinks are followed. CONVAUDIT_EXTENDS_ANYWHERE=1 lifts the restriction.
    """
    from convaudit.spec.library import resolve_bundled  # the library resolves names through this module

    if not reference.strip() or "\0" in reference or len(reference) > 4096:
        raise doc.error(("extends",), "expected the path or bundled name of the spec to extend")
    folder = Path(doc.file).parent
    beside = folder / reference
    try:
        inside = beside.resolve().is_relative_to(folder.resolve())
        exists = beside.is_file()
    except (OSError, RuntimeError):  # a symlink loop, a name too long
        inside = exists = False
    if exists and (inside or extends_anywhere()):
        return beside
    if exists:
        raise doc.error(("extends",), f"refused: '{reference}' is outside this spec's folder; a spec may extend "
                                      f"files in its own folder or bundled names ({EXTENDS_ANYWHERE}=1 allows more)")
    if "/" in reference or "\\" in reference or Path(reference).suffix in (".yaml", ".yml"):
        raise doc.error(("extends",), f"no such file beside this spec: {reference}")
    try:
        return resolve_bundled(reference)
    except SpecError as error:
        raise SpecError(error.message, doc.where(("extends",))) from None


def _entries(doc: Document, items: Any, path: tuple) -> list[tuple[Any, tuple]]:
    if not isinstance(items, list) or not items:
        raise doc.error(path, "expected a non-empty list of layers")
    return [(item, path + (i,)) for i, item in enumerate(items)]


def _parse_input(doc: Document, value: Any) -> tuple[int, ...]:
    if (not isinstance(value, list) or not 2 <= len(value) <= 1 + MAX_SPATIAL_AXES
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        shown = f"{value!r}" if len(repr(value)) <= 200 else "a value of that kind"
        raise doc.error(("input",), "expected [channels, length], [channels, height, width] or "
                                    f"[channels, depth, height, width], got {shown}")
    if any(v <= 0 for v in value):
        raise doc.error(("input",), f"sizes must be positive, got {value}")
    if any(too_large(v) for v in value):
        raise doc.error(("input",), "refused: a size larger than 2^63 (no network comes near)")
    return tuple(value)


def _parse_variants(doc: Document, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise doc.error(("variants",), "expected a mapping of variant names to {description, blocks, layers, "
                                       "outputs}")
    described = {}
    for name, body in value.items():
        if not isinstance(body, dict):
            raise doc.error(("variants", name), "expected {description, blocks, layers, outputs}")
        for key in body:
            if key not in VARIANT_KEYS:
                raise doc.error(("variants", name, key), f"a variant takes {', '.join(VARIANT_KEYS)}, not '{key}'"
                                                         f"{closest(str(key), VARIANT_KEYS)}")
        described[str(name)] = str(body.get("description", ""))
    return described


def _resolve_top_level(doc: Document, layers: list[LayerSpec], local: dict[str, str]) -> list[LayerSpec]:
    """Check names are unique once blocks are expanded and every input names a layer; a block instance's
    name stands for its output."""
    first: dict[str, LayerSpec] = {}
    for layer in layers:
        if layer.name in first:
            raise SpecError(f"layer name '{layer.name}' is used twice once blocks are expanded (first at line "
                            f"{first[layer.name].where.line})", layer.where)
        first[layer.name] = layer
    known = set(first)
    resolved = []
    for layer in layers:
        inputs = []
        for source in layer.inputs:
            if source == INPUT or source in known:
                inputs.append(source)
            elif source in local:
                inputs.append(local[source])
            else:
                raise SpecError(f"'from' names '{source}', which is no layer here"
                                f"{closest(source, sorted(known | set(local)))}", layer.where_key("from"))
        resolved.append(layer if tuple(inputs) == layer.inputs else LayerSpec(**{**layer.__dict__,
                                                                                  "inputs": tuple(inputs)}))
    return resolved


def _parse_outputs(doc: Document, value: Any, path: tuple, layers: list[LayerSpec],
                   local: dict[str, str]) -> tuple[str, ...]:
    """The `outputs:` named (instance names stand for their output), or else the one layer nothing reads."""
    known = {layer.name for layer in layers}
    if value is not None:
        names = field_value(doc, path, Field("outputs", Names(), ""), value)
        resolved = []
        for index, name in enumerate(names):
            if name not in known and name not in local:
                raise doc.error(path + (index,) if isinstance(value, list) else path,
                                f"'{name}' is no layer here{closest(name, sorted(known))}")
            resolved.append(name if name in known else local[name])
        return tuple(resolved)
    read = {source for layer in layers for source in layer.inputs}
    sinks = [layer for layer in layers if layer.name not in read]
    if len(sinks) > 1:
        raise SpecError(f"the output of '{sinks[0].name}' is never used (nor that of "
                        f"{', '.join(repr(s.name) for s in sinks[1:])}); feed it to a layer with from:, "
                        f"or list the network's outputs under outputs:", sinks[0].where)
    return tuple(layer.name for layer in sinks) or (layers[-1].name,)


def _parse_placement(doc: Document, value: Any, layers: tuple[LayerSpec, ...],
                     local: dict[str, str]) -> dict[str, int]:
    """`placement: {fc8: 0}`: layers pinned whole to a device, for `split --strategy columns` (0-based)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise doc.error(("placement",), "expected a mapping of layer names to device numbers, such as {fc8: 0}")
    known = {layer.name for layer in layers}
    pins = {}
    for name, device in value.items():
        if not isinstance(device, int) or isinstance(device, bool) or device < 0:
            raise doc.error(("placement", name), f"expected a device number 0, 1, …, got {device!r}")
        resolved = name if name in known else local.get(name) if isinstance(name, str) else None
        if resolved is None:
            raise doc.error(("placement", name), f"'{name}' is no layer here{closest(str(name), sorted(known))}")
        pins[resolved] = device
    return pins


def _topological(layers: list[LayerSpec], outputs: tuple[str, ...]) -> tuple[LayerSpec, ...]:
    """Order layers so every input comes first, keeping the file's order where free; refuse cycles and unused layers."""
    by_name = {layer.name: layer for layer in layers}
    position = {layer.name: i for i, layer in enumerate(layers)}
    consumers: dict[str, list[str]] = {name: [] for name in by_name}
    waiting = {layer.name: len([s for s in layer.inputs if s != INPUT]) for layer in layers}
    for layer in layers:
        for source in layer.inputs:
            if source != INPUT:
                consumers[source].append(layer.name)
    ready = [position[name] for name, count in waiting.items() if count == 0]  # a heap of file positions
    heapq.heapify(ready)
    ordered: list[LayerSpec] = []
    while ready:
        name = layers[heapq.heappop(ready)].name
        ordered.append(by_name[name])
        for consumer in consumers[name]:
            waiting[consumer] -= 1
            if waiting[consumer] == 0:
                heapq.heappush(ready, position[consumer])
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


UNTRACED_KEYS = ("op", "module", "reason", "unreached")


def _parse_untraced(doc: Document, value: Any) -> Untraced | None:
    """`untraced: {op: OPERATOR, module: PATH, reason: TEXT, unreached: [PATH, ...]}`: where `convaudit import
    --partial` stopped tracing, so what the spec leaves out."""
    if value is None:
        return None
    expected = "expected {op: OPERATOR, module: PATH, reason: TEXT, unreached: [PATH, ...]}, as `import --partial` " \
               "writes it"
    if not isinstance(value, dict) or set(value) - set(UNTRACED_KEYS) or "op" not in value:
        raise doc.error(("untraced",), expected)
    texts = {key: value.get(key, "") for key in UNTRACED_KEYS[:3]}
    unreached = value.get("unreached", [])
    for key, text in texts.items():
        if not isinstance(text, str) or (key == "op" and not text):
            raise doc.error(("untraced", key), f"expected text; {expected}")
    if not isinstance(unreached, list) or not all(isinstance(path, str) and path for path in unreached):
        raise doc.error(("untraced", "unreached"), f"expected a list of module paths; {expected}")
    return Untraced(texts["op"], texts["module"], texts["reason"], tuple(unreached))


def _check_imported(doc: Document, value: Any) -> None:
    """`imported: {from: TARGET, args: {...}}`: where `convaudit import` read the network (verify's default)."""
    if value is None:
        return
    if not isinstance(value, dict) or not isinstance(value.get("from"), str) \
            or not isinstance(value.get("args", {}), dict) or set(value) - {"from", "args"}:
        raise doc.error(("imported",), "expected {from: TARGET, args: {...}}, as `convaudit import` writes it")
