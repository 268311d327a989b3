"""Find a spec by path, or by a bundled architecture's name or alias."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from convaudit.core.model import NetworkSpec
from convaudit.errors import SpecError
from convaudit.spec.layerlist import closest
from convaudit.spec.parser import load_spec
from convaudit.spec.yamlsource import load_document

SPEC_SUFFIXES = (".yaml", ".yml")


CHECKOUT_ARCHITECTURES = Path(__file__).resolve().parents[2] / "architectures"  # convaudit/spec/ -> the checkout


def bundled_dir() -> Path:
    """Installed: the package's architectures/ (pyproject.toml maps the top-level folder in). From a bare source
    checkout on PYTHONPATH, where no convaudit.architectures package exists: the checkout's architectures/."""
    try:
        return Path(str(files("convaudit.architectures")))
    except ModuleNotFoundError:
        return CHECKOUT_ARCHITECTURES


def bundled_paths() -> list[Path]:
    paths = (display_path(p) for p in bundled_dir().iterdir() if p.suffix in SPEC_SUFFIXES)
    return sorted(paths, key=lambda p: p.stem)


def display_path(path: Path) -> Path:
    """Relative to the working directory when inside it, so messages stay short."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def bundled_specs() -> list[NetworkSpec]:
    return [load_spec(path) for path in bundled_paths()]


def bundled_names() -> dict[str, Path]:
    """Every bundled spec's name and aliases, lower-cased, to its file: read from those two top-level keys
    alone, so that resolving one name does not parse every bundled network (a test checks they agree)."""
    names: dict[str, Path] = {}
    for path in bundled_paths():
        for name in header_names(path.read_text(encoding="utf-8"), str(path)):
            names[name.lower()] = path
    return names


def header_names(text: str, file: str) -> list[str]:
    """The `name:` and `aliases:` of a spec's text, from their own top-level lines (and what is indented
    under them), without reading the layers."""
    kept, taking = [], False
    for line in text.splitlines():
        if line[:1] not in ("", " ", "\t", "#", "-"):  # a top-level key starts here
            taking = line.startswith(("name:", "aliases:"))
        if taking:
            kept.append(line)
    data = load_document("\n".join(kept) + "\n", file).data
    if not isinstance(data, dict):
        return []
    aliases = data.get("aliases")
    found = [data.get("name"), *(aliases if isinstance(aliases, list) else [])]
    return [name for name in found if isinstance(name, str)]


def resolve(reference: str) -> Path:
    """A file path if it exists, else the bundled spec named (or aliased) `reference`."""
    path = Path(reference).expanduser()
    if path.is_file() or path.is_dir():
        return path
    looks_like_path = "/" in reference or "\\" in reference or path.suffix in SPEC_SUFFIXES
    if looks_like_path:
        raise SpecError(f"no such file: {reference}")
    return resolve_bundled(reference)


def resolve_bundled(reference: str) -> Path:
    """The bundled spec named (or aliased) `reference`; never a file elsewhere."""
    wanted = reference.lower()
    direct = bundled_dir() / f"{wanted}.yaml"
    if direct.is_file():
        return display_path(direct)
    names = bundled_names()
    if wanted in names:
        return display_path(names[wanted])
    bundled = ", ".join(path.stem for path in bundled_paths())
    raise SpecError(f"'{reference}' is neither a file nor a bundled architecture{closest(wanted, sorted(names))}; "
                    f"bundled: {bundled}")


def load(reference: str, variant: str | None = None) -> NetworkSpec:
    """Load a spec by path or bundled name; `name+variant` picks a variant (as --variant does)."""
    base, named = split_variant(reference)
    if named and variant and named != variant:
        raise SpecError(f"'{reference}' names variant '{named}' but --variant says '{variant}'")
    return load_spec(resolve(base), named or variant)


def split_variant(reference: str) -> tuple[str, str | None]:
    """'googlenet+aux' -> ('googlenet', 'aux'); a file whose name holds a '+' is taken whole."""
    if "+" not in reference or Path(reference).expanduser().exists():
        return reference, None
    base, variant = reference.rsplit("+", 1)
    if not variant.strip():
        raise SpecError(f"'{reference}' names no variant after '+': write {base}+VARIANT (or drop the '+')")
    return base, variant
