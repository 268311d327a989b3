"""`python -m convaudit` and the `convaudit` command.

Ctrl-C while the modules load (Typer, Rich, the package: a few hundred milliseconds) exits 130 with one
line instead of a traceback; from then on the CLI's own handling takes over.
"""

import os
import signal


def _interrupted_while_loading(signum: int, frame: object) -> None:
    os.write(2, b"interrupted\n")
    os._exit(130)


def run() -> None:
    previous = signal.signal(signal.SIGINT, _interrupted_while_loading)
    from convaudit.cli import main

    signal.signal(signal.SIGINT, previous)
    main()


if __name__ == "__main__":
    run()
