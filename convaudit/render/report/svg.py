"""`convaudit draw`: the network drawing alone, as a standalone SVG (for slides and papers).

The same structure and coordinates as the report's drawing (layout.py); the report draws with report.js, this
module draws the same picture in Python, with every name escaped for XML.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape as _escape

from convaudit.core.analysis import Report
from convaudit.core.checks import Finding
from convaudit.core.layers import REGISTRY
from convaudit.errors import printable
from convaudit.render.formatting import fmt_shape
from convaudit.render.report.layout import GEOMETRY, Placed, Structure, place


def escape(text: str) -> str:
    """User text for XML: control characters as visible escapes (they are not allowed in XML), then &<>"' escaped."""
    return _escape(printable(text))


SEVERITY_RANK = {"error": 3, "warning": 2, "info": 1}


def category(layer_type: str) -> str:
    """The colour family of a layer type (the report's legend shows them): the type's own `category`."""
    return REGISTRY[layer_type].category


CSS = """
text{font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace;font-size:11.5px;fill:#1b1f24}
.sub{font-size:10px;fill:#57606a}.shape{font-size:10px;fill:#6e7781}
.edge{fill:none;stroke:#8c959f;stroke-width:1.3}.back{stroke-dasharray:4 3}
.box{stroke:#57606a;stroke-width:1}.conv{fill:#dbeafe}.dense{fill:#fde2c8}.pool{fill:#dcfce7}
.norm{fill:#ede9fe}.act{fill:#f3f4f6}.merge{fill:#fef9c3}.other{fill:#f6f8fa}.input{fill:#ffffff}
.block{fill:#eef2f7;stroke-width:1.6}.run{fill:#f6f8fa;stroke-dasharray:5 3;stroke-width:1.4}
.frame{fill:#fafbfc;stroke:#afb8c1;stroke-dasharray:3 2}
.head{font-size:10.5px;fill:#57606a;paint-order:stroke;stroke:#fafbfc;stroke-width:3px}
.error{stroke:#cf222e;stroke-width:2.4}.warning{stroke:#bc4c00;stroke-width:2.4}.info{stroke:#0969da;stroke-width:2}
.badge-error{fill:#cf222e}.badge-warning{fill:#bc4c00}.badge-info{fill:#0969da}
.badge-text{fill:#fff;font-size:9.5px;font-weight:bold}
"""


