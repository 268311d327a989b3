"""Coordinates for one drawing: the ranks of each open cluster along the main axis, the boxes of a rank across it.

Left to right (`horizontal`), a rank is a column and edges run rightwards; top to bottom, a rank is a row. Along
the main axis each rank is as thick as its thickest box; after it comes a zone for the shapes written on the
edges that leave it (nothing but straight lines run there, so no line crosses a label), then room for the
edges to turn. Across it, each box is pulled towards the mean of its neighbours, in order and a gap apart: a
least-squares placement (pool adjacent violators).

Left to right, a cluster longer than `limit` is wrapped into rows, like a line of text: the rows break where
the fewest edges cross, and an edge that crosses a break runs back under its row to the start of the next.
An open cluster sits in its parent as a frame: a title band on top, its interior inside, its in- and
out-ports on the frame's entry and exit sides.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from convaudit.render.report.layout import GEOMETRY, Edge, Structure, segments

POINTS = ("dummy", "in", "out")  # drawn as nothing: where an edge passes, or enters and leaves a cluster
BOXES = ("layer", "input", "block", "run")  # what an edge's shape label can start from
TURN = {True: 40.0, False: 20.0}  # room for an edge to change lane, after the label zone (horizontal: True)
RANK_GAP = {True: 40.0, False: 30.0}
LABEL_GAP = 4.0  # between a box's side and the shape written on its edge
RETURN_STEP = 6.0  # between parallel lines of the edges that cross one row break
POINT_GAP = 8.0  # between two lines passing side by side through a rank


@dataclass
class Placed:
    """One cluster's interior, its top-left at (0, 0). Per rank, along the main axis: where it starts, ends,
    and where the edges leaving it may start to turn (after their labels); its row when wrapped."""

    horizontal: bool
    x: dict[str, float]  # centres
    y: dict[str, float]
    size: dict[str, tuple[float, float]]
    inner: dict[str, Placed]  # the interiors of open clusters
    offset: dict[str, tuple[float, float]]  # where an open cluster's interior sits in its frame
    rank_of: dict[str, int]
    start: list[float]
    end: list[float]
    bend: list[float]
    row_of: list[int]  # per rank
    row_bottom: list[float]  # per row, across the main axis
    margin: float  # before the first rank of a row after the first: room for the edges that come back
    crossings: dict[int, list[tuple[str, str]]]  # row break after rank r: the segments that cross it
    width: float
    height: float

    def main(self, item: str) -> float:
        return self.x[item] if self.horizontal else self.y[item]

    def cross(self, item: str) -> float:
        return self.y[item] if self.horizontal else self.x[item]

    def extent(self, item: str) -> float:
        """An item's size along the main axis."""
        return self.size[item][0 if self.horizontal else 1]

    def xy(self, main: float, cross: float) -> tuple[float, float]:
        return (main, cross) if self.horizontal else (cross, main)


def labeled(structure: Structure, edge: Edge, open_: set[str] | dict[str, Placed]) -> bool:
    """An edge whose output shape is written beside its start: one leaving a box (not an open frame)."""
    return structure.nodes[edge.source].kind in BOXES and edge.source not in open_


def source_labels(structure: Structure, cid: str, open_: set[str] | dict[str, Placed]) -> dict[str, str]:
    """The text written where edges leave each box of a cluster: the shapes of the outputs they carry."""
    labels: dict[str, list[str]] = {}
    for edge in structure.clusters[cid].edges:
        if edge.forward and labeled(structure, edge, open_):
            shapes = labels.setdefault(edge.source, [])
            if structure.shapes[edge.layer] not in shapes:
                shapes.append(structure.shapes[edge.layer])
    return {item: " · ".join(shapes) for item, shapes in labels.items()}


def label_extent(text: str, horizontal: bool) -> float:
    """The room a shape label takes along the main axis: its width beside a horizontal edge, its height below
    a vertical one."""
    return LABEL_GAP + GEOMETRY["sub_w"] * len(text) + 4 if horizontal else 15.0


def frame_title(structure: Structure, cid: str) -> str:
    cluster = structure.clusters[cid]
    name = structure.nodes[cid].label if cid in structure.nodes else cluster.name
    return name + (f" · {cluster.label}" if cluster.label else "")


def frame_box(structure: Structure, cid: str, interior: Placed) -> tuple[tuple[float, float], tuple[float, float]]:
    """An open cluster's frame: its size, and where its interior sits in it. Never narrower than its title."""
    g = GEOMETRY
    title = 16 + g["head_w"] * len(frame_title(structure, cid))
    w = max(interior.width + 2 * g["frame_pad"], title)
    h = interior.height + g["frame_head"] + g["frame_pad"]
    return (w, h), ((w - interior.width) / 2, g["frame_head"])


Across = dict[tuple[str, bool, tuple[float, ...]], dict[str, float]]


