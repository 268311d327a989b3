"""The network drawn as SVG, once, in Python: `draw` writes one view; the report embeds every view it offers.

Each box is a `<g class="n" data-id=…>` and each open block's frame a `<g class="f" data-id=…>`, so the page
handles clicks by event delegation on the drawing and never draws anything itself. Every name is escaped for
XML, control characters shown as escapes (printable()).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from html import escape as _escape
from importlib import resources

from convaudit.core.analysis import Report
from convaudit.core.checks import Finding
from convaudit.core.layers import REGISTRY
from convaudit.errors import printable
from convaudit.render.report.layout import GEOMETRY, Edge, Structure, structure
from convaudit.render.report.place import (
    LABEL_GAP,
    POINTS,
    RETURN_STEP,
    Across,
    Placed,
    frame_box,
    frame_title,
    place,
    slide_limit,
    source_labels,
)
from convaudit.render.report.views import View, default_expanded

SEVERITY_RANK = {"error": 3, "warning": 2, "info": 1}
MARGIN = 16.0
LAYOUTS = ("slide", "wide", "tall")  # `draw --layout`: rows wrapped to 16:9, one row, one column


def escape(text: str) -> str:
    """User text for XML: control characters as visible escapes (they are not allowed in XML), then &<>"' escaped."""
    return _escape(printable(text))


def category(layer_type: str) -> str:
    """The colour family of a layer type (the report's legend shows them): the type's own `category`."""
    return REGISTRY[layer_type].category


def drawing_css() -> str:
    return resources.files("convaudit.render.report").joinpath("drawing.css").read_text(encoding="utf-8")


