"""Fold repeated structure into `blocks:` and `repeat:`, then write the spec.

A module becomes a block instance when its layers are contiguous in graph order, read one tensor from
outside, and give one tensor to the rest of the network. Modules with the same structure (the same local
layer names, types, fields and wiring; values aside) share one block definition. Modules are taken
outermost first, so a ResNet's bottleneck units fold rather than the convolutions inside them. Fields
whose values differ between instances become block parameters: equal columns share one parameter, and a
column that is a whole multiple of another is written `$width * 4`. Consecutive instances with the same
parameters, each reading the one before, named prefix.N, prefix.N+1 …, become one entry with `repeat:`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from convaudit.core.layers import REGISTRY
from convaudit.core.model import INPUT
from convaudit.importers.graph import Imported, Layer
from convaudit.importers.writer import entry, header, scalar, top_level, written
from convaudit.spec.layerlist import INSTANCE_KEYS


@dataclass
class Instance:
    path: str
    first: int  # index of its first layer
    last: int
    members: list[Layer]
    source: str  # the one tensor it reads
    output: str  # the one layer whose output leaves it
    signature: tuple = ()
    block: str = ""
    values: dict[str, Any] = field(default_factory=dict)  # parameter -> value


@dataclass
class Block:
    name: str
    template: Instance
    params: dict[str, str] = field(default_factory=dict)  # parameter -> the column it stands for
    fields: dict[tuple[str, str], Any] = field(default_factory=dict)  # (local, key) -> literal or "$expr"


def local_name(layer: Layer, path: str) -> str:
    return layer.name[len(path) + 1:]


CONTAINERS = {"Sequential", "ModuleList", "ModuleDict"}  # groupings, not blocks: their children fold instead


def candidates(layers: list[Layer], outputs: tuple[str, ...], modules: dict[str, str]) -> list[Instance]:
    readers: dict[str, list[str]] = {}
    for layer in layers:
        for source in layer.inputs:
            readers.setdefault(source, []).append(layer.name)
    for name in outputs:
        readers.setdefault(name, []).append("<output>")
    paths: dict[str, list[int]] = {}
    for index, layer in enumerate(layers):
        for path in layer.scopes:
            paths.setdefault(path, []).append(index)
    found = []
    for path, indices in paths.items():
        if modules.get(path) in CONTAINERS:
            continue
        if len(indices) < 2 or indices[-1] - indices[0] + 1 != len(indices):
            continue
        members = [layers[i] for i in indices]
        names = {m.name for m in members}
        if not all(m.name.startswith(path + ".") and "$" not in m.name for m in members):
            continue
        if any("shares" in m.params for m in members):
            continue  # weights shared with a layer elsewhere: written out layer by layer
        sources = {s for m in members for s in m.inputs if s not in names}
        leaving = [m.name for m in members if any(r not in names for r in readers.get(m.name, []))]
        if len(sources) != 1 or len(leaving) != 1:
            continue
        instance = Instance(path, indices[0], indices[-1], members, sources.pop(), leaving[0])
        instance.signature = signature(instance)
        found.append(instance)
    return found


def wiring(layer: Layer, instance: Instance) -> tuple[str, ...]:
    return tuple(INPUT if s == instance.source else local_name_of(s, instance.path) for s in layer.inputs)


def local_name_of(name: str, path: str) -> str:
    return name[len(path) + 1:]


def signature(instance: Instance) -> tuple:
    return (tuple((local_name(m, instance.path), m.type, tuple(sorted(m.params)), wiring(m, instance))
                  for m in instance.members), local_name_of(instance.output, instance.path))


def choose(layers: list[Layer], outputs: tuple[str, ...], modules: dict[str, str]) -> list[Instance]:
    """Instances to fold: the outermost modules whose structure occurs twice or more. A module inside one
    that folds is left to its block; one whose only twins fold inside other blocks folds nowhere, which
    frees its own children to fold."""
    found = candidates(layers, outputs, modules)
    blocked: set[str] = set()
    while True:
        groups: dict[tuple, list[Instance]] = {}
        for instance in found:
            if instance.path not in blocked:
                groups.setdefault(instance.signature, []).append(instance)
        foldable = [c for group in groups.values() if len(group) >= 2 for c in group]
        paths = {c.path for c in foldable}
        outermost = [c for c in foldable if not any(c.path[:i] in paths for i, ch in enumerate(c.path) if ch == ".")]
        counts: dict[tuple, int] = {}
        for instance in outermost:
            counts[instance.signature] = counts.get(instance.signature, 0) + 1
        single = {c.path for c in outermost if counts[c.signature] < 2}
        if not single:
            return sorted(outermost, key=lambda c: c.first)
        blocked |= single


def block_name(kind: str, taken: set[str]) -> str:
    base = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", kind).lower() or "block"  # BasicBlock -> basic_block
    base = re.sub(r"\W", "_", base)
    name, count = base, 1
    while name in taken or name in REGISTRY:  # a block may not take a layer type's name (timm's Attention)
        count += 1
        name = f"{base}_{count}"
    taken.add(name)
    return name


def parametrise(instances: list[Instance], name: str) -> Block:
    template = instances[0]
    block = Block(name, template)
    columns: dict[tuple[str, str], list[Any]] = {}
    for position, member in enumerate(template.members):
        local = local_name(member, template.path)
        for key in member.params:
            columns[(local, key)] = [written(member.type, key, inst.members[position].params[key])
                                     for inst in instances]
    parameters: dict[str, list[Any]] = {}
    keys = [key for (_, key), column in columns.items() if any(v != column[0] for v in column)]
    for (local, key), column in columns.items():
        if all(v == column[0] for v in column):
            block.fields[(local, key)] = column[0]
            continue
        same = next((p for p, values in parameters.items() if same_values(values, column)), None)
        if same is not None:
            block.fields[(local, key)] = f"${same}"
            continue
        multiple = next((p for p, values in parameters.items() if multiple_of(column, values)), None)
        if multiple is not None:
            block.fields[(local, key)] = f"${multiple} * {column[0] // parameters[multiple][0]}"
            continue
        parameter = key if keys.count(key) == 1 and key not in parameters and key not in INSTANCE_KEYS \
            else re.sub(r"\W", "_", f"{local}_{key}")
        if not parameter[0].isalpha():
            parameter = f"p_{parameter}"
        parameters[parameter] = column
        block.fields[(local, key)] = f"${parameter}"
    # A parameter is called by its field's name where no other parameter of the block has that field.
    fields_of = {p: next(key for (local, key), v in block.fields.items() if v == f"${p}") for p in parameters}
    # (never a key of the block's use itself: name, from, repeat, start…)
    short = {p: fields_of[p] if list(fields_of.values()).count(fields_of[p]) == 1 and fields_of[p] not in INSTANCE_KEYS
             else p for p in parameters}
    rename = {p: short[p] for p in parameters}
    for position, text in list(block.fields.items()):
        if isinstance(text, str) and text.startswith("$"):
            head, _, tail = text[1:].partition(" ")
            block.fields[position] = f"${rename[head]}" + (f" {tail}" if tail else "")
    parameters = {rename[p]: values for p, values in parameters.items()}
    block.params = {p: "" for p in parameters}
    for index, instance in enumerate(instances):
        instance.values = {p: values[index] for p, values in parameters.items()}
    return block


def same_values(first: list[Any], second: list[Any]) -> bool:
    """Equal, and of the same kinds: a column of True is not a column of 1 (a bias switch is not a count)."""
    return first == second and all(type(a) is type(b) for a, b in zip(first, second, strict=True))


def multiple_of(column: list[Any], values: list[Any]) -> bool:
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in column + values):
        return False
    if any(v <= 0 for v in values):
        return False
    factor = column[0] // values[0]
    return factor >= 2 and all(c == factor * v for c, v in zip(column, values, strict=True))


def block_text(block: Block) -> str:
    template = block.template
    params = "{" + ", ".join(f"{p}: null" for p in block.params) + "}"
    lines = [f"  {block.name}:", f"    params: {params}"]
    if template.output != template.members[-1].name:
        lines.append(f"    output: {scalar(local_name_of(template.output, template.path))}")
    lines.append("    layers:")
    previous = INPUT
    for member in template.members:
        local = local_name(member, template.path)
        params_out = {key: block.fields[(local, key)] for key in member.params}
        inputs = wiring(member, template)
        lines.append(f"      - {entry(member.type, local, params_out, None if inputs == (previous,) else inputs)}")
        previous = local
    return "\n".join(lines) + "\n"


def repeat_groups(instances: list[Instance], readers: dict[str, list[int]]) -> list[list[Instance]]:
    """Runs of consecutive instances of one block with equal parameters, chained, named prefix.N, prefix.N+1;
    each one's output read only by the next."""
    runs: list[list[Instance]] = []
    for instance in instances:
        run = runs[-1] if runs else None
        if run is not None:
            last = run[-1]
            prefix, _, index = instance.path.rpartition(".")
            last_prefix, _, last_index = last.path.rpartition(".")
            if (instance.block == last.block and instance.values == last.values and prefix == last_prefix
                    and index.isdigit() and last_index.isdigit() and int(index) == int(last_index) + 1
                    and instance.source == last.output and instance.first == last.last + 1
                    and all(instance.first <= r <= instance.last for r in readers.get(last.output, []))):
                run.append(instance)
                continue
        runs.append([instance])
    return runs


