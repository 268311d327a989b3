"""Ctrl-C: remembered while a command runs, and raised only where Python code can safely unwind.

The CLI's SIGINT handler records every press, so that a KeyboardInterrupt a library swallows (or turns into
another error: an ImportError halfway through importing torch, say) still ends the command with exit 130.
Outside a `deferred()` block it then raises KeyboardInterrupt, as Python's own handler does. Inside one it only
records the press, and the block raises KeyboardInterrupt as it ends. Heavy imports (torch, torchvision,
onnx) run inside one: their C++ code calls back into Python, and an exception raised there by a signal
handler crosses a C++ frame that cannot pass it on (pybind11's error_already_set), which aborts the process.
"""

from __future__ import annotations

import contextlib
import importlib
import signal
from collections.abc import Iterator
from types import FrameType, ModuleType

EXIT_INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as shells report it


class _Presses:
    pressed = False  # Ctrl-C was pressed since noting_interrupts() began
    deferring = 0  # how many deferred() blocks are open


def interrupted() -> bool:
    return _Presses.pressed


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    _Presses.pressed = True
    if not _Presses.deferring:
        raise KeyboardInterrupt


@contextlib.contextmanager
def noting_interrupts() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt (outside deferred blocks) and is remembered for `interrupted()`."""
    _Presses.pressed = False
    try:
        previous = signal.signal(signal.SIGINT, _on_sigint)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Ctrl-C inside the block is only recorded; the block raises KeyboardInterrupt when it ends."""
    _Presses.deferring += 1
    try:
        yield
    finally:
        _Presses.deferring -= 1
        if _Presses.pressed and not _Presses.deferring:
            raise KeyboardInterrupt


def import_deferred(name: str) -> ModuleType:
    """`import name` with Ctrl-C deferred until it is done: for modules whose import runs C++ code."""
    with deferred():
        return importlib.import_module(name)
