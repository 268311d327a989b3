"""`summary`: a report as a Rich table, JSON, CSV or Markdown."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from rich.console import Group
from rich.text import Text

from convaudit.core.analysis import (
    CONVENTIONS,
    LayerResult,
    Report,
    conventions,
    is_partial,
    not_counted,
    totals_of,
)
from convaudit.core.groups import Group as BlockGroup
from convaudit.core.groups import group_key, grouped, main_and_side
from convaudit.core.layers import REGISTRY
from convaudit.core.memory import Memory, training_memory
from convaudit.core.model import INPUT
from convaudit.core.receptive import LayerField, receptive_fields, show_axes
from convaudit.core.windows import axis_names
from convaudit.errors import printable
from convaudit.render.formatting import (
    CEIL_MARK,
    INEXACT_MARK,
    fmt_bytes,
    fmt_int,
    fmt_shape,
    fmt_share,
    fmt_si,
    rounding_note,
)
from convaudit.render.output import FitColumn, Fitted, md, plain

# ---------------------------------------------------------------- columns

class View:
    """What a summary table shows: the report, its rows (layers or groups at `depth`) and lazily the
    receptive fields and memory."""

    def __init__(self, report: Report, depth: int | None = None, optimizer: str = "adam", amp: str | None = None,
                 checkpoint: str | None = None):
        self.report = report
        self.depth = depth
        self.optimizer = optimizer
        self.amp, self.checkpoint = amp, checkpoint  # --amp and --checkpoint: the training memory's

    @cached_property
    def rows(self) -> list[Any]:
        return list(self.report.layers) if self.depth is None else grouped(self.report, self.depth)

    @cached_property
    def from_texts(self) -> dict[str, str]:
        """Each row's inputs, blank when it reads the row above; groups name the groups they read."""
        texts, previous = {}, INPUT
        for row in self.rows:
            if isinstance(row, BlockGroup):
                inputs = tuple(dict.fromkeys(group_key(name, self.report.spec.separator, self.depth or 1)
                                             for name in row.inputs))
            else:
                inputs = row.spec.inputs
            texts[row.name] = "" if inputs == (previous,) else ", ".join(inputs)
            previous = row.name
        return texts

    @cached_property
    def fields(self) -> dict[str, LayerField]:
        return receptive_fields(self.report)

    def field(self, row: Any) -> LayerField:
        return self.fields[row.layers[-1].name if isinstance(row, BlockGroup) else row.name]

    @cached_property
    def memory(self) -> Memory:
        return training_memory(self.report, self.optimizer, amp=self.amp, checkpoint=self.checkpoint)


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    cell: Callable[[Any, View], str]
    total: Callable[[View], str] = lambda view: ""
    numeric: bool = True


def _output_cell(row: Any, view: View) -> str:
    """The output's sample shape; where tensor code moved the batch, B marks it (3×B×12×197×64, B·64×49×96)."""
    note = rounding_note(row)
    outcome = getattr(row, "outcome", None)
    shape = outcome.placement.describe(row.output_shape) if outcome is not None else fmt_shape(row.output_shape)
    return f"{shape} {note}" if note else shape


UNKNOWN_COUNTS = ("macs", "flops", "other_ops", "backward_flops", "connections")  # what an uncounted layer may hide


def count_column(key: str, title: str, blank_zero: bool = True) -> Column:
    """A column showing LayerResult.<key> (or a group's sum), totalled from Totals.<key>."""

    def cell(row: Any, view: View) -> str:
        if isinstance(row, LayerResult) and not REGISTRY[row.type].counted and key in UNKNOWN_COUNTS:
            return "?"  # an operator with no counting rule: unknown, not zero (named below the table)
        value = getattr(row, key)
        return fmt_int(value) if value or not blank_zero else ""

    return Column(key, title, cell, lambda view: fmt_int(getattr(view.report.totals, key)))


def _uncovered(row: Any, view: View) -> str:
    field = view.field(row)
    if field.uncovered is None:  # not followed (see the layer's note): no claim
        return "n/a"
    return "" if not any(field.uncovered) else show_axes(field.uncovered)


