"""The network drawing's structure: blocks as nested clusters, each cluster a layered (Sugiyama) DAG.

`structure` decides, once, which box sits in which rank and in which order (ranking by longest path, a dummy
point in every rank a long edge crosses, barycentre sweeps against crossings). place.py turns that into
coordinates for one choice of open clusters, and svg.py draws them: `draw` writes one such drawing, the report
embeds one per view it offers. The browser never lays anything out.

Clusters follow layer names, as `--depth` does: `inception3a/b2/conv3x3` sits in `inception3a/b2`, inside
`inception3a`. A cluster with more than RUN_LIMIT children (a long chain without blocks) is cut into runs of
RUN_SIZE consecutive children, recursively, so that no level shows more than a few dozen boxes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from convaudit.core.analysis import Report
from convaudit.core.model import INPUT
from convaudit.errors import printable
from convaudit.render.formatting import fmt_shape
from convaudit.render.report.hyper import BOX_CHARS, box_line

RUN_LIMIT = 60
RUN_SIZE = 25
LABEL_CHARS = 32  # longer names are cut in the box (the full name is in its tooltip and the details)

# Geometry, in px. Text widths: DejaVu Sans Mono (and Menlo) advance 0.602 em per character; a little more
# is allowed, so that a label always fits its box.
GEOMETRY = {
    "char_w": 7.0,  # box names: 11.5px
    "sub_w": 6.1,  # the box's second line and the shapes on the edges: 10px
    "head_w": 6.4,  # cluster titles: 10.5px
    "pad_x": 10.0,
    "min_w": 64.0,
    "leaf_h": 36.0,
    "block_h": 40.0,
    "rank_gap": 30.0,
    "node_gap": 16.0,
    "frame_pad": 12.0,
    "frame_head": 22.0,
    "point_w": 6.0,  # dummy points and ports
    "iterations": 6,
}


@dataclass
class Node:
    id: str
    kind: str  # layer | block | run | input | dummy | in | out
    label: str = ""
    sub: str = ""
    layer: int | None = None  # index into report.layers (kind layer)
    w: float = 0.0
    h: float = 0.0


@dataclass
class Edge:
    source: str
    target: str
    layer: int  # the layer whose output it carries; -1 for the network input
    via: list[str] = field(default_factory=list)
    forward: bool = True  # False for an edge against the ranks (names that interleave blocks)


@dataclass
class Cluster:
    id: str
    name: str  # the name prefix it stands for, or a run's label
    kind: str  # root | block | run
    depth: int
    children: list[str] = field(default_factory=list)
    ranks: list[list[str]] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    layers: int = 0  # layers inside, at any depth
    label: str = ""  # block type(s), for the collapsed box


@dataclass
class Structure:
    nodes: dict[str, Node]
    clusters: dict[str, Cluster]
    parent: dict[str, str]  # node id -> the cluster that holds it
    shapes: dict[int, str]  # layer index (-1: the network input) -> its output shape, as the edges show it

    def boxes(self, cid: str, expanded: set[str] | frozenset[str]) -> int:
        """How many boxes a drawing of cluster `cid` shows when the clusters in `expanded` are open."""
        count = 0
        for row in self.clusters[cid].ranks:
            for item in row:
                if item in expanded and item in self.clusters:
                    count += self.boxes(item, expanded)
                elif self.nodes[item].kind not in ("dummy", "in", "out"):
                    count += 1
        return count

    def ancestors(self, node_id: str) -> list[str]:
        """The clusters holding node_id, innermost first, up to the root."""
        return _chain(node_id, self.parent)


def _cut(text: str, limit: int = LABEL_CHARS) -> str:
    text = printable(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _width(label: str, sub: str) -> float:
    g = GEOMETRY
    return max(g["min_w"], 2 * g["pad_x"] + max(g["char_w"] * len(label), g["sub_w"] * len(sub)))


def structure(report: Report) -> Structure:
    layers = report.layers
    separator = report.spec.separator or "/"
    nodes: dict[str, Node] = {}
    clusters: dict[str, Cluster] = {"B0": Cluster("B0", "", "root", 0)}
    by_prefix: dict[str, str] = {}
    parent: dict[str, str] = {}

    def add_child(cluster_id: str, node_id: str) -> None:
        clusters[cluster_id].children.append(node_id)
        parent[node_id] = cluster_id

    nodes["input"] = Node("input", "input", "input", "")
    add_child("B0", "input")
    for index, layer in enumerate(layers):
        parts = layer.name.split(separator)
        holder = "B0"
        for depth in range(1, len(parts)):
            prefix = separator.join(parts[:depth])
            if prefix not in by_prefix:
                cid = f"B{len(clusters)}"
                clusters[cid] = Cluster(cid, prefix, "block", depth)
                by_prefix[prefix] = cid
                add_child(holder, cid)
            holder = by_prefix[prefix]
        node_id = f"L{index}"
        nodes[node_id] = Node(node_id, "layer", layer=index)
        add_child(holder, node_id)

    _dissolve_single_children(clusters, parent)
    _cut_into_runs(clusters, parent, layers)
    _count_and_label(clusters, nodes, parent, report, separator)
    _wire_all(clusters, nodes, parent, report)
    for cluster in clusters.values():
        _rank_and_order(cluster, nodes)
    shapes = {-1: fmt_shape(report.input), **{i: fmt_shape(layer.output_shape) for i, layer in enumerate(layers)}}
    return Structure(nodes, clusters, parent, shapes)


def _dissolve_single_children(clusters: dict[str, Cluster], parent: dict[str, str]) -> None:
    """A block holding one thing adds a frame and nothing else: put the thing in its place."""
    for cid in list(clusters):
        cluster = clusters[cid]
        if cluster.kind == "root" or len(cluster.children) != 1:
            continue
        child = cluster.children[0]
        holder = clusters[parent[cid]]
        holder.children[holder.children.index(cid)] = child
        parent[child] = holder.id
        del parent[cid], clusters[cid]


def _cut_into_runs(clusters: dict[str, Cluster], parent: dict[str, str], layers: Any) -> None:
    for cid in list(clusters):
        cluster = clusters[cid]
        while len(cluster.children) > RUN_LIMIT:
            runs = []
            for start in range(0, len(cluster.children), RUN_SIZE):
                members = cluster.children[start: start + RUN_SIZE]
                if len(members) == 1:
                    runs.append(members[0])
                    continue
                rid = f"B{len(clusters)}"
                clusters[rid] = Cluster(rid, "", "run", cluster.depth + 1, members)
                for member in members:
                    parent[member] = rid
                runs.append(rid)
            cluster.children = runs
            for run in runs:
                parent[run] = cid


def _layer_indices(cid: str, clusters: dict[str, Cluster], nodes: dict[str, Node]) -> list[int]:
    found: list[int] = []
    stack = [cid]
    while stack:
        item = stack.pop()
        if item in clusters:
            stack.extend(reversed(clusters[item].children))
        elif nodes[item].layer is not None:
            found.append(nodes[item].layer)  # type: ignore[arg-type]
    return found


def _count_and_label(clusters: dict[str, Cluster], nodes: dict[str, Node], parent: dict[str, str],
                     report: Report, separator: str) -> None:
    g = GEOMETRY
    layers = report.layers
    for cid, cluster in clusters.items():
        inside = _layer_indices(cid, clusters, nodes)
        cluster.layers = len(inside)
        if cluster.kind == "run":
            first, last = layers[min(inside)].name, layers[max(inside)].name
            cluster.name = f"{first} … {last}"
        kinds: dict[str, None] = {}
        for index in inside:
            for instance, block in layers[index].spec.blocks:
                if instance == cluster.name:
                    kinds[block] = None
        cluster.label = "+".join(kinds) if kinds and cluster.kind == "block" else ""
        if cid == "B0":
            continue
        holder = clusters[parent[cid]]
        label = _short(cluster.name, holder.name, separator) if cluster.kind == "block" else cluster.name
        count = f"{cluster.layers} layer{'s' if cluster.layers != 1 else ''}"
        # the count is never cut: only the block's kind gives way
        kinds = _cut(cluster.label, BOX_CHARS - len(count) - 3) if cluster.label else ""
        node = Node(cid, cluster.kind, _cut(label), f"{kinds} · {count}" if kinds else count)
        node.w, node.h = _width(node.label, node.sub), g["block_h"]
        nodes[cid] = node
    for node in nodes.values():
        if node.kind == "layer":
            layer = layers[node.layer]  # type: ignore[index]
            holder = clusters[parent[node.id]]
            prefix = holder.name if holder.kind == "block" else ""
            node.label, node.sub = _cut(_short(layer.name, prefix, separator)), box_line(layer)
            node.w, node.h = _width(node.label, node.sub), g["leaf_h"]
        elif node.kind == "input":
            node.label, node.sub = "input", fmt_shape(report.input)
            node.w, node.h = _width(node.label, node.sub), g["leaf_h"]


def _short(name: str, prefix: str, separator: str) -> str:
    return name[len(prefix) + len(separator):] if prefix and name.startswith(prefix + separator) else name


def _chain(node_id: str, parent: dict[str, str]) -> list[str]:
    """The clusters holding node_id, innermost first, up to the root."""
    chain = []
    while node_id in parent:
        node_id = parent[node_id]
        chain.append(node_id)
    return chain


def _wire_all(clusters: dict[str, Cluster], nodes: dict[str, Node], parent: dict[str, str],
              report: Report) -> None:
    """Every input of every layer, as edges in the clusters it passes through: between two children of the
    innermost cluster holding both ends, from the in-port of each cluster it enters, to the out-port of each
    cluster it leaves."""
    names = {layer.name: index for index, layer in enumerate(report.layers)}
    seen: set[tuple[str, str, str, int]] = set()

    def add(cid: str, start: str, end: str, source: int) -> None:
        if (cid, start, end, source) not in seen:
            seen.add((cid, start, end, source))
            clusters[cid].edges.append(Edge(start, end, source))

    for target, layer in enumerate(report.layers):
        for source_name in layer.spec.inputs:
            source = -1 if source_name == INPUT else names.get(source_name, -1)
            from_chain = ["input" if source < 0 else f"L{source}", *_chain("input" if source < 0 else f"L{source}",
                                                                             parent)]
            to_chain = [f"L{target}", *_chain(f"L{target}", parent)]
            holders = set(from_chain[1:])
            j = next(k for k in range(1, len(to_chain)) if to_chain[k] in holders)
            common = to_chain[j]
            i = from_chain.index(common)
            add(common, from_chain[i - 1], to_chain[j - 1], source)
            for k in range(1, j):
                add(to_chain[k], f"{to_chain[k]}:in", to_chain[k - 1], source)
            for k in range(1, i):
                add(from_chain[k], from_chain[k - 1], f"{from_chain[k]}:out", source)
    for cid, cluster in clusters.items():
        for port in ("in", "out"):
            if any(f"{cid}:{port}" in (e.source, e.target) for e in cluster.edges):
                nodes[f"{cid}:{port}"] = Node(f"{cid}:{port}", port, w=GEOMETRY["point_w"])


def _rank_and_order(cluster: Cluster, nodes: dict[str, Node]) -> None:
    cid = cluster.id
    members = ([f"{cid}:in"] if f"{cid}:in" in nodes else []) + list(cluster.children)
    position = {m: i for i, m in enumerate(members)}
    successors: dict[str, list[str]] = {m: [] for m in members}
    indegree = {m: 0 for m in members}
    for edge in cluster.edges:
        if edge.target in position and edge.source in position:
            successors[edge.source].append(edge.target)
            indegree[edge.target] += 1
    # Kahn's order, ties by first appearance; members on a cycle (interleaved names) follow in their order.
    ready = sorted((m for m in members if indegree[m] == 0), key=position.__getitem__)
    order: list[str] = []
    while ready:
        item = ready.pop(0)
        order.append(item)
        for nxt in successors[item]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
                ready.sort(key=position.__getitem__)
    placed = set(order)
    order += [m for m in members if m not in placed]
    topo = {m: i for i, m in enumerate(order)}
    rank = {m: 0 for m in members}
    for item in order:
        for nxt in successors[item]:
            if topo[nxt] > topo[item]:
                rank[nxt] = max(rank[nxt], rank[item] + 1)
    out = f"{cid}:out"
    if out in nodes:
        rank[out] = max(rank.values(), default=0) + 1
        topo[out] = len(topo)
    depth = max(rank.values(), default=0) + 1
    ranks: list[list[str]] = [[] for _ in range(depth)]
    key: dict[str, float] = {}
    for item in sorted(rank, key=topo.__getitem__):
        ranks[rank[item]].append(item)
        key[item] = topo[item]
    # Edges from one source share their points (one line that branches off to each target), so that a source
    # read by many later layers (DenseNet's concatenations) is one line, not one per reader.
    shared: dict[tuple[str, int], str] = {}
    for edge in cluster.edges:
        low, high = rank[edge.source], rank[edge.target]
        if high <= low or topo[edge.target] < topo[edge.source]:
            edge.forward = False
            continue
        for r in range(low + 1, high):
            if (edge.source, r) not in shared:
                dummy = f"{cid}:d{len(shared)}"
                shared[edge.source, r] = dummy
                nodes[dummy] = Node(dummy, "dummy", w=GEOMETRY["point_w"])
                ranks[r].append(dummy)
                key[dummy] = topo[edge.source] + 0.5
            edge.via.append(shared[edge.source, r])
    for row in ranks:
        row.sort(key=key.__getitem__)
    cluster.ranks = _reduce_crossings(ranks, cluster.edges)


def segments(edges: list[Edge]) -> list[tuple[str, str]]:
    """The forward edges as pairs of items in adjacent ranks (a long edge passes its points), each pair once."""
    pairs: dict[tuple[str, str], None] = {}
    for edge in edges:
        if edge.forward:
            points = [edge.source, *edge.via, edge.target]
            pairs.update(dict.fromkeys(zip(points, points[1:], strict=False)))
    return list(pairs)


def _crossings(ranks: list[list[str]], pairs: list[tuple[str, str]]) -> int:
    index = {item: (r, i) for r, row in enumerate(ranks) for i, item in enumerate(row)}
    between: dict[int, list[tuple[int, int]]] = {}
    for a, b in pairs:
        between.setdefault(index[a][0], []).append((index[a][1], index[b][1]))
    total = 0
    for segs in between.values():
        if len(segs) > 400:
            continue  # too many to count cheaply; the sweeps still ran
        for i, (a1, b1) in enumerate(segs):
            for a2, b2 in segs[i + 1:]:
                if (a1 - a2) * (b1 - b2) < 0:
                    total += 1
    return total


def _reduce_crossings(ranks: list[list[str]], edges: list[Edge], sweeps: int = 4) -> list[list[str]]:
    """Barycentre heuristic: each rank sorted by the mean position of its neighbours, down then up; the order
    with the fewest crossings is kept."""
    pairs = segments(edges)
    up: dict[str, list[str]] = {}
    down: dict[str, list[str]] = {}
    for a, b in pairs:
        down.setdefault(a, []).append(b)
        up.setdefault(b, []).append(a)
    best, best_count = [list(r) for r in ranks], _crossings(ranks, pairs)
    current = [list(r) for r in ranks]
    for _ in range(sweeps):
        if best_count == 0:
            break
        for direction, neighbours, rows in ((1, up, range(1, len(current))),
                                            (-1, down, range(len(current) - 2, -1, -1))):
            for r in rows:
                where = {item: i for i, item in enumerate(current[r - direction])}

                def bary(item: str, i: int, where: dict[str, int] = where,
                         neighbours: dict[str, list[str]] = neighbours) -> float:
                    near = [where[n] for n in neighbours.get(item, []) if n in where]
                    return sum(near) / len(near) if near else float(i)

                keyed = [(bary(item, i), i, item) for i, item in enumerate(current[r])]
                current[r] = [item for _, _, item in sorted(keyed)]
            count = _crossings(current, pairs)
            if count < best_count:
                best, best_count = [list(r) for r in current], count
    return best
