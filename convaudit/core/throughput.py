"""Achieved throughput, arithmetic intensity and the roofline verdict (pure: no torch).

    achieved    = FLOPs / median time
    intensity   = FLOPs / bytes moved, bytes = (inputs + weights + output) · dtype bytes
    ridge       = peak FLOP/s / bandwidth (bytes/s): the intensity where the two limits meet
    bound       = "memory" below the ridge, "compute" at or above it
Layers without MACs are scored on their other ops (comparisons, adds), which
are not FLOPs: their verdict is almost always "memory".
"""

from __future__ import annotations

from dataclasses import dataclass

from convaudit.core.analysis import LayerResult
from convaudit.core.layers import elements


@dataclass(frozen=True)
class Ceiling:
    """The device's limits: dense-matmul FLOP/s and memory bandwidth, measured or given."""

    flops_per_s: float | None
    bytes_per_s: float | None
    source: str

    @property
    def ridge(self) -> float | None:
        if not self.flops_per_s or not self.bytes_per_s:
            return None
        return self.flops_per_s / self.bytes_per_s


def bytes_moved(layer: LayerResult) -> int:
    """Each input read once, each weight read once, the output written once (forward)."""
    activations = sum(elements(shape) for shape in layer.input_shapes) * layer.batch + layer.activations
    return (activations + layer.params) * layer.dtype_bytes


def work(layer: LayerResult) -> int:
    """The operations a layer's forward does: FLOPs for MAC layers, other ops otherwise."""
    return layer.flops or layer.other_ops


def intensity(layer: LayerResult) -> float:
    moved = bytes_moved(layer)
    return work(layer) / moved if moved else 0.0


def achieved(operations: int, seconds: float | None) -> float | None:
    if not seconds or not operations:
        return None
    return operations / seconds


def bound(layer: LayerResult, ceiling: Ceiling | None) -> str:
    ridge = ceiling.ridge if ceiling else None
    if ridge is None:
        return ""
    return "compute" if intensity(layer) >= ridge else "memory"


def attainable(layer: LayerResult, ceiling: Ceiling) -> float | None:
    """The roofline: min(peak, intensity × bandwidth)."""
    if not ceiling.flops_per_s:
        return None
    if not ceiling.bytes_per_s:
        return ceiling.flops_per_s
    return min(ceiling.flops_per_s, intensity(layer) * ceiling.bytes_per_s)
