"""The Typer app and its error boundary: every command runs inside `Boundary.invoke`.

One project exception type, ConvauditError, becomes 'error: …' on stderr and its exit code (2: bad input);
a usage error (an unknown option, a bad value) is the same one line. Ctrl-C at any moment is 'interrupted',
exit 130, even when a library swallowed the KeyboardInterrupt. A closed pipe ends quietly (exit 141, as a
shell reports SIGPIPE). Anything else is a bug of ours: one line, exit 3, unless CONVAUDIT_DEBUG is set.

`main()`, the `convaudit` command, runs the app with `standalone_mode=False` so that the errors Typer would
print itself (the top level's own usage errors) come back here too, and flushes standard output inside the
same boundary.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from convaudit import __version__
from convaudit.errors import EXIT_BROKEN_PIPE, EXIT_INTERNAL, EXIT_USAGE, ConvauditError, exception_text, printable
from convaudit.interrupts import EXIT_INTERRUPTED, interrupted, noting_interrupts

try:  # Typer ≥ 0.24 vendors click, and its exceptions derive from this public class
    from typer import TyperException as UsageProblem
except ImportError:  # pragma: no cover - older Typer uses click itself
    from click import ClickException as UsageProblem


def say_interrupted(said: list[bool] = [False]) -> None:  # noqa: B006  (once per process)
    if not said[0]:
        said[0] = True
        typer.echo("interrupted", err=True)


def stop(code: int, message: str | None = None) -> NoReturn:
    """End the command with `code`, saying `message` on stderr; Ctrl-C, once pressed, wins."""
    if interrupted() and code != EXIT_INTERRUPTED:
        code, message = EXIT_INTERRUPTED, None
    if code == EXIT_INTERRUPTED:
        say_interrupted()
    elif message:
        typer.echo(message, err=True)
    raise typer.Exit(code)


def usage_line(problem: Any) -> str:
    """A usage error as one line, pointing at the command's --help."""
    context = getattr(problem, "ctx", None)
    hint = f" (see '{context.command_path} --help')" if context is not None else ""
    return f"error: {printable(' '.join(problem.format_message().split()))}{hint}"


def discard_stdout() -> None:
    """What is left in stdout's buffer goes nowhere, so that the interpreter's final flush stays quiet after a
    closed pipe or a full disk (Python's documented way: point stdout at /dev/null)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # CliRunner's stdout has no file descriptor
        pass


def reader_gone() -> NoReturn:
    """Standard output's reader closed it (`| head -1`): stop writing, quietly."""
    discard_stdout()
    raise typer.Exit(EXIT_BROKEN_PIPE)


def internal_error(exc: BaseException) -> str:
    return (f"internal error ({type(exc).__name__}: {exception_text(exc)}); rerun with CONVAUDIT_DEBUG=1 "
            "and report it")


class Boundary(TyperGroup):
    """The group whose `invoke` (click's documented hook that parses and runs a subcommand) is the error
    boundary of every command."""

    def invoke(self, ctx: typer.Context) -> Any:
        with noting_interrupts():
            try:
                result = super().invoke(ctx)
            except ConvauditError as exc:
                stop(exc.exit_code, f"error: {exc}")
            except UsageProblem as exc:
                stop(exc.exit_code, usage_line(exc))
            except KeyboardInterrupt:
                stop(EXIT_INTERRUPTED)
            except typer.Exit as exc:
                stop(exc.exit_code)
            except typer.Abort:
                stop(1, "aborted")
            except BrokenPipeError:
                reader_gone()
            except (MemoryError, RecursionError) as exc:
                what = "memory" if isinstance(exc, MemoryError) else "stack (the input nests too deeply)"
                stop(EXIT_USAGE, f"error: refused: this input needs more {what} than there is")
            except Exception as exc:
                if os.environ.get("CONVAUDIT_DEBUG"):
                    raise
                stop(EXIT_INTERNAL, internal_error(exc))
            if interrupted():  # a library swallowed the KeyboardInterrupt: still honour it
                stop(EXIT_INTERRUPTED)
            return result


app = typer.Typer(
    cls=Boundary,
    name="convaudit",
    help="Audit convolutional network architectures: exact shapes, parameters, MACs/FLOPs and memory, "
         "with the arithmetic that papers and blogs get wrong.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"convaudit {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=version_callback, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """Audit convolutional network architectures."""


def main() -> NoReturn:
    """The `convaudit` command: the app, then standard output flushed, each failure one line."""
    try:
        code = app(standalone_mode=False)
        sys.stdout.flush()
    except UsageProblem as exc:  # outside any command: the top level's own options, or no command at all
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `convaudit`: Typer has printed the help
            sys.exit(0)
        typer.echo(usage_line(exc), err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:  # while the command line was parsed
        code = EXIT_INTERRUPTED
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except BrokenPipeError:
        discard_stdout()
        code = EXIT_BROKEN_PIPE
    except OSError as exc:  # the final flush of standard output: a full disk, /dev/full
        typer.echo(f"error: cannot write to standard output: {exc.strerror or exc}", err=True)
        discard_stdout()
        sys.exit(EXIT_USAGE)
    except Exception as exc:  # outside any command (Typer building the CLI): still one line
        if os.environ.get("CONVAUDIT_DEBUG"):
            raise
        typer.echo(internal_error(exc), err=True)
        sys.exit(EXIT_INTERNAL)
    if code == EXIT_INTERRUPTED:  # Typer turns a Ctrl-C outside our commands into a silent exit 130
        say_interrupted()
    sys.exit(code if isinstance(code, int) else 0)

