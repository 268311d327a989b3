"""The Python API: one function for notebooks and scripts.

    >>> import convaudit
    >>> s = convaudit.summary("resnet50")                                      # a bundled name or a spec file
    >>> s = convaudit.summary(torchvision.models.resnet18(), input_size=(3, 224, 224))   # your nn.Module
    >>> s = convaudit.summary("model.onnx")                                    # an ONNX file (needs onnx only)
    >>> s.totals.params, s.totals.macs, s.layers[0].output_shape, s.findings, s.memory.training_total

In Jupyter the result shows itself as the same table `convaudit summary` prints; `s.save_report(path)`
writes the HTML report `convaudit report` makes. Torch is imported only
when a module is given (or a torch target named); `import convaudit` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from convaudit.core.analysis import LayerResult, Report, Totals, analyze
from convaudit.core.checks import Finding, check
from convaudit.core.memory import Memory, training_memory
from convaudit.core.model import NetworkSpec
from convaudit.errors import ConvauditError

__all__ = ["Summary", "summary"]


@dataclass(frozen=True)
class Summary:
    """The audit of one network: the report the CLI renders, with its parts as typed fields."""

    report: Report

    @property
    def spec(self) -> NetworkSpec:
        return self.report.spec

    @property
    def layers(self) -> tuple[LayerResult, ...]:
        return self.report.layers

    @property
    def totals(self) -> Totals:
        return self.report.totals

    @cached_property
    def findings(self) -> tuple[Finding, ...]:
        """What `convaudit check` reports: inexact divisions, misfits, broken claims."""
        return tuple(check(self.report))

    @cached_property
    def memory(self) -> Memory:
        """Training memory with Adam, and the inference peak, at the report's batch and dtype."""
        return training_memory(self.report)

    def layer(self, name: str) -> LayerResult:
        return self.report.layer(name)

    def table(self, depth: int | None = None) -> Any:
        """The Rich renderable `convaudit summary` prints."""
        from convaudit.render.summary import View, summary_table

        return summary_table(View(self.report, depth))

    def __rich__(self) -> Any:
        return self.table()

    def _repr_html_(self) -> str:
        from rich.console import Console

        console = Console(record=True, width=140, file=_Discard())
        console.print(self.table())
        return console.export_html(inline_styles=True)

    def report_html(self) -> str:
        """The self-contained HTML report `convaudit report` writes: the drawing, charts, findings, totals."""
        from convaudit.render.report.page import report_html
        from convaudit.render.summary import View

        return report_html(View(self.report, None), self.findings)

    def save_report(self, path: str) -> None:
        """Write `report_html()` to `path` (UTF-8), as `convaudit report SPEC -o path` does."""
        with open(path, "w", encoding="utf-8") as file:
            file.write(self.report_html())

    def __repr__(self) -> str:
        totals = self.totals
        return (f"<convaudit.Summary {self.spec.label} at {'×'.join(map(str, self.spec.input))}: "
                f"{len(self.layers)} layers, params {totals.params:,}, MACs {totals.macs:,}>")


class _Discard:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def summary(model: Any, input_size: tuple[int, ...] | None = None, batch: int = 1, dtype: str = "fp32") -> Summary:
    """Audit a network: a spec path or bundled name, a target (torchvision:NAME, package.module:function,
    model.onnx), or a torch.nn.Module.

    input_size is (C, H, W), (H, W) or H. For a spec it overrides the spec's input; a module or target is
    traced at it (default: (3, 224, 224) for a module, the model's own for a target).
    """
    spec = _network(model, input_size)
    report = analyze(spec, batch, dtype)
    if report.halted:
        halt = report.halted
        raise ConvauditError(f"{halt.layer.name}: {halt.problem.message}", halt.layer.where_key(halt.problem.key))
    return Summary(report)


def _size(input_size: tuple[int, ...] | int | None) -> tuple[int | None, tuple[int, int] | None]:
    """(channels or None, (H, W) or None)."""
    if input_size is None:
        return None, None
    sizes = (input_size,) if isinstance(input_size, int) else tuple(input_size)
    if not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes) or len(sizes) not in (1, 2, 3):
        raise ConvauditError(f"input_size: expected (C, H, W), (H, W) or H as positive ints, got {input_size!r}")
    if len(sizes) == 3:
        return sizes[0], (sizes[1], sizes[2])
    return None, (sizes[0], sizes[-1])


def _network(model: Any, input_size: Any) -> NetworkSpec:
    channels, size = _size(input_size)
    if isinstance(model, NetworkSpec):
        spec = model
    elif isinstance(model, str) or hasattr(model, "__fspath__"):
        reference = str(model)
        from convaudit.importers.targets import is_target

        if is_target(reference):
            from convaudit.importers import load_target

            return load_target(reference, None, size, channels or 3)
        from convaudit.spec.library import load

        spec = load(reference)
    elif hasattr(model, "named_parameters") and hasattr(model, "forward"):  # a torch.nn.Module
        from convaudit.importers import read_model, spec_of

        shape = (channels or 3, *(size or (224, 224)))
        return spec_of(read_model(model, shape))  # type: ignore[arg-type]
    else:
        raise ConvauditError(f"summary() takes a spec path, a bundled name, a target or a torch.nn.Module, "
                             f"not {type(model).__name__}")
    if size is not None:
        spec = spec.with_input(*size)
        if channels is not None and channels != spec.input[0]:
            raise ConvauditError(f"input_size: {spec.name} takes {spec.input[0]} channels, not {channels}")
    return spec
