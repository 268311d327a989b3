// convaudit report: draws everything from the one JSON blob above. No network, no library.
// User text (layer names, titles, messages) only ever reaches the page through textContent or setAttribute.
"use strict";
(function () {
  // Integers beyond 2^53 come back as BigInt, read from their source text, so that no count is rounded.
  const DATA = JSON.parse(document.getElementById("data").textContent, function (key, value, context) {
    if (typeof value === "number" && !Number.isSafeInteger(value) && context && /^-?\d+$/.test(context.source)) {
      return BigInt(context.source);
    }
    return value;
  });
  const S = DATA.summary, G = DATA.graph, GEO = G.geometry, BENCH = DATA.bench;
  const LAYERS = S.layers;
  const SVGNS = "http://www.w3.org/2000/svg";

  // ------------------------------------------------------------ formatting
  const big = (v) => (typeof v === "bigint" ? v : BigInt(Math.round(Number(v))));
  const fmtInt = (v) => big(v).toLocaleString("en-US");
  function fmtSi(v) {
    const n = Number(v);
    for (const [f, p] of [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]]) {
      if (Math.abs(n) >= f) return (n / f).toPrecision(4).replace(/\.?0+$/, "") + " " + p;
    }
    return String(n);
  }
  function fmtBytes(v) {
    const b = big(v);
    const units = [[60n, "EiB"], [50n, "PiB"], [40n, "TiB"], [30n, "GiB"], [20n, "MiB"], [10n, "KiB"]];
    for (const [e, u] of units) {
      const f = 1n << e;
      if (b >= f) {
        const tenths = (b * 10n + f / 2n) / f; // rounded to one decimal
        return (tenths / 10n).toLocaleString("en-US") + "." + (tenths % 10n) + " " + u;
      }
    }
    return b + " B";
  }
  function fmtTime(s) {
    if (s >= 1) return s.toPrecision(3) + " s";
    if (s >= 1e-3) return (s * 1e3).toPrecision(3) + " ms";
    return (s * 1e6).toPrecision(3) + " µs";
  }
  const fmtShape = (shape) => shape.map(String).join("×");
  // part/whole as a fraction in [0, 1], exact enough for bars even when the counts exceed a double
  function ratio(part, whole) {
    const w = big(whole);
    return w === 0n ? 0 : Number((big(part) * 1000000n) / w) / 1000000;
  }
  const pct = (r) => (100 * r).toFixed(1) + "%";
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function sv(tag, attrs, text) {
    const node = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  const f1 = (v) => v.toFixed(1);

  // ------------------------------------------------------------ findings per layer and per block
  const indexOf = new Map(LAYERS.map((l, i) => [l.name, i]));
  const findingsOf = new Map();
  for (const f of DATA.findings) {
    if (f.layer !== null && indexOf.has(f.layer)) {
      const i = indexOf.get(f.layer);
      if (!findingsOf.has(i)) findingsOf.set(i, []);
      findingsOf.get(i).push(f);
    }
  }
  const RANK = { error: 3, warning: 2, info: 1 };
  const inside = new Map(); // node id -> findings at or below it
  for (const [i, list] of findingsOf) {
    let id = "L" + i;
    while (id !== undefined) {
      if (!inside.has(id)) inside.set(id, []);
      inside.get(id).push(...list);
      id = G.parent[id];
    }
  }
  function worst(list) {
    let w = "";
    for (const f of list) if (!w || RANK[f.severity] > RANK[w]) w = f.severity;
    return w;
  }

  // ------------------------------------------------------------ layout: layout.py's place(), line for line
  function segments(edges) {
    const pairs = [];
    for (const e of edges) {
      if (!e.forward) continue;
      const pts = [e.source, ...e.via, e.target];
      for (let i = 0; i + 1 < pts.length; i++) pairs.push([pts[i], pts[i + 1]]);
    }
    return pairs;
  }
  function isotonic(desired, gaps) {
    const offsets = [0];
    for (const g of gaps) offsets.push(offsets[offsets.length - 1] + g);
    const blocks = [];
    for (let i = 0; i < desired.length; i++) {
      blocks.push([desired[i] - offsets[i], 1]);
      while (blocks.length > 1 && blocks[blocks.length - 2][0] / blocks[blocks.length - 2][1] >
             blocks[blocks.length - 1][0] / blocks[blocks.length - 1][1]) {
        const [total, count] = blocks.pop();
        blocks[blocks.length - 1][0] += total;
        blocks[blocks.length - 1][1] += count;
      }
    }
    const result = [];
    for (const [total, count] of blocks) for (let k = 0; k < count; k++) result.push(total / count);
    return result.map((v, i) => v + offsets[i]);
  }
  function align(row, x, size, neighbours) {
    if (!row.length) return;
    const desired = row.map((item) => {
      const near = neighbours.get(item) || [];
      let sum = 0;
      for (const n of near) sum += x.get(n);
      return near.length ? sum / near.length : x.get(item);
    });
    const gaps = [];
    for (let i = 0; i + 1 < row.length; i++) gaps.push((size.get(row[i])[0] + size.get(row[i + 1])[0]) / 2 + GEO.node_gap);
    const placed = isotonic(desired, gaps);
    row.forEach((item, i) => x.set(item, placed[i]));
  }
  function place(cid, expanded) {
    const cluster = G.clusters[cid];
    const inner = new Map(), size = new Map();
    for (const row of cluster.ranks) {
      for (const item of row) {
        if (expanded.has(item) && G.clusters[item]) {
          const p = place(item, expanded);
          inner.set(item, p);
          size.set(item, [p.width + 2 * GEO.frame_pad, p.height + GEO.frame_head + GEO.frame_pad]);
        } else {
          size.set(item, [G.nodes[item].w, G.nodes[item].h]);
        }
      }
    }
    const y = new Map(), band = [], rankOf = new Map();
    let top = 0;
    cluster.ranks.forEach((row, r) => {
      let height = 0;
      for (const item of row) height = Math.max(height, size.get(item)[1]);
      for (const item of row) { y.set(item, top + height / 2); rankOf.set(item, r); }
      band.push([top, top + height]);
      top += height + GEO.rank_gap;
    });
    const height = cluster.ranks.length ? top - GEO.rank_gap : 0;
    const x = new Map();
    for (const row of cluster.ranks) {
      let total = 0;
      for (const item of row) total += size.get(item)[0];
      total += GEO.node_gap * (row.length - 1);
      let cursor = -total / 2;
      for (const item of row) { x.set(item, cursor + size.get(item)[0] / 2); cursor += size.get(item)[0] + GEO.node_gap; }
    }
    const up = new Map(), down = new Map();
    for (const [a, b] of segments(cluster.edges)) {
      if (!down.has(a)) down.set(a, []);
      down.get(a).push(b);
      if (!up.has(b)) up.set(b, []);
      up.get(b).push(a);
    }
    const ranks = cluster.ranks;
    for (let it = 0; it < GEO.iterations; it++) {
      for (let r = 1; r < ranks.length; r++) align(ranks[r], x, size, up);
      for (let r = ranks.length - 2; r >= 0; r--) align(ranks[r], x, size, down);
    }
    let left = Infinity, right = -Infinity;
    for (const row of ranks) for (const item of row) {
      left = Math.min(left, x.get(item) - size.get(item)[0] / 2);
      right = Math.max(right, x.get(item) + size.get(item)[0] / 2);
    }
    if (left === Infinity) { left = 0; right = 0; }
    for (const item of x.keys()) x.set(item, x.get(item) - left);
    return { x, y, size, inner, band, rankOf, width: right - left, height };
  }

  // ------------------------------------------------------------ drawing
  const expanded = new Set(["B0"]);
  let zoom = 1, selected = null;
  const MAX_VISIBLE = 4000; // boxes drawn at once; "Expand all" stops there
  const graphBox = document.getElementById("graph");

  function path(points) {
    let [x0, y0] = points[0];
    const out = ["M" + f1(x0) + "," + f1(y0)];
    for (const [x1, y1] of points.slice(1)) {
      if (Math.abs(x1 - x0) < 0.05) out.push("L" + f1(x1) + "," + f1(y1));
      else {
        const mid = (y0 + y1) / 2;
        out.push("C" + f1(x0) + "," + f1(mid) + " " + f1(x1) + "," + f1(mid) + " " + f1(x1) + "," + f1(y1));
      }
      x0 = x1; y0 = y1;
    }
    return out.join(" ");
  }
  function shapeOf(layer) { return fmtShape(layer < 0 ? S.input : LAYERS[layer].output_shape); }

  function drawCluster(svg, cid, p, ox, oy) {
    const cluster = G.clusters[cid];
    const centre = (item) => [ox + p.x.get(item), oy + p.y.get(item)];
    function anchor(item, side) {
      const [cx, cy] = centre(item);
      const [w, h] = p.size.get(item);
      if (item === cid + ":in") return [cx, oy - GEO.frame_head];
      if (item === cid + ":out") return [cx, oy + p.height + GEO.frame_pad];
      const top = cy - h / 2, bottom = cy + h / 2;
      if (p.inner.has(item)) {
        const port = item + ":" + side, inn = p.inner.get(item);
        if (inn.x.has(port)) return [cx - w / 2 + GEO.frame_pad + inn.x.get(port), side === "in" ? top : bottom];
      }
      return [cx, side === "in" ? top : bottom];
    }
    const labels = new Set();
    for (const e of cluster.edges) {
      const start = anchor(e.source, "out"), end = anchor(e.target, "in");
      const points = [start];
      for (const d of e.via) {
        const [t, b] = p.band[p.rankOf.get(d)];
        points.push([ox + p.x.get(d), oy + t], [ox + p.x.get(d), oy + b]);
      }
      points.push(end);
      svg.appendChild(sv("path", { class: e.forward ? "edge" : "edge back", d: path(points) }));
      const kind = G.nodes[e.source].kind;
      if (["layer", "input", "block", "run"].includes(kind) && !p.inner.has(e.source)) {
        const key = f1(start[0]) + "," + f1(start[1]);
        if (!labels.has(key)) {
          labels.add(key);
          svg.appendChild(sv("text", { class: "shape", x: f1(start[0] + 4), y: f1(start[1] + 11) }, shapeOf(e.layer)));
        }
      }
    }
    for (const row of cluster.ranks) {
      for (const item of row) {
        const node = G.nodes[item];
        if (["dummy", "in", "out"].includes(node.kind)) continue;
        const [cx, cy] = centre(item);
        const [w, h] = p.size.get(item);
        if (p.inner.has(item)) {
          drawFrame(svg, item, cx - w / 2, cy - h / 2, w, h);
          drawCluster(svg, item, p.inner.get(item), cx - w / 2 + GEO.frame_pad, cy - h / 2 + GEO.frame_head);
        } else {
          drawBox(svg, item, cx, cy, w, h);
        }
      }
    }
  }
  function drawFrame(svg, cid, left, top, w, h) {
    const c = G.clusters[cid];
    const g = sv("g", { class: "g-head", "data-id": cid });
    g.appendChild(sv("title", {}, c.name + " (click to close)"));
    g.appendChild(sv("rect", { class: "frame", x: f1(left), y: f1(top), width: f1(w), height: f1(h), rx: 6 }));
    g.appendChild(sv("text", { class: "head", x: f1(left + 8), y: f1(top + 15) }, "− " + G.nodes[cid].label + (c.label ? " · " + c.label : "")));
    g.addEventListener("click", (ev) => { if (ev.target.tagName !== "rect") toggle(cid); });
    g.querySelector("text").addEventListener("click", () => toggle(cid));
    svg.appendChild(g);
  }
  function drawBox(svg, item, cx, cy, w, h) {
    const node = G.nodes[item];
    const found = inside.get(item) || [];
    const sev = worst(found);
    let cls, title;
    if (node.kind === "layer") {
      const layer = LAYERS[node.layer];
      cls = "box " + G.categories[node.layer];
      title = layer.name + " (" + layer.type + ")";
    } else if (node.kind === "input") {
      cls = "box input"; title = "input " + fmtShape(S.input);
    } else {
      const c = G.clusters[item];
      cls = "box " + node.kind; title = c.name + ": " + c.layers + " layers (click to open)";
    }
    if (sev) {
      cls += " " + sev;
      title += found.slice(0, 5).map((f) => "\n" + f.severity + ": " + f.message).join("");
      if (found.length > 5) title += "\n… and " + (found.length - 5) + " more findings";
    }
    const g = sv("g", { class: "g-node" + (selected === item ? " selected" : ""), "data-id": item, "data-kind": node.kind });
    if (node.layer !== null) g.setAttribute("data-layer", LAYERS[node.layer].name);
    g.appendChild(sv("title", {}, title));
    g.appendChild(sv("rect", { class: cls, x: f1(cx - w / 2), y: f1(cy - h / 2), width: f1(w), height: f1(h),
                              rx: node.kind === "layer" || node.kind === "input" ? 4 : 7 }));
    const prefix = node.kind === "block" || node.kind === "run" ? "+ " : "";
    g.appendChild(sv("text", { x: f1(cx), y: f1(cy - 3), "text-anchor": "middle", "font-weight": "bold", class: "label" }, prefix + node.label));
    g.appendChild(sv("text", { class: "sub", x: f1(cx), y: f1(cy + 11), "text-anchor": "middle" }, node.sub));
    if (sev) {
      const bx = cx + w / 2 - 2, by = cy - h / 2 + 2;
      g.appendChild(sv("circle", { class: "badge-" + sev, cx: f1(bx), cy: f1(by), r: 7 }));
      g.appendChild(sv("text", { class: "badge-text", x: f1(bx), y: f1(by + 3.5), "text-anchor": "middle" },
                       node.kind === "block" || node.kind === "run" ? String(found.length) : "!"));
    }
    g.addEventListener("click", () => {
      if (node.kind === "block" || node.kind === "run") toggle(item);
      else if (node.kind === "layer") select(item);
    });
    svg.appendChild(g);
  }
  function visibleCount(cid) {
    let n = 0;
    for (const row of G.clusters[cid].ranks) for (const item of row) {
      if (expanded.has(item) && G.clusters[item]) n += visibleCount(item);
      else if (!["dummy", "in", "out"].includes(G.nodes[item].kind)) n += 1;
    }
    return n;
  }
  let lastPlaced = null;
  function render() {
    const margin = 16;
    const p = place("B0", expanded);
    lastPlaced = p;
    const width = p.width + 2 * margin, height = p.height + 2 * margin;
    const svg = sv("svg", { id: "graph-svg", width: f1(width * zoom), height: f1(height * zoom),
                            viewBox: "0 0 " + f1(width) + " " + f1(height) });
    drawCluster(svg, "B0", p, margin, margin);
    graphBox.replaceChildren(svg);
    const shown = visibleCount("B0");
    document.getElementById("graph-note").textContent =
      shown + " boxes shown for " + LAYERS.length + " layers" + (Object.keys(G.clusters).length > 1 ? "; blocks open and close on click" : "");
  }
  function toggle(cid) {
    if (expanded.has(cid)) {
      const drop = (id) => { expanded.delete(id); };
      drop(cid);
    } else expanded.add(cid);
    render();
  }
  function expandAll() {
    // breadth first, stopping before the drawing holds more than MAX_VISIBLE boxes
    const queue = ["B0"];
    while (queue.length) {
      const cid = queue.shift();
      for (const row of G.clusters[cid].ranks) for (const item of row) {
        if (!G.clusters[item] || expanded.has(item)) { if (G.clusters[item]) queue.push(item); continue; }
        expanded.add(item);
        if (visibleCount("B0") > MAX_VISIBLE) { expanded.delete(item); render(); return; }
        queue.push(item);
      }
    }
    render();
  }
  function reveal(layerIndex) {
    let id = G.parent["L" + layerIndex];
    while (id !== undefined) { expanded.add(id); id = G.parent[id]; }
    select("L" + layerIndex);
    const node = graphBox.querySelector('[data-id="L' + layerIndex + '"]');
    if (node) { // scroll the drawing, not the page
      const r = node.getBoundingClientRect(), b = graphBox.getBoundingClientRect();
      graphBox.scrollTop += r.top - b.top - b.height / 2 + r.height / 2;
      graphBox.scrollLeft += r.left - b.left - b.width / 2 + r.width / 2;
    }
  }
  // report.html#open=inception3a,inception3b&select=conv1 opens blocks and selects a layer (links, screenshots)
  function fromHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    const wanted = new Set((params.get("open") || "").split(",").filter(Boolean));
    for (const [cid, c] of Object.entries(G.clusters)) {
      if (!wanted.has(c.name)) continue;
      for (let id = cid; id !== undefined; id = G.parent[id]) expanded.add(id);
    }
    const chosen = params.get("select");
    if (chosen !== null && indexOf.has(chosen)) reveal(indexOf.get(chosen));
    else render();
  }
  window.convauditLayout = { place, expanded, render, reveal, toggle };

  // ------------------------------------------------------------ details of one layer
  function select(item) {
    selected = item;
    render();
    const layer = LAYERS[G.nodes[item].layer];
    const box = document.getElementById("details");
    box.replaceChildren(el("h3", { class: "mono" }, layer.name));
    const t = el("table");
    const rows = [["type", layer.type], ["from", layer.inputs.join(", ")],
      ["input", layer.input_shapes.map(fmtShape).join(" + ")], ["output", fmtShape(layer.output_shape)],
      ["params", fmtInt(layer.params)], ["MACs", fmtInt(layer.macs)], ["FLOPs", fmtInt(layer.flops)],
      ["backward FLOPs", fmtInt(layer.backward_flops)], ["other ops", fmtInt(layer.other_ops)],
      ["activation memory", fmtBytes(layer.activation_bytes)], ["saved for backward", fmtBytes(layer.saved_bytes)],
      ["receptive field", layer.rf.join("×")], ["jump", layer.jump.join("×")]];
    if (BENCH && BENCH.layers[layer.name]) {
      const b = BENCH.layers[layer.name];
      if (b.forward !== null) rows.push(["forward (median)", fmtTime(b.forward)]);
      if (b.backward !== null) rows.push(["backward (median)", fmtTime(b.backward)]);
    }
    for (const d of layer.divisions) rows.push(["division " + d.axis, d.formula + " (" + d.rounding + ")"]);
    for (const [k, v] of rows) { const tr = el("tr"); tr.append(el("td", {}, k), el("td", { class: "num" }, v)); t.appendChild(tr); }
    box.appendChild(t);
    for (const f of findingsOf.get(G.nodes[item].layer) || []) box.appendChild(findingBox(f, false));
  }

  // ------------------------------------------------------------ header, cards, legend
  function header() {
    document.getElementById("title").textContent = S.name + (S.variant ? "+" + S.variant : "") + (S.title ? " — " + S.title : "");
    document.getElementById("setting").textContent = "input " + fmtShape(S.input) + " · batch " + S.batch + " · " + S.dtype +
      (S.source ? " · " + S.source : "");
    const T = S.totals, M = S.memory;
    const counts = { error: 0, warning: 0, info: 0 };
    for (const f of DATA.findings) counts[f.severity] = (counts[f.severity] || 0) + 1;
    const cards = [["params", fmtInt(T.params), "≈ " + fmtSi(T.params)], ["MACs", fmtInt(T.macs), "≈ " + fmtSi(T.macs)],
      ["FLOPs = 2 × MACs", fmtInt(T.flops), "≈ " + fmtSi(T.flops)], ["layers", String(LAYERS.length), ""],
      ["training memory", fmtBytes(M.training_total_bytes), "with " + M.optimizer],
      ["inference memory", fmtBytes(M.inference_total_bytes), "peak at " + M.inference_peak_layer],
      ["findings", counts.error + " errors, " + counts.warning + " warnings", counts.info + " notes"]];
    const box = document.getElementById("cards");
    for (const [name, value, note] of cards) {
      const c = el("div", { class: "card" + (name === "findings" ? (counts.error ? " bad" : counts.warning ? " warn" : "") : "") });
      c.append(el("span", {}, name), el("b", {}, value), el("span", {}, note));
      box.appendChild(c);
    }
    const legend = document.getElementById("legend");
    const names = { conv: "convolution", dense: "linear / attention", pool: "pooling", norm: "normalisation",
                    act: "activation", merge: "add / concat", other: "other" };
    for (const [cat, text] of Object.entries(names)) {
      const s = el("span"); s.append(el("i", { class: cat }), document.createTextNode(text)); legend.appendChild(s);
    }
    const s = el("span", {}, "dashed box: a run of consecutive layers; ! marks a finding (hover for it)");
    legend.appendChild(s);
  }

  // ------------------------------------------------------------ shares by layer type
  function shares() {
    const box = document.getElementById("share-bars");
    const metrics = [["FLOPs", (l) => big(l.flops), S.totals.flops], ["parameters", (l) => big(l.params), S.totals.params],
                     ["activation memory", (l) => big(l.activation_bytes), S.totals.activation_bytes]];
    if (BENCH) {
      let total = 0;
      for (const l of LAYERS) { const b = BENCH.layers[l.name]; if (b && b.forward) total += b.forward; }
      metrics.push(["forward time", (l) => { const b = BENCH.layers[l.name]; return BigInt(Math.round(1e9 * ((b && b.forward) || 0))); },
                    BigInt(Math.round(1e9 * total))]);
    }
    const names = { conv: "convolution", dense: "linear", pool: "pooling", norm: "normalisation", act: "activation",
                    merge: "add/concat", other: "other" };
    for (const [title, value, total] of metrics) {
      const sums = {};
      LAYERS.forEach((l, i) => { const c = G.categories[i]; sums[c] = (sums[c] || 0n) + value(l); });
      const row = el("div", { class: "share", "data-metric": title });
      row.appendChild(el("div", {}, title));
      const stack = el("div", { class: "stack" });
      const parts = [];
      for (const [cat, sum] of Object.entries(sums)) {
        const r = ratio(sum, total);
        if (sum === 0n) continue;
        const part = el("div", { class: cat, style: "width:" + (100 * r).toFixed(3) + "%", title: names[cat] + " " + pct(r),
                                 "data-category": cat, "data-share": String(r) });
        if (r > 0.08) part.textContent = names[cat] + " " + pct(r);
        stack.appendChild(part);
        parts.push(names[cat] + " " + pct(r));
      }
      row.appendChild(stack);
      row.appendChild(el("div", { class: "share-legend" }, parts.join(" · ")));
      box.appendChild(row);
    }
  }

  // ------------------------------------------------------------ per-layer table, virtualised
  const ROW_H = 26;
  let rows = [];
  const columns = [
    ["layer", "minmax(140px,2fr)"], ["type", "90px"], ["output", "minmax(110px,1fr)"],
    ["params", "minmax(130px,1.2fr)"], ["FLOPs", "minmax(150px,1.4fr)"], ["act. memory", "minmax(110px,1fr)"],
    ["RF", "80px"]];
  if (BENCH) columns.push(["forward time", "minmax(120px,1fr)"]);
  const template = columns.map((c) => c[1]).join(" ");
  function groupKey(name, depth) { return name.split(G.separator).slice(0, depth).join(G.separator); }
  function buildRows(depth, filter) {
    const out = [];
    if (depth === 0) {
      LAYERS.forEach((l, i) => out.push({ name: l.name, type: l.type, output: fmtShape(l.output_shape), params: big(l.params),
        flops: big(l.flops), memory: big(l.activation_bytes), rf: l.rf.join("×"), time: timeOf([l]), index: i }));
    } else {
      const groups = new Map();
      LAYERS.forEach((l) => { const k = groupKey(l.name, depth); if (!groups.has(k)) groups.set(k, []); groups.get(k).push(l); });
      for (const [k, ls] of groups) {
        let params = 0n, flops = 0n, memory = 0n;
        for (const l of ls) { params += big(l.params); flops += big(l.flops); memory += big(l.activation_bytes); }
        const last = ls[ls.length - 1];
        out.push({ name: k, type: ls.length > 1 ? ls.length + " layers" : last.type, output: fmtShape(last.output_shape),
          params, flops, memory, rf: last.rf.join("×"), time: timeOf(ls), index: indexOf.get(last.name) });
      }
    }
    const q = filter.trim().toLowerCase();
    return q ? out.filter((r) => r.name.toLowerCase().includes(q) || r.type.toLowerCase().includes(q)) : out;
  }
  function timeOf(ls) {
    if (!BENCH) return null;
    let t = null;
    for (const l of ls) { const b = BENCH.layers[l.name]; if (b && b.forward !== null) t = (t || 0) + b.forward; }
    return t;
  }
  let maxes = {};
  function bar(kind, value, max, text) {
    const cell = el("div", { class: "bar " + kind });
    const r = kind === "time" ? (max ? value / max : 0) : ratio(value, max);
    cell.appendChild(el("span", { style: "width:" + (100 * r).toFixed(2) + "%" }));
    cell.appendChild(el("b", {}, text));
    return cell;
  }
  function renderRows() {
    const body = document.getElementById("table-body");
    const first = Math.max(0, Math.floor(body.scrollTop / ROW_H) - 10);
    const last = Math.min(rows.length, first + Math.ceil(body.clientHeight / ROW_H) + 20);
    const spacer = document.getElementById("table-spacer");
    spacer.style.height = rows.length * ROW_H + "px";
    const frag = document.createDocumentFragment();
    frag.appendChild(spacer);
    for (let i = first; i < last; i++) {
      const r = rows[i];
      const row = el("div", { class: "row" + (findingsOf.has(r.index) ? " hit" : ""), style: "top:" + i * ROW_H + "px;grid-template-columns:" + template, "data-row": r.name });
      row.appendChild(el("div", { class: "mono", title: r.name }, r.name));
      row.appendChild(el("div", { title: r.type }, r.type));
      row.appendChild(el("div", { class: "mono" }, r.output));
      row.appendChild(bar("params", r.params, maxes.params, r.params ? fmtInt(r.params) : ""));
      row.appendChild(bar("flops", r.flops, maxes.flops, r.flops ? fmtInt(r.flops) : ""));
      row.appendChild(bar("memory", r.memory, maxes.memory, fmtBytes(r.memory)));
      row.appendChild(el("div", { class: "mono" }, r.rf));
      if (BENCH) row.appendChild(bar("time", r.time || 0, maxes.time, r.time === null ? "" : fmtTime(r.time)));
      row.addEventListener("click", () => reveal(r.index));
      frag.appendChild(row);
    }
    body.replaceChildren(frag);
  }
  function table() {
    const head = document.getElementById("table-head");
    head.style.gridTemplateColumns = template;
    for (const [name] of columns) head.appendChild(el("div", {}, name));
    const depthSelect = document.getElementById("depth");
    let maxDepth = 1;
    for (const l of LAYERS) maxDepth = Math.max(maxDepth, l.name.split(G.separator).length);
    depthSelect.appendChild(el("option", { value: "0" }, "every layer"));
    for (let d = 1; d < Math.min(maxDepth, 6); d++) depthSelect.appendChild(el("option", { value: String(d) }, "blocks at depth " + d));
    const update = () => {
      rows = buildRows(Number(depthSelect.value), document.getElementById("filter").value);
      maxes = { params: 0n, flops: 0n, memory: 0n, time: 0 };
      for (const r of rows) {
        for (const k of ["params", "flops", "memory"]) if (r[k] > maxes[k]) maxes[k] = r[k];
        if (r.time !== null && r.time > maxes.time) maxes.time = r.time;
      }
      document.getElementById("row-count").textContent = rows.length + " rows; bars are shares of the largest row";
      renderRows();
    };
    depthSelect.addEventListener("change", update);
    document.getElementById("filter").addEventListener("input", update);
    let pending = false;
    document.getElementById("table-body").addEventListener("scroll", () => {
      if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; renderRows(); }); }
    });
    update();
  }

  // ------------------------------------------------------------ receptive field growth
  function num(v) {
    if (typeof v === "string" && v.includes("/")) { const [p, q] = v.split("/"); return Number(p) / Number(q); }
    return Number(v);
  }
  function rfChart() {
    const box = document.getElementById("rf-chart");
    const W = 900, H = 300, L = 60, R = 20, T = 14, B = 40;
    const values = LAYERS.map((l) => Math.max(num(l.rf[0]), num(l.rf[1])));
    const jumps = LAYERS.map((l) => Math.max(num(l.jump[0]), num(l.jump[1])));
    let top = 2;
    for (const v of values) if (Number.isFinite(v) && v > top) top = v;
    const ly = (v) => T + (H - T - B) * (1 - Math.log(Math.max(v, 1)) / Math.log(top));
    const lx = (i) => L + (W - L - R) * (LAYERS.length > 1 ? i / (LAYERS.length - 1) : 0.5);
    const svg = sv("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, class: "rf" });
    for (let p = 1; p <= top; p *= 10) {
      svg.appendChild(sv("line", { x1: L, x2: W - R, y1: f1(ly(p)), y2: f1(ly(p)), stroke: "#eaeef2" }));
      svg.appendChild(sv("text", { x: L - 6, y: f1(ly(p) + 4), "text-anchor": "end", class: "sub" }, fmtInt(p) + " px"));
    }
    const line = (vals, colour) => svg.appendChild(sv("path", { fill: "none", stroke: colour, "stroke-width": 1.8,
      d: vals.map((v, i) => (i ? "L" : "M") + f1(lx(i)) + "," + f1(ly(v))).join("") }));
    line(values, "#0969da");
    line(jumps, "#bc4c00");
    svg.appendChild(sv("text", { x: L, y: H - 10, class: "sub" }, "layer 1"));
    svg.appendChild(sv("text", { x: W - R, y: H - 10, class: "sub", "text-anchor": "end" }, "layer " + LAYERS.length));
    svg.appendChild(sv("text", { x: (L + W) / 2, y: H - 10, class: "sub", "text-anchor": "middle" },
                       "blue: receptive field (px, larger axis, log scale) · orange: jump (px between outputs)"));
    const last = LAYERS[LAYERS.length - 1];
    box.appendChild(svg);
    box.appendChild(el("p", { class: "muted" }, "Receptive field of the last layer (" + last.name + "): " + last.rf.join("×") +
      " px of the " + S.input.slice(1).join("×") + " input. Pixel i is centred at i; padding counts as input."));
  }

  // ------------------------------------------------------------ findings
  function findingBox(f, link) {
    const box = el("div", { class: "finding " + f.severity });
    const head = el("div");
    head.appendChild(el("b", {}, f.severity + " "));
    if (link && f.layer !== null && indexOf.has(f.layer)) {
      const a = el("a", { tabindex: "0" }, f.layer);
      a.addEventListener("click", () => { reveal(indexOf.get(f.layer)); graphBox.scrollIntoView({ block: "start" }); });
      head.appendChild(a);
      head.appendChild(document.createTextNode(": "));
    }
    head.appendChild(document.createTextNode(f.message));
    box.appendChild(head);
    if (f.file) box.appendChild(el("div", { class: "where mono" }, f.file + (f.line ? ":" + f.line : "") + (f.key ? ": " + f.key : "")));
    if (f.suggestions.length) {
      const ul = el("ul");
      for (const s of f.suggestions) ul.appendChild(el("li", {}, "fix: " + s));
      box.appendChild(ul);
    }
    return box;
  }
  function findings() {
    const box = document.getElementById("finding-list");
    if (!DATA.findings.length) { box.appendChild(el("p", {}, "No findings: every division is exact and every claim holds.")); return; }
    const show = (from) => {
      const more = box.querySelector(".more");
      if (more) more.remove();
      for (const f of DATA.findings.slice(from, from + 200)) box.appendChild(findingBox(f, true));
      if (DATA.findings.length > from + 200) {
        const b = el("button", { class: "more", type: "button" }, "show " + Math.min(200, DATA.findings.length - from - 200) + " more of " + DATA.findings.length);
        b.addEventListener("click", () => show(from + 200));
        box.appendChild(b);
      }
    };
    show(0);
  }

  // ------------------------------------------------------------ totals and conventions
  function totals() {
    const box = document.getElementById("totals-table");
    const t = el("table", { class: "kv" });
    const add = (k, v) => { const tr = el("tr"); tr.append(el("td", {}, k), el("td", { class: "num" }, v)); t.appendChild(tr); };
    const T = S.totals, M = S.memory;
    add("params", fmtInt(T.params) + " (trainable " + fmtInt(T.trainable_params) + ", non-trainable " + fmtInt(T.non_trainable_params) + ")");
    add("weights + biases", fmtInt(T.weights) + " + " + fmtInt(T.biases));
    add("MACs", fmtInt(T.macs));
    add("FLOPs", fmtInt(T.flops));
    add("backward FLOPs", fmtInt(T.backward_flops));
    add("other ops", fmtInt(T.other_ops));
    add("layer outputs", fmtInt(T.activations) + " values, " + fmtBytes(T.activation_bytes) + " at " + S.dtype);
    if (S.parts) {
      add("main path", "params " + fmtInt(S.parts.main.params) + ", MACs " + fmtInt(S.parts.main.macs));
      add("side outputs (" + S.parts.side_outputs.join(", ") + ")", "params " + fmtInt(S.parts.side.params) + ", MACs " + fmtInt(S.parts.side.macs));
    }
    add("training at " + M.dtype + " with " + M.optimizer, "params " + fmtBytes(M.params_bytes) + " + gradients " + fmtBytes(M.gradients_bytes) +
        " + optimizer state " + fmtBytes(M.optimizer_state_bytes) + " + saved activations " + fmtBytes(M.saved_activations_bytes) +
        " = " + fmtBytes(M.training_total_bytes));
    add("inference", "params " + fmtBytes(M.params_bytes) + " + peak activations " + fmtBytes(M.inference_peak_activation_bytes) +
        " (at " + M.inference_peak_layer + ") = " + fmtBytes(M.inference_total_bytes));
    if (BENCH) add("timings", "bench of " + BENCH.spec + " on " + BENCH.device + ", " + BENCH.dtype + ", batch " + BENCH.batch + ", median of " + BENCH.repeats + " runs");
    box.appendChild(t);
    box.appendChild(el("h3", {}, "Conventions"));
    const c = el("table", { class: "kv" });
    for (const [k, v] of Object.entries(S.conventions)) { const tr = el("tr"); tr.append(el("td", {}, k), el("td", {}, v)); c.appendChild(tr); }
    box.appendChild(c);
  }

  // ------------------------------------------------------------ start
  header();
  fromHash();
  document.getElementById("expand-all").addEventListener("click", expandAll);
  document.getElementById("collapse-all").addEventListener("click", () => { expanded.clear(); expanded.add("B0"); render(); });
  document.getElementById("zoom-in").addEventListener("click", () => { zoom = Math.min(3, zoom * 1.25); render(); });
  document.getElementById("zoom-out").addEventListener("click", () => { zoom = Math.max(0.2, zoom / 1.25); render(); });
  shares();
  table();
  rfChart();
  findings();
  totals();
  document.body.setAttribute("data-ready", "true");
})();
