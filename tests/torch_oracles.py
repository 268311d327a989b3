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


def saved_bytes_by_layer(model: Any, x: Any, counted_as: dict[int, int] | None = None) -> dict[str, int]:
    """The same bytes, each storage put down to the spec layer running when autograd first saved it (a model built
    by convaudit.pytorch.builder: one module per layer); layers that save nothing new are left out. `counted_as`
    (storage address: bytes), which may be filled while the model runs, replaces the size of some storages."""
    from torch.autograd.graph import saved_tensors_hooks

    own = {p.untyped_storage().data_ptr() for p in model.parameters()}
    own |= {b.untyped_storage().data_ptr() for b in model.buffers()}
    running: list[str] = [""]
    handles = [model.module_for(name).register_forward_pre_hook(lambda m, a, name=name: running.__setitem__(0, name))
               for _key, name, _sources in model.plan]
    first: dict[int, tuple[str, int]] = {}

    def pack(tensor: Any) -> Any:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in own and storage.data_ptr() not in first:
            first[storage.data_ptr()] = (running[0], storage.nbytes())
        return tensor

    try:
        with saved_tensors_hooks(pack, lambda tensor: tensor):
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    by_layer: dict[str, int] = {}
    for address, (name, nbytes) in first.items():
        by_layer[name] = by_layer.get(name, 0) + (counted_as or {}).get(address, nbytes)
    return by_layer


def checkpointed(model: Any, report: Any, segments: Any) -> Any:
    """`model` (built by convaudit.pytorch.builder) run with each segment of layers under
    torch.utils.checkpoint(use_reentrant=False): its arguments the tensors it reads from outside, its results what
    is read after it."""
    from torch.utils.checkpoint import checkpoint

    from convaudit.core.checkpoint import boundary_inputs, segment_results
    from convaudit.core.model import INPUT

    steps = {name: (key, sources) for key, name, sources in model.plan}
    first = {segment[0]: segment for segment in segments}
    inside = {name for segment in segments for name in segment}

    def run_segment(segment: Any, arguments: tuple[str, ...], results: tuple[str, ...], *tensors: Any) -> Any:
        values = dict(zip(arguments, tensors, strict=True))
        for name in segment:
            key, sources = steps[name]
            values[name] = model.layers[key](*(values[source] for source in sources))
        return tuple(values[name] for name in results)

    def forward(x: Any) -> Any:
        values = {INPUT: x}
        for _key, name, _sources in model.plan:
            if name in first:
                segment = first[name]
                arguments, results = boundary_inputs(report, segment), segment_results(report, segment)
                made = checkpoint(run_segment, segment, arguments, results, *(values[a] for a in arguments),
                                  use_reentrant=False)
                values.update(zip(results, made, strict=True))
            elif name not in inside:
                key, sources = steps[name]
                values[name] = model.layers[key](*(values[source] for source in sources))
        return tuple(values[name] for name in model.outputs if name in values)

    forward.parameters, forward.buffers = model.parameters, model.buffers  # what saved_activation_bytes leaves out
    return forward
