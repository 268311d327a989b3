"""Tables that never cut a number or a name, and the console they are printed on.

A `Fitted` table knows each column's priority. Rendered at a width it does not fit, it leaves out its
lowest-priority columns until the rest fit whole, and says so in one footer line; it never shortens a cell
with '…'. A column marked `wrap` holds prose (a source, a title) that may wrap between words. On a console
whose `natural_tables` is set (output to a pipe or a file), every column is shown at its natural width.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.markup import escape
from rich.measure import Measurement
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from convaudit.errors import printable

Cell = str | Text


def safe(text: object) -> str:
    """User text (a layer name, a title, a source) as Rich markup that prints literally, controls escaped."""
    return escape(printable(str(text)))


def plain(text: object) -> Text:
    """User text as a Rich Text: never parsed as markup, control characters shown as escapes."""
    return Text(printable(str(text)))


def md(text: object) -> str:
    """User text for a Markdown table cell: controls escaped, pipes escaped."""
    return printable(str(text)).replace("|", "\\|")


@dataclass
class FitColumn:
    """One column: its title, cells (one per row), footer, and how readily it is left out."""

    key: str
    title: str
    cells: list[Cell]
    footer: Cell = ""
    numeric: bool = False
    priority: int = 0  # the lowest is left out first; ties: the rightmost first
    wrap: bool = False  # prose that may wrap between words; everything else is shown whole on one line
    style: str | None = None


def _text(cell: Cell) -> Text:
    return cell if isinstance(cell, Text) else Text(cell)


@dataclass
class Fitted:
    """A table that leaves out low-priority columns rather than cut a cell."""

    columns: list[FitColumn]
    row_styles: list[str | None] = field(default_factory=list)
    show_footer: bool = False
    hint: str = "a wider COLUMNS or --format json shows them"
    title: Text | None = None
    caption: Text | None = None

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        natural = getattr(console, "natural_tables", False)
        keep = list(self.columns)
        dropped: list[FitColumn] = []
        if not natural:
            while len(keep) > 1 and self.needed_width(console, keep) > width:
                victim = min(reversed(keep), key=lambda c: c.priority)  # lowest priority, rightmost of equals
                keep.remove(victim)
                dropped.append(victim)
        if natural and console.color_system is None:  # a pipe or a file, no colour: the lines, drawn directly
            lines = self.plain_lines(console, options, keep)
            if lines is not None:
                if self.title is not None:
                    yield self.title
                for line in lines:
                    yield Segment(line)
                    yield Segment.line()
                if self.caption is not None:
                    yield self.caption
                return
        table = self.table(keep, fixed=console if natural else None)
        if natural:  # every cell on one line, as wide as it takes
            width = max(width, Measurement.get(console, options.update(width=10**6), table).maximum)
        else:  # wider than the console only when one column alone does not fit: never cut, let it run on
            width = max(width, self.needed_width(console, keep))
        if self.title is not None:
            yield self.title
        yield from console.render(table, options.update(width=width))
        if self.caption is not None:
            yield self.caption
        if dropped:
            shown = [c for c in self.columns if c in dropped]
            titles = ", ".join(c.title or c.key for c in shown)
            # One line, however long: the terminal may wrap it, but it is never cut or split.
            yield Text(f"not shown at {options.max_width} columns: {titles} ({self.hint})", style="dim",
                       no_wrap=True, overflow="ignore")

    def table(self, columns: Sequence[FitColumn], widest_only: Console | None = None,
              fixed: Console | None = None) -> Table:
        """The Rich table of `columns`. With `widest_only` (the console that measures), one row of each
        column's widest cell stands in for all rows: a table is as wide as its widest cells, so measuring
        that row gives the full table's width without measuring every row again for each column dropped.
        With `fixed` (natural widths: every cell on one line), each column is given the width Rich would
        measure, its widest title, footer or cell, measured once, so Rich does not measure every cell again."""
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_footer=self.show_footer)
        for column in columns:
            table.add_column(column.title, footer=column.footer, justify="right" if column.numeric else "left",
                             no_wrap=not column.wrap, style=column.style,
                             min_width=self._measured(column, widest_only)[1] if column.wrap else None,
                             width=self._measured(column, fixed)[2] if fixed is not None else None)
        if widest_only is not None:
            if columns and columns[0].cells:
                table.add_row(*(self._measured(c, widest_only)[0] for c in columns))
            return table
        rows = len(columns[0].cells) if columns else 0
        for index in range(rows):
            style = self.row_styles[index] if index < len(self.row_styles) else None
            table.add_row(*(_text(c.cells[index]) for c in columns), style=style)
        return table

    def plain_lines(self, console: Console, options: ConsoleOptions, columns: Sequence[FitColumn]) -> list[str] | None:
        """The lines Rich draws for `table(columns)` at natural widths without colour, made directly: Rich renders
        each cell through its whole layout engine (about 40 µs a cell, most of printing a large model's table).
        SIMPLE_HEAD's borders come from the box itself, cells are padded (0, 1) but at the table's edges
        (pad_edge=False) and justified in their column's width. None, for Rich to draw it, where a cell holds
        anything but one plain line (a newline, a tab, a justification or overflow of its own)."""
        cells = [[_text(column.title), *(_text(c) for c in column.cells), _text(column.footer)] for column in columns]
        if not columns or any(text.justify or text.overflow or text.no_wrap is not None or "\n" in text.plain
                              or "\t" in text.plain for column in cells for text in column):
            return None
        shape = box.SIMPLE_HEAD.substitute(options, safe=console.safe_box)
        last = len(columns) - 1
        pads = [(0 if i == 0 else 1, 0 if i == last else 1) for i in range(len(columns))]
        inner = [max(cell_len(text.plain) for text in column) for column in cells]
        if 0 in inner:  # Rich gives an empty column a width of 1
            return None
        widths = [width + left + right for width, (left, right) in zip(inner, pads, strict=True)]

        def line(row: int) -> str:
            parts = []
            for column, texts, width, (left, right) in zip(columns, cells, inner, pads, strict=True):
                text = texts[row].plain
                gap = " " * (width - cell_len(text))
                parts.append(" " * left + (gap + text if column.numeric else text + gap) + " " * right)
            return shape.head_left + shape.head_vertical.join(parts) + shape.head_right

        rows = len(cells[0]) - 2
        lines = [shape.get_top(widths), line(0), shape.get_row(widths, "head", edge=True)]
        lines += [line(1 + index) for index in range(rows)]
        if self.show_footer:
            lines += [shape.get_row(widths, "foot", edge=True), line(rows + 1)]
        lines.append(shape.get_bottom(widths))
        return lines

    def _measured(self, column: FitColumn, console: Console | None) -> tuple[Text, int, int]:
        """(the column's widest cell, its longest word, its widest title/footer/cell), measured once."""
        cache: dict[int, tuple[Text, int, int]] = self.__dict__.setdefault("_measures", {})
        if id(column) not in cache:
            measure = console or Console(width=10**6)
            options = measure.options.update(width=10**6)
            cells = [_text(cell) for cell in column.cells]
            widths = [Measurement.get(measure, options, cell).maximum for cell in cells]
            widest = cells[max(range(len(cells)), key=widths.__getitem__)] if cells else Text("")
            cache[id(column)] = (widest, _longest_word(column), _widest(measure, options, column))
        return cache[id(column)]

    def needed_width(self, console: Console, columns: Sequence[FitColumn]) -> int:
        """The narrowest width at which every cell shows whole: prose columns at their longest word."""
        options = console.options.update(width=10**6)
        natural = Measurement.get(console, options, self.table(columns, widest_only=console)).maximum
        slack = sum(self._measured(c, console)[2] - self._measured(c, console)[1] for c in columns if c.wrap)
        return natural - slack


def _cells(column: FitColumn) -> Iterable[Text]:
    yield Text(column.title)
    yield _text(column.footer)
    for cell in column.cells:
        yield _text(cell)


def _longest_word(column: FitColumn) -> int:
    return max((Text(word).cell_len for cell in _cells(column) for word in cell.plain.split()), default=1)


def _widest(console: Console, options: ConsoleOptions, column: FitColumn) -> int:
    return max(Measurement.get(console, options, cell).maximum for cell in _cells(column))


class OutputConsole(Console):
    """The console for results: tables at their natural width when the output is not a terminal, and no
    trailing spaces in anything that is not a terminal."""

    def __init__(self, natural_tables: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.natural_tables = natural_tables

    def print(self, *objects: Any, **kwargs: Any) -> None:  # type: ignore[override]
        kwargs.setdefault("crop", False)  # a Fitted table wider than the console runs on rather than being cut
        if self.is_terminal:
            super().print(*objects, **kwargs)
            return
        with self.capture() as captured:
            super().print(*objects, **kwargs)
        text = "\n".join(line.rstrip() for line in captured.get().split("\n"))
        self.file.write(text)
        self.file.flush()


PIPE_WIDTH = 120  # prose wraps here when the output is not a terminal; tables take their natural width


def output_console(stream: Literal["stdout", "stderr"] = "stdout") -> OutputConsole:
    """COLUMNS, when set, is the width tables must fit (README examples use 120). A terminal's own width is
    next. Output to a pipe or a file is not limited: tables take their natural width, prose wraps at 120."""
    file = sys.stdout if stream == "stdout" else sys.stderr
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return OutputConsole(width=int(columns), highlight=False, stderr=stream == "stderr")
    if file.isatty():
        return OutputConsole(highlight=False, stderr=stream == "stderr")
    return OutputConsole(natural_tables=True, width=PIPE_WIDTH, highlight=False, stderr=stream == "stderr")


def piped_text(renderable: RenderableType) -> str:
    """What printing `renderable` to a pipe writes (natural widths, no colour, no trailing spaces), as text:
    the CLI's output when piped, whatever the environment says (COLUMNS, FORCE_COLOR, a notebook)."""
    buffer = io.StringIO()
    console = OutputConsole(natural_tables=True, width=PIPE_WIDTH, highlight=False, file=buffer, color_system=None,
                            force_terminal=False, force_jupyter=False, force_interactive=False)
    console.print(renderable)
    return buffer.getvalue()


def piped_html(renderable: RenderableType) -> str:
    """The same lines as piped_text, in colour, as an HTML fragment with inline styles (a notebook's view)."""
    console = OutputConsole(natural_tables=True, width=PIPE_WIDTH, highlight=False, file=io.StringIO(), record=True,
                            force_terminal=True, force_jupyter=False, force_interactive=False)
    console.print(renderable)
    return console.export_html(inline_styles=True)


def heading(text: str, style: str | None = "bold") -> Text:
    return Text(printable(text), style=style or "")


def lines(*texts: str | Text) -> RenderableType:
    """Plain lines (never markup) as one renderable."""
    out = Text()
    for index, item in enumerate(texts):
        if index:
            out.append("\n")
        out.append(item if isinstance(item, Text) else Text(item))
    return out
