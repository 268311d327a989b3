"""The package's layers import downwards only: cli → api → render, pytorch → resolve → importers → spec → core →
errors, interrupts (and atomic_write, beside errors)."""

from __future__ import annotations

import ast

from .conftest import ROOT

# What each layer may import from convaudit. Presentation may name the torch side's result types, but only
# under TYPE_CHECKING, so rendering never imports torch.
ALLOWED = {
    "errors": set(),
    "interrupts": set(),
    "atomic_write": {"errors"},
    "core": {"errors", "core"},
    "spec": {"errors", "core", "spec"},
    "importers": {"errors", "interrupts", "core", "spec", "importers"},  # torch and onnx only inside functions
    "resolve": {"errors", "core", "spec", "importers"},  # the one resolver: a name, path or target -> a spec
    "pytorch": {"errors", "interrupts", "core", "spec", "importers", "resolve", "pytorch"},
    "render": {"errors", "core", "spec", "render"},
    "api": {"errors", "core", "spec", "resolve", "render", "atomic_write", "importers"},
}


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "convaudit"


def runtime_imports(tree: ast.AST) -> list[str]:
    """convaudit modules imported outside `if TYPE_CHECKING:` blocks."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("convaudit"):
            found.append(node.module)
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names if alias.name.startswith("convaudit"))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_imports_point_down() -> None:
    wrong = []
    for path in sorted((ROOT / "convaudit").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        layer = layer_of(module)
        if layer not in ALLOWED:
            continue  # the package root, __main__ and the CLI sit on top and may import anything
        for target in runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if layer_of(target) not in ALLOWED[layer] and target != "convaudit":
                wrong.append(f"{module} imports {target}")
    assert not wrong, "imports that point up:\n" + "\n".join(wrong)


def test_no_module_outside_the_layer_types_lists_or_tests_type_names() -> None:
    """One place per layer type: what a type does is declared on its class (core/layers/). Elsewhere no `if
    layer.type == "maxpool"`, no SAME_SIZE = ("relu", "dropout", …) list. The importers are exempt: mapping
    operators onto types is their job."""
    import ast

    from convaudit.core.layers import REGISTRY
    from convaudit.core.layers.base import TRAIT_VALUES

    names = set(REGISTRY)
    trait_values = {value for values in TRAIT_VALUES.values() for value in values}  # 'upsample' is a rule too
    found = []
    for path in sorted((ROOT / "convaudit").rglob("*.py")):
        relative = path.relative_to(ROOT / "convaudit").as_posix()
        if relative.startswith(("core/layers/", "importers/")):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute) \
                    and node.left.attr in ("type", "type_name"):
                literals = [c for comparator in node.comparators for c in ast.walk(comparator)
                            if isinstance(c, ast.Constant) and c.value in names]
                if literals:
                    found.append(f"{relative}:{node.lineno}: compares a type with {literals[0].value!r}")
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                listed = [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in names - trait_values]
                if len(listed) >= 3:
                    found.append(f"{relative}:{node.lineno}: lists type names {listed[:3]}")
    assert not found, "\n".join(found)
