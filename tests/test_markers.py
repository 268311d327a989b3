"""Every test that needs torch says so with the needs_torch marker, so that the suite runs (skipping those
tests) where torch is not installed; no test module imports torch when it is collected."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ROOT

TORCH_MODULES = ("torch", "torchvision", "fvcore", "onnx", "onnxscript")
HELPERS_WITH_TORCH = ("import_models",)  # tests/ modules that import torch at their top
TORCH_HELPERS = ("load_torchvision", "saved_activation_bytes")  # functions that import torch when called


def needs_torch_by_import(node: ast.AST) -> bool:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        names = [node.module or ""] + [alias.name for alias in node.names]
    else:
        return False
    return any(name.split(".")[0] in TORCH_MODULES or name.split(".")[-1] in HELPERS_WITH_TORCH for name in names)


def needs_torch_in_text(node: ast.AST) -> bool:
    """Code run in a subprocess, or a torchvision target given to the CLI."""
    if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
        return False
    text = node.value
    return "import torch" in text or text.startswith("torchvision:") or any(name in text for name in TORCH_HELPERS)


def uses_torch(function: ast.AST) -> bool:
    return any(needs_torch_by_import(node) or needs_torch_in_text(node) or
               (isinstance(node, ast.Name) and node.id in TORCH_HELPERS) for node in ast.walk(function))


def marked(node: ast.AST) -> bool:
    return any("needs_torch" in ast.unparse(decorator) for decorator in getattr(node, "decorator_list", []))


def test_torch_tests_carry_the_marker() -> None:
    unmarked, collected = [], []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module_marked = any(isinstance(node, ast.Assign) and "pytestmark" in ast.unparse(node)
                            and "needs_torch" in ast.unparse(node) for node in tree.body)
        guarded: set[str] = set()  # `x = pytest.importorskip("onnx")`: the module skips whole without it
        for node in tree.body:
            if isinstance(node, ast.Assign) and "importorskip" in ast.unparse(node.value):
                guarded |= {arg.value for arg in getattr(node.value, "args", []) if isinstance(arg, ast.Constant)}
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in guarded:
                continue
            if needs_torch_by_import(node):
                collected.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_") and uses_torch(node):
                if not (module_marked or marked(node)):
                    unmarked.append(f"{Path(path).name}::{node.name}")
    assert not collected, f"torch imported while collecting: {collected}"
    assert not unmarked, f"tests using torch without @pytest.mark.needs_torch: {unmarked}"
