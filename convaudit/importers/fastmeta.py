"""Exact output metadata for the meta kernels that cost the most, made without running them.

Most of torch's meta kernels are Python decompositions (batch norm's, layer norm's, hardswish's and every
element-wise reference are built from torch._refs and cost 0.1-2 ms a call, against 3 us for `torch.empty_strided`).
Each rule here gives an operator's outputs' shapes and strides, for the calls where that answer is certain, and
the outputs are made empty on meta; any other call runs the kernel (a rule returns None: "decline").

Dtypes are not derived: an operator's output dtypes depend on its arguments' dtypes, on which tensors are 0-dim
(type promotion) and on its other arguments, never on sizes or strides. So the first successful call with a
given signature (the operator; each tensor's dtype and 0-dimness; every other argument, except those a rule reads
as sizes, such as a convolution's stride or a reduction's dims, which it validates itself) runs the kernel, and its
output dtypes are kept in metacache's store. A signature whose kernel raised is never kept: its calls keep raising.

Strides. Both of torch's stride rules for element-wise operators (TensorIterator's reorder_dimensions and
torch._prims_common.compute_elementwise_output_logical_to_physical_perm) start from the contiguous order and swap
dimensions a > b only when an operand votes for it. Broadcast, an operand's stride is 0 where it is broadcast (it
abstains) and its own stride elsewhere. When every operand has exactly the contiguous strides of its own shape
(`_contiguous`, not merely is_contiguous(), which ignores size-1 dims) and no size is 0, stride[a] <= stride[b],
equal only when the operand's sizes after b up to a are 1, so the output's size at a is 1; a tie swaps only when
size[a] > size[b]. No operand votes for a swap, and the output is contiguous. The decompositions below build
their outputs from such operations (or from new_empty), which is why their rules ask for contiguous inputs.
Torch is imported by the caller (importers.metacache).
"""

from __future__ import annotations

from collections.abc import Callable
from math import prod
from typing import Any

SELF = "self"  # an in-place operator's answer: the tensor it wrote, unchanged
_DTYPES = object()  # metacache's store holds the learnt dtypes under (_DTYPES, signature)
_SIZES = object()  # stands for an argument a rule reads as sizes, left out of the signature

Layout = tuple[tuple[int, ...], tuple[int, ...]]  # (shape, strides) of one output
Rule = Callable[[tuple[Any, ...], dict[str, Any]], Any]  # -> tuple of Layouts, SELF, or None (decline)