def place(structure: Structure, cid: str, expanded: set[str], horizontal: bool = True,
          limit: float = math.inf, across: Across | None = None) -> Placed:
    """`across` keeps each cluster's positions across the main axis, which depend only on its boxes' sizes, for
    the next call (trying several row lengths re-places the same clusters)."""
    g = GEOMETRY
    across = {} if across is None else across
    cluster = structure.clusters[cid]
    ranks = cluster.ranks
    size: dict[str, tuple[float, float]] = {}
    inner: dict[str, Placed] = {}
    offset: dict[str, tuple[float, float]] = {}
    for row in ranks:
        for item in row:
            if item in expanded and item in structure.clusters:
                inner[item] = place(structure, item, expanded, horizontal, limit - 2 * g["frame_pad"], across)
                size[item], offset[item] = frame_box(structure, item, inner[item])
            elif structure.nodes[item].kind in POINTS:
                size[item] = (0.0, g["point_w"]) if horizontal else (g["point_w"], 0.0)
            else:
                size[item] = (structure.nodes[item].w, structure.nodes[item].h)
    along = 0 if horizontal else 1

    rank_of = {item: r for r, row in enumerate(ranks) for item in row}
    zone = [0.0] * len(ranks)
    for item, text in source_labels(structure, cid, inner).items():
        zone[rank_of[item]] = max(zone[rank_of[item]], label_extent(text, horizontal))
    start, end, bend = [], [], []
    cursor = 0.0
    for r, row in enumerate(ranks):
        start.append(cursor)
        end.append(cursor + max((size[item][along] for item in row), default=0.0))
        bend.append(end[-1] + zone[r])
        straight = r + 2 == len(ranks) and ranks[-1] == [f"{cid}:out"] and len(row) == 1  # on to the out-port
        cursor = end[-1] + (zone[r] + 8 if straight else max(RANK_GAP[horizontal], zone[r] + TURN[horizontal]))
    main = {item: (start[rank_of[item]] + end[rank_of[item]]) / 2 for item in rank_of}
    points = {item for item in size if structure.nodes[item].kind in POINTS}
    key = (cid, horizontal, tuple(size[item][1 - along] for row in ranks for item in row))
    if key not in across:
        across[key] = _across(cluster.edges, ranks, {item: size[item][1 - along] for item in size}, points)
    cross = dict(across[key])

    rows = _rows(start, end, bend, cluster.edges, ranks, limit, f"{cid}:out") if horizontal else [(0, len(ranks) - 1)]
    row_of = [0] * len(ranks)
    crossings: dict[int, list[tuple[str, str]]] = {}
    for index, (first, last) in enumerate(rows):
        for r in range(first, last + 1):
            row_of[r] = index
        if index + 1 < len(rows):
            crossings[last] = _crossing(cluster.edges, ranks, last, cross)
    widest = max((len(c) for c in crossings.values()), default=0)
    margin = 12 + RETURN_STEP * (widest - 1) if widest else 0.0
    row_bottom: list[float] = []
    length = 0.0
    top = 0.0
    for index, (first, last) in enumerate(rows):
        shift = start[first] - (margin if index else 0.0)
        members = [item for r in range(first, last + 1) for item in ranks[r]]
        low = min((cross[i] - size[i][1 - along] / 2 for i in members), default=0.0)
        high = max((cross[i] + size[i][1 - along] / 2 for i in members), default=0.0)
        if index:
            top += 18 + RETURN_STEP * (len(crossings[rows[index - 1][1]]) - 1)
        for item in members:
            main[item] -= shift
            cross[item] += top - low
        for r in range(first, last + 1):
            start[r], end[r], bend[r] = start[r] - shift, end[r] - shift, bend[r] - shift
        top += high - low
        row_bottom.append(top)
        tail = bend[last] + 10 + RETURN_STEP * (len(crossings[last]) - 1) if last in crossings else end[last]
        length = max(length, tail)
    x, y = (main, cross) if horizontal else (cross, main)
    width, height = (length, top) if horizontal else (top, length)
    return Placed(horizontal, x, y, size, inner, offset, rank_of, start, end, bend, row_of, row_bottom, margin,
                  crossings, width, height)


def _across(edges: list[Edge], ranks: list[list[str]], extent: dict[str, float], points: set[str]) -> dict[str, float]:
    """Positions across the main axis, the smallest at 0: each rank centred, then each box towards the mean of
    its neighbours in the rank before (sweeping forwards) and after (backwards). Lines passing side by side
    (two points) keep POINT_GAP apart; anything else keeps the node gap."""
    g = GEOMETRY

    def gap(a: str, b: str) -> float:
        return POINT_GAP if a in points and b in points else (extent[a] + extent[b]) / 2 + g["node_gap"]

    cross: dict[str, float] = {}
    for row in ranks:
        steps = [gap(a, b) for a, b in zip(row, row[1:], strict=False)]
        cursor = -sum(steps) / 2
        for item, step in zip(row, [*steps, 0.0], strict=True):
            cross[item] = cursor
            cursor += step
    if all(len(row) <= 1 for row in ranks):  # a chain: one line, nothing to align
        return {item: 0.0 for row in ranks for item in row}
    before: dict[str, list[str]] = {}
    after: dict[str, list[str]] = {}
    for a, b in segments(edges):
        after.setdefault(a, []).append(b)
        before.setdefault(b, []).append(a)
    for _ in range(int(g["iterations"])):
        for r in range(1, len(ranks)):
            _align(ranks[r], cross, gap, before)
        for r in range(len(ranks) - 2, -1, -1):
            _align(ranks[r], cross, gap, after)
    low = min((cross[i] - extent[i] / 2 for row in ranks for i in row), default=0.0)
    return {item: value - low for item, value in cross.items()}


