"""emit(result, format): every command's output goes through here, to the renderer registered for its kind.

A command returns a `Result` (its kind, the value, and rendering options). RENDERERS maps (kind, format) to
the renderer: a 'table' renderer returns a Rich renderable, given the console it is printed on; every other
format returns text, written as is, with a final newline if it has none. Renderers import their modules
when called, so that `--help` loads none of them.

Writing to standard output is checked here: a full disk is one line (exit 2); a closed pipe (`| head -1`)
reaches the boundary as BrokenPipeError, which ends the command quietly.
"""

from __future__ import annotations

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


RENDERERS: dict[tuple[str, str], Callable[..., Any]] = {}


def renders(kind: str, *formats: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(render: Callable[..., Any]) -> Callable[..., Any]:
        for output_format in formats:
            RENDERERS[kind, output_format] = render
        return render

    return register


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


# ------------------------------------------------------------------ the analysis: summary, rf, check, list, audit

@renders("summary", TABLE)
def _summary_table(result: Result, console: Console) -> Any:
    from convaudit.render.summary import summary_table

    return summary_table(result.value, result.options["columns"], result.options["rf"])


@renders("summary", "json")
def _summary_json(result: Result) -> str:
    from convaudit.render.summary import summary_json

    return summary_json(result.value)


@renders("summary", "csv")
def _summary_csv(result: Result) -> str:
    from convaudit.render.summary import summary_csv

    return summary_csv(result.value.report)


@renders("summary", "markdown")
def _summary_markdown(result: Result) -> str:
    from convaudit.render.summary import summary_markdown

    return summary_markdown(result.value, result.options["columns"], result.options["rf"])


@renders("rf", TABLE)
def _rf_table(result: Result, console: Console) -> Any:
    from convaudit.render.summary import rf_table

    return rf_table(result.value)


@renders("rf", "json")
def _rf_json(result: Result) -> str:
    from convaudit.render.summary import rf_json

    return rf_json(result.value)


@renders("rf", "markdown")
def _rf_markdown(result: Result) -> str:
    from convaudit.render.summary import RF_VIEW_COLUMNS, summary_markdown

    return summary_markdown(result.value, RF_VIEW_COLUMNS)


@renders("check", TABLE)
def _check_table(result: Result, console: Console) -> Any:
    from convaudit.render.findings import findings_rich

    return findings_rich(result.value, result.options["scope"])


@renders("check", "json")
def _check_json(result: Result) -> str:
    from convaudit.render.findings import findings_json

    return findings_json(result.value)


@renders("check", "markdown")
def _check_markdown(result: Result) -> str:
    from convaudit.render.findings import findings_markdown

    scope = result.options["scope"]
    return (f"{scope}\n\n" if scope else "") + findings_markdown(result.value)


@renders("list", TABLE)
def _list_table(result: Result, console: Console) -> Any:
    from convaudit.render.findings import library_table

    return library_table(result.value)


@renders("list", "json")
def _list_json(result: Result) -> str:
    from convaudit.render.findings import library_json

    return library_json(result.value)


@renders("list", "markdown")
def _list_markdown(result: Result) -> str:
    from convaudit.render.findings import library_markdown

    return library_markdown(result.value)


@renders("audit", TABLE)
def _audit_table(result: Result, console: Console) -> Any:
    from convaudit.render.audit import audit_rich

    return audit_rich(result.value, result.options["explain"])


@renders("audit", "json")
def _audit_json(result: Result) -> str:
    from convaudit.render.audit import audit_json

    return audit_json(result.value)


@renders("audit", "markdown")
def _audit_markdown(result: Result) -> str:
    from convaudit.render.audit import audit_markdown

    return audit_markdown(result.value)


@renders("schema", "json")
def _schema(result: Result) -> str:
    return result.value


@renders("text", "yaml", "svg")
def _text(result: Result) -> str:
    """A spec or a drawing, made by the command: written as it is."""
    return result.value


# ------------------------------------------------------------------ side by side: diff of analyses and of plans

@renders("diff", TABLE)
def _diff_table(result: Result, console: Console) -> Any:
    from convaudit.render.diff import diff_rich

    return diff_rich(result.value, result.options["changed_only"])


@renders("diff", "json")
def _diff_json(result: Result) -> str:
    from convaudit.render.diff import diff_json

    return diff_json(result.value)


@renders("diff", "markdown")
def _diff_markdown(result: Result) -> str:
    from convaudit.render.diff import diff_markdown

    return diff_markdown(result.value)


@renders("plan_diff", TABLE)
def _plan_diff_table(result: Result, console: Console) -> Any:
    from convaudit.render.plan_diff import plan_diff_rich

    return plan_diff_rich(result.value, result.options["changed_only"])


@renders("plan_diff", "json")
def _plan_diff_json(result: Result) -> str:
    from convaudit.render.plan_diff import plan_diff_json

    return plan_diff_json(result.value)


@renders("plan_diff", "markdown")
def _plan_diff_markdown(result: Result) -> str:
    from convaudit.render.plan_diff import plan_diff_markdown

    return plan_diff_markdown(result.value)


# ------------------------------------------------------------------ plans: split, bench --devices

@renders("plan", TABLE)
def _plan_table(result: Result, console: Console) -> Any:
    from convaudit.render.plan import plan_rich

    return plan_rich(result.value, console.width)


@renders("plan", "json")
def _plan_json(result: Result) -> str:
    from convaudit.render.plan import plan_json

    return plan_json(result.value)


@renders("plan", "csv")
def _plan_csv(result: Result) -> str:
    from convaudit.render.plan import plan_csv

    return plan_csv(result.value)


@renders("plan", "markdown")
def _plan_markdown(result: Result) -> str:
    from convaudit.render.plan import plan_markdown

    return plan_markdown(result.value)


@renders("distributed", TABLE)
def _distributed_table(result: Result, console: Console) -> Any:
    from convaudit.render.plan import distributed_rich

    return distributed_rich(result.value)


@renders("distributed", "json")
def _distributed_json(result: Result) -> str:
    from convaudit.render.plan import distributed_json

    return distributed_json(result.value)


# ------------------------------------------------------------------ PyTorch: verify, bench

@renders("verify", TABLE)
def _verify_table(result: Result, console: Console) -> Any:
    from convaudit.render.verify import verify_rich

    return verify_rich(result.value)


@renders("verify", "json")
def _verify_json(result: Result) -> str:
    from convaudit.render.verify import verify_json

    return verify_json(result.value)


@renders("bench", TABLE)
def _bench_table(result: Result, console: Console) -> Any:
    from convaudit.render.bench import bench_rich

    return bench_rich(result.value, result.options["depth"])


@renders("bench", "json")
def _bench_json(result: Result) -> str:
    from convaudit.render.bench import bench_json

    return bench_json(result.value, result.options["depth"])


@renders("bench", "csv")
def _bench_csv(result: Result) -> str:
    from convaudit.render.bench import bench_csv

    return bench_csv(result.value)
