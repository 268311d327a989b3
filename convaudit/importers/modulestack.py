"""The module stack during a forward: which module call (path, class, call index) each operator runs in.

Kept by global forward pre/post hooks (torch.nn.modules.module.register_module_forward_pre_hook and
register_module_forward_hook), which the tracer registers for one run and removes whatever happens.
"""

from __future__ import annotations

from typing import Any

from convaudit.importers import opgraph as g


class ModuleStack:
    """The module stack, kept by global forward hooks: [(module id, Frame)] outermost first."""

    def __init__(self, model: Any):
        self.names = {id(m): (path, type(m).__name__) for path, m in model.named_modules()}
        self.calls: dict[int, int] = {}
        self.stack: list[tuple[int, g.Frame]] = []
        self.current: tuple[g.Frame, ...] = ()
        self.seen: dict[str, str] = {}

    def pre(self, module: Any, args: Any) -> None:
        key = id(module)
        path, kind = self.names.get(key) or self._outside(module)
        call = self.calls.get(key, 0)
        self.calls[key] = call + 1
        self.stack.append((key, g.Frame(path, kind, call)))
        self.current = tuple(frame for _, frame in self.stack)
        self.seen[path] = kind

    def post(self, module: Any, args: Any, output: Any) -> None:
        key = id(module)
        # Pop down to this module's frame: frames above it belong to calls that raised inside a model's own try.
        while self.stack and self.stack.pop()[0] != key:
            pass
        self.current = tuple(frame for _, frame in self.stack)

    def _outside(self, module: Any) -> tuple[str, str]:
        """A module called in forward but not registered in the model's tree: named inside its caller."""
        kind = type(module).__name__
        parent = self.stack[-1][1].path if self.stack else ""
        entry = self.names[id(module)] = (f"{parent}.<{kind}>" if parent else f"<{kind}>", kind)
        return entry

    @property
    def path(self) -> str:
        return self.current[-1].path if self.current else ""
