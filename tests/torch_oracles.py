"""PyTorch as the oracle for memory: the bytes autograd really keeps for backward. Imports torch lazily."""

from __future__ import annotations

from typing import Any


def saved_activation_bytes(model: Any, x: Any) -> int:
    """Bytes of the distinct storages autograd saves during `model(x)`, the model's own parameters and buffers
    left out (they are counted as parameters, not activations)."""
    from torch.autograd.graph import saved_tensors_hooks

    own = {p.untyped_storage().data_ptr() for p in model.parameters()}
    own |= {b.untyped_storage().data_ptr() for b in model.buffers()}
    saved: dict[int, int] = {}

    def pack(tensor: Any) -> Any:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in own:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with saved_tensors_hooks(pack, lambda tensor: tensor):
        model(x)
    return sum(saved.values())
