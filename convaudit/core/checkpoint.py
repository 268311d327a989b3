"""Activation checkpointing's segments: which runs of layers torch.utils.checkpoint wraps (pure: no torch).

`--checkpoint` names them three ways:
    blocks           each top-level block instance of the spec (a `block:` entry, each `repeat` unit: ResNet's
                     layer3.1, ViT's encoder_layer_4), its layers one segment; layers outside blocks run as usual
    every:N          the layers in graph order, N at a time (the last run may be shorter)
    NAME[,NAME...]   each a layer, or a module-path prefix (layer3 holds layer3.0.conv1 …): its layers, where
                     consecutive, one segment

A segment runs as one checkpointed function: its arguments are the tensors its layers read from outside it
(`boundary_inputs`, saved whole for the backward), its results what later layers or the outputs read.
"""

from __future__ import annotations

import math

from convaudit.core.analysis import Report
from convaudit.errors import ConvauditError, printable

Segment = tuple[str, ...]


def checkpoint_segments(report: Report, how: str) -> tuple[Segment, ...]:
    """The segments `how` names (blocks, every:N, or layer and block names), each a run of consecutive layers."""
    names = [layer.name for layer in report.layers]
    if how == "blocks":
        keys = [layer.spec.blocks[0][0] if layer.spec.blocks else None for layer in report.layers]
        if not any(keys):
            raise ConvauditError(f"--checkpoint blocks: {printable(report.spec.name)} has no blocks; give "
                                 "every:N or layer names")
        return _runs(names, keys)
    if how.startswith("every:"):
        count = how.removeprefix("every:")
        if not count.isdigit() or int(count) < 1:
            raise ConvauditError(f"--checkpoint every:N takes a whole number of layers N ≥ 1, got "
                                 f"'{printable(count)}'")
        n = int(count)
        return tuple(tuple(names[i:i + n]) for i in range(0, len(names), n))
    separator = report.spec.separator
    wanted = [part.strip() for part in how.split(",") if part.strip()]
    if not wanted:
        raise ConvauditError("--checkpoint: give blocks, every:N, or layer and block names")
    keys = []
    for name in names:
        keys.append(next((prefix for prefix in wanted
                          if name == prefix or name.startswith(prefix + separator)), None))
    missing = [prefix for prefix in wanted if prefix not in keys]
    if missing:
        raise ConvauditError(f"--checkpoint: no layer or block named {', '.join(map(printable, missing))} in "
                             f"{printable(report.spec.name)}")
    return _runs(names, keys)


def _runs(names: list[str], keys: list[str | None]) -> tuple[Segment, ...]:
    """Consecutive layers with the same key, one segment each; layers keyed None stay outside."""
    segments: list[list[str]] = []
    previous = None
    for name, key in zip(names, keys, strict=True):
        if key is not None:
            if key != previous or not segments:
                segments.append([])
            segments[-1].append(name)
        previous = key
    return tuple(tuple(segment) for segment in segments)


def default_segments(report: Report) -> str:
    """What `fit` checkpoints: the spec's blocks, or, without blocks, every ⌈√L⌉ of its L layers (the classic
    √L schedule: about √L segments of √L layers)."""
    if any(layer.spec.blocks for layer in report.layers):
        return "blocks"
    return f"every:{max(1, math.isqrt(len(report.layers) - 1) + 1)}" if report.layers else "every:1"


def boundary_inputs(report: Report, segment: Segment) -> tuple[str, ...]:
    """The tensors a segment's layers read from outside it, in first-read order (its checkpoint's arguments)."""
    inside = set(segment)
    read: dict[str, None] = {}
    for name in segment:
        for source in report.layer(name).spec.inputs:
            if source not in inside:
                read[source] = None
    return tuple(read)


def segment_results(report: Report, segment: Segment) -> tuple[str, ...]:
    """The segment's outputs that later layers or the network's outputs read (its checkpoint's results)."""
    inside = set(segment)
    needed = {source for layer in report.layers if layer.name not in inside for source in layer.spec.inputs}
    needed |= set(report.spec.outputs)
    return tuple(name for name in segment if name in needed)

