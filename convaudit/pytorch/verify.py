"""Cross-check an analysis against a real PyTorch model, fvcore and torch's FlopCounterMode.

Imported only by `convaudit verify` (torch is heavy). The result is plain data;
rendering lives in render/verify.py.

Conventions, converted explicitly:
  fvcore FlopCountAnalysis  counts one multiply-add as one flop: compared with our MACs
                            (batchnorm: its 2 per element at inference, our other-ops rule;
                            adaptive pooling: one per input element)
  torch FlopCounterMode     counts 2 per MAC, conv and matmul only: compared with our FLOPs
                            and backward FLOPs
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from convaudit.core.analysis import LayerResult, Report
from convaudit.core.checks import Finding, check
from convaudit.core.layers import REGISTRY, elements
from convaudit.core.layers.base import References, trait_of
from convaudit.core.timing import Timing
from convaudit.errors import DeviceError
from convaudit.pytorch.builder import TORCH_DTYPES, SpecModel, build_layer, build_model, count_buffers, count_parameters
from convaudit.pytorch.runtime import (
    allocation_error,
    describe_device,
    guard_memory,
    is_out_of_memory,
    model_need,
    precision,
    time_step,
)

MATCH, MISMATCH, NOT_COUNTED, TORCH_OVERCOUNT, NOTHING = "match", "mismatch", "not-counted", "torch-overcount", "none"


@dataclass(frozen=True)
class Cell:
    """One comparison: our number, the reference's, and the verdict."""

    status: str
    ours: object = None
    theirs: object = None
    note: str = ""
    shown: str = ""  # the reference's own number and the conversion to ours: "4,111,512,576 − 22,328,320 … = …"


@dataclass(frozen=True)
class Row:
    name: str
    type: str
    cells: dict[str, Cell]


@dataclass(frozen=True)
class VerifyResult:
    spec: str
    input: tuple[int, int, int]
    batch: int
    dtype: str
    device: str
    rows: tuple[Row, ...] = ()
    totals: Row | None = None
    timings: dict[str, Timing] = field(default_factory=dict)
    torch_error: str | None = None  # what PyTorch raised when the model ran
    explanation: tuple[Finding, ...] = ()  # the analysis findings that predicted it
    references: dict[str, str] = field(default_factory=dict)  # reference name -> version, or why it is missing

    @property
    def cells(self) -> Iterator[Cell]:
        for row in self.rows + ((self.totals,) if self.totals else ()):
            yield from row.cells.values()

    def count(self, status: str) -> int:
        return sum(1 for cell in self.cells if cell.status == status)

    @property
    def passed(self) -> bool:
        return self.torch_error is None and self.count(MISMATCH) == 0


COLUMNS = ("shape", "params", "buffers", "fvcore_macs", "torch_forward", "torch_backward")


# ------------------------------------------------------------------ what each reference counts, in our terms

def references(layer: LayerResult) -> References:
    """How fvcore and FlopCounterMode count this layer (its type's `references`)."""
    return trait_of(REGISTRY[layer.type], "references", layer.spec.params)


def fvcore_expected(layer: LayerResult) -> int:
    """fvcore's number for this layer under fvcore's own convention (the type's `references`), from our analysis."""
    rule = references(layer).fvcore
    if rule == "macs":
        return layer.macs  # attention: fvcore counts the projections (aten::linear) and both bmm, one per MAC
    if rule == "other-ops":
        return layer.other_ops  # batchnorm at inference: 2 per element with affine, 1 without (our rule too)
    if rule == "input-elements":
        return elements(layer.input_shapes[0]) * layer.batch  # adaptive pooling: one per input element
    if rule == "output-elements":  # up-sampling: so many per output element
        return references(layer).per_output * layer.activations
    if rule == "layernorm":  # fvcore's estimate for aten::layer_norm: 5 per element with affine, 4 without
        return (5 if layer.spec.params["affine"] else 4) * elements(layer.input_shapes[0]) * layer.batch
    return 0  # subsample and RBF have MACs fvcore cannot see (it reports their ops unsupported)


def counted_by_torch(layer: LayerResult) -> bool:
    """FlopCounterMode counts this layer's MACs (it counts convolutions and matrix products only)."""
    return references(layer).flop_counter