class FastMeta:
    """Runs an operator on meta: by its rule where one applies and its signature's dtypes are known, else by its
    kernel (learning the dtypes)."""

    def __init__(self, torch: Any, store: dict[Any, Any]):
        self.torch = torch
        self.Tensor = torch.Tensor
        self.store = store
        self.answered = 0  # calls answered by a rule
        if not _RULES:
            _build_rules(torch)

    def run(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        found = _RULES.get(func, _UNKNOWN)
        if found is _UNKNOWN:
            found = _RULES[func] = _pointwise_rule(self.torch, func)
        if found is None:
            return func(*args, **kwargs)
        rule, sizes, several = found
        signature = self._signature(func, args, kwargs, sizes)
        if signature is None:
            return func(*args, **kwargs)
        dtypes = self.store.get(signature)
        if dtypes is not None:
            layout = rule(args, kwargs)
            if layout is SELF or (layout is not None and len(layout) == len(dtypes)):
                self.answered += 1
                if layout is SELF:
                    return args[0]
                empty = self.torch.empty_strided
                made = tuple(empty(shape, strides, dtype=dtype, device="meta")
                             for (shape, strides), dtype in zip(layout, dtypes, strict=True))
                return made if several else made[0]
        out = func(*args, **kwargs)
        if dtypes is None:
            self.store[signature] = self._dtypes(out, args)
        return out

    def _signature(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                   sizes: set[int | str]) -> Any:
        """What the output dtypes depend on, hashable; None where a tensor is not on meta or a value unhashable."""
        try:
            described = [_SIZES if position in sizes else self._describe(a) for position, a in enumerate(args)]
            described += [(name, _SIZES if name in sizes else self._describe(a)) for name, a in kwargs.items()]
            signature = (_DTYPES, func, tuple(described))
            hash(signature)
            return signature
        except TypeError:
            return None

    def _describe(self, value: Any) -> Any:
        if isinstance(value, self.Tensor):
            if not value.is_meta:
                raise TypeError("a real tensor")
            return (value.dtype, value.dim() == 0)
        if isinstance(value, (list, tuple)):
            return tuple(self._describe(v) for v in value)
        return (type(value), value)

    def _dtypes(self, out: Any, args: tuple[Any, ...]) -> Any:
        if args and out is args[0]:
            return ()  # in place: nothing to make, but the signature is known to succeed
        return tuple(o.dtype for o in out) if isinstance(out, tuple) else (out.dtype,)


_UNKNOWN = object()
# func -> (rule, the arguments it reads as sizes {position and name}, several outputs) or None; once per process
_RULES: dict[Any, Any] = {}


# ------------------------------------------------------------------------------------------------ helpers


def _contiguous(shape: tuple[int, ...]) -> tuple[int, ...]:
    """torch's contiguous strides (every size at least 1 here)."""
    strides = [1] * len(shape)
    for i in range(len(shape) - 2, -1, -1):
        strides[i] = strides[i + 1] * shape[i + 1]
    return tuple(strides)


def _plain(t: Any) -> tuple[int, ...] | None:
    """The shape of a tensor with the contiguous strides of its shape and no size 0 (see the module's note), or
    None."""
    shape = tuple(t.shape)
    if 0 in shape or t.stride() != _contiguous(shape):
        return None
    return shape


def _copied(t: Any) -> tuple[int, ...] | None:
    """The shape of a tensor that `contiguous()` gives with the contiguous strides (a copy, or itself with them)."""
    shape = tuple(t.shape)
    if 0 in shape or (t.is_contiguous() and t.stride() != _contiguous(shape)):
        return None
    return shape


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    if len(a) < len(b):
        a, b = b, a
    out = list(a)
    offset = len(a) - len(b)
    for i, size in enumerate(b):
        if size != out[offset + i] and size != 1:
            if out[offset + i] != 1:
                return None
            out[offset + i] = size
    return tuple(out)


def _argument(args: tuple[Any, ...], kwargs: dict[str, Any], position: int, name: str, default: Any = None) -> Any:
    return args[position] if position < len(args) else kwargs.get(name, default)


def _ints(value: Any) -> list[int] | None:
    if isinstance(value, (list, tuple)) and all(type(v) is int for v in value):
        return list(value)
    return None


def _same(shape: tuple[int, ...]) -> tuple[Layout, ...]:
    return ((shape, _contiguous(shape)),)


# ------------------------------------------------------------------------------------------------ rules


def _pointwise_rule(torch: Any, func: Any) -> Any:
    """Element-wise operators (torch.Tag.pointwise, and hardswish, which lacks the tag: the output has the inputs'
    broadcast shape): functional ones with one output, and in-place ones that write their first argument; not
    out= variants, not clone (its memory_format decides the strides), nothing with a generator or a list."""
    aten = torch.ops.aten
    if torch.Tag.pointwise not in func.tags and func not in (aten.hardswish.default, aten.hardswish_.default):
        return None
    schema = func._schema
    if len(schema.returns) != 1 or str(schema.returns[0].type) != "Tensor":
        return None
    if any(a.name in ("memory_format", "generator") or "[]" in str(a.type) for a in schema.arguments):
        return None
    written = [a for a in schema.arguments if a.alias_info is not None and a.alias_info.is_write]
    if not written:
        return (_elementwise(torch), set(), False)
    if len(written) == 1 and written[0] is schema.arguments[0] and schema.returns[0].alias_info is not None:
        return (_in_place(torch), set(), False)
    return None


def _elementwise(torch: Any) -> Rule:
    Tensor = torch.Tensor

    def rule(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        shape: tuple[int, ...] | None = ()
        for a in (*args, *kwargs.values()):
            if isinstance(a, Tensor):
                own = _plain(a)
                if own is None or shape is None:
                    return None
                shape = _broadcast(shape, own)
        return None if shape is None else _same(shape)

    return rule


def _in_place(torch: Any) -> Rule:
    """The kernel returns `self`, unchanged, unless it raises: for a broadcast shape other than self's (checked
    here), for dtypes (the signature), or for overlap: self with a broadcast (stride-0) dimension, or another
    operand sharing its storage (declined)."""
    Tensor = torch.Tensor

    def rule(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        target = args[0]
        if not isinstance(target, Tensor):
            return None
        shape = tuple(target.shape)
        if 0 in shape or any(stride == 0 and size > 1 for size, stride in zip(shape, target.stride(), strict=True)):
            return None
        storage = target.untyped_storage()._cdata
        broadcast: tuple[int, ...] | None = shape
        for a in (*args[1:], *kwargs.values()):
            if isinstance(a, Tensor):
                if broadcast is None or a.untyped_storage()._cdata == storage:
                    return None
                broadcast = _broadcast(broadcast, tuple(a.shape))
        return SELF if broadcast == shape else None

    return rule


def _batch_norm(training: str | None) -> Rule:
    """native_batch_norm (in eval: training False) and _native_batch_norm_legit_no_training: the output has the
    input's shape (the decomposition's element-wise arithmetic with the statistics as (C, 1, ...) operands), the
    saved mean and inverse standard deviation are the running statistics' shape, (C,)."""

    def rule(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if training is not None and _argument(args, kwargs, 5, training) is not False:
            return None
        shape = _plain(args[0])
        if shape is None or len(shape) < 2:
            return None
        channels = (shape[1],)
        weight, bias = _argument(args, kwargs, 1, "weight"), _argument(args, kwargs, 2, "bias")
        mean, var = _argument(args, kwargs, 3, "running_mean"), _argument(args, kwargs, 4, "running_var")
        if mean is None or var is None:
            return None
        if any(p is not None and _plain(p) != channels for p in (weight, bias, mean, var)):
            return None
        return ((shape, _contiguous(shape)), (channels, (1,)), (channels, (1,)))

    return rule


def _layer_norm(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """native_layer_norm(input, normalized_shape, weight, bias, eps): the output has the input's shape; mean and
    rstd keep the leading dimensions and have size 1 over the normalized ones. The decomposition first makes
    its tensors contiguous (a copy with contiguous strides unless is_contiguous()), so an input that is not
    is_contiguous() is as good as one with the contiguous strides (a transposed ConvNeXt activation)."""
    shape = _copied(args[0])
    normalized = _ints(_argument(args, kwargs, 1, "normalized_shape"))
    if shape is None or not normalized or len(normalized) > len(shape):
        return None
    kept = len(shape) - len(normalized)
    if list(shape[kept:]) != normalized:
        return None
    for p in (_argument(args, kwargs, 2, "weight"), _argument(args, kwargs, 3, "bias")):
        if p is not None and _copied(p) != shape[kept:]:
            return None
    stats = shape[:kept] + (1,) * len(normalized)
    return ((shape, _contiguous(shape)), (stats, _contiguous(stats)), (stats, _contiguous(stats)))


def _group_norm(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """native_group_norm(input, weight, bias, N, C, HxW, group, eps): the output has the input's shape; mean and
    rstd are (N, group)."""
    shape = _plain(args[0])
    sizes = [_argument(args, kwargs, position, name) for position, name in enumerate(("N", "C", "HxW", "group"), 3)]
    if shape is None or len(shape) < 2 or any(type(s) is not int for s in sizes):
        return None
    n, c, inner, groups = sizes
    if (n, c, inner) != (shape[0], shape[1], prod(shape[2:])) or groups < 1 or c % groups:
        return None
    for p in (_argument(args, kwargs, 1, "weight"), _argument(args, kwargs, 2, "bias")):
        if p is not None and _plain(p) != (c,):
            return None
    stats = (n, groups)
    return ((shape, _contiguous(shape)), (stats, _contiguous(stats)), (stats, _contiguous(stats)))


def _product(batched: bool, added: bool) -> Rule:
    """mm, bmm, and addmm and baddbmm (`self` + the product): (b,) m×k @ k×n -> (b,) m×n, contiguous whatever the
    factors' strides (the kernels make a new contiguous tensor; addmm's decomposition adds a contiguous `self`
    broadcast to the product's shape, which keeps it so)."""
    rank = 3 if batched else 2

    def rule(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        first, second = args[1:3] if added else args[:2]
        if first.dim() != rank or second.dim() != rank:
            return None
        left, right = tuple(first.shape), tuple(second.shape)
        if left[-1] != right[-2] or left[:-2] != right[:-2] or 0 in left or 0 in right:
            return None
        out = (*left[:-1], right[-1])
        if added:
            shape = _plain(args[0])
            if shape is None or len(shape) > rank or _broadcast(shape, out) != out:
                return None
        return _same(out)

    return rule


def _reduction(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """mean.dim, sum.dim_IntList, amax, amin over a non-empty list of distinct dimensions: those dimensions
    removed (or kept as size 1 with keepdim), contiguous."""
    shape = _plain(args[0])
    dims = _ints(_argument(args, kwargs, 1, "dim"))
    keep = _argument(args, kwargs, 2, "keepdim", False)
    if shape is None or not shape or not dims or type(keep) is not bool:
        return None
    if any(not -len(shape) <= d < len(shape) for d in dims):
        return None
    reduced = {d % len(shape) for d in dims}
    if len(reduced) != len(dims):
        return None
    out = tuple(1 if i in reduced else size for i, size in enumerate(shape) if keep or i not in reduced)
    return _same(out)


def _softmax(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """_softmax, _log_softmax, _safe_softmax along one dimension: the input's shape, contiguous."""
    shape = _plain(args[0])
    dim = _argument(args, kwargs, 1, "dim")
    if shape is None or type(dim) is not int or not -max(len(shape), 1) <= dim < max(len(shape), 1):
        return None
    return _same(shape)


def _roll(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """roll(self, shifts, dims) along as many dimensions as shifts (Swin's shifted windows): the decomposition
    rolls one dimension at a time with index_select, which makes a new tensor of the input's shape; contiguous
    from a contiguous input."""
    shape = _plain(args[0])
    shifts, dims = _ints(_argument(args, kwargs, 1, "shifts")), _ints(_argument(args, kwargs, 2, "dims", []))
    if shape is None or not shape or not shifts or dims is None or len(dims) != len(shifts):
        return None
    if any(not -len(shape) <= d < len(shape) for d in dims):
        return None
    return _same(shape)


def _convolution(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """convolution, not transposed: the meta kernel (meta_conv) checks the channels and that the dilated kernel
    fits the padded input, and makes `input.new_empty(shape)`, contiguous whatever the operands' strides. Each
    spatial size is (size + 2*padding - dilation*(kernel - 1) - 1) // stride + 1."""
    x, weight = args[0], args[1]
    names = ("stride", "padding", "dilation", "transposed", "output_padding", "groups")
    stride, padding, dilation, transposed, _, groups = (_argument(args, kwargs, p, n) for p, n in enumerate(names, 3))
    if transposed is not False or type(groups) is not int or groups < 1 or x.dim() < 3 or weight.dim() != x.dim():
        return None
    shape, kernel = tuple(x.shape), tuple(weight.shape)
    spatial = len(shape) - 2
    if 0 in shape or 0 in kernel or kernel[1] * groups != shape[1]:
        return None
    steps = [_per_axis(v, spatial) for v in (stride, padding, dilation)]
    if any(s is None for s in steps):
        return None
    out = [shape[0], kernel[0]]
    for size, k, s, p, d in zip(shape[2:], kernel[2:], *steps, strict=True):  # type: ignore[misc]
        if s < 1 or d < 1 or p < 0 or size + 2 * p < d * (k - 1) + 1:
            return None
        out.append((size + 2 * p - d * (k - 1) - 1) // s + 1)
    return _same(tuple(out))


def _per_axis(value: Any, spatial: int) -> list[int] | None:
    values = _ints(value)
    if values is None or len(values) not in (1, spatial):
        return None
    return values * spatial if len(values) == 1 else values


def _build_rules(torch: Any) -> None:
    aten = torch.ops.aten
    table = [  # (operator, rule, several outputs, the arguments it reads as sizes)
        (aten.native_batch_norm.default, _batch_norm("training"), True, ()),
        (aten._native_batch_norm_legit_no_training.default, _batch_norm(None), True, ()),
        (aten.native_layer_norm.default, _layer_norm, True, ("normalized_shape",)),
        (aten.native_group_norm.default, _group_norm, True, ("N", "C", "HxW", "group")),
        (aten.convolution.default, _convolution, False, ("stride", "padding", "dilation", "output_padding", "groups")),
        (aten.mm.default, _product(batched=False, added=False), False, ()),
        (aten.addmm.default, _product(batched=False, added=True), False, ()),
        (aten.bmm.default, _product(batched=True, added=False), False, ()),
        (aten.baddbmm.default, _product(batched=True, added=True), False, ()),
        (aten.roll.default, _roll, False, ("shifts", "dims")),
    ]
    table += [(func, _reduction, False, ("dim", "keepdim"))
              for func in (aten.mean.dim, aten.sum.dim_IntList, aten.amax.default, aten.amin.default)]
    table += [(func, _softmax, False, ("dim",))
              for func in (aten._softmax.default, aten._log_softmax.default, aten._safe_softmax.default)]
    for func, rule, several, names in table:
        positions = [i for i, a in enumerate(func._schema.arguments) if a.name in names]
        _RULES[func] = (rule, {*names, *positions}, several)
