"""Find a spec by path, or by a bundled architecture's name or alias."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from convaudit.core.model import NetworkSpec
from convaudit.errors import SpecError
from convaudit.spec.layerlist import closest
from convaudit.spec.parser import load_spec

SPEC_SUFFIXES = (".yaml", ".yml")


def bundled_dir() -> Path:
    """Installed: the package's architectures/. From a bare source checkout: the repository's."""
    try:
        return Path(str(files("convaudit.architectures")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "architectures"


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
    names: dict[str, Path] = {}
    for spec in bundled_specs():
        for name in (spec.name, *spec.aliases):
            names[name.lower()] = Path(spec.file)
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
