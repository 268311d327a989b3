"""`verify SPEC --against TARGET`: the analysis of SPEC against the user's own nn.Module, layer by layer.

The target is built with random weights and traced once more (torch.export), which maps every spec layer
to the module call it came from (`layer3.1.conv2`, call 0). Then one real forward and backward gives:

  shape           the module's output, from a forward hook (layers written in a forward, such as a
                  residual add, have no module: their shapes are checked when the spec is imported)
  params          the module's own sum(p.numel()); a parameter used outside modules (a class token)
                  against that parameter; the total against sum(p.numel()) over the whole model
  fvcore          FlopCountAnalysis.by_module() per module, converted as `verify` converts it
  FlopCounterMode per module forward; backward as a whole-model total

Comparison cells and totals are verify.py's, so both forms of verify read the same way.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from convaudit.core.analysis import LayerResult, Report
from convaudit.core.memory import run_memory
from convaudit.errors import ConvauditError
from convaudit.importers import read_model
from convaudit.importers.graph import Imported, Layer
from convaudit.importers.targets import build
from convaudit.pytorch.builder import TORCH_DTYPES
from convaudit.pytorch.runtime import describe_device, guard_memory
from convaudit.pytorch.verify import (
    MISMATCH,
    NOT_COUNTED,
    NOTHING,
    TORCH_OVERCOUNT,
    Cell,
    Row,
    VerifyResult,
    compare,
    counted_by_torch,
    forward_backward,
    fvcore_by_module,
    fvcore_cell,
    fvcore_expected,
    shape_cell,
    tensors_in,
    time_model,
    torch_forward_cell,
    total_cell,
)


def first_tensor(output: Any) -> torch.Tensor | None:
    found = tensors_in(output)
    return found[0] if found else None


def module_shapes(model: torch.nn.Module, paths: set[str], x: torch.Tensor) -> dict[str, list[tuple[int, ...]]]:
    """One forward and backward; every call's full output shape of the named modules."""
    shapes: dict[str, list[tuple[int, ...]]] = {path: [] for path in paths}
    handles = []
    for path in paths:
        def hook(module: Any, args: Any, output: Any, path: str = path) -> None:
            tensor = first_tensor(output)
            if tensor is not None:
                shapes[path].append(tuple(tensor.shape))  # the full shape: the layer says where its batch is

        handles.append(model.get_submodule(path).register_forward_hook(hook))
    try:
        forward_backward(model, x)  # type: ignore[arg-type]
    finally:
        for handle in handles:
            handle.remove()
    return shapes


def flop_counter(model: torch.nn.Module, x: torch.Tensor) -> tuple[dict[str, int], int, int]:
    """FlopCounterMode: forward FLOPs per module path, the forward total, and the backward total."""
    with FlopCounterMode(display=False) as forward_only:
        model(x)
    with FlopCounterMode(display=False) as both:
        forward_backward(model, x)  # type: ignore[arg-type]
    root = type(model).__name__
    per_module = {name[len(root) + 1:] if name.startswith(root + ".") else "": sum(counts.values())
                  for name, counts in forward_only.get_flop_counts().items()}
    forward = forward_only.get_total_flops()
    return per_module, forward, both.get_total_flops() - forward


