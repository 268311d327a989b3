"""The one error type the CLI turns into a one-line message and an exit code."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

EXIT_FINDINGS = 1  # the audit ran and found errors (check, verify, audit)
EXIT_USAGE = 2  # bad input: usage, spec, file, device
EXIT_INTERNAL = 3  # a bug of ours
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports it: the reader of standard output went away


def printable(text: str) -> str:
    """User-supplied text made safe for a terminal: control and format characters shown as escapes.

    ESC, BEL, carriage returns and bidi overrides (Unicode categories Cc and Cf) become `\\x1b`-style escapes,
    so a layer name can never move the cursor, retitle the terminal or reorder a line. Rich markup is a
    separate concern: the renderers also pass names through `rich.markup.escape`.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else _escape(ch) for ch in text)


def exception_text(exc: BaseException, limit: int = 300) -> str:
    """An exception's text on one line, escaped for the terminal, at most `limit` characters, never itself an
    error (str() of a 5,000-digit int raises)."""
    try:
        text = " ".join(str(exc).split())
    except Exception:
        text = "(unprintable)"
    return printable(text[:limit])


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
