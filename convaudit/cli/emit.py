"""emit(result, format): every command's output goes through here, to the renderer registered for its kind.

A command returns a `Result` (its kind, the value, and rendering options). RENDERERS maps (kind, format) to
the renderer: a 'table' renderer returns a Rich renderable, given the console it is printed on; every other
format returns text, written as is, with a final newline if it has none. Most renderers are a function of
convaudit.render named by its path, called with the value and the options it takes, and imported when first
called, so that `--help` loads none of them.

Writing to standard output is checked here: a full disk is one line (exit 2); a closed pipe (`| head -1`)
reaches the boundary as BrokenPipeError, which ends the command quietly.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

from convaudit.errors import ConvauditError

if TYPE_CHECKING:
    from rich.console import Console

TABLE = "table"


@dataclass(frozen=True)
class Result:
    """What a command produced: `kind` names its renderers, `options` say how to render it."""

    kind: str
    value: Any
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Renderer:
    """`module:function`, called with a result's value and then the result's `options` named here."""

    function: str
    options: tuple[str, ...] = ()

    def __call__(self, result: Result, console: Console | None = None) -> Any:
        module, name = self.function.split(":")
        render = getattr(importlib.import_module(f"convaudit.render.{module}"), name)
        return render(result.value, *(result.options[key] for key in self.options))


def _summary_csv(result: Result) -> str:
    from convaudit.render.summary_data import summary_csv

    return summary_csv(result.value.report)  # every layer, whatever --depth groups


def _rf_markdown(result: Result) -> str:
    from convaudit.render.summary import RF_VIEW_COLUMNS, summary_markdown

    return summary_markdown(result.value, RF_VIEW_COLUMNS)


def _check_markdown(result: Result) -> str:
    from convaudit.render.findings import findings_markdown

    scope = result.options["scope"]
    return (f"{scope}\n\n" if scope else "") + findings_markdown(result.value)


def _plan_table(result: Result, console: Console) -> Any:
    from convaudit.render.plan import plan_rich

    return plan_rich(result.value, console.width)


def _verbatim(result: Result) -> str:
    """Text the command made itself: the schema, a spec, a drawing."""
    return result.value


RENDERERS: dict[tuple[str, str], Callable[..., Any]] = {
    ("summary", TABLE): Renderer("summary:summary_table", ("columns", "rf")),
    ("summary", "json"): Renderer("summary_data:summary_json"),
    ("summary", "csv"): _summary_csv,
    ("summary", "markdown"): Renderer("summary:summary_markdown", ("columns", "rf")),
    ("rf", TABLE): Renderer("summary:rf_table"),
    ("rf", "json"): Renderer("summary_data:rf_json"),
    ("rf", "markdown"): _rf_markdown,
    ("check", TABLE): Renderer("findings:findings_rich", ("scope",)),
    ("check", "json"): Renderer("findings:findings_json"),
    ("check", "markdown"): _check_markdown,
    ("list", TABLE): Renderer("findings:library_table"),
    ("list", "json"): Renderer("findings:library_json"),
    ("list", "markdown"): Renderer("findings:library_markdown"),
    ("audit", TABLE): Renderer("audit:audit_rich", ("explain",)),
    ("audit", "json"): Renderer("audit:audit_json"),
    ("audit", "markdown"): Renderer("audit:audit_markdown"),
    ("diff", TABLE): Renderer("diff:diff_rich", ("changed_only",)),
    ("diff", "json"): Renderer("diff:diff_json"),
    ("diff", "markdown"): Renderer("diff:diff_markdown"),
    ("plan_diff", TABLE): Renderer("plan_diff:plan_diff_rich", ("changed_only",)),
    ("plan_diff", "json"): Renderer("plan_diff:plan_diff_json"),
    ("plan_diff", "markdown"): Renderer("plan_diff:plan_diff_markdown"),
    ("plan", TABLE): _plan_table,
    ("plan", "json"): Renderer("plan:plan_json"),
    ("plan", "csv"): Renderer("plan:plan_csv"),
    ("plan", "markdown"): Renderer("plan:plan_markdown"),
    ("distributed", TABLE): Renderer("plan:distributed_rich"),
    ("distributed", "json"): Renderer("plan:distributed_json"),
    ("verify", TABLE): Renderer("verify:verify_rich"),
    ("verify", "json"): Renderer("verify:verify_json"),
    ("bench", TABLE): Renderer("bench:bench_rich", ("depth",)),
    ("bench", "json"): Renderer("bench:bench_json", ("depth",)),
    ("bench", "csv"): Renderer("bench:bench_csv"),
    ("fit", TABLE): Renderer("fit:fit_rich"),
    ("fit", "json"): Renderer("fit:fit_json"),
    ("fit", "csv"): Renderer("fit:fit_csv"),
    ("fit", "markdown"): Renderer("fit:fit_markdown"),
    ("schema", "json"): _verbatim,
    ("text", "yaml"): _verbatim,
    ("text", "svg"): _verbatim,
}


def emit(result: Result, output_format: Any = TABLE) -> None:
    """Render `result` in `output_format` (a format name or a choice Enum) on standard output."""
    chosen = getattr(output_format, "value", output_format)
    render = RENDERERS[result.kind, chosen]
    try:
        if chosen == TABLE:
            console = stdout_console()
            console.print(render(result, console))
        else:
            text = render(result)
            typer.echo(text, nl=not text.endswith("\n"))
    except BrokenPipeError:
        raise
    except OSError as error:
        raise ConvauditError(f"cannot write to standard output: {error.strerror or error}") from None


def stdout_console() -> Console:
    """Rich console for results: tables fit COLUMNS or the terminal by leaving out columns, never by cutting
    a number; piped, tables take their natural width and lines carry no trailing spaces."""
    from convaudit.render.output import output_console

    return output_console()
