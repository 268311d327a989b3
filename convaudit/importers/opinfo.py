"""What the tracer needs to know about an ATen overload, read from its schema once and kept.

Torch is imported by the caller (importers.trace); this module only reads the objects it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from convaudit.importers import opgraph as g
from convaudit.importers.metacache import cacheable

_TORCH_TAGS = (g.POINTWISE, g.REDUCTION, g.INPLACE_VIEW, g.DATA_DEPENDENT, g.DYNAMIC_SHAPE, g.RANDOM)


@dataclass(frozen=True)
class OpInfo:
    """What the recorder needs to know about one overload, read from its schema once."""

    overload: str
    packet: str
    names: tuple[str, ...]  # every argument, positional then keyword-only
    defaults: dict[str, Any]  # name -> default, where the schema has one
    written: tuple[str, ...]  # arguments the operator writes (in-place, out=)
    tags: frozenset[str]
    device: bool  # takes a device argument (factories, _to_copy)
    composite: bool  # has a C++ CompositeImplicitAutograd kernel: recorded with its decomposition as children
    cacheable: bool  # its meta answers can be remembered (see metacache)


INFO: dict[Any, OpInfo] = {}


def op_info(func: Any) -> OpInfo:
    info = INFO.get(func)
    if info is None:
        info = INFO[func] = read_schema(func)
    return info


def read_schema(func: Any) -> OpInfo:
    import torch

    schema = func._schema
    tags = {str(tag).rsplit(".", 1)[-1] for tag in getattr(func, "tags", ())}
    tags = {tag for tag in tags if tag in _TORCH_TAGS}
    written = tuple(a.name for a in schema.arguments if a.alias_info is not None and a.alias_info.is_write)
    if written:
        tags.add(g.INPLACE)
    if any(r.alias_info is not None and not r.alias_info.is_write for r in schema.returns):
        tags.add(g.VIEW)
    if not any("Tensor" in str(a.type) for a in schema.arguments):
        tags.add(g.FACTORY)
    defaults = {a.name: plain(a.default_value) for a in schema.arguments if a.has_default_value()}
    composite = torch._C._dispatch_has_kernel_for_dispatch_key(func.name(), "CompositeImplicitAutograd")
    return OpInfo(overload=str(func), packet=func.overloadpacket.__name__,
                   names=tuple(a.name for a in schema.arguments), defaults=defaults, written=written,
                   tags=frozenset(tags), device=any(a.name == "device" for a in schema.arguments),
                   composite=composite, cacheable=cacheable(frozenset(tags)))


def plain(value: Any) -> Any:
    """A schema value as plain Python: numbers, strings, None, lists; torch's dtypes and enums as names."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return dtype_name(value) if type(value).__name__ == "dtype" else str(value)


DTYPE_NAMES: dict[Any, str] = {}


def dtype_name(dtype: Any) -> str:
    name = DTYPE_NAMES.get(dtype)
    if name is None:
        name = DTYPE_NAMES[dtype] = str(dtype).removeprefix("torch.")
    return name
