"""`python -m convaudit` and the `convaudit` command.

Ctrl-C while the modules load (Typer and the CLI's own modules: a few hundred milliseconds) exits 130 with one
line instead of a traceback; from then on the CLI's boundary takes over (convaudit.cli.app). `--version` is
answered without loading Typer.
"""

import os
import signal
import sys


def _interrupted_while_loading(signum: int, frame: object) -> None:
    os.write(2, b"interrupted\n")
    os._exit(130)


def _version() -> None:
    from convaudit import __version__

    try:
        sys.stdout.write(f"convaudit {__version__}\n")
        sys.stdout.flush()
    except OSError as error:  # a closed pipe or a full disk: as for any command (convaudit.cli.app)
        from convaudit.errors import EXIT_BROKEN_PIPE, EXIT_USAGE

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if isinstance(error, BrokenPipeError):
            sys.exit(EXIT_BROKEN_PIPE)
        sys.stderr.write(f"error: cannot write to standard output: {error.strerror or error}\n")
        sys.exit(EXIT_USAGE)


def run() -> None:
    previous = signal.signal(signal.SIGINT, _interrupted_while_loading)
    if sys.argv[1:] == ["--version"] and not any(name.endswith("_COMPLETE") for name in os.environ):
        _version()
        return
    from convaudit.cli import main

    signal.signal(signal.SIGINT, previous)
    main()


if __name__ == "__main__":
    run()
