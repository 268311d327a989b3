"""Meta kernels' answers, remembered for the process: the same operator on the same metadata answers the same.

Most of torch's meta kernels are Python (torch/_meta_registrations.py, and decompositions such as batch norm's
built from torch._refs), and they cost from tens of microseconds to milliseconds a call, more than the rest of
the tracer. A model repeats itself (ResNet's blocks, a ViT's twelve layers), so an operator called again with
tensors of the same shape, strides, offset and dtype, and the same other arguments, gets new empty meta tensors
with the metadata the kernel gave the first time (`torch.empty_strided`), without running the kernel again.

Remembered are operators whose outputs are new tensors, and in-place operators that return the tensor they
wrote with its metadata unchanged (LSTM cells' sigmoid_ and tanh_): no views, no operator that changes a tensor's
metadata in place (t_, as_strided_), nothing random, data-dependent or with a value as output, no output that
shares storage with an input or starts at an offset (all checked on the first call). The answers depend on
nothing but the call's metadata, so they are kept across traces (the second trace of a model, or of its batch-2
run, runs no kernel it has seen), up to LIMIT of them; then they are forgotten and learnt again. A call not
remembered goes to importers.fastmeta, which answers it by rule where it can and runs the kernel otherwise (its
learnt dtypes are kept here too). Torch is imported by the caller.
"""

from __future__ import annotations

from typing import Any

from convaudit.importers.fastmeta import FastMeta

_UNCACHEABLE = object()
_EXCLUDED = {"view", "inplace_view", "dynamic_output_shape", "data_dependent_output", "nondeterministic_seeded",
             "factory"}


LIMIT = 100_000  # answers kept: each is a few hundred bytes of metadata
_ANSWERS: dict[Any, Any] = {}  # fastmeta's learnt dtypes too
FAST = True  # a call not remembered tries fastmeta's rules before the kernel


def cacheable(tags: frozenset[str]) -> bool:
    return not (tags & _EXCLUDED)


class MetaCache:
    def __init__(self, torch: Any):
        self.torch = torch
        self.answers = _ANSWERS
        self.hits = 0
        if len(_ANSWERS) > LIMIT:
            _ANSWERS.clear()
        self.fast = FastMeta(torch, _ANSWERS) if FAST else None

    def key(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """A description of the call (hashable unless an argument is not), or None where a tensor is real."""
        try:
            return (func, _describe(self.torch.Tensor, args), _describe(self.torch.Tensor, kwargs) if kwargs else ())
        except TypeError:
            return None

    def run(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        key = self.key(func, args, kwargs)
        try:
            known = self.answers.get(key, None) if key is not None else _UNCACHEABLE
        except TypeError:  # an unhashable argument
            key, known = None, _UNCACHEABLE
        if known is not None and known is not _UNCACHEABLE:
            self.hits += 1
            return self._make(known, args)
        out = self.fast.run(func, args, kwargs) if self.fast is not None else func(*args, **kwargs)
        if known is None:
            self.answers[key] = self._remember(out, args, kwargs, key)
        return out

    def _make(self, known: Any, args: tuple[Any, ...]) -> Any:
        kind, several, outputs = known
        if kind == "argument":  # an in-place operator: the tensor it wrote, as it was
            return args[outputs]
        empty = self.torch.empty_strided
        made = tuple(None if o is None else empty(o[0], o[1], dtype=o[2], device="meta") for o in outputs)
        return made if several else made[0]

    def _remember(self, out: Any, args: tuple[Any, ...], kwargs: dict[str, Any], before: Any) -> Any:
        Tensor = self.torch.Tensor
        for position, a in enumerate(args):
            if out is a:  # in place: remembered only if the tensor's metadata did not change
                return ("argument", False, position) if _describe(Tensor, a) == before[1][position] else _UNCACHEABLE
        several = isinstance(out, tuple)
        outputs = out if several else (out,)
        inputs = [a for a in _tensors(Tensor, (args, kwargs))]
        storages = {_storage(t) for t in inputs}
        described = []
        for o in outputs:
            if o is None:
                described.append(None)
                continue
            if (type(o) is not Tensor or not o.is_meta or o.storage_offset() != 0 or _storage(o) in storages):
                return _UNCACHEABLE
            described.append((tuple(o.shape), o.stride(), o.dtype))
        return "new", several, tuple(described)


def _describe(Tensor: type, value: Any) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return (kind, value)  # 1 and 1.0 and True are different arguments
    if isinstance(value, Tensor):
        if not value.is_meta:
            raise TypeError("a real tensor")  # its values may matter: never remembered
        return (tuple(value.shape), value.stride(), value.storage_offset(), value.dtype)
    if isinstance(value, (list, tuple)):
        return tuple([_describe(Tensor, v) for v in value])
    if isinstance(value, dict):
        return tuple([(k, _describe(Tensor, v)) for k, v in value.items()])
    return (kind, value)


_SCALARS = {int, float, bool, str, type(None)}


def _tensors(Tensor: type, value: Any) -> list[Any]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(Tensor, v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(Tensor, v)]
    return []


def _storage(t: Any) -> int:
    try:
        return int(t.untyped_storage()._cdata)
    except (RuntimeError, NotImplementedError):
        return id(t)