def verify_against(report: Report, target: str, args: dict[str, Any], device: torch.device, dtype: str = "fp32",
                   warmup: int = 1, repeats: int = 5, force: bool = False, seed: int = 0,
                   imported: Imported | None = None) -> VerifyResult:
    """`imported`: the target already read at the report's input (the import the spec came from), which saves
    tracing it again; without it the target is traced here."""
    base = dict(spec=f"{report.spec.label} against {target}", input=report.input, batch=report.batch, dtype=dtype,
                device=describe_device(device))
    if report.halted:
        raise ConvauditError(f"{report.halted.layer.name}: {report.halted.problem.message} (see `convaudit check`)")
    guard_memory(run_memory(report), device, force)
    torch.manual_seed(seed)
    model = build(target, args, meta=False)
    if imported is None or tuple(imported.input) != tuple(report.input):
        imported = read_model(model, report.input, origin={"from": target})
    traced = {layer.name: layer for layer in imported.layers}
    held = {name: b for name, b in model.named_buffers() if b.is_floating_point()  # indices are positions
            and name.rsplit(".", 1)[0] not in imported.unused}  # as params: never-run modules left out
    torch_dtype = TORCH_DTYPES[dtype]
    model = model.to(device=device, dtype=torch_dtype).eval()
    x = torch.randn((report.batch, *report.input), device=device, dtype=torch_dtype)

    paths = {layer.module[0] for layer in imported.layers if layer.module}
    shapes = module_shapes(model, paths, x)
    fvcore = fvcore_by_module(model, x)
    # FlopCounterMode counts from shapes alone: on a meta copy of the target it runs nothing, with the same counts
    meta_model = build(target, args, meta=True).to(dtype=torch_dtype).eval()
    forward, forward_total, backward_total = flop_counter(meta_model, x.to("meta"))
    per_path: dict[str, list[LayerResult]] = {}  # module path -> every layer its calls made (its own operators)
    for result in report.layers:
        layer = traced.get(result.name)
        if layer is not None and layer.scopes and layer.scopes[-1] in paths:
            per_path.setdefault(layer.scopes[-1], []).append(result)

    rows = []
    for result in report.layers:
        layer = traced.get(result.name)
        rows.append(Row(result.name, result.type, layer_cells(result, layer, model, shapes, fvcore, forward,
                                                              per_path)))
    used = sum(p.numel() for p in model.parameters())
    unused = sum(p.numel() for name, p in model.named_parameters()
                 if name.rsplit(".", 1)[0] in imported.unused)
    params = compare(report.totals.params, used - unused,
                     f"sum(p.numel()) {used:,} less {unused:,} in {', '.join(imported.unused[:4])}, which the "
                     "eval graph never runs" if unused else "sum(p.numel())")
    total_cells = {"params": params}
    # state, not caches: a buffer the forward replaced (ConViT's rel_indices placeholder) is left out
    now = dict(model.named_buffers())
    buffers = sum(b.numel() for name, b in held.items() if now.get(name) is b)
    ours_buffers = getattr(report.totals, "buffers", None)
    if ours_buffers is not None and (ours_buffers or buffers):
        total_cells["buffers"] = compare(ours_buffers, buffers)
    references = {"torch": torch.__version__, "target": target}
    if isinstance(fvcore, str):
        references["fvcore"] = fvcore
    else:
        import fvcore as fvcore_package

        references["fvcore"] = getattr(fvcore_package, "__version__", "installed")
        total_cells["fvcore_macs"] = total_cell(rows, "fvcore_macs", fvcore[2])
    total_cells["torch_forward"] = total_cell(rows, "torch_forward", forward_total)
    total_cells["torch_backward"] = backward_cell(report, backward_total)
    timings = time_model(model, x, device, warmup, repeats) if repeats > 0 else {}  # type: ignore[arg-type]
    return VerifyResult(**base, rows=tuple(rows), totals=Row("Total", "", total_cells), timings=timings,
                        references=references)