class Drawing:
    """Turns a placed structure into SVG elements, recursing into expanded clusters."""

    def __init__(self, report: Report, structure: Structure, findings: Iterable[Finding], expanded: set[str]):
        self.report = report
        self.structure = structure
        self.expanded = expanded
        index = {layer.name: i for i, layer in enumerate(report.layers)}
        self.findings: dict[int, list[Finding]] = {}
        for finding in findings:
            if finding.layer in index:
                self.findings.setdefault(index[finding.layer], []).append(finding)
        self.parts: list[str] = []  # in painting order: a cluster's edges, then its boxes and frames

    def severity(self, node_id: str) -> tuple[str, int, list[Finding]]:
        """The worst severity among the findings on a layer, or inside a collapsed block, and their count."""
        found = [f for i in self.layers_in(node_id) for f in self.findings.get(i, [])]
        if not found:
            return "", 0, []
        worst = max(found, key=lambda f: SEVERITY_RANK.get(f.severity, 0)).severity
        return worst, len(found), found

    def layers_in(self, node_id: str) -> list[int]:
        node = self.structure.nodes[node_id]
        if node.layer is not None:
            return [node.layer]
        if node_id not in self.structure.clusters:
            return []
        found: list[int] = []
        for row in self.structure.clusters[node_id].ranks:
            for item in row:
                found += self.layers_in(item)
        return found

    def shape_of(self, layer: int) -> str:
        return fmt_shape(self.report.input if layer < 0 else self.report.layers[layer].output_shape)

    def cluster(self, cid: str, placed: Placed, ox: float, oy: float) -> None:
        g = GEOMETRY
        cluster = self.structure.clusters[cid]
        nodes = self.structure.nodes

        def centre(item: str) -> tuple[float, float]:
            return ox + placed.x[item], oy + placed.y[item]

        def anchor(item: str, side: str) -> tuple[float, float]:
            cx, cy = centre(item)
            w, h = placed.size[item]
            if item == f"{cid}:in":
                return cx, oy - g["frame_head"]
            if item == f"{cid}:out":
                return cx, oy + placed.height + g["frame_pad"]
            top, bottom = cy - h / 2, cy + h / 2
            if item in placed.inner:
                port = f"{item}:{side}"
                inner = placed.inner[item]
                if port in inner.x:
                    return cx - w / 2 + g["frame_pad"] + inner.x[port], top if side == "in" else bottom
            return cx, top if side == "in" else bottom

        labels: set[tuple[float, float]] = set()
        for edge in cluster.edges:
            start, end = anchor(edge.source, "out"), anchor(edge.target, "in")
            points = [start]
            for dummy in edge.via:
                top, bottom = placed.band[placed.rank_of[dummy]]
                points += [(ox + placed.x[dummy], oy + top), (ox + placed.x[dummy], oy + bottom)]
            points.append(end)
            kind = "edge" if edge.forward else "edge back"
            self.parts.append(f'<path class="{kind}" d="{path(points)}"/>')
            if nodes[edge.source].kind in ("layer", "input", "block", "run") and edge.source not in placed.inner:
                if (start[0], start[1]) not in labels:
                    labels.add((start[0], start[1]))
                    self.parts.append(f'<text class="shape" x="{start[0] + 4:.1f}" y="{start[1] + 11:.1f}">'
                                      f"{escape(self.shape_of(edge.layer))}</text>")
        for row in cluster.ranks:
            for item in row:
                node = nodes[item]
                if node.kind in ("dummy", "in", "out"):
                    continue
                cx, cy = centre(item)
                w, h = placed.size[item]
                if item in placed.inner:
                    self.frame(item, cx - w / 2, cy - h / 2, w, h)
                    self.cluster(item, placed.inner[item], cx - w / 2 + g["frame_pad"],
                                 cy - h / 2 + g["frame_head"])
                else:
                    self.box(item, cx, cy, w, h)

    def frame(self, cid: str, left: float, top: float, w: float, h: float) -> None:
        cluster = self.structure.clusters[cid]
        head = self.structure.nodes[cid].label + (f" · {cluster.label}" if cluster.label else "")
        self.parts.append(f'<g class="cluster"><title>{escape(cluster.name)}</title>'
                          f'<rect class="frame" x="{left:.1f}" y="{top:.1f}" width="{w:.1f}" height="{h:.1f}" rx="6"/>'
                          f'<text class="head" x="{left + 8:.1f}" y="{top + 15:.1f}">{escape(head)}</text></g>')

    def box(self, item: str, cx: float, cy: float, w: float, h: float) -> None:
        node = self.structure.nodes[item]
        worst, count, found = self.severity(item)
        if node.kind == "layer":
            layer = self.report.layers[node.layer]  # type: ignore[index]
            classes, title = f"box {category(layer.type)}", f"{layer.name} ({layer.type})"
        elif node.kind == "input":
            classes, title = "box input", "input"
        else:
            cluster = self.structure.clusters[item]
            classes, title = f"box {node.kind}", f"{cluster.name}: {cluster.layers} layers"
        lines = [title]
        if worst:
            classes += f" {worst}"
            lines += [f"{f.severity}: {f.message}" for f in found[:5]]
            if len(found) > 5:
                lines.append(f"… and {len(found) - 5} more findings")
        parts = [f'<g><title>{"&#10;".join(escape(line) for line in lines)}</title>',
                 f'<rect class="{classes}" x="{cx - w / 2:.1f}" y="{cy - h / 2:.1f}" width="{w:.1f}" '
                 f'height="{h:.1f}" rx="{4 if node.kind in ("layer", "input") else 7}"/>',
                 f'<text x="{cx:.1f}" y="{cy - 3:.1f}" text-anchor="middle" font-weight="bold">'
                 f"{escape(node.label)}</text>",
                 f'<text class="sub" x="{cx:.1f}" y="{cy + 11:.1f}" text-anchor="middle">{escape(node.sub)}</text>']
        if worst:
            bx, by = cx + w / 2 - 2, cy - h / 2 + 2
            mark = str(count) if node.kind in ("block", "run") else "!"
            parts.append(f'<circle class="badge-{worst}" cx="{bx:.1f}" cy="{by:.1f}" r="7"/>'
                         f'<text class="badge-text" x="{bx:.1f}" y="{by + 3.5:.1f}" text-anchor="middle">'
                         f"{mark}</text>")
        parts.append("</g>")
        self.parts.append("".join(parts))


def path(points: list[tuple[float, float]]) -> str:
    """A polyline through the points, each change of column drawn as a vertical-tangent cubic."""
    (x0, y0), rest = points[0], points[1:]
    out = [f"M{x0:.1f},{y0:.1f}"]
    for x1, y1 in rest:
        if abs(x1 - x0) < 0.05:
            out.append(f"L{x1:.1f},{y1:.1f}")
        else:
            mid = (y0 + y1) / 2
            out.append(f"C{x0:.1f},{mid:.1f} {x1:.1f},{mid:.1f} {x1:.1f},{y1:.1f}")
        x0, y0 = x1, y1
    return " ".join(out)


OPEN_RUNS_UP_TO = 500  # layers: a drawing this small opens its runs too, one box per layer


def default_expanded(structure: Structure, depth: int | None) -> set[str]:
    """Blocks down to `depth` (all of them when None); runs of a long chain stay shut unless the whole network
    has at most OPEN_RUNS_UP_TO layers."""
    small = structure.clusters["B0"].layers <= OPEN_RUNS_UP_TO
    return {cid for cid, c in structure.clusters.items()
            if c.kind == "root" or (c.kind == "block" and (depth is None or c.depth <= depth))
            or (c.kind == "run" and small and depth is None)}


def network_svg(report: Report, structure: Structure, findings: Iterable[Finding],
                expanded: set[str] | None = None, margin: float = 16.0) -> str:
    """The whole drawing as one standalone SVG document."""
    expanded = default_expanded(structure, None) if expanded is None else expanded
    placed = place(structure, "B0", expanded)
    drawing = Drawing(report, structure, findings, expanded)
    drawing.cluster("B0", placed, margin, margin)
    width, height = placed.width + 2 * margin, placed.height + 2 * margin
    title = escape(report.spec.label + (f" — {report.spec.title}" if report.spec.title else ""))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.1f} {height:.1f}">\n<title>{title}</title>\n<style>{CSS}</style>\n'
            f'<rect width="100%" height="100%" fill="#ffffff"/>\n'
            + "\n".join(drawing.parts) + "\n</svg>\n")
