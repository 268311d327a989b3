"""Import real models as specs: PyTorch modules through torch.export, ONNX files through onnx.

    read(target, args, input_size)  -> Imported    (torchvision:NAME, package.module:function, model.onnx)
    read_model(module, input_shape) -> Imported
    spec_text(imported)             -> the readable YAML, blocks folded
    load_target(target, ...)        -> NetworkSpec, checked against the trace

Torch-free at import time; torch and onnx are imported by the front ends when used.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from convaudit.core.analysis import analyze
from convaudit.core.layers import describe_shape
from convaudit.core.model import NetworkSpec
from convaudit.errors import ConvauditError
from convaudit.importers.fold import to_yaml
from convaudit.importers.graph import Imported
from convaudit.importers.targets import TORCHVISION, is_target
from convaudit.interrupts import import_deferred

__all__ = ["Imported", "is_target", "load_target", "read", "read_model", "spec_text", "spec_of"]


def read(target: str, args: dict[str, Any] | None = None, input_size: tuple[int, int] | None = None,
         channels: int = 3) -> Imported:
    """Read a target into layers, tracing at `input_size` (default: the model's own)."""
    args = dict(args or {})
    if target.lower().endswith(".onnx"):
        if args:
            raise ConvauditError("--arg applies to Python factories and torchvision builders, not ONNX files")
        with contextlib.suppress(ImportError):  # a missing onnx is said by read_onnx, in one line
            import_deferred("onnx")  # its C++ import must not be cut by Ctrl-C (convaudit.interrupts)
        from convaudit.importers.onnx_front import read_onnx

        return read_onnx(Path(target), input_size)
    from convaudit.importers.targets import build, default_size

    model = build(target, args)
    if input_size is None:
        side = default_size(model, target)
        input_size = (side, side)
    name = target[len(TORCHVISION):] if target.startswith(TORCHVISION) else target.rsplit(":", 1)[1]
    origin: dict[str, Any] = {"from": target}
    if args:
        origin["args"] = args
    return read_model(model, (channels, *input_size), name, origin)


def read_model(model: Any, input_shape: tuple[int, int, int], name: str | None = None,
               origin: dict[str, Any] | None = None) -> Imported:
    from convaudit.importers.torch_front import read_module

    name = name or type(model).__name__.lower()
    origin = origin or {"from": f"python:{type(model).__module__}.{type(model).__name__}"}
    imported = read_module(model, tuple(input_shape), name, origin)  # type: ignore[arg-type]
    if origin["from"].startswith(TORCHVISION):
        imported.source = f"torchvision.models.{name}, random weights (traced with torch.export)"
    return imported


def spec_text(imported: Imported, fold: bool = True) -> str:
    comments = [f"{imported.name}: imported by convaudit from {imported.origin['from']}"]
    comments += [f"traced at input {describe_shape(imported.input)}; layer names are module paths"]
    if imported.unused:
        shown = ", ".join(imported.unused[:6]) + (f" and {len(imported.unused) - 6} more"
                                                  if len(imported.unused) > 6 else "")
        comments.append(f"not in the traced (eval) graph, so not counted: the parameters of {shown}")
    comments += imported.notes
    return to_yaml(imported, fold, comments)


def spec_of(imported: Imported, fold: bool = True, file: str | None = None) -> NetworkSpec:
    """Parse the written spec and check its analysis against the trace, layer by layer."""
    from convaudit.spec.parser import parse_text

    spec = parse_text(spec_text(imported, fold), file or imported.origin["from"])
    check(imported, spec)
    return spec


def check(imported: Imported, spec: NetworkSpec) -> None:
    """Every layer's analysed shape and parameters equal what the trace gave: a mapping mistake would
    otherwise be a silent wrong number."""
    report = analyze(spec)
    where = imported.origin["from"]
    if report.halted:
        halt = report.halted
        raise ConvauditError(f"{where}: the imported spec stops at {halt.layer.name}: {halt.problem.message}")
    traced = {layer.name: layer for layer in imported.layers}
    for result in report.layers:
        layer = traced.get(result.name)
        if layer is None:
            raise ConvauditError(f"{where}: internal error: folding produced layer {result.name}, not in the trace")
        if tuple(result.output_shape) != tuple(layer.shape):
            raise ConvauditError(f"{where}: {result.name} ({layer.op}): convaudit computes "
                                 f"{describe_shape(result.output_shape)}, the trace gives "
                                 f"{describe_shape(layer.shape)}")
        if result.params != layer.weights:
            raise ConvauditError(f"{where}: {result.name} ({layer.op}): convaudit counts {result.params:,} "
                                 f"parameters, the graph holds {layer.weights:,}")
        buffers = getattr(result, "buffers", 0)
        if buffers != layer.buffers:
            raise ConvauditError(f"{where}: {result.name} ({layer.op}): convaudit counts {buffers:,} "
                                 f"buffer elements, the graph holds {layer.buffers:,}")


def load_target(target: str, args: dict[str, Any] | None = None, input_size: tuple[int, int] | None = None,
                channels: int = 3) -> NetworkSpec:
    return spec_of(read(target, args, input_size, channels))