def layer_cells(result: LayerResult, layer: Layer | None, model: torch.nn.Module,
                shapes: dict[str, list[tuple[int, ...]]], fvcore: Any, forward: dict[str, int],
                per_path: dict[str, list[LayerResult]]) -> dict[str, Cell]:
    """One spec layer against its module call; a layer without a module counts only in the totals."""
    expected_fvcore = fvcore_expected(result)
    expected_torch = result.flops if counted_by_torch(result) else 0
    missing = Cell(NOTHING, None, None, "no such layer in the target" if layer is None else "")
    cells = {"shape": missing, "params": missing, "buffers": Cell(NOTHING, 0, 0),
             "fvcore_macs": Cell(NOTHING, expected_fvcore, None, "in the total only"),
             "torch_forward": Cell(NOTHING, expected_torch, None, "in the total only"),
             "torch_backward": Cell(NOTHING, 0, 0)}
    named = dict(model.named_parameters()).get(layer.named_after) if layer is not None and layer.named_after else None
    if named is not None:  # a layer named after the parameter it holds (a constant's source holds none)
        cells["params"] = compare(result.params, named.numel())
    if layer is not None and not layer.module and layer.scopes and layer.scopes[-1] in per_path:
        path = layer.scopes[-1]  # an operator of a module's own forward: its numbers are on the module's row
        for column in ("params", "fvcore_macs", "torch_forward"):
            cells[column] = Cell(NOTHING, 0, 0, f"counted at {path}")
        return cells
    if layer is None or not layer.module:
        if layer is not None and expected_fvcore and not isinstance(fvcore, str):
            op = layer.op.replace("aten.", "aten::", 1)  # fvcore names the traced op as TorchScript does
            if op in fvcore[1].get("", {}):  # fvcore counts an unsupported op nowhere, so not here either
                cells["fvcore_macs"] = Cell(NOT_COUNTED, expected_fvcore, 0, f"not counted by fvcore: {op}")
        return cells
    path, call = layer.module
    calls = shapes.get(path, [])
    cells["shape"] = shape_cell(result, calls[call] if call < len(calls) else None)
    siblings = per_path.get(path, [])  # its calls' layers: one per call, or several from a module's own forward
    if call:  # a module called again (a ReLU reused): its numbers are on its first call's row
        first = path if any(r.name == path for r in siblings) else siblings[0].name if siblings else ""
        cells["params"] = Cell(NOTHING, 0, 0, f"counted at {first}" if first else "")
        cells["fvcore_macs"] = Cell(NOTHING, 0, 0)
        cells["torch_forward"] = Cell(NOTHING, 0, 0)
        return cells
    module = model.get_submodule(path)
    cells["params"] = compare(sum(r.params for r in siblings) if len(siblings) > 1 else result.params,
                              sum(p.numel() for p in module.parameters()))
    buffers = sum(b.numel() for b in module.buffers() if b.is_floating_point())  # indices and counters are not state
    ours_buffers = getattr(result, "buffers", 0)
    if buffers or ours_buffers:
        cells["buffers"] = compare(ours_buffers, buffers)
    if not isinstance(fvcore, str):
        by_module, unsupported, _ = fvcore
        if len(siblings) == 1:
            cells["fvcore_macs"] = fvcore_cell(result, by_module.get(path, 0), unsupported.get(path, {}))
        else:
            cells["fvcore_macs"] = compare(sum(fvcore_expected(r) for r in siblings), by_module.get(path, 0),
                                           f"{len(siblings)} layers of one module")
    if len(siblings) == 1:
        cells["torch_forward"] = torch_forward_cell(result, forward.get(path, 0))
    else:
        cells["torch_forward"] = compare(sum(r.flops for r in siblings if counted_by_torch(r)),
                                         forward.get(path, 0), f"{len(siblings)} layers of one module")
    return cells


def backward_cell(report: Report, counted: int) -> Cell:
    """Backward FLOPs of the layers FlopCounterMode counts (conv and matmul), as a whole-model total; torch's
    known over-count of grouped-conv weight gradients (×groups) is named, not failed."""
    counted_layers = [layer for layer in report.layers if counted_by_torch(layer)]
    ours = sum(layer.backward_flops for layer in counted_layers)
    overcount = sum((layer.spec.params.get("groups", 1) - 1) * 2 * layer.macs for layer in counted_layers
                    if layer.trainable_params)
    if ours != counted and overcount and ours + overcount == counted:
        return Cell(TORCH_OVERCOUNT, ours, counted, f"torch's grouped-conv over-count: +{overcount:,}")
    cell = compare(ours, counted, "whole model")
    return cell if cell.status != MISMATCH else Cell(MISMATCH, ours, counted, "whole model")


__all__ = ["verify_against", "NOT_COUNTED"]
