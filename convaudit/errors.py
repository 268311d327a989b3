"""The one error type the CLI turns into a one-line message and an exit code."""

from __future__ import annotations

from dataclasses import dataclass

EXIT_FINDINGS = 1  # the audit ran and found errors (check, verify, audit)
EXIT_USAGE = 2  # bad input: usage, spec, file, device


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
        one_line = " ".join(self.message.split())
        return f"{self.where}: {one_line}" if self.where else one_line


class SpecError(ConvauditError):
    """The spec file cannot be read or does not describe a valid network."""


class DeviceError(ConvauditError):
    """The requested device is unavailable or the model does not fit on it."""
