"""Read YAML into plain Python values while remembering the line of every key.

PyYAML's own loader forgets where values came from and expands aliases without
bound. Here the document is composed into nodes, then converted by hand: each
mapping key and sequence item records its 1-based line, duplicate keys are
refused, and alias expansion is capped so that a "billion laughs" file is
refused instead of filling memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from convaudit.errors import SpecError, Where

MAX_FILE_BYTES = 2_000_000
MAX_NODES = 200_000  # after alias expansion; real specs use a few thousand
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
    """Parse one YAML document, refusing syntax errors, duplicate keys and alias bombs."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(f"YAML syntax error: {problem}", Where(file, line)) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"YAML error: {exc}", Where(file)) from None
    doc = Document(data=None, file=file)
    if root is None:
        return doc
    doc.data = _Converter(doc).convert(root, ())
    return doc


class _Converter:
    def __init__(self, doc: Document):
        self.doc = doc
        self.visited = 0
        self.active: set[int] = set()
        self.scalars = yaml.constructor.SafeConstructor()

    def convert(self, node: yaml.Node, path: KeyPath) -> Any:
        self.visited += 1
        if self.visited > MAX_NODES:
            raise SpecError(
                f"refused: the document expands to more than {MAX_NODES} nodes through aliases "
                "(an alias bomb?)",
                Where(self.doc.file, node.start_mark.line + 1),
            )
        if id(node) in self.active:
            raise self.doc.error(path, "refused: an alias refers to the node that contains it")
        self.doc.lines.setdefault(path, node.start_mark.line + 1)
        if node.tag not in PLAIN_TAGS:
            raise self.doc.error(path, f"YAML tags such as {node.tag} are not allowed in a spec")
        if isinstance(node, yaml.ScalarNode):
            try:
                return self.scalars.construct_object(node)
            except yaml.constructor.ConstructorError as exc:
                raise self.doc.error(path, f"cannot read value: {exc.problem}") from None
            except ValueError:  # an int past Python's 4,300-digit limit (hostile input; see core/fields.py)
                raise self.doc.error(path, f"refused: a number of {len(node.value):,} characters "
                                           "(numbers are limited to 2^63)") from None
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.convert(item, path + (i,)) for i, item in enumerate(node.value)]
            return self._mapping(node, path)
        finally:
            self.active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                for source in self._merge_sources(value_node, path):
                    merged.update({k: v for k, v in source.items() if k not in merged})
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise SpecError("mapping keys must be plain names", Where(self.doc.file, key_node.start_mark.line + 1))
            key = str(self.scalars.construct_object(key_node))
            if key in result:
                raise SpecError(
                    f"duplicate key '{key}' (first given on line {self.doc.lines.get(path + (key,))})",
                    Where(self.doc.file, key_node.start_mark.line + 1, format_key(path + (key,))),
                )
            self.doc.lines[path + (key,)] = key_node.start_mark.line + 1
            result[key] = self.convert(value_node, path + (key,))
        return {**merged, **result}

    def _merge_sources(self, node: yaml.Node, path: KeyPath) -> list[dict[str, Any]]:
        value = self.convert(node, path + ("<<",))
        sources = value if isinstance(value, list) else [value]
        if not all(isinstance(source, dict) for source in sources):
            raise self.doc.error(path + ("<<",), "a merge key (<<) must name a mapping or a list of mappings")
        return sources
