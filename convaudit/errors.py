"""The one error type the CLI turns into a one-line message and an exit code."""

from __future__ import annotations

import contextlib
import signal
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

EXIT_FINDINGS = 1  # the audit ran and found errors (check, verify, audit)
EXIT_USAGE = 2  # bad input: usage, spec, file, device
EXIT_INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as shells report it


class _Interrupts:
    """Whether Ctrl-C was pressed while a command ran, even if a library swallowed the KeyboardInterrupt
    (or turned it into another error: an ImportError halfway through importing torch, say)."""

    pressed = False


def interrupted() -> bool:
    return _Interrupts.pressed


@contextlib.contextmanager
def noting_interrupts() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt as usual, and is also remembered for `interrupted()`."""

    def handler(signum: int, frame: object) -> None:
        _Interrupts.pressed = True
        raise KeyboardInterrupt

    _Interrupts.pressed = False
    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def printable(text: str) -> str:
    """User-supplied text made safe for a terminal: control and format characters shown as escapes.

    ESC, BEL, carriage returns and bidi overrides (Unicode categories Cc and Cf) become `\\x1b`-style escapes,
    so a layer name can never move the cursor, retitle the terminal or reorder a line. Rich markup is a
    separate concern: the renderers also pass names through `rich.markup.escape`.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"):
        return ch
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


@dataclass(frozen=True)
class Where:
    """Where in a spec file something is: file, 1-based line, and key path."""

    file: str | None = None
    line: int | None = None
    key: str | None = None

    def __str__(self) -> str:
        place = self.file or "<spec>"
        if self.line is not None:
            place += f":{self.line}"
        if self.key:
            place += f": {self.key}"
        return place


class ConvauditError(Exception):
    """A user-facing error: printed as one line, then exit with `exit_code`."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, where: Where | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        """One line, safe for a terminal: whitespace runs become one space, control characters escapes."""
        text = f"{self.where}: {self.message}" if self.where else self.message
        return printable(" ".join(text.split()))


class SpecError(ConvauditError):
    """The spec file cannot be read or does not describe a valid network."""


class DeviceError(ConvauditError):
    """The requested device is unavailable or the model does not fit on it."""