def to_yaml(imported: Imported, fold: bool = True, comments: list[str] | None = None) -> str:
    layers, outputs = imported.layers, imported.outputs
    chosen = choose(layers, outputs, imported.modules) if fold else []
    blocks: list[Block] = []
    taken: set[str] = set()
    by_signature: dict[tuple, list[Instance]] = {}
    for instance in chosen:
        by_signature.setdefault(instance.signature, []).append(instance)
    for group in by_signature.values():
        kind = imported.modules.get(group[0].path, "block")
        name = block_name(kind, taken)
        for instance in group:
            instance.block = name
        blocks.append(parametrise(group, name))

    starts = {instance.first: instance for instance in chosen}
    readers: dict[str, list[int]] = {}
    for position, layer in enumerate(layers):
        for source in layer.inputs:
            readers.setdefault(source, []).append(position)
    for name in outputs:
        readers.setdefault(name, []).append(-1)
    grouped = repeat_groups(chosen, readers)
    prefixes = [run[0].path.rpartition(".")[0] for run in grouped if len(run) > 1]
    clash = {p for p in prefixes if prefixes.count(p) > 1} | {layer.name for layer in layers} \
        | {c.path for c in chosen} | {""}  # a run at the model's root (Sequential's 0, 1, 2) has no name to repeat
    grouped = [piece for run in grouped for piece in
               ([[one] for one in run] if len(run) > 1 and run[0].path.rpartition(".")[0] in clash else [run])]
    runs = {run[0].first: run for run in grouped}
    output_of: dict[str, str] = {}  # an instance's output layer -> what top-level `from:` calls it
    body: list[str] = []
    previous = INPUT
    index = 0
    while index < len(layers):
        if index in runs:
            run = runs[index]
            head = run[0]
            source = output_of.get(head.source, head.source)
            fields: dict[str, Any] = {"block": head.block}
            if len(run) > 1:
                prefix, _, start = head.path.rpartition(".")
                fields["name"] = prefix
                fields["repeat"] = len(run)
                if int(start):
                    fields["start"] = int(start)
                name_for_output = prefix
            else:
                fields["name"] = head.path
                name_for_output = head.path
            fields.update(head.values)
            if head.source != previous:
                fields["from"] = source
            body.append("  - {" + ", ".join(f"{k}: {scalar(v)}" for k, v in fields.items()) + "}")
            output_of[run[-1].output] = name_for_output
            previous = run[-1].output
            index = run[-1].last + 1
            continue
        if index in starts:  # an instance inside a run is written by the run
            index = starts[index].last + 1
            continue
        layer = layers[index]
        inputs = layer.inputs
        written = None if inputs == (previous,) else tuple(output_of.get(s, s) for s in inputs)
        body.append(f"  - {entry(layer.type, layer.name, layer.params, written)}")
        previous = layer.name
        index += 1

    text = header(comments or [])
    text += top_level(imported.name, imported.title, imported.source, imported.origin, imported.input,
                      untraced=imported.untraced)
    if blocks:
        text += "blocks:\n" + "".join(block_text(block) for block in blocks)
    text += "layers:\n" + "\n".join(body) + "\n"
    if len(outputs) > 1 or (outputs and outputs[0] != previous):
        text += f"outputs: {scalar([output_of.get(o, o) for o in outputs])}\n"
    return text
