"""The Python API: one function for notebooks and scripts.

    >>> import convaudit
    >>> s = convaudit.summary("resnet50")                                      # a bundled name or a spec file
    >>> s = convaudit.summary(torchvision.models.resnet18(), input_size=(3, 224, 224))   # your nn.Module
    >>> s = convaudit.summary("model.onnx")                                    # an ONNX file (needs onnx only)
    >>> print(s)                                                               # the table `convaudit summary` prints
    >>> s.totals.params, s.totals.macs, s.layers[0].output_shape, s.findings, s.memory.training_total

The name, path, target or module goes through the same resolver as the command line (convaudit.resolve), with
the same limits; every failure is a ConvauditError. In Jupyter the result shows itself as the table;
`s.save_report(path)` writes the HTML report `convaudit report` makes. Torch is imported only when a module is
given (or a torch target named); `import convaudit` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any, TypeVar

from convaudit.core.analysis import LayerResult, Report, Totals
from convaudit.core.checks import Finding, check
from convaudit.core.memory import Memory, training_memory
from convaudit.core.model import NetworkSpec
from convaudit.errors import ConvauditError
from convaudit.resolve import analysed, input_shape, resolve_network

__all__ = ["Summary", "SummaryTable", "summary"]

R = TypeVar("R")


@dataclass(frozen=True)
class Summary:
    """The audit of one network: the report the CLI renders, with its parts as typed fields.

    print(s) shows the table `convaudit summary` prints (as piped: every column, natural width); repr(s) is
    one line. The records (layers, totals, findings, memory) print as one short line each.
    """

    report: Report

    @property
    def spec(self) -> NetworkSpec:
        return self.report.spec

    @cached_property
    def layers(self) -> tuple[LayerResult, ...]:
        return tuple(_readable(_Layer, layer) for layer in self.report.layers)

    @cached_property
    def totals(self) -> Totals:
        return _readable(_Totals, self.report.totals)

    @cached_property
    def findings(self) -> tuple[Finding, ...]:
        """What `convaudit check` reports: inexact divisions, misfits, broken claims."""
        return tuple(_readable(_Finding, finding) for finding in check(self.report))

    @cached_property
    def memory(self) -> Memory:
        """Training memory with Adam, and the inference peak, at the report's batch and dtype."""
        return _readable(_Memory, training_memory(self.report))

    def layer(self, name: str) -> LayerResult:
        try:
            return _readable(_Layer, self.report.layer(name))
        except KeyError:
            raise ConvauditError(f"{self.spec.label} has no layer named {name!r}") from None

    def table(self, depth: int | None = None) -> SummaryTable:
        """The table `convaudit summary` prints, as a SummaryTable: str() is its text, Rich draws it."""
        from convaudit.render.summary import View, summary_table

        return SummaryTable(summary_table(View(self.report, depth)))

    def __rich__(self) -> Any:
        return self.table().renderable

    def __str__(self) -> str:
        return str(self.table())

    def _repr_html_(self) -> str:
        return self.table()._repr_html_()

    def report_html(self) -> str:
        """The self-contained HTML report `convaudit report` writes: the drawing, charts, findings, totals."""
        from convaudit.render.report.page import report_html
        from convaudit.render.summary import View

        return report_html(View(self.report, None), check(self.report))

    def save_report(self, path: str) -> None:
        """Write `report_html()` to `path` (UTF-8), as `convaudit report SPEC -o path` does: whole or not at all."""
        from convaudit.atomic_write import write_atomically

        write_atomically(path, self.report_html())

    def __repr__(self) -> str:
        totals = self.report.totals
        return (f"<convaudit.Summary {self.spec.label} at {'×'.join(map(str, self.spec.input))}: "
                f"{len(self.report.layers)} layers, params {totals.params:,}, MACs {totals.macs:,}>")


class SummaryTable:
    """A summary table: print() gives the text `convaudit summary` prints when piped, Rich and Jupyter draw it."""

    def __init__(self, renderable: Any):
        self.renderable = renderable

    def __rich__(self) -> Any:
        return self.renderable

    def __str__(self) -> str:
        """The lines `convaudit summary` prints to a pipe; print() adds the final newline."""
        from convaudit.render.output import piped_text

        return piped_text(self.renderable).removesuffix("\n")

    def __repr__(self) -> str:
        return f"<convaudit.SummaryTable: {str(self).splitlines()[0]}>"

    def _repr_html_(self) -> str:
        """Jupyter's view: the same table, every column, in colour."""
        from convaudit.render.output import piped_html

        return piped_html(self.renderable)


def summary(model: Any, input_size: Any = None, batch: Any = 1, dtype: str = "fp32",
            partial: bool = False) -> Summary:
    """Audit a network: a spec path or bundled name, a target (torchvision:NAME, package.module:function,
    model.onnx), or a torch.nn.Module.

    input_size is (C, H, W), (H, W) or H, in whole numbers (numpy's too) up to 2^63. For a spec it overrides the
    spec's input; a module or target is traced at it (default: (3, 224, 224) for a module, the model's own for a
    target). batch is a whole number ≥ 1, dtype fp32, fp16 or bf16. Every failure is a ConvauditError. `partial`
    imports a module or target as `convaudit import --partial` does: what cannot be counted (an operator with no
    counting rule, what runs after a data-dependent operator) is named, and the totals say they are partial.
    """
    channels, size = input_shape(input_size)
    return Summary(analysed(resolve_network(model, size, channels=channels, partial=partial), batch, dtype))


# ------------------------------------------------------------------ records that print as one short line

def _one_line(kind: type[R], shown: tuple[str, ...]) -> type[R]:
    """A subclass of the record type `kind`, the same in every field and method, whose repr names `kind` and
    shows only the attributes `shown` (the records' own reprs nest every field: a LayerResult's runs to 1,000
    characters)."""

    def __repr__(self: Any) -> str:
        return f"{kind.__name__}({', '.join(f'{name}={getattr(self, name)!r}' for name in shown)})"

    return type(f"OneLine{kind.__name__}", (kind,), {"__repr__": __repr__, "__module__": __name__})


def _readable(kind: type[R], record: Any) -> R:
    """`record` as the subclass `kind`: the same fields and behaviour, and a repr of one short line."""
    return kind(**{field.name: getattr(record, field.name) for field in fields(record) if field.init})


_Layer = _one_line(LayerResult, ("name", "type", "output_shape", "params", "macs"))
_Totals = _one_line(Totals, ("params", "trainable_params", "buffers", "macs", "flops", "activations"))
_Memory = _one_line(Memory, ("dtype", "batch", "optimizer", "training_total", "inference_peak",
                             "inference_peak_layer"))
_Finding = _one_line(Finding, ("severity", "kind", "layer", "message"))
