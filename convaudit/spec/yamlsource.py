"""Read YAML into plain Python values while remembering the line of every key.

PyYAML's own loader forgets where values came from, expands aliases without
bound and recurses once per level of nesting. Here the parser's events (from
libyaml when available) are built into values on an explicit stack: each mapping
key and sequence item records its 1-based line, duplicate keys and tags are
refused, nesting is capped, and the nodes aliases add are counted so that a
"billion laughs" file is refused instead of filling memory. Each refusal names
its limit.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from convaudit.errors import SpecError, Where

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML was built with it

MAX_FILE_BYTES = 2_000_000  # a spec file's size; this also bounds the nodes written out in it
MAX_NODES = 200_000  # nodes that aliases add (each alias counts its anchor's nodes); real specs use none
MAX_DEPTH = 100  # mappings and sequences nested in one another, aliases expanded; real specs nest about 8
DEEPER = f"refused: the document nests deeper than {MAX_DEPTH} levels (the YAML depth limit)"
STR, MERGE = "tag:yaml.org,2002:str", "tag:yaml.org,2002:merge"
PLAIN_TAGS = {f"tag:yaml.org,2002:{name}" for name in
              ("str", "int", "float", "bool", "null", "seq", "map", "merge", "timestamp")}

KeyPath = tuple[str | int, ...]


def format_key(path: KeyPath) -> str:
    """("layers", 3, "kernel") -> "layers[3].kernel"."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass
class Document:
    """A parsed YAML document and the line of every key path in it."""

    data: Any
    file: str
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def where(self, path: KeyPath) -> Where:
        """The location of `path`, falling back to its nearest located ancestor."""
        probe = tuple(path)
        while probe and probe not in self.lines:
            probe = probe[:-1]
        return Where(self.file, self.lines.get(probe), format_key(tuple(path)) or None)

    def error(self, path: KeyPath, message: str) -> SpecError:
        return SpecError(message, self.where(path))


def read_text(path: Path) -> str:
    if not path.exists():
        raise SpecError(f"no such file: {path}")
    if path.is_dir():
        raise SpecError(f"{path} is a directory, not a spec file")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SpecError(f"{path}: refused: {size} bytes is larger than a spec can be ({MAX_FILE_BYTES})")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror}") from None


def load_document(text: str, file: str) -> Document:
    """Parse one YAML document, refusing syntax errors, duplicate keys, tags, deep nesting and alias bombs."""
    doc = Document(data=None, file=file)
    try:
        doc.data = _Composer(doc).compose(yaml.parse(text, Loader=LOADER))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        if "nesting depth" in problem:  # libyaml's own cap (1,000 flow levels) met before ours
            raise SpecError(DEEPER, Where(file, line)) from None
        raise SpecError(f"YAML syntax error: {problem}", Where(file, line)) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"YAML error: {exc}", Where(file)) from None
    return doc


@dataclass
class _Node:
    """A mapping or sequence being built, or a finished value with what an alias to it must replay."""

    path: KeyPath
    value: Any
    line: int
    anchor: str | None = None
    start: int = 0  # where its line records begin in the composer's log
    count: int = 1  # nodes, aliases expanded
    height: int = 0  # nesting below it
    key: str | None = None  # a mapping's key awaiting its value
    key_line: int = 0
    merged: list[tuple[Any, int]] = field(default_factory=list)  # a mapping's `<<:` values and their lines


@dataclass(frozen=True)
class _Anchor:
    value: Any
    count: int
    height: int
    lines: tuple[tuple[KeyPath, int, bool], ...]  # (path below the anchor, line, whether a key's line)