def n(value: float) -> str:
    """A coordinate: one decimal, without a trailing .0."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


class Drawing:
    """Turns placed clusters into SVG elements; one Drawing serves every view of a report."""

    def __init__(self, report: Report, structure: Structure, findings: Iterable[Finding]):
        self.report = report
        self.structure = structure
        index = {layer.name: i for i, layer in enumerate(report.layers)}
        self.across: Across = {}  # positions across the main axis, per cluster and sizes: shared by the views
        self.found: dict[str, list[Finding]] = {}  # node id -> the findings at or inside it
        for finding in findings:
            if finding.layer in index:
                node = f"L{index[finding.layer]}"
                for holder in [node, *structure.ancestors(node)]:
                    self.found.setdefault(holder, []).append(finding)

    def view(self, view: View, horizontal: bool = True, limit: float | None = None) -> tuple[str, float, float]:
        """One view as SVG elements: the markup, its width and its height (margins included). `limit` is the
        longest row, left to right; None: as close to a 16:9 slide as the rows allow."""
        s, root, expanded = self.structure, view.root, set(view.expanded)
        if limit is None:
            limit = slide_limit(s, root, expanded, MARGIN, self.across) if horizontal else float("inf")
        parts: list[str] = []
        if root == "B0":
            placed = place(s, root, expanded, horizontal, limit, self.across)
            self.cluster(parts, root, placed, MARGIN, MARGIN, (0.0, 0.0, 0.0, 0.0))
            width, height = placed.width, placed.height
        else:
            placed = place(s, root, expanded, horizontal, limit - 2 * GEOMETRY["frame_pad"], self.across)
            (width, height), (dx, dy) = frame_box(s, root, placed)
            self.frame(parts, root, MARGIN, MARGIN, width, height)
            self.cluster(parts, root, placed, MARGIN + dx, MARGIN + dy, (MARGIN, MARGIN, width, height))
        return "".join(parts), width + 2 * MARGIN, height + 2 * MARGIN

    def cluster(self, parts: list[str], cid: str, p: Placed, ox: float, oy: float,
                frame: tuple[float, float, float, float]) -> None:
        """A cluster's interior with its top-left at (ox, oy), inside `frame` (left, top, w, h; the root: none)."""
        s = self.structure
        cluster = s.clusters[cid]
        h = p.horizontal
        left, top, fw, fh = frame
        # the frame's entry and exit sides, on the main axis, in this interior's coordinates
        near, far = (left - ox, left - ox + fw) if h else (top - oy, top - oy + fh)

        def side(item: str, leaving: bool) -> tuple[float, float]:
            """Where an edge leaves (or enters) an item, as (main, cross) in this interior."""
            if item == f"{cid}:in":
                return near, p.cross(item)
            if item == f"{cid}:out":
                return far, p.cross(item)
            main = p.main(item) + (1 if leaving else -1) * p.extent(item) / 2
            if item in p.inner:
                inner = p.inner[item]
                port = f"{item}:{'out' if leaving else 'in'}"
                w, hh = p.size[item]
                dx, dy = p.offset[item]
                corner = (p.x[item] - w / 2 + dx, p.y[item] - hh / 2 + dy)
                return main, (corner[1] + inner.y[port]) if h else (corner[0] + inner.x[port])
            return main, p.cross(item)

        pen = Pen(p, ox, oy)
        drawn: set[tuple[str, str]] = set()
        for edge in sorted(cluster.edges, key=lambda e: len(e.via)):  # the shortest first: the others branch off
            d = self.route(edge, p, side, pen, drawn)
            parts.append(f'<path class="edge{"" if edge.forward else " back"}" d="{d}"/>')
        for source, text in source_labels(s, cid, p.inner).items():
            main, cross = side(source, True)
            x, y = p.xy(main + LABEL_GAP, cross - 3) if h else p.xy(main + 11, cross + LABEL_GAP)
            parts.append(f'<text class="shape" x="{n(ox + x)}" y="{n(oy + y)}">{escape(text)}</text>')
        for row in cluster.ranks:
            for item in row:
                if s.nodes[item].kind in POINTS:
                    continue
                w, hh = p.size[item]
                x, y = ox + p.x[item] - w / 2, oy + p.y[item] - hh / 2
                if item in p.inner:
                    self.frame(parts, item, x, y, w, hh)
                    dx, dy = p.offset[item]
                    self.cluster(parts, item, p.inner[item], x + dx, y + dy, (x, y, w, hh))
                else:
                    self.box(parts, item, x, y, w, hh)

    def route(self, edge: Edge, p: Placed, side: Callable[[str, bool], tuple[float, float]], pen: Pen,
              drawn: set[tuple[str, str]]) -> str:
        """An edge's path: straight through each rank and its label zone, a curve to the next rank; across a row
        break, back under its row to the start of the next. Where it shares its first points with an edge
        already drawn (one source, several readers), it starts where it branches off."""
        items = [edge.source, *edge.via, edge.target]
        if not edge.forward:
            (m0, c0), (m1, c1) = side(items[0], True), side(items[-1], False)
            pen.move(m0, c0)
            pen.curve((m0 + 40, c0), (m1 - 40, c1), (m1, c1))
            return pen.done()
        first = 0
        while first < len(items) - 2 and (items[first], items[first + 1]) in drawn:
            first += 1
        drawn.update(zip(items[first:], items[first + 1:], strict=False))
        m0, c0 = side(items[0], True) if first == 0 else (p.end[p.rank_of[items[first]]], p.cross(items[first]))
        pen.move(m0, c0)
        for a, b in zip(items[first:], items[first + 1:], strict=False):
            ra, rb = p.rank_of[a], p.rank_of[b]
            dummy = self.structure.nodes[b].kind == "dummy"
            m1, c1 = (p.start[rb], p.cross(b)) if dummy else side(b, False)
            if p.row_of[ra] == p.row_of[rb]:
                pen.line(max(p.bend[ra], m0), c0)
                if abs(c1 - c0) < 0.05:
                    pen.line(p.start[rb], c1)
                else:
                    mid = (max(p.bend[ra], m0) + p.start[rb]) / 2
                    pen.curve((mid, c0), (mid, c1), (p.start[rb], c1))
            else:  # back under the row, to the start of the next one
                crossing = p.crossings[ra]
                k = crossing.index((a, b))
                turn = p.bend[ra] + 4 + k * RETURN_STEP
                under = p.row_bottom[p.row_of[ra]] + 9 + k * RETURN_STEP
                back = p.margin - 6 - (len(crossing) - 1 - k) * RETURN_STEP
                pen.rounded([(turn, c0), (turn, under), (back, under), (back, c1), (p.start[rb], c1)])
            pen.line(m1, c1)
            m0, c0 = m1, c1
            if dummy:
                m0 = p.end[rb]
                pen.line(m0, c0)
        return pen.done()

    def frame(self, parts: list[str], cid: str, left: float, top: float, w: float, h: float) -> None:
        name = self.structure.clusters[cid].name
        parts.append(f'<g class="f" data-id="{cid}"><title>{escape(name)}</title>'
                     f'<rect class="frame" x="{n(left)}" y="{n(top)}" width="{n(w)}" height="{n(h)}" rx="6"/>'
                     f'<text class="head" x="{n(left + 8)}" y="{n(top + 15)}">'
                     f"{escape(frame_title(self.structure, cid))}</text></g>")

    def box(self, parts: list[str], item: str, left: float, top: float, w: float, h: float) -> None:
        node = self.structure.nodes[item]
        found = self.found.get(item, [])
        if node.kind == "layer":
            layer = self.report.layers[node.layer]  # type: ignore[index]
            classes, title = f"box {category(layer.type)}", f"{layer.name} ({layer.type})"
        elif node.kind == "input":
            classes, title = "box input", f"input {node.sub}"
        else:
            cluster = self.structure.clusters[item]
            classes, title = f"box {node.kind}", f"{cluster.name}: {cluster.layers} layers"
        lines = [title]
        worst = ""
        if found:
            worst = max(found, key=lambda f: SEVERITY_RANK.get(f.severity, 0)).severity
            classes += f" {worst}"
            lines += [f"{f.severity}: {f.message}" for f in found[:5]]
            if len(found) > 5:
                lines.append(f"… and {len(found) - 5} more findings")
        cx, cy = left + w / 2, top + h / 2
        rx = 4 if node.kind in ("layer", "input") else 7
        parts.append(f'<g class="n" data-id="{item}"><title>{"&#10;".join(escape(line) for line in lines)}</title>'
                     f'<rect class="{classes}" x="{n(left)}" y="{n(top)}" width="{n(w)}" height="{n(h)}" rx="{rx}"/>'
                     f'<text class="label" x="{n(cx)}" y="{n(cy - 3)}">{escape(node.label)}</text>'
                     f'<text class="sub" x="{n(cx)}" y="{n(cy + 11)}">{escape(node.sub)}</text>')
        if worst:
            bx, by = left + w - 2, top + 2
            mark = str(len(found)) if node.kind in ("block", "run") else "!"
            parts.append(f'<circle class="badge-{worst}" cx="{n(bx)}" cy="{n(by)}" r="7"/>'
                         f'<text class="badge-text" x="{n(bx)}" y="{n(by + 3.5)}">{mark}</text>')
        parts.append("</g>")


