"""A partial trace: what a model ran before the operator where the meta-device trace had to stop.

    snapshot(recorder) -> Cut     taken by the recorder at the stop (importers.trace, with partial=True)
    cut.apply(recorder)           the run's records trimmed to the operators that returned before the stop
    cut.stopped(graph, problem, seen) -> the graph, saying where it stopped and which modules it never reached

A detection model stops at its first data-dependent operator (torchvision's R-CNN in the RPN's
`torch.where(keep)[0]`, RetinaNet at the boolean mask of its post-processing), after its transform, backbone,
FPN and heads have run: those are read and counted exactly; what follows is named, never counted as zero.

What is kept: the operators that returned before the outermost operator still running at the stop began (a
composite operator whose part stopped is dropped with its parts), and the tensors they read and made.

The graph's outputs are what the untraced rest of the forward could read: every activation still referenced
when the trace stopped (held by a variable, a list or a dict of the model's running frames, or an argument of the
stopped operator), found by reference count while those frames are alive. A tensor nothing references can never
be read again, so the rule leaves nothing out; it may keep a few more (a loop variable no later code reads).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from typing import Any

from convaudit.importers import opgraph as g

STOP_INPUT, HELD = "read at the stop", "held at the stop"  # the outputs' names


@dataclass(frozen=True)
class Cut:
    nodes: int  # operators kept: every one that returned before the outermost operator still running began
    tensors: int  # tensor records kept: those the kept operators (and the stopped one) read or made
    outputs: tuple[tuple[str, int], ...]  # (name, tensor id): what the rest of the forward could read

    def apply(self, recorder: Any) -> None:
        recorder.nodes = recorder.nodes[:self.nodes]
        recorder.tensors = recorder.tensors[:self.tensors]
        recorder.outputs = list(self.outputs)

    @staticmethod
    def stopped(graph: g.OpGraph, problem: g.TraceProblem, seen: dict[str, str]) -> g.OpGraph:
        return replace(graph, stopped=problem, unreached=unreached(graph.modules, seen))


def snapshot(recorder: Any) -> Cut:
    """The part of the run to keep, taken at the stop (the model's frames still alive)."""
    nodes = recorder.nodes
    # an operator's slot holds its arguments (a dict) until it returns, then its record (a tuple)
    first_open = next(index for index, node in enumerate(nodes) if isinstance(node, dict))
    reads = [ref.id for ref in g.refs_in(nodes[first_open].values())]
    referenced = [len(_registered(recorder.tensors)) - 1, *reads]
    for _info, named, outputs, _stack, writes, _tags, _parent in nodes[:first_open]:
        referenced += [ref.id for ref in g.refs_in(named.values())] + [ref.id for ref in g.refs_in(outputs)]
        referenced += writes
    kept = max(referenced) + 1  # tensors are recorded as first met: later ones belong to the stopped operator
    outputs = [(STOP_INPUT, tid) for tid in dict.fromkeys(reads) if _activation(recorder, tid)]
    outputs += [(HELD, tid) for tid in sorted(set(_held(recorder, kept)) - set(reads))]
    return Cut(first_open, kept, tuple(outputs))


def _registered(tensors: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The inputs, parameters and buffers, recorded before the run."""
    count = 0
    while count < len(tensors) and tensors[count][2] in (g.INPUT, g.PARAMETER, g.BUFFER):
        count += 1
    return tensors[:count]


def _activation(recorder: Any, tid: int) -> bool:
    return recorder.tensors[tid][2] == g.ACTIVATION


def _held(recorder: Any, kept: int) -> list[int]:
    """Activations (their latest version made before the stop) that something besides the recorder references."""
    baseline = _references({0: object()})[0]  # the recorder's own reference, and the count's
    held = []
    for key, count in _references(recorder.objects).items():
        tid = recorder.keys.get(key)
        if count <= baseline or tid is None:
            continue
        while tid is not None and tid >= kept:  # a version the stopped operator made: the one before it
            tid = recorder.tensors[tid][5]
        if tid is not None and _activation(recorder, tid):
            held.append(tid)
    return held


def _references(objects: dict[int, Any]) -> dict[int, int]:
    return {key: sys.getrefcount(value) for key, value in objects.items()}


def unreached(modules: dict[str, str], seen: dict[str, str]) -> tuple[str, ...]:
    """The outermost module paths of which nothing ran: `roi_heads` stands for its children. A container whose
    children ran (a ModuleList, which is never called itself) was reached."""
    reached = {path[:end] for path in seen for end in [len(path)] + [i for i, c in enumerate(path) if c == "."]}
    missing = [path for path in modules if path not in reached]
    return tuple(path for path in missing if path.rpartition(".")[0] in reached)
