"""Which clusters a drawing opens: the stage level, the depth levels, and one view per block.

A view is a root cluster and the set of clusters open inside it. `draw` draws one view; the report draws every
view it offers, in Python, and the page only swaps them:

- the stage level (the report's first view, and `draw`'s default): levels opened whole, outermost first, while
  the drawing holds at most STAGE_MOST boxes (ResNet-50's four stages and their sixteen bottlenecks), or
  STAGE_STRETCH when it held fewer than STAGE_FEWEST before; when it still holds fewer than STAGE_FEWEST,
  single blocks of the next level open too, in graph order;
- depth levels: every block down to depth d, for each d whose drawing holds at most LEVEL_MOST boxes;
- each block on its own, opened to its stage level inside (a drill-down, with a breadcrumb back).

Every view holds at most max(STAGE_STRETCH, LEVEL_MOST) boxes, and a block's own view holds its children at
least, so the report grows with the number of layers times the nesting depth, never faster.
"""

from __future__ import annotations

from dataclasses import dataclass

from convaudit.render.report.layout import Structure

STAGE_MOST = 60
STAGE_FEWEST = 20
STAGE_STRETCH = 80  # a whole level may take a view of fewer than STAGE_FEWEST boxes up to this many
LEVEL_MOST = 1500
OPEN_RUNS_UP_TO = 500  # layers: `draw --depth N` opens the runs of a chain this short too


@dataclass(frozen=True)
class View:
    root: str  # the cluster drawn: "B0" for the whole network
    expanded: frozenset[str]
    label: str


def _children(structure: Structure, cid: str) -> list[str]:
    return [item for row in structure.clusters[cid].ranks for item in row if item in structure.clusters]


def stage_level(structure: Structure, root: str = "B0") -> set[str]:
    expanded = {root}
    shown = structure.boxes(root, expanded)
    frontier = _children(structure, root)
    while frontier:
        gain = sum(structure.boxes(c, {c}) - 1 for c in frontier)
        if shown + gain > (STAGE_MOST if shown >= STAGE_FEWEST else STAGE_STRETCH):
            break
        expanded.update(frontier)
        shown += gain
        frontier = [child for c in frontier for child in _children(structure, c)]
    if shown < STAGE_FEWEST:
        for cid in frontier:
            gain = structure.boxes(cid, {cid}) - 1
            if shown + gain <= STAGE_MOST:
                expanded.add(cid)
                shown += gain
    return expanded


def down_to(structure: Structure, depth: int, root: str = "B0") -> set[str]:
    """Every cluster inside `root` down to `depth` levels below it."""
    expanded = {root}
    frontier = [root]
    for _ in range(depth):
        frontier = [child for c in frontier for child in _children(structure, c)]
        expanded.update(frontier)
    return expanded


def default_expanded(structure: Structure, depth: int | None) -> set[str]:
    """`draw`'s choice: the stage level, or every block down to `depth` (runs of a long chain open only when the
    network has at most OPEN_RUNS_UP_TO layers)."""
    if depth is None:
        return stage_level(structure)
    small = structure.clusters["B0"].layers <= OPEN_RUNS_UP_TO
    return {cid for cid in down_to(structure, depth)
            if structure.clusters[cid].kind != "run" or small}


def report_views(structure: Structure) -> tuple[list[View], dict[str, int]]:
    """The views the report offers, the stage level first, then the depth levels (those that differ), then one
    per block; and for each block, the index of its own view."""
    stage = frozenset(stage_level(structure))
    views = [View("B0", stage, "stage level")]
    seen = {stage}
    depth = 0
    while True:
        opened = frozenset(down_to(structure, depth))
        if structure.boxes("B0", opened) > LEVEL_MOST:
            break
        everything = len(opened) == len(structure.clusters)
        name = "every layer" if everything else "top level" if depth == 0 else f"depth {depth}"
        if opened == stage:
            views[0] = View("B0", stage, f"{name} (stage level)" if depth else name)
        elif opened not in seen:
            seen.add(opened)
            views.append(View("B0", opened, name))
        if len(opened) == len(structure.clusters):
            break
        depth += 1
    own: dict[str, int] = {}
    for cid in structure.clusters:
        if cid != "B0":
            own[cid] = len(views)
            views.append(View(cid, frozenset(stage_level(structure, cid)), structure.clusters[cid].name))
    return views, own
