"""Batch placement through tensor code: where the batch dimension goes when shapes are reshaped, permuted, indexed,
broadcast or reduced. Shapes leave the batch out (`Placement` says where it sits), so every formula counts one
sample, and the batch multiplies them all."""

from __future__ import annotations

from convaudit.core.layers.base import LEADING, LayerProblem, Placement, Shape, Tensor

BATCH = "B"  # the batch in a symbolic full shape: an int size, "B", or ("B", n) for a folded B·n


def symbolic(tensor: Tensor) -> list[int | str | tuple[str, int]]:
    """The full shape with the batch as a symbol: [B, 197, 768], [3, B, 12, 197, 64], [(B, 64), 49, 96]."""
    shape, placement = list(tensor.shape), tensor.placement
    if placement.dim is None:
        return list(shape)
    if placement.folded:
        shape[placement.dim] = (BATCH, shape[placement.dim])
        return shape
    return shape[:placement.dim] + [BATCH] + shape[placement.dim:]


def from_symbolic(full: list[int | str | tuple[str, int]]) -> Tensor:
    """A symbolic full shape back to a sample shape and the batch's placement (one batch at most)."""
    where = [i for i, size in enumerate(full) if not isinstance(size, int)]
    if not where:
        return Tensor(tuple(full), Placement(None))
    if len(where) > 1:
        raise LayerProblem("batch", "the result holds the batch twice")
    dim = where[0]
    if isinstance(full[dim], tuple):
        return Tensor(tuple(size[1] if isinstance(size, tuple) else size for size in full), Placement(dim, True))
    return Tensor(tuple(size for size in full if isinstance(size, int)), Placement(dim))


def broadcast_tensors(inputs: list[Tensor]) -> Tensor:
    """torch's broadcasting of full shapes, aligned on the right, each dimension equal or 1; the batch broadcasts
    against 1 only (a tensor without one, such as a parameter, is the same for every sample)."""
    fulls = [symbolic(tensor) for tensor in inputs]
    rank = max(len(full) for full in fulls)
    result: list[int | str | tuple[str, int]] = []
    for position in range(rank):
        sizes = {full[position - rank + len(full)] for full in fulls if position - rank + len(full) >= 0}
        wide = {size for size in sizes if size != 1}
        if len(wide) > 1:
            shown = " and ".join(sorted(_show(size) for size in wide))
            raise LayerProblem("merge", f"sizes {shown} do not broadcast (each dimension must match or be 1)")
        result.append(wide.pop() if wide else 1)
    return from_symbolic(result)


def _show(size: int | str | tuple[str, int]) -> str:
    if isinstance(size, tuple):
        return f"B·{size[1]}"
    return str(size)


def sample_dim(dim: int, tensor: Tensor, what: str) -> int:
    """A full-tensor dimension (as torch numbers it, negative from the end) as a sample dimension; refuses the
    batch's own dimension."""
    full_rank = len(tensor.shape) + (1 if tensor.placement.dim is not None and not tensor.placement.folded else 0)
    if not -full_rank <= dim < full_rank:
        raise LayerProblem("rank", f"{what} dimension {dim} is out of range for a tensor of {full_rank} dimensions")
    dim %= full_rank
    placement = tensor.placement
    if placement.dim is None or placement.folded:
        return dim
    if dim == placement.dim:
        raise LayerProblem("batch", f"{what} along the batch dimension ({dim}) mixes samples")
    return dim if dim < placement.dim else dim - 1


def without(tensor: Tensor, dims: set[int]) -> Placement:
    """The placement once sample dimensions `dims` are removed (indexed away, reduced without keepdim)."""
    placement = tensor.placement
    if placement.dim is None:
        return placement
    if placement.folded:
        if placement.dim in dims:
            raise LayerProblem("batch", f"the batch is folded into dimension {placement.dim}, which this removes")
        return Placement(placement.dim - sum(1 for d in dims if d < placement.dim), True)
    # unfolded: sample dimension d sits at full dimension d (before the batch) or d + 1 (after it)
    return Placement(placement.dim - sum(1 for d in dims if d < placement.dim))


def require_leading(type_name: str, tensors: list[Tensor]) -> list[Shape]:
    """The sample shapes, for a type that needs the batch first (convolutions, pools, channel indexing)."""
    for tensor in tensors:
        if tensor.placement != LEADING:
            where = "nowhere" if tensor.placement.dim is None else \
                f"folded into dimension {tensor.placement.dim}" if tensor.placement.folded else \
                f"at dimension {tensor.placement.dim}"
            raise LayerProblem("batch", f"{type_name} needs the batch as the first dimension; its input has it {where}")
    return [tensor.shape for tensor in tensors]
