"""The module stack during a forward: which module call (path, class, call index) each operator runs in; and
every module's attributes, to undo what a forward changes on them.

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


class ModuleState:
    """Every module's attributes, to undo what a forward changes: models cache tensors on themselves in eval
    (TinyViT's attention_bias_cache dict, ConViT's rel_indices), which would leave meta tensors on the user's model
    and make the second run differ from the first. Top-level attributes and the contents of dict attributes are
    restored; the training flags too."""

    def __init__(self, model: Any):
        self.saved = [(module, dict(vars(module)), {k: dict(v) for k, v in vars(module).items() if isinstance(v, dict)})
                      for module in model.modules()]

    def restore(self, training: bool | None = None) -> None:
        for module, attributes, dicts in self.saved:
            current = vars(module)
            if current.keys() != attributes.keys():
                for key in current.keys() - attributes.keys():
                    del current[key]
            for key, value in attributes.items():
                if current.get(key) is not value:
                    current[key] = value
            for key, contents in dicts.items():
                now = current[key]
                if len(now) != len(contents) or (contents and _changed(now, contents)):  # most are empty hook dicts
                    now.clear()
                    now.update(contents)
            if training is not None:
                current["training"] = training


def _changed(now: dict[Any, Any], before: dict[Any, Any]) -> bool:
    return len(now) != len(before) or any(now.get(k, _MISSING) is not v for k, v in before.items())


_MISSING = object()