def _crossing(edges: list[Edge], ranks: list[list[str]], rank: int, cross: dict[str, float]) -> list[tuple[str, str]]:
    """The segments from `rank` to the next, lowest source first (it turns back innermost)."""
    here = set(ranks[rank])
    found = [(a, b) for a, b in segments(edges) if a in here]
    return sorted(found, key=lambda pair: (-cross[pair[0]], cross[pair[1]]))


def _rows(start: list[float], end: list[float], bend: list[float], edges: list[Edge], ranks: list[list[str]],
          limit: float, out: str) -> list[tuple[int, int]]:
    """Consecutive ranks as rows no longer than `limit` (where one rank alone is not longer), broken as a
    paragraph is: the fewest rows, then the least squared slack (the last row's counting half) and the fewest
    edges crossing a break. The out-port never starts a row of its own."""
    count = len(ranks)
    if not count or end[-1] <= limit:
        return [(0, count - 1)] if count else [(0, -1)]
    where = {item: r for r, row in enumerate(ranks) for item in row}
    crossing = [0] * count
    for a, _ in segments(edges):
        crossing[where[a]] += 1

    def length(first: int, last: int) -> float:
        tail = end[last] if last == count - 1 else bend[last] + 10 + RETURN_STEP * (crossing[last] - 1)
        return tail - start[first] + (12 + RETURN_STEP * 2 if first else 0.0)

    best: list[tuple[float, float, int]] = [(0.0, 0.0, -1)] * (count + 1)  # (rows, badness, previous cut)
    for last in range(count):
        options = []
        for first in range(last, -1, -1):
            span = length(first, last)
            if span > limit and first < last:
                break
            slack = max(limit - span, 0.0) / limit
            badness = slack * slack * (0.5 if last == count - 1 else 1.0) + 0.05 * crossing[last] * (last < count - 1)
            alone = first == last == count - 1 and ranks[last] == [out]  # the out-port alone: only if nothing else
            rows, total, _ = best[first]
            options.append((rows + 1 + alone * count, total + badness, first))
        best[last + 1] = min(options)
    rows = []
    last = count
    while last > 0:
        first = best[last][2]
        rows.append((first, last - 1))
        last = first
    return rows[::-1]


def _align(row: list[str], cross: dict[str, float], gap: Callable[[str, str], float],
           neighbours: dict[str, list[str]]) -> None:
    if not row:
        return
    desired = []
    for item in row:
        near = neighbours.get(item, [])
        desired.append(sum(cross[n] for n in near) / len(near) if near else cross[item])
    gaps = [gap(a, b) for a, b in zip(row, row[1:], strict=False)]
    for item, value in zip(row, isotonic(desired, gaps), strict=True):
        cross[item] = value


def isotonic(desired: list[float], gaps: list[float]) -> list[float]:
    """Positions closest (least squares) to `desired`, in order, each at least gaps[i] after the one before:
    pool-adjacent-violators on desired[i] − offset[i]."""
    offsets = [0.0]
    for gap in gaps:
        offsets.append(offsets[-1] + gap)
    blocks: list[list[float]] = []  # [sum, count]
    for value, offset in zip(desired, offsets, strict=True):
        blocks.append([value - offset, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    result: list[float] = []
    for total, count in blocks:
        result += [total / count] * int(count)
    return [value + offset for value, offset in zip(result, offsets, strict=True)]


SLIDE = 16 / 9


def slide_limit(structure: Structure, root: str, expanded: set[str], margin: float, across: Across) -> float:
    """The row length whose wrapped drawing comes closest to a 16:9 slide (compared on a log scale)."""
    whole = place(structure, root, expanded, True, math.inf, across)
    if whole.width <= 0:
        return math.inf
    best, best_score = math.inf, abs(math.log((whole.width + 2 * margin) / (whole.height + 2 * margin) / SLIDE))
    for rows in range(2, 16):
        limit = whole.width / rows * 1.15
        placed = place(structure, root, expanded, True, limit, across)
        score = abs(math.log((placed.width + 2 * margin) / (placed.height + 2 * margin) / SLIDE))
        if score < best_score - 1e-9:
            best, best_score = limit, score
    return best