# Fused kernels that hold a layer's matmuls: fvcore cannot count them, so the layer is not comparable even when
# the operators fvcore leaves uncounted for its type are otherwise element-wise (torchvision's ViT under no_grad
# runs the first).
FVCORE_FUSED = ("aten::_native_multi_head_attention", "aten::scaled_dot_product_attention",
                "aten::_scaled_dot_product_flash_attention", "aten::_scaled_dot_product_efficient_attention",
                "aten::_scaled_dot_product_flash_attention_for_cpu")


# ------------------------------------------------------------------ running the model

class TorchRunError(Exception):
    def __init__(self, layer: str | None, error: BaseException):
        self.layer = layer
        first_line = (str(error).strip().splitlines() or [""])[0]
        where = f" in {layer}" if layer else ""
        super().__init__(f"PyTorch raised{where}: {type(error).__name__}: {first_line}")


def tensors_in(value: Any) -> list[torch.Tensor]:
    """Every tensor a model returned: a tensor, or those inside dicts, lists and tuples (a segmentation model's
    {"out": …, "aux": …})."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [tensor for item in value for tensor in tensors_in(item)]
    return []


def forward_backward(model: SpecModel, x: torch.Tensor) -> None:
    loss = sum(output.float().sum() for output in tensors_in(model(x)) if output.is_floating_point())
    if isinstance(loss, torch.Tensor) and loss.requires_grad:
        loss.backward()


def run_with_hooks(model: SpecModel, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """One real forward and backward; the full output shape of every layer (the batch where tensor code put it)."""
    shapes: dict[str, tuple[int, ...]] = {}
    current: list[str | None] = [None]
    handles = []
    for _key, name, _sources in model.plan:
        module = model.module_for(name)
        handles.append(module.register_forward_pre_hook(lambda m, a, name=name: current.__setitem__(0, name)))
        handles.append(module.register_forward_hook(
            lambda m, a, out, name=name: shapes.__setitem__(name, tuple(out.shape))))
    try:
        forward_backward(model, x)
    except Exception as error:
        if is_out_of_memory(error):
            raise DeviceError(f"out of memory running the model ({type(error).__name__}); lower --batch") from None
        raise TorchRunError(current[0], error) from None
    finally:
        for handle in handles:
            handle.remove()
    return shapes


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Swallow tracer warnings and fvcore's unsupported-operator log lines: the report names those ops."""
    loggers = [logging.getLogger(name) for name in ("fvcore", "fvcore.nn.jit_analysis")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@dataclass(frozen=True)
class Counts:
    """What one reference counted: per spec layer, and its own total over the whole model."""

    per_layer: dict[str, int]
    total: int
    unsupported: dict[str, dict[str, int]] = field(default_factory=dict)  # fvcore: ops it could not count


def fvcore_by_module(model: torch.nn.Module, x: torch.Tensor) -> tuple[dict[str, int], dict[str, dict[str, int]],
                                                                     int] | str:
    """fvcore's count per module path, the operators it could not count there, and its total; or why fvcore
    is unavailable."""
    with quiet(), torch.no_grad():
        try:
            from fvcore.nn import FlopCountAnalysis
        except ImportError:
            return "fvcore is not installed (pip install 'convaudit[torch]')"
        analysis = (FlopCountAnalysis(model, x).unsupported_ops_warnings(False)
                    .uncalled_modules_warnings(False).tracer_warnings("none"))
        by_module = {name: int(count) for name, count in analysis.by_module().items()}
        unsupported = {name: dict(analysis.unsupported_ops(name)) for name in by_module}
        return by_module, unsupported, int(analysis.total())


def fvcore_counts(model: SpecModel, x: torch.Tensor) -> Counts | str:
    """fvcore per spec layer, with the operators it could not count; or why fvcore is unavailable."""
    measured = fvcore_by_module(model, x)
    if isinstance(measured, str):
        return measured
    by_module, unsupported_by_module, total = measured
    counts, unsupported = {}, {}
    for key, name, _ in model.plan:
        scope = f"layers.{key}"
        counts[name] = by_module.get(scope, 0)
        unsupported[name] = unsupported_by_module.get(scope, {})
    return Counts(counts, total, unsupported)


def flop_counter_counts(report: Report, dtype: torch.dtype) -> tuple[Counts, Counts]:
    """FlopCounterMode on the meta device: (forward, backward).

    Forward per layer comes from the module tracker over the whole model. Backward per layer is counted
    with each layer run alone, because the tracker misfiles gradients once tensors fan out to several
    layers (residual adds, inception branches). The totals are the whole model's own, so they check the
    composition independently. Train mode: an eval-mode dropout returns its input tensor itself, which
    also confuses the tracker; conv and matmul counts do not depend on the mode.
    """
    with torch.device("meta"):
        model = build_model(report).to(dtype=dtype).train()
    for module in model.modules():  # batchnorm counts no FLOPs here; in eval it also takes a batch of one
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
    x = torch.empty((report.batch, *report.input), device="meta", dtype=dtype)
    with FlopCounterMode(display=False) as forward_only:
        model(x)
    with FlopCounterMode(display=False) as both:
        forward_backward(model, x)
    table = forward_only.get_flop_counts()
    root = type(model).__name__
    forward = {name: sum(table.get(f"{root}.layers.{key}", {}).values()) for key, name, _ in model.plan}
    backward = {layer.name: layer_backward_flops(model, layer, dtype) for layer in report.layers}
    forward_total = forward_only.get_total_flops()
    return Counts(forward, forward_total), Counts(backward, both.get_total_flops() - forward_total)


def layer_backward_flops(model: SpecModel, layer: LayerResult, dtype: torch.dtype) -> int:
    """FlopCounterMode's count for one layer's backward alone, on meta inputs of its analysed shapes."""
    inputs = [torch.empty(placement.full(shape, layer.batch), device="meta", dtype=dtype)
              .requires_grad_(layer.needs_input_grad)
              for shape, placement in zip(layer.input_shapes, layer.placements, strict=True)]
    output = model.module_for(layer.name)(*inputs)
    if not output.requires_grad:
        return 0
    with FlopCounterMode(display=False) as counter:
        output.backward(torch.empty_like(output))
    return counter.get_total_flops()


# ------------------------------------------------------------------ comparing

def compare(ours: object, theirs: object, note: str = "") -> Cell:
    return Cell(MATCH if ours == theirs else MISMATCH, ours, theirs, note)


def fvcore_cell(layer: LayerResult, counted: int, unsupported: dict[str, int]) -> Cell:
    expected = fvcore_expected(layer)
    rule = references(layer)
    if unsupported and (not rule.elementwise_gaps or any(op in FVCORE_FUSED for op in unsupported)):
        ops = ", ".join(sorted(unsupported))
        return Cell(NOT_COUNTED, expected, counted, f"not counted by fvcore: {ops}")
    if expected == counted == 0:
        return Cell(NOTHING, 0, 0)
    note = "fvcore counts one op per input element" if rule.fvcore == "input-elements" and expected else ""
    if rule.fvcore == "output-elements":
        note = f"fvcore counts {rule.per_output} per output element"
    if rule.fvcore == "layernorm":
        note = "fvcore's estimate: 5 per element (4 without affine)"
    return compare(expected, counted, note)


def shape_cell(layer: LayerResult, full: tuple[int, ...] | None) -> Cell:
    """Our sample shape against PyTorch's output, its batch dimension taken out where the layer says it sits."""
    placement = layer.outcome.placement
    if full is None or placement.full(layer.output_shape, layer.batch) != full:
        theirs = full if full is None or len(full) != len(layer.output_shape) + 1 else full[1:]
        return Cell(MISMATCH, layer.output_shape, theirs)
    return Cell(MATCH, layer.output_shape, layer.output_shape)


def buffers_cell(ours: int, theirs: int) -> Cell:
    """Running statistics against the module's buffers (num_batches_tracked left out); nothing to show if none."""
    return Cell(NOTHING, 0, 0) if ours == theirs == 0 else compare(ours, theirs)


def torch_forward_cell(layer: LayerResult, counted: int) -> Cell:
    if REGISTRY[layer.type].has_macs and not counted_by_torch(layer):
        return Cell(NOT_COUNTED, layer.flops, counted, "not counted by FlopCounterMode (conv and matmul only)")
    expected = layer.flops if counted_by_torch(layer) else 0
    return Cell(NOTHING, 0, 0) if expected == counted == 0 else compare(expected, counted)


def torch_backward_cell(layer: LayerResult, counted: int) -> Cell:
    if REGISTRY[layer.type].has_macs and not counted_by_torch(layer):
        return Cell(NOT_COUNTED, layer.backward_flops, counted, "not counted by FlopCounterMode")
    expected = layer.backward_flops if counted_by_torch(layer) else 0
    if expected == counted == 0:
        return Cell(NOTHING, 0, 0)
    groups = layer.spec.params.get("groups", 1)
    if counted != expected and groups > 1:
        # torch's conv_backward_flop sizes dW as a conv over all Cin input channels, ignoring groups:
        # it counts groups × the weight-gradient MACs.
        weight_grad = 2 * layer.macs if layer.trainable_params else 0
        if counted == expected + (groups - 1) * weight_grad:
            extra = counted - expected
            return Cell(TORCH_OVERCOUNT, expected, counted,
                        f"torch over-counts grouped-conv weight gradient by ×{groups} (+{extra:,} FLOPs)")
    return compare(expected, counted)


def verify_report(report: Report, device: torch.device, dtype: str = "fp32", warmup: int = 1, repeats: int = 5,
                  force: bool = False, seed: int = 0) -> VerifyResult:
    """Build, run, count and time the model of `report`, comparing every number the analysis gives.

    The memory guard counts every tensor first (the layer the analysis stopped at included); the allocator's
    own failure, past --force or a short estimate, is a DeviceError (exit 2), never a traceback.
    """
    base = dict(spec=report.spec.label, input=report.input, batch=report.batch, dtype=dtype,
                device=describe_device(device))
    refused = refused_layer_params(report)
    if isinstance(refused, str):
        return VerifyResult(**base, torch_error=refused, explanation=predicted(report, report.halted.layer.name))
    guard_memory(model_need(report, refused_layer_params=refused), device, force)
    try:
        return _verify_report(report, device, dtype, warmup, repeats, seed, base)
    except (RuntimeError, MemoryError) as error:
        if is_out_of_memory(error):
            raise allocation_error(error, "building or running the model") from None
        raise


def refused_layer_params(report: Report) -> int | str:
    """Parameters of the layer the analysis stopped at, counted on the meta device (nothing allocated);
    or, when PyTorch cannot even construct it (groups that do not divide the channels), what it said."""
    if report.halted is None:
        return 0
    halt = report.halted
    try:
        with torch.device("meta"):
            module = build_layer(halt.layer, halt.input_shapes)
    except Exception as error:  # torch's own refusal: ValueError, RuntimeError
        first_line = (str(error).strip().splitlines() or [""])[0]
        return f"PyTorch cannot build {halt.layer.name}: {type(error).__name__}: {first_line}"
    return sum(count_parameters(module))


def _verify_report(report: Report, device: torch.device, dtype: str, warmup: int, repeats: int, seed: int,
                   base: dict) -> VerifyResult:
    torch.manual_seed(seed)
    torch_dtype = TORCH_DTYPES[dtype]
    model = build_model(report).to(device=device, dtype=torch_dtype).eval()
    x = torch.randn((report.batch, *report.input), device=device, dtype=torch_dtype)
    try:
        shapes = run_with_hooks(model, x)
    except TorchRunError as error:
        return VerifyResult(**base, torch_error=str(error), explanation=predicted(report, error.layer))
    if report.halted:  # the analysis said this layer cannot run, yet PyTorch ran it
        halt = report.halted
        explanation = (Finding(report.spec.name, halt.layer.name, "error", "analysis-disagrees",
                               f"the analysis stopped at {halt.layer.name} ({halt.problem.message}), "
                               "but PyTorch ran it"),)
        return VerifyResult(**base, torch_error="PyTorch ran a layer the analysis refused", explanation=explanation)

    fvcore = fvcore_counts(model, x)
    forward, backward = flop_counter_counts(report, torch_dtype)
    references = {"torch": torch.__version__}
    if isinstance(fvcore, str):
        references["fvcore"] = fvcore
    else:
        import fvcore as fvcore_package

        references["fvcore"] = getattr(fvcore_package, "__version__", "installed")

    rows = []
    for layer in report.layers:
        module = model.module_for(layer.name)
        cells = {
            "shape": shape_cell(layer, shapes.get(layer.name)),
            "params": compare((layer.trainable_params, layer.non_trainable_params), count_parameters(module)),
            "buffers": buffers_cell(layer.buffers, count_buffers(module)),
            "fvcore_macs": (Cell(NOT_COUNTED, fvcore_expected(layer), None, fvcore) if isinstance(fvcore, str)
                            else fvcore_cell(layer, fvcore.per_layer[layer.name], fvcore.unsupported[layer.name])),
            "torch_forward": torch_forward_cell(layer, forward.per_layer[layer.name]),
            "torch_backward": torch_backward_cell(layer, backward.per_layer[layer.name]),
        }
        rows.append(Row(layer.name, layer.type, cells))
    total_cells = {"params": compare((report.totals.trainable_params, report.totals.non_trainable_params),
                                     count_parameters(model))}
    if report.totals.buffers or count_buffers(model):
        total_cells["buffers"] = compare(report.totals.buffers, count_buffers(model))
    if not isinstance(fvcore, str):
        total_cells["fvcore_macs"] = fvcore_total_cell(report, rows, fvcore.total)
    total_cells["torch_forward"] = total_cell(rows, "torch_forward", forward.total)
    total_cells["torch_backward"] = total_cell(rows, "torch_backward", backward.total)
    totals = Row("Total", "", total_cells)
    timings = {}
    if repeats > 0:
        with precision(dtype, device):  # fp32 timed as fp32 (no TF32), with cudnn autotuning in the warm-up
            timings = time_model(model, x, device, warmup, repeats)
    return VerifyResult(**base, rows=tuple(rows), totals=totals, timings=timings, references=references)


def predicted(report: Report, failed_layer: str | None) -> tuple[Finding, ...]:
    """The analysis's findings for the layer PyTorch failed in, and for the inexact division that caused them."""
    findings = [f for f in check(report) if f.severity in ("error", "warning")]
    at_layer = [f for f in findings if f.layer == failed_layer]
    if not at_layer:
        return tuple(findings)
    causes: tuple[str, ...] = ()
    if report.halted and report.halted.layer.name == failed_layer:
        causes = report.halted.inexact_upstream
    elif failed_layer in {layer.name for layer in report.layers}:
        causes = report.layer(failed_layer).inexact_upstream
    root = [f for f in findings if causes and f.layer == causes[0] and f.kind == "inexact-division"]
    return tuple(root + at_layer)


def fvcore_total_cell(report: Report, rows: list[Row], reference_total: int) -> Cell:
    """fvcore's total in its own convention, then converted to MACs: less the batchnorm and pool ops it counts
    as flops (our other ops, or a pool's input elements), so the cell ends on the analysis's MACs."""
    cell = total_cell(rows, "fvcore_macs", reference_total)
    compared = [(layer, row.cells["fvcore_macs"]) for layer, row in zip(report.layers, rows, strict=True)
                if row.cells["fvcore_macs"].status in (MATCH, MISMATCH)]
    extra = sum(int(c.ours) - layer.macs for layer, c in compared)  # our rule for what fvcore adds
    if not extra:
        return cell
    start = cell.shown.split(" = ")[0]
    return replace(cell, shown=f"{start} − {extra:,} batchnorm and pool ops = {int(cell.theirs) - extra:,} MACs")


def total_cell(rows: list[Row], column: str, reference_total: int) -> Cell:
    """Our total against the reference's own whole-model total, less what it counted in layers it cannot
    count fully; torch's grouped-conv over-count is named, not failed."""
    cells = [row.cells[column] for row in rows]
    left_out = [c for c in cells if c.status == NOT_COUNTED]
    ours = sum(int(c.ours) for c in cells if c.status != NOT_COUNTED)
    left = sum(int(c.theirs or 0) for c in left_out)
    theirs = reference_total - left
    overcount = sum(int(c.theirs) - int(c.ours) for c in cells if c.status == TORCH_OVERCOUNT)
    note = f"{len(left_out)} layer{'s' if len(left_out) != 1 else ''} not countable left out" if left_out else ""
    shown = f"{reference_total:,}" + (f" − {left:,} in layers not countable" if left else "")
    if overcount and ours != theirs and ours + overcount == theirs:
        return Cell(TORCH_OVERCOUNT, ours, theirs, f"torch's grouped-conv over-count: +{overcount:,}",
                    f"{shown} − {overcount:,} grouped-conv over-count = {theirs - overcount:,}")
    return replace(compare(ours, theirs, note), shown=shown + (f" = {theirs:,}" if left else ""))


def time_model(model: SpecModel, x: torch.Tensor, device: torch.device, warmup: int,
               repeats: int) -> dict[str, Timing]:
    def forward() -> None:
        with torch.inference_mode():
            model(x)

    step: Callable[[], None] = lambda: forward_backward(model, x)
    clear = lambda: model.zero_grad(set_to_none=True)
    try:
        return {"forward": time_step(forward, device, warmup, repeats),
                "forward_backward": time_step(step, device, warmup, repeats, before=clear)}
    except Exception as error:
        if is_out_of_memory(error):
            raise DeviceError(f"out of memory while timing ({type(error).__name__}); lower --batch") from None
        raise