COLUMNS: dict[str, Column] = {c.key: c for c in (
    Column("layer", "Layer", lambda row, view: row.name,
           lambda view: "Total (partial)" if is_partial(view.report) else "Total", numeric=False),
    Column("type", "Type", lambda row, view: row.type, numeric=False),
    Column("from", "From", lambda row, view: view.from_texts[row.name], numeric=False),
    Column("input", "Input", lambda row, view: " + ".join(fmt_shape(s) for s in row.input_shapes),
           numeric=False),
    Column("output", "Output", _output_cell, numeric=False),
    count_column("params", "Params"),
    count_column("buffers", "Buffers"),
    count_column("weights", "Weights"),
    count_column("biases", "Biases"),
    count_column("macs", "MACs"),
    count_column("flops", "FLOPs"),
    Column("share", "Share", lambda row, view: fmt_share(row.flops, view.report.totals.flops),
           lambda view: "100%"),
    count_column("other_ops", "Other ops"),
    count_column("backward_flops", "Bwd FLOPs"),
    count_column("neurons", "Neurons"),
    count_column("connections", "Connections"),
    count_column("activations", "Activations", blank_zero=False),
    Column("memory", "Act. memory", lambda row, view: fmt_bytes(row.activation_bytes),
           lambda view: fmt_bytes(view.report.totals.activation_bytes)),
    Column("saved", "Saved for bwd", lambda row, view: fmt_bytes(view.memory.saved_by_layer.get(row.name, 0))
           if isinstance(row, LayerResult) else fmt_bytes(sum(view.memory.saved_by_layer[layer.name]
                                                              for layer in row.layers)),
           lambda view: fmt_bytes(view.memory.saved_activations)),
    Column("rf", "RF", lambda row, view: show_axes(view.field(row).rf)),
    Column("jump", "Jump", lambda row, view: show_axes(view.field(row).jump)),
    Column("rf_start", "RF start", lambda row, view: show_axes(view.field(row).start)),
    Column("uncovered", "Unseen px", _uncovered),
)}
RF_COLUMNS = ("rf", "jump", "rf_start", "uncovered")
DEFAULT_COLUMNS = ("layer", "type", "output", "params", "macs", "flops", "share")


def parse_columns(text: str | None) -> tuple[str, ...] | None:
    """'default,other_ops' or 'layer,output,macs' -> column keys (None: the default); ValueError names the
    unknown one."""
    if not text:
        return None
    keys: list[str] = []
    for key in (part.strip() for part in text.split(",") if part.strip()):
        if key == "default":
            keys += DEFAULT_COLUMNS
        elif key == "all":
            keys += COLUMNS
        elif key in COLUMNS:
            keys.append(key)
        else:
            raise ValueError(f"unknown column '{key}'; choose from default, all, {', '.join(COLUMNS)}")
    return tuple(dict.fromkeys(keys))


def _headline(report: Report) -> str:
    spec = report.spec
    title = f" — {spec.title}" if spec.title else ""
    return f"{spec.label}{title}"


def _setting(report: Report) -> str:
    return f"input {fmt_shape(report.input)} · batch {report.batch} · {report.dtype}"