class Pen:
    """Path data in a cluster's (main, cross) coordinates: straight runs along the main axis are merged into
    one line, so a long edge costs as many commands as it has turns, not as many as the ranks it crosses."""

    def __init__(self, p: Placed, ox: float, oy: float):
        self.p, self.ox, self.oy = p, ox, oy
        self.commands: list[str] = []
        self.here = (0.0, 0.0)
        self.run: tuple[float, float] | None = None  # the end of a straight run not yet written

    def at(self, main: float, cross: float) -> str:
        x, y = self.p.xy(main, cross)
        return f"{n(self.ox + x)},{n(self.oy + y)}"

    def move(self, main: float, cross: float) -> None:
        self.commands, self.here, self.run = [f"M{self.at(main, cross)}"], (main, cross), None

    def line(self, main: float, cross: float) -> None:
        if abs(cross - self.here[1]) < 0.05:  # along the main axis: extend the run
            if abs(main - self.here[0]) >= 0.05 or self.run is not None:
                self.run = (main, self.here[1])
            return
        self._flush()
        self.commands.append(f"L{self.at(main, cross)}")
        self.here = (main, cross)

    def curve(self, c1: tuple[float, float], c2: tuple[float, float], end: tuple[float, float]) -> None:
        self._flush()
        self.commands.append(f"C{self.at(*c1)} {self.at(*c2)} {self.at(*end)}")
        self.here = end

    def rounded(self, points: list[tuple[float, float]], radius: float = 4.0) -> None:
        """Straight lines through the points, each corner rounded."""
        self._flush()
        path = [self.here, *points]
        for i in range(1, len(path) - 1):
            (a0, b0), (a1, b1), (a2, b2) = path[i - 1], path[i], path[i + 1]
            r_in = min(radius, (abs(a1 - a0) + abs(b1 - b0)) / 2)
            r_out = min(radius, (abs(a2 - a1) + abs(b2 - b1)) / 2)
            before = (a1 - r_in * _sign(a1 - a0), b1 - r_in * _sign(b1 - b0))
            after = (a1 + r_out * _sign(a2 - a1), b1 + r_out * _sign(b2 - b1))
            self.commands.append(f"L{self.at(*before)} Q{self.at(a1, b1)} {self.at(*after)}")
        self.commands.append(f"L{self.at(*path[-1])}")
        self.here = path[-1]

    def _flush(self) -> None:
        if self.run is not None:
            self.commands.append(f"L{self.at(*self.run)}")
            self.here, self.run = self.run, None

    def done(self) -> str:
        self._flush()
        return " ".join(self.commands)


def _sign(value: float) -> float:
    return (value > 0) - (value < 0)


def svg_document(markup: str, width: float, height: float, title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="net" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {n(width)} {n(height)}">\n<title>{escape(title)}</title>\n<style>{drawing_css()}</style>\n'
            f'<rect width="100%" height="100%" fill="#ffffff"/>\n{markup}\n</svg>\n')


def network_svg(report: Report, structure: Structure, findings: Iterable[Finding],
                expanded: set[str] | None = None, layout: str = "slide") -> str:
    """The drawing as one standalone SVG document. `layout`: slide (left to right, rows wrapped towards 16:9),
    wide (left to right, one row) or tall (top to bottom, one column)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}")
    expanded = default_expanded(structure, None) if expanded is None else expanded
    drawing = Drawing(report, structure, findings)
    view = View("B0", frozenset(expanded | {"B0"}), "")
    markup, width, height = drawing.view(view, layout != "tall", None if layout == "slide" else float("inf"))
    title = report.spec.label + (f" — {report.spec.title}" if report.spec.title else "")
    return svg_document(markup, width, height, title)


def draw_svg(report: Report, findings: Iterable[Finding], depth: int | None = None, layout: str = "slide") -> str:
    """What `convaudit draw` writes: the stage level (or every block down to `depth`) in `layout`."""
    drawing = structure(report)
    return network_svg(report, drawing, findings, default_expanded(drawing, depth), layout)
