"""How a tensor sits in storage: its shape, strides and the tensor whose storage it is (PyTorch's view rules).

The memory model follows these through the graph to know which outputs are views (they hold no memory of their
own) and which reshapes must copy.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class Strided:
    """A tensor as PyTorch holds it, batch included: its shape, strides, and the layer whose storage it is."""

    shape: tuple[int, ...]
    strides: tuple[int, ...]
    base: str  # the layer (or input) that owns the storage: itself unless it is a view


def contiguous(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def fresh(shape: tuple[int, ...], owner: str) -> Strided:
    """A new contiguous tensor that `owner` allocates."""
    return Strided(shape, contiguous(shape), owner)


def view_strides(shape: tuple[int, ...], strides: tuple[int, ...], new: tuple[int, ...]) -> tuple[int, ...] | None:
    """The strides of `new` as a view of a tensor, or None where PyTorch's reshape must copy
    (aten's computeStride: merged dimensions must be laid out one inside the other)."""
    result = [0] * len(new)
    view_d, chunk_stride = len(new) - 1, strides[-1]
    tensor_numel = view_numel = 1
    for d in range(len(shape) - 1, -1, -1):
        tensor_numel *= shape[d]
        if d == 0 or (shape[d - 1] != 1 and strides[d - 1] != tensor_numel * chunk_stride):
            while view_d >= 0 and (view_numel < tensor_numel or new[view_d] == 1):
                result[view_d] = view_numel * chunk_stride
                view_numel *= new[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return None
            if d > 0:
                chunk_stride, tensor_numel, view_numel = strides[d - 1], 1, 1
    return tuple(result) if view_d == -1 else None


def reshaped(source: Strided, shape: tuple[int, ...], owner: str) -> Strided:
    """A reshape (or flatten): a view of `source` where PyTorch can make one, else a contiguous copy."""
    strides = view_strides(source.shape, source.strides, shape)
    return Strided(shape, strides, source.base) if strides is not None else fresh(shape, owner)


def dense(layout: Strided) -> bool:
    """Non-overlapping and dense (a permutation of a contiguous tensor): element-wise ops keep its strides."""
    return _dense(layout.shape, layout.strides)


@functools.lru_cache(maxsize=1024)  # a network repeats a few shapes many times
def _dense(shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    dims = sorted((stride, size) for size, stride in zip(shape, strides, strict=True) if size != 1)
    step = 1
    for stride, size in dims:
        if stride != step:
            return False
        step *= size
    return True


def kept(source: Strided, shape: tuple[int, ...], owner: str) -> Strided:
    """An element-wise result: the input's strides when it is dense and of the same shape (TensorIterator keeps
    the input's memory format), else contiguous; always new storage."""
    if source.shape == shape and dense(source):
        return Strided(shape, source.strides, owner)
    return fresh(shape, owner)
