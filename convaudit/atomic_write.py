"""Files written whole or not at all (`report`, `draw`, `import -o`, `Summary.save_report`).

The text goes to a temporary file in the target's folder, is flushed to the disk (fsync), and replaces the
target in one rename (os.replace). A kill, a full disk or a Ctrl-C mid-write leaves the old file as it was.
A target that is not a regular file and cannot be renamed over (/dev/full, /dev/stdout, a FIFO) is written
directly. Any failure is one line (ConvauditError, exit 2) naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

from convaudit.errors import ConvauditError, printable


def write_atomically(path: str | os.PathLike[str], text: str) -> None:
    shown = printable(os.fspath(path))
    target = Path(os.path.realpath(path))  # through a symlink: replace the file it points to, keep the link
    data = text.encode("utf-8")
    try:
        if target.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        if target.exists() and not target.is_file():
            _write_directly(target, data)
        else:
            _write_and_rename(target, data)
    except OSError as error:
        raise ConvauditError(f"cannot write {shown}: {error.strerror or error}") from None


def _write_directly(target: Path, data: bytes) -> None:
    with open(target, "wb") as handle:
        handle.write(data)
        handle.flush()


def _write_and_rename(target: Path, data: bytes) -> None:
    mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o666 & ~_umask()
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_folder(target.parent)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sync_folder(folder: Path) -> None:
    """The rename itself reaches the disk (POSIX; elsewhere folders cannot be opened, and this is skipped)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