def totals_lines(report: Report) -> list[str]:
    t = report.totals
    per = f" (batch {report.batch})" if report.batch > 1 else ""
    lines = [
        f"params {fmt_int(t.params)} ≈ {fmt_si(t.params)}: trainable {fmt_int(t.trainable_params)}, "
        f"non-trainable {fmt_int(t.non_trainable_params)}"
        + (f" · buffers {fmt_int(t.buffers)} (running statistics, not params)" if t.buffers else ""),
        f"MACs {fmt_int(t.macs)} ≈ {fmt_si(t.macs)} · FLOPs {fmt_int(t.flops)} ≈ {fmt_si(t.flops)} · "
        f"other ops {fmt_int(t.other_ops)}{per}",
        f"layer outputs: {fmt_int(t.activations)} values, {fmt_bytes(t.activation_bytes)} at {report.dtype} if all "
        f"are kept{per}",
    ]
    unknown = not_counted(report)
    if unknown:
        named = ", ".join(f"{layer.name} ({layer.spec.params.get('op', layer.type)})" for layer in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        lines.append(f"not counted: {len(unknown)} operator layer{'s' if len(unknown) > 1 else ''} with no counting "
                     f"rule, marked ?: {named}{more}; the MACs, FLOPs and other ops above leave them out")
    if report.spec.untraced is not None:
        lines.append(f"not counted: {report.spec.untraced.describe()}")
    main, side = main_and_side(report)
    if side:
        m, s = totals_of(main), totals_of(side)
        others = ", ".join(report.spec.outputs[1:]) or "unused branches"
        lines.append(f"main path to {report.spec.outputs[0]}: params {fmt_int(m.params)}, MACs {fmt_int(m.macs)} · "
                     f"side outputs ({others}): params {fmt_int(s.params)}, MACs {fmt_int(s.macs)}")
    return lines


def memory_lines(memory: Memory) -> list[str]:
    per = f", batch {memory.batch}" if memory.batch > 1 else ""
    amp = f" under autocast to {memory.amp} (saved tensors at the dtype autocast gives each op)" if memory.amp else ""
    segments = f" (checkpointed: {memory.checkpoint}, {memory.segments} segments)" if memory.checkpoint else ""
    remade = (f" + one segment remade in the backward {fmt_bytes(memory.recompute_peak)} (from "
              f"{memory.recompute_segment})" if memory.recompute_peak else "")
    lines = [
        f"training at {memory.dtype} with {memory.optimizer}{per}{amp}: params {fmt_bytes(memory.params)} + gradients "
        f"{fmt_bytes(memory.gradients)} + optimizer state {fmt_bytes(memory.optimizer_state)} + saved activations "
        f"{fmt_bytes(memory.saved_activations)}{segments}{remade} = {fmt_bytes(memory.training_total)}",
    ]
    if memory.checkpoint:
        lines.append(f"checkpointing: the backward runs the checkpointed layers' forward again: "
                     f"{fmt_int(memory.recompute_flops)} FLOPs (2·MACs) and {fmt_int(memory.recompute_other_ops)} "
                     "other ops more per step")
    return lines + [
        f"inference: params {fmt_bytes(memory.params)} + peak activations {fmt_bytes(memory.inference_peak)} "
        f"(at {memory.inference_peak_layer}) = {fmt_bytes(memory.inference_total)}",
    ]


def rf_lines(view: View) -> list[str]:
    """The legend and every rounding, misalignment and adaptive-pool note, never cut: layers whose note reads
    the same share one line that names them all."""
    layers_by_note: dict[str, list[str]] = {}
    for name, field in view.fields.items():
        for note in field.notes:
            if "floored" in note or "misaligned" in note or "adaptive" in note:
                names = layers_by_note.setdefault(note, [])
                if not names or names[-1] != name:
                    names.append(name)
    notes = [f"{', '.join(names)}: {note}" for note, names in layers_by_note.items()]
    return rf_legend(view) + notes


def rf_legend(view: View) -> list[str]:
    lines = ["RF: receptive field in input pixels; Jump: input pixels between neighbouring outputs; RF start: "
             "centre of the first output's field (pixel i centred at i, padding moves it below 0); Unseen px: "
             "input pixels no output depends on."]
    rank = len(view.report.input) - 1
    if rank > 2:  # 2-D maps have always shown H×W; a volume says which axis is which
        lines.append(f"Each gives one value where every axis agrees, else one per axis: {'×'.join(axis_names(rank))}.")
    return lines


def convention_lines(report: Report) -> list[str]:
    lines = [
        "MACs: multiply-accumulates of conv, linear, subsample, RBF and attention layers (attention's projections "
        "and its Q·Kᵀ and A·V products). FLOPs = 2 × MACs.",
        "Other ops (bias adds, activations, pooling, LRN, softmax, batchnorm, layernorm, element-wise adds and "
        "products) are counted apart, not in FLOPs.",
        "Output sizes: floor((W − K + 2P)/S) + 1 as PyTorch; layers with ceil: true round up.",
    ]
    lines += [text for key, text in conventions(report).items() if key not in CONVENTIONS]
    inexact = [axis for layer in report.layers for axis in layer.windows if not axis.is_exact]
    if any(axis.truncated for axis in inexact):
        lines.append(f"{INEXACT_MARK} marks a division that is not exact (value shown, floored by PyTorch): "
                     "see `convaudit check`.")
    if any(axis.ceil for axis in inexact):
        lines.append(f"{CEIL_MARK} marks a division rounded up by ceil: true.")
    return lines


def default_columns(report: Report, rf: bool = False) -> tuple[str, ...]:
    """The default columns, with From for networks that branch, and the receptive field on request."""
    columns = DEFAULT_COLUMNS if report.spec.is_chain else DEFAULT_COLUMNS[:2] + ("from",) + DEFAULT_COLUMNS[2:]
    if rf:
        at = columns.index("output") + 1
        columns = columns[:at] + RF_COLUMNS + columns[at:]
    return columns


# Which columns a table that does not fit leaves out, first to last (the README states this order).
DROP_ORDER = ("saved", "memory", "activations", "connections", "neurons", "backward_flops", "other_ops", "buffers",
              "biases", "weights", "input", "share", "rf_start", "from", "jump", "flops", "uncovered", "type", "rf",
              "macs", "params", "output", "layer")
COLUMNS_HINT = "pick with --columns, widen COLUMNS, or --format csv"


def fitted_columns(view: View, keys: tuple[str, ...], totals: bool = True) -> list[FitColumn]:
    columns = []
    for key in keys:
        column = COLUMNS[key]
        cells: list[str | Text] = [column.cell(row, view) for row in view.rows]
        if not column.numeric:
            cells = [plain(cell) for cell in cells]
        columns.append(FitColumn(key, column.title, cells, footer=column.total(view) if totals else "",
                                 numeric=column.numeric, priority=DROP_ORDER.index(key)))
    return columns


def summary_table(view: View, columns: tuple[str, ...] | None = None, rf: bool = False) -> Group:
    report = view.report
    keys = columns or default_columns(report, rf)
    styles = ["yellow" if any(axis.truncated for axis in row.windows) else None for row in view.rows]
    table = Fitted(fitted_columns(view, keys), styles, show_footer=True, hint=COLUMNS_HINT,
                   title=plain(_headline(report)), caption=Text(_setting(report)))
    lines = totals_lines(report) + memory_lines(view.memory)
    if rf or any(key in RF_COLUMNS for key in keys):
        lines += rf_lines(view)
    notes = Text("\n".join(printable(line) for line in lines) + "\n\n" + "\n".join(convention_lines(report)))
    return Group(table, notes)


def summary_markdown(view: View, columns: tuple[str, ...] | None = None, rf: bool = False) -> str:
    report = view.report
    chosen = [COLUMNS[key] for key in (columns or default_columns(report, rf))]
    lines = [f"### {md(_headline(report))}", "", _setting(report), ""]
    lines.append("| " + " | ".join(c.title for c in chosen) + " |")
    lines.append("|" + "|".join("---:" if c.numeric else "---" for c in chosen) + "|")
    for row in view.rows:
        lines.append("| " + " | ".join(md(c.cell(row, view)) for c in chosen) + " |")
    lines.append("| " + " | ".join(f"**{c.total(view)}**" if c.total(view) else "" for c in chosen) + " |")
    lines.append("")
    lines += [f"- {md(line)}" for line in totals_lines(report) + memory_lines(view.memory) + convention_lines(report)]
    return "\n".join(lines) + "\n"


RF_VIEW_COLUMNS = ("layer", "type", "output", "rf", "jump", "rf_start", "uncovered")


def rf_table(view: View) -> Group:
    """`convaudit rf`: the receptive-field columns alone, with every note on rounding, merges and pools."""
    report = view.report
    table = Fitted(fitted_columns(view, RF_VIEW_COLUMNS, totals=False), hint="widen COLUMNS, or --format json",
                   title=plain(_headline(report)), caption=Text(_setting(report)))
    notes = [f"{name}: {note}" for name, field in view.fields.items() for note in field.notes]
    lines = rf_legend(view) + notes
    return Group(table, Text("\n".join(printable(line) for line in lines)))
