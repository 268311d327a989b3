"""`python -m convaudit` and the `convaudit` command.

Ctrl-C while the modules load (Typer, Rich, the package: a few hundred milliseconds) exits 130 with one
line instead of a traceback; from then on the CLI's own handling takes over.

`--version`, and `--help` where nothing about the output's destination can change how Rich draws it (no
terminal on stdin, stdout or stderr, so 80 columns without colour; none of the variables Rich or Typer read;
UTF-8 output), are answered without loading Typer and Rich: the help comes from `convaudit/help_text.py`,
Typer's own output saved by `python scripts/help_text.py --write`. It is used only while its key matches
the sources it was drawn from (cli.py, the version, Typer's and Rich's drawing code), so a stale copy is
never shown: the CLI draws the help itself instead. tests/test_help_text.py checks the copy is current and
identical to Typer's output.
"""

import os
import signal
import sys

# What Rich and Typer read from the environment that could change the help's text, width or colours
# (and the shell-completion variables, which make click complete instead of showing help).
_HELP_VARIABLES = ("COLUMNS", "LINES", "TERMINAL_WIDTH", "FORCE_COLOR", "PY_COLORS", "GITHUB_ACTIONS", "NO_COLOR",
                   "TTY_COMPATIBLE", "TTY_INTERACTIVE", "JUPYTER_COLUMNS", "JUPYTER_LINES", "UNICODE_VERSION",
                   "DATABRICKS_RUNTIME_VERSION", "TYPER_USE_RICH", "_TYPER_FORCE_DISABLE_TERMINAL",
                   "_TYPER_STANDARD_TRACEBACK", "CONVAUDIT_NO_FAST_HELP")


def _interrupted_while_loading(signum: int, frame: object) -> None:
    os.write(2, b"interrupted\n")
    os._exit(130)


def help_key() -> str:
    """What the saved help depends on: cli.py and __init__.py (CRC-32), and the size of Typer's and Rich's
    drawing modules (which change with their versions)."""
    import zlib
    from importlib.util import find_spec

    here = os.path.dirname(os.path.abspath(__file__))
    parts = []
    for name in ("cli.py", "__init__.py"):
        with open(os.path.join(here, name), "rb") as handle:
            parts.append(f"{name}:{zlib.crc32(handle.read()):08x}")
    for package, module in (("typer", "rich_utils.py"), ("rich", "console.py"), ("rich", "box.py")):
        spec = find_spec(package)
        origin = spec.origin if spec is not None else None
        if origin is None:
            return ""
        parts.append(f"{package}/{module}:{os.stat(os.path.join(os.path.dirname(origin), module)).st_size}")
    return " ".join(parts)


def _program() -> str:
    """The program name click shows in 'Usage:' (its _detect_program_name)."""
    package = getattr(sys.modules.get("__main__"), "__package__", None)
    if not package:
        return os.path.basename(sys.argv[0])
    name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    return f"python -m {package}" if name == "__main__" else f"python -m {package}.{name}"


def _plain_help() -> str | None:
    """The saved `--help` text, where Typer would draw exactly that; None otherwise."""
    if os.name != "posix" or any(os.isatty(fd) for fd in (0, 1, 2)):
        return None
    if any(name in os.environ for name in _HELP_VARIABLES) or any(
            name.endswith("_COMPLETE") or name.startswith("_TYPER_COMPLETE") for name in os.environ):
        return None
    encoding = getattr(sys.stdout, "encoding", None) or ""
    if not encoding.lower().startswith("utf"):
        return None
    try:
        from convaudit import help_text
    except ImportError:
        return None
    text = help_text.HELP.get(_program())
    try:
        if text is None or help_text.KEY != help_key():
            return None
    except OSError:
        return None
    return text


def _fast_path() -> bool:
    """Answer `--version` or a plain `--help` here; False when the CLI must."""
    arguments = sys.argv[1:]
    if "CONVAUDIT_NO_FAST_HELP" in os.environ:
        return False
    if arguments == ["--version"] and not any(name.endswith("_COMPLETE") for name in os.environ):
        from convaudit import __version__

        sys.stdout.write(f"convaudit {__version__}\n")
        return True
    if arguments == ["--help"]:
        text = _plain_help()
        if text is not None:
            sys.stdout.write(text)
            return True
    return False


def run() -> None:
    previous = signal.signal(signal.SIGINT, _interrupted_while_loading)
    if _fast_path():
        sys.stdout.flush()
        return
    from convaudit.cli import main

    signal.signal(signal.SIGINT, previous)
    main()


if __name__ == "__main__":
    run()
