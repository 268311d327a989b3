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
from convaudit.core.layers.base import Placement
from convaudit.core.model import NetworkSpec
from convaudit.errors import ConvauditError
from convaudit.importers.fold import to_yaml
from convaudit.importers.graph import Imported
from convaudit.importers.targets import TORCHVISION, is_target
from convaudit.interrupts import import_deferred

__all__ = ["Imported", "is_target", "load_target", "read", "read_model", "spec_text", "spec_of"]


def read(target: str, args: dict[str, Any] | None = None, input_size: tuple[int, ...] | None = None,
         channels: int = 3, input_shape: tuple[int, ...] | None = None, partial: bool = False) -> Imported:
    """Read a target into layers, traced at `input_shape` (one sample: (3, 224, 224), (1, 16000)), else at the
    model's own shape with `input_size` for its spatial sizes (as --input: one size for H and W), else 3×224×224."""
    args = dict(args or {})
    if target.lower().endswith(".onnx"):
        if args:
            raise ConvauditError("--arg applies to Python factories and torchvision builders, not ONNX files")
        with contextlib.suppress(ImportError):  # a missing onnx is said by read_onnx, in one line
            import_deferred("onnx")  # its C++ import must not be cut by Ctrl-C (convaudit.interrupts)
        from convaudit.importers.onnx_front import read_onnx

        return read_onnx(Path(target), input_size)
    from convaudit.importers.defaults import default_input_shape
    from convaudit.importers.targets import build

    model = build(target, args)
    if input_shape is None:
        own = default_input_shape(model, target) or (channels, DEFAULT_SIDE, DEFAULT_SIDE)
        input_shape = resized(own, input_size) if input_size else own
        if channels != 3:
            input_shape = (channels, *input_shape[1:])
    origin: dict[str, Any] = {"from": target}
    if args:
        origin["args"] = args
    return read_model(model, tuple(input_shape), model_name(target, args), origin, partial)


DEFAULT_SIDE = 224  # a model that states no input size of its own is traced at 3×224×224


def resized(shape: tuple[int, ...], sizes: tuple[int, ...]) -> tuple[int, ...]:
    """A sample shape with its last spatial sizes replaced, as --input does (one size: H and W, or L in 1-D)."""
    spatial = shape[1:]
    if len(sizes) == 2 and len(set(sizes)) == 1 and len(spatial) == 1:
        sizes = sizes[:1]
    if len(sizes) == 1:
        sizes = sizes * min(2, len(spatial))
    if len(sizes) > len(spatial):
        raise ConvauditError(f"the model takes {len(spatial)} spatial sizes ({'×'.join(map(str, spatial))}), got "
                             f"{'×'.join(map(str, sizes))}: give --input-shape")
    return (shape[0], *spatial[:len(spatial) - len(sizes)], *sizes)


def model_name(target: str, args: dict[str, Any]) -> str:
    """The spec's name: the model's (timm's model_name=, a torchvision builder's), else the factory's."""
    if target.startswith(TORCHVISION):
        return target[len(TORCHVISION):]
    for key in ("model_name", "name", "arch", "variant"):
        if isinstance(args.get(key), str) and args[key]:
            return args[key]
    return target.rsplit(":", 1)[1]


def read_model(model: Any, input_shape: tuple[int, ...], name: str | None = None,
               origin: dict[str, Any] | None = None, partial: bool = False) -> Imported:
    from convaudit.importers.torch_front import read_module

    name = name or type(model).__name__.lower()
    origin = origin or {"from": f"python:{type(model).__module__}.{type(model).__name__}"}
    imported = read_module(model, tuple(input_shape), name, origin, partial=partial)
    if origin["from"].startswith(TORCHVISION):
        imported.source = f"torchvision.models.{name}, random weights (traced on the meta device)"
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
        if tuple(result.output_shape) != (tuple(layer.shape) or (1,)):  # a 0-d tensor is written [1]
            raise ConvauditError(f"{where}: {result.name} ({layer.op}): convaudit computes "
                                 f"{describe_shape(result.output_shape)}, the trace gives "
                                 f"{describe_shape(layer.shape)}")
        placement = result.outcome.placement
        batch_there = Placement(*layer.placement) if layer.placement[0] is not None else Placement(None)
        if placement != batch_there:
            raise ConvauditError(f"{where}: {result.name} ({layer.op}): convaudit puts the batch at "
                                 f"{placement.describe(result.output_shape)}, the trace at "
                                 f"{batch_there.describe(layer.shape)}")
        if result.params != layer.weights:
            raise ConvauditError(f"{where}: {result.name} ({layer.op}): convaudit counts {result.params:,} "
                                 f"parameters, the graph holds {layer.weights:,}")
        buffers = getattr(result, "buffers", 0)
        if buffers != layer.buffers:
            raise ConvauditError(f"{where}: {result.name} ({layer.op}): convaudit counts {buffers:,} "
                                 f"buffer elements, the graph holds {layer.buffers:,}")


def load_target(target: str, args: dict[str, Any] | None = None, input_size: tuple[int, ...] | None = None,
                channels: int = 3, input_shape: tuple[int, ...] | None = None, partial: bool = False) -> NetworkSpec:
    return spec_of(read(target, args, input_size, channels, input_shape, partial))