class _Composer:
    """Builds plain values from the parser's events, on an explicit stack (no recursion, however deep).

    Every node records its line (a key's path takes the key's line); an alias replays its anchor's value
    (a copy) and lines, and adds the anchor's node count to the alias-expanded total.
    """

    def __init__(self, doc: Document):
        self.doc = doc
        self.stack: list[_Node] = []
        self.anchors: dict[str, _Anchor] = {}
        self.open_anchors: set[str] = set()
        self.expanded = 0
        self.log: list[tuple[KeyPath, int, bool]] = []
        self.resolver = yaml.resolver.Resolver()
        self.resolved: dict[tuple[str, Any], str] = {}  # (text, implicit) -> tag, as names repeat
        self.scalars = yaml.constructor.SafeConstructor()
        self.root: Any = None

    def compose(self, events: Any) -> Any:
        documents = 0
        for event in events:
            kind = type(event)
            if kind is yaml.ScalarEvent:
                self.scalar(event)
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                self.start(event, {} if kind is yaml.MappingStartEvent else [])
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                self.end()
            elif kind is yaml.AliasEvent:
                self.alias(event)
            elif kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise SpecError("YAML syntax error: expected a single document in the stream, but found another",
                                    Where(self.doc.file, event.start_mark.line + 1))
        return self.root

    # ------------------------------------------------------------ where a new value goes

    def place(self) -> tuple[KeyPath, bool]:
        """The path of the next value, and whether it is a mapping key."""
        if not self.stack:
            return (), False
        top = self.stack[-1]
        if isinstance(top.value, list):
            return top.path + (len(top.value),), False
        if top.key is None:
            return top.path, True
        return top.path + ("<<" if top.key == MERGE else top.key,), False

    def record(self, path: KeyPath, line: int, key: bool = False) -> None:
        if key:
            self.doc.lines[path] = line
        else:
            self.doc.lines.setdefault(path, line)
        if self.open_anchors:  # replayed by the aliases to them
            self.log.append((path, line, key))

    def check_tag(self, tag: str | None, path: KeyPath) -> None:
        if tag is not None and tag != "!" and tag not in PLAIN_TAGS:
            raise self.doc.error(path, f"YAML tags such as {tag} are not allowed in a spec")

    def deliver(self, value: Any, line: int, count: int, height: int) -> None:
        """A finished value: into its parent (or the root)."""
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        top.count += count
        top.height = max(top.height, height + 1)
        if isinstance(top.value, list):
            top.value.append(value)
        elif top.key == MERGE:
            top.merged.append((value, line))
            top.key = None
        else:
            top.value[top.key] = value
            top.key = None

    # ------------------------------------------------------------ events

    def scalar(self, event: yaml.ScalarEvent) -> None:
        path, is_key = self.place()
        line = event.start_mark.line + 1
        tag = event.tag
        if tag is None or tag == "!":
            implicit = (event.value, event.implicit)
            tag = self.resolved.get(implicit)
            if tag is None:
                tag = self.resolved[implicit] = self.resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
        self.check_tag(tag, path)
        if is_key:
            self.key(event, tag, path, line)
            return
        self.record(path, line)
        value = event.value if tag == STR else self.construct(tag, event, path)
        if event.anchor is not None:
            self.define(event.anchor, _Anchor(value, 1, 0, (((), line, False),)), line)
        self.deliver(value, line, 1, 0)

    def key(self, event: yaml.ScalarEvent, tag: str, path: KeyPath, line: int) -> None:
        top = self.stack[-1]
        if tag == MERGE:
            top.key = MERGE
            return
        key = str(event.value if tag == STR else self.construct(tag, event, path))
        where = path + (key,)
        if key in top.value:
            raise SpecError(f"duplicate key '{key}' (first given on line {self.doc.lines.get(where)})",
                            Where(self.doc.file, line, format_key(where)))
        self.record(where, line, key=True)
        top.key, top.key_line = key, line

    def construct(self, tag: str, event: yaml.ScalarEvent, path: KeyPath) -> Any:
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        constructor = self.scalars.yaml_constructors.get(tag, yaml.constructor.SafeConstructor.construct_undefined)
        try:
            return constructor(self.scalars, node)
        except yaml.constructor.ConstructorError as exc:
            raise self.doc.error(path, f"cannot read value: {exc.problem}") from None
        except ValueError:  # an int past Python's 4,300-digit limit (hostile input; see core/fields.py)
            raise self.doc.error(path, f"refused: a number of {len(event.value):,} characters "
                                       "(numbers are limited to 2^63)") from None

    def start(self, event: Any, value: dict | list) -> None:
        path, is_key = self.place()
        line = event.start_mark.line + 1
        if is_key:
            raise SpecError("mapping keys must be plain names", Where(self.doc.file, line))
        self.check_tag(event.tag, path)
        if len(self.stack) >= MAX_DEPTH:
            raise self.doc.error(path, DEEPER)
        self.record(path, line)
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)
            self.log.append((path, line, False))
        self.stack.append(_Node(path, value, line, event.anchor, start=len(self.log) - 1))

    def end(self) -> None:
        node = self.stack.pop()
        value = node.value
        if node.merged:
            value = {**self.merge(node), **value}
        if node.anchor is not None:
            self.open_anchors.discard(node.anchor)
            cut = len(node.path)
            lines = tuple((path[cut:], line, key) for path, line, key in self.log[node.start:])
            if not self.open_anchors:
                self.log.clear()
            self.define(node.anchor, _Anchor(value, node.count, node.height, lines), node.line)
        self.deliver(value, node.line, node.count, node.height)

    def merge(self, node: _Node) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for value, _ in node.merged:
            sources = value if isinstance(value, list) else [value]
            if not all(isinstance(source, dict) for source in sources):
                raise self.doc.error(node.path + ("<<",), "a merge key (<<) must name a mapping or a list of mappings")
            for source in sources:
                merged.update({k: v for k, v in source.items() if k not in merged})
        return merged

    def define(self, name: str, anchor: _Anchor, line: int) -> None:
        if name in self.anchors:
            raise SpecError(f"YAML syntax error: the anchor &{name} is defined twice", Where(self.doc.file, line))
        self.anchors[name] = anchor

    def alias(self, event: yaml.AliasEvent) -> None:
        path, is_key = self.place()
        line = event.start_mark.line + 1
        if is_key:
            raise SpecError("mapping keys must be plain names", Where(self.doc.file, line))
        if event.anchor in self.open_anchors:
            raise self.doc.error(path, "refused: an alias refers to the node that contains it")
        anchor = self.anchors.get(event.anchor)
        if anchor is None:
            raise SpecError(f"YAML syntax error: found undefined alias *{event.anchor}", Where(self.doc.file, line))
        self.expanded += anchor.count
        if self.expanded > MAX_NODES:
            raise SpecError(f"refused: the document expands to more than {MAX_NODES} nodes through aliases "
                            "(the alias-expansion limit; an alias bomb?)", Where(self.doc.file, line))
        if len(self.stack) + anchor.height > MAX_DEPTH:
            raise self.doc.error(path, DEEPER)
        for below, at, key in anchor.lines:
            self.record(path + below, at, key)
        value = anchor.value if anchor.height == 0 else copy.deepcopy(anchor.value)
        self.deliver(value, line, anchor.count, anchor.height)
