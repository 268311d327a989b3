// convaudit report: shows what the JSON blob and the drawing's views (SVG, made in Python) hold. No network,
// no library, and no layout: every coordinate in the drawing was computed in Python; this script swaps views,
// handles clicks, and draws the tables and charts.
// User text (layer names, titles, messages) only ever reaches the page through textContent or setAttribute,
// after shown() made its control and bidi characters visible, as the terminal shows them.
"use strict";
(function () {
  // Integers beyond 2^53 come back as BigInt, read from their source text, so that no count is rounded.
  const DATA = JSON.parse(document.getElementById("data").textContent, function (key, value, context) {
    if (typeof value === "number" && !Number.isSafeInteger(value) && context && /^-?\d+$/.test(context.source)) {
      return BigInt(context.source);
    }
    return value;
  });
  const S = DATA.summary, G = DATA.graph, LAYERS = S.layers;
  const SVGNS = "http://www.w3.org/2000/svg";

  // ------------------------------------------------------------ text and numbers
  // convaudit.errors.printable(): characters of these Unicode categories become \x1b, \u202e, \U000e0001
  const HIDDEN = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Co}\p{Cs}\p{Cn}]/u;
  function shown(text) {
    text = String(text);
    if (!HIDDEN.test(text)) return text;
    let out = "";
    for (const ch of text) {
      if (ch === " " || !HIDDEN.test(ch)) { out += ch; continue; }
      const code = ch.codePointAt(0), hex = code.toString(16);
      out += code < 0x100 ? "\\x" + hex.padStart(2, "0") : code < 0x10000 ? "\\u" + hex.padStart(4, "0")
        : "\\U" + hex.padStart(8, "0");
    }
    return out;
  }
  const big = (v) => (typeof v === "bigint" ? v : Number.isFinite(Number(v)) ? BigInt(Math.round(Number(v))) : 0n);
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
    if (typeof s !== "number" || !Number.isFinite(s)) return "n/a";
    if (s >= 1) return s.toPrecision(3) + " s";
    if (s >= 1e-3) return (s * 1e3).toPrecision(3) + " ms";
    return (s * 1e6).toPrecision(3) + " µs";
  }
  const fmtShape = (shape) => shape.map(String).join("×");
  // part/whole as a fraction in [0, 1], exact enough for bars even when the counts exceed a double
  function ratio(part, whole) {
    if (typeof part === "number" || typeof whole === "number") {
      const r = Number(part) / Number(whole);
      return Number.isFinite(r) ? r : 0;
    }
    return whole === 0n ? 0 : Number((part * 1000000n) / whole) / 1000000;
  }
  const pct = (r) => (100 * r).toFixed(1) + "%";
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, shown(v));
    if (text !== undefined) node.textContent = shown(text);
    return node;
  }
  function sv(tag, attrs, text) {
    const node = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = shown(text);
    return node;
  }
  const f1 = (v) => v.toFixed(1);

  // ------------------------------------------------------------ findings and timings, keyed by name in Maps
  const indexOf = new Map(LAYERS.map((l, i) => [l.name, i]));
  const findingsOf = new Map();
  for (const f of DATA.findings) {
    if (f.layer !== null && indexOf.has(f.layer)) {
      const i = indexOf.get(f.layer);
      if (!findingsOf.has(i)) findingsOf.set(i, []);
      findingsOf.get(i).push(f);
    }
  }
  const BENCH = DATA.bench;
  const timings = new Map(BENCH ? BENCH.layers.map(([name, forward, backward]) => [name, { forward, backward }]) : []);
  const parentOf = new Map(Object.entries(G.parent));
  const clusterName = new Map(Object.entries(G.clusters));
  const ownView = new Map(Object.entries(G.own));

  // ------------------------------------------------------------ the drawing: views made in Python
  const graphBox = document.getElementById("graph");
  let current = 0, zoom = 1, selected = null;
  const viewSelect = document.getElementById("view");
  const levels = G.views.map((v, i) => [v, i]).filter(([v]) => v.root === "B0");
  const first = levels.length ? levels[0][1] : 0; // the stage level
  levels.sort((a, b) => a[0].boxes - b[0].boxes);
  for (const [v, i] of levels) viewSelect.appendChild(el("option", { value: String(i) }, v.label));
  viewSelect.appendChild(el("option", { value: "block", disabled: "" }, "a block on its own"));
  const template = (i) => document.getElementById("view-" + i);
  function holds(i, id) { return template(i).content.querySelector('[data-id="' + id + '"]') !== null; }

  function showView(i) {
    current = i;
    const svg = template(i).content.firstElementChild.cloneNode(true);
    svg.dataset.width = svg.getAttribute("width");
    svg.dataset.height = svg.getAttribute("height");
    graphBox.replaceChildren(svg);
    applyZoom();
    if (selected !== null) mark(selected);
    const view = G.views[i];
    viewSelect.value = view.root === "B0" ? String(i) : "block";
    crumbs(view.root);
    document.getElementById("graph-note").textContent = view.boxes + " boxes for " + LAYERS.length + " layers";
  }
  function applyZoom() {
    const svg = graphBox.firstElementChild;
    if (!svg) return;
    svg.setAttribute("width", f1(Number(svg.dataset.width) * zoom));
    svg.setAttribute("height", f1(Number(svg.dataset.height) * zoom));
  }
  function crumbs(root) {
    const nav = document.getElementById("crumbs");
    const chain = [];
    for (let id = root; id !== undefined && id !== "B0"; id = parentOf.get(id)) chain.unshift(id);
    nav.replaceChildren();
    if (!chain.length) return;
    const link = (text, target) => {
      const a = el("a", { tabindex: "0", href: "#" }, text);
      a.addEventListener("click", (ev) => { ev.preventDefault(); showView(target); });
      return a;
    };
    nav.appendChild(link(S.name, first));
    chain.forEach((id, k) => {
      nav.appendChild(document.createTextNode(" › "));
      nav.appendChild(k === chain.length - 1 ? el("b", {}, clusterName.get(id)) : link(clusterName.get(id), ownView.get(id)));
    });
  }
  function mark(i) {
    for (const g of graphBox.querySelectorAll(".n.selected")) g.classList.remove("selected");
    const g = graphBox.querySelector('[data-id="L' + i + '"]');
    if (g) g.classList.add("selected");
  }
  graphBox.addEventListener("click", (ev) => {
    const box = ev.target.closest(".n, .f");
    if (!box) return;
    const id = box.getAttribute("data-id");
    if (id.startsWith("L")) select(Number(id.slice(1)));
    else if (ownView.has(id) && G.views[current].root !== id) showView(ownView.get(id));
  });
  function reveal(i) {
    const id = "L" + i;
    if (!holds(current, id)) {
      let target = holds(first, id) ? first : null;
      const chain = [];
      for (let c = parentOf.get(id); c !== undefined && c !== "B0"; c = parentOf.get(c)) chain.unshift(c);
      for (const c of chain) if (target === null && holds(ownView.get(c), id)) target = ownView.get(c);
      if (target !== null) showView(target);
    }
    select(i);
    const node = graphBox.querySelector('[data-id="' + id + '"]');
    if (node) { // scroll the drawing, not the page
      const r = node.getBoundingClientRect(), b = graphBox.getBoundingClientRect();
      graphBox.scrollTop += r.top - b.top - b.height / 2 + r.height / 2;
      graphBox.scrollLeft += r.left - b.left - b.width / 2 + r.width / 2;
    }
  }
  // report.html#view=inception3a&select=inception3a/b2/conv3x3 shows a block on its own and picks a layer
  function fromHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    const wanted = params.get("view") || (params.get("open") || "").split(",").filter(Boolean).pop();
    showView(first);
    for (const [cid, name] of clusterName) if (name === wanted && ownView.has(cid)) showView(ownView.get(cid));
    const chosen = params.get("select");
    if (chosen !== null && indexOf.has(chosen)) reveal(indexOf.get(chosen));
  }

  // ------------------------------------------------------------ details of one layer
  function select(i) {
    selected = i;
    mark(i);
    const layer = LAYERS[i];
    const box = document.getElementById("details");
    box.replaceChildren(el("h3", { class: "mono" }, layer.name));
    const table = (rows) => {
      const t = el("table");
      for (const [k, v, note, title] of rows) {
        const tr = el("tr");
        tr.append(el("td", title ? { title } : {}, k), el("td", { class: "num" + (note ? " default" : "") }, v));
        t.appendChild(tr);
      }
      return t;
    };
    const fields = DATA.fields.types[layer.type] || [];
    const values = new Map(Object.entries(DATA.fields.values[i]));
    if (fields.length) {
      box.appendChild(el("p", { class: "kind" }, layer.type + " · hyper-parameters"));
      box.appendChild(table(fields.map(([name, fallback, doc]) => values.has(name)
        ? [name, values.get(name), false, doc] : [name, fallback + " (default)", true, doc])));
    }
    const rows = [["type", layer.type], ["from", layer.inputs.join(", ")],
      ["input", layer.input_shapes.map(fmtShape).join(" + ")], ["output", fmtShape(layer.output_shape)],
      ["params", fmtInt(layer.params)], ["MACs", fmtInt(layer.macs)], ["FLOPs", fmtInt(layer.flops)],
      ["backward FLOPs", fmtInt(layer.backward_flops)], ["other ops", fmtInt(layer.other_ops)],
      ["activation memory", fmtBytes(layer.activation_bytes)], ["saved for backward", fmtBytes(layer.saved_bytes)],
      ["receptive field", layer.rf.join("×")], ["jump", layer.jump.join("×")]];
    const t = timings.get(layer.name);
    if (t && t.forward !== null) rows.push(["forward (median)", fmtTime(t.forward)]);
    if (t && t.backward !== null) rows.push(["backward (median)", fmtTime(t.backward)]);
    for (const d of layer.divisions) rows.push(["division " + d.axis, d.formula + " (" + d.rounding + ")"]);
    box.appendChild(el("p", { class: "kind" }, "numbers"));
    box.appendChild(table(rows));
    for (const f of findingsOf.get(i) || []) box.appendChild(findingBox(f, false));
  }

  // ------------------------------------------------------------ header, cards, legend
  function header() {
    document.getElementById("title").textContent = shown(S.name + (S.variant ? "+" + S.variant : "") + (S.title ? " — " + S.title : ""));
    document.getElementById("setting").textContent = shown("input " + fmtShape(S.input) + " · batch " + S.batch + " · " + S.dtype +
      (S.source ? " · " + S.source : ""));
    const T = S.totals, M = S.memory;
    const counts = { error: 0, warning: 0, info: 0 };
    for (const f of DATA.findings) counts[f.severity] += 1;
    const partial = S.not_counted.length ? " · partial: see not counted" : "";
    const cards = [["params", fmtInt(T.params), "≈ " + fmtSi(T.params) + partial],
      ["MACs", fmtInt(T.macs), "≈ " + fmtSi(T.macs) + partial],
      ["FLOPs = 2 × MACs", fmtInt(T.flops), "≈ " + fmtSi(T.flops) + partial], ["layers", String(LAYERS.length), ""],
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
    for (const family of G.families) {
      const s = el("span");
      s.append(el("i", { class: family }), document.createTextNode(names[family] || family));
      legend.appendChild(s);
    }
    legend.appendChild(el("span", {}, "a box's second line: its type and the hyper-parameters that differ from the defaults (dw: depthwise); dashed box: a run of consecutive layers; ! marks a finding (hover for it)"));
  }

  // ------------------------------------------------------------ shares by layer type, coloured by family
  function shares() {
    const box = document.getElementById("share-bars");
    const metrics = [["FLOPs", (l) => big(l.flops), big(S.totals.flops)], ["parameters", (l) => big(l.params), big(S.totals.params)],
                     ["activation memory", (l) => big(l.activation_bytes), big(S.totals.activation_bytes)]];
    if (BENCH) {
      const forward = (l) => { const t = timings.get(l.name); return t && Number.isFinite(t.forward) ? t.forward : 0; };
      let total = 0;
      for (const l of LAYERS) total += forward(l);
      metrics.push(["forward time", forward, total]);
    }
    for (const [title, value, total] of metrics) {
      const sums = new Map(); // layer type -> [family, sum]
      LAYERS.forEach((l, i) => {
        if (!sums.has(l.type)) sums.set(l.type, [G.categories[i], typeof total === "bigint" ? 0n : 0]);
        sums.get(l.type)[1] += value(l);
      });
      const parts = [...sums].filter(([, [, sum]]) => Number(sum) > 0).map(([type, [family, sum]]) => [type, family, ratio(sum, total)])
        .sort((a, b) => G.families.indexOf(a[1]) - G.families.indexOf(b[1]) || b[2] - a[2]);
      const row = el("div", { class: "share", "data-metric": title });
      row.appendChild(el("div", { class: "share-title" }, title));
      const stack = el("div", { class: "stack" });
      for (const [type, family, r] of parts) {
        stack.appendChild(el("div", { class: family, style: "width:" + (100 * r).toFixed(3) + "%", title: type + " " + pct(r),
                                      "data-type": type, "data-category": family, "data-share": String(r) }, type + " " + pct(r)));
      }
      row.appendChild(stack);
      row.appendChild(el("div", { class: "share-legend" }, parts.map(([type, , r]) => type + " " + pct(r)).join(" · ")));
      box.appendChild(row);
    }
    fitShareLabels();
  }
  function fitShareLabels() { // a segment shows its name only where it fits whole; the line below names them all
    for (const part of document.querySelectorAll("#share-bars .stack > div")) {
      part.textContent = shown(part.getAttribute("title"));
      if (part.scrollWidth > part.clientWidth) part.textContent = "";
    }
  }

  // ------------------------------------------------------------ per-layer table, virtualised
  // Each column is at least as wide as its longest text, so that nothing in it is ever cut. Where the names and
  // two numbers do not fit side by side (a phone), each row takes two lines: the name, then the numbers.
  // Columns that do not fit are left out (their numbers are in the details of a row).
  let ROW_H = 26, rows = [];
  const CHAR_W = 7.7; // 12.5px monospace
  const widest = (texts) => texts.reduce((m, t) => Math.max(m, String(t).length), 0);
  const px = (chars) => Math.ceil(chars * CHAR_W + 10);
  const columns = [
    { name: "layer", chars: widest(LAYERS.map((l) => l.name).concat(["layer"])), grow: 2, key: "name" },
    { name: "FLOPs", chars: fmtInt(S.totals.flops).length, grow: 1.4, key: "flops" },
    { name: "output", chars: widest(LAYERS.map((l) => fmtShape(l.output_shape)).concat(["output"])), grow: 1, key: "output" },
    { name: "params", chars: fmtInt(S.totals.params).length, grow: 1.2, key: "params" },
    { name: "act. memory", chars: Math.max(11, fmtBytes(S.totals.activation_bytes).length), grow: 1, key: "memory" },
    { name: "RF", chars: widest(LAYERS.map((l) => l.rf.join("×")).concat(["RF"])), grow: 0, key: "rf" },
    { name: "type", chars: widest(LAYERS.map((l) => l.type).concat([LAYERS.length + " layers"])), grow: 0, key: "type" }];
  if (BENCH) columns.push({ name: "forward time", chars: 12, grow: 1, key: "time" });
  for (const c of columns) c.min = px(c.chars);
  let shownColumns = columns;
  function fitColumns() {
    const box = document.getElementById("table");
    const room = box.clientWidth - 16 - 16; // the rows' padding and the scroll bar
    const [name, ...numbers] = columns;
    const stacked = name.min + numbers[0].min + numbers[1].min > room;
    let used = stacked ? 0 : name.min;
    const fitting = numbers.filter((c) => { if (used + c.min > room) return false; used += c.min; return true; });
    shownColumns = [name, ...fitting];
    const track = (c) => "minmax(" + c.min + "px," + (c.grow ? c.grow + "fr" : c.min + "px") + ")";
    const template = (stacked ? fitting : shownColumns).map(track).join(" ");
    box.classList.toggle("stacked", stacked);
    const nameLines = stacked ? Math.min(3, Math.ceil(name.min / room)) : 0; // a long name wraps, whole
    ROW_H = stacked ? 28 + 16 * nameLines : 26;
    box.style.setProperty("--row-h", ROW_H + "px");
    box.dataset.template = template;
    const head = document.getElementById("table-head");
    head.style.gridTemplateColumns = template;
    head.replaceChildren(...shownColumns.map((c) => el("div", {}, c.name)));
    const left = columns.length - shownColumns.length;
    document.getElementById("hidden-columns").textContent = left ? left + " columns left out at this width: click a row for all its numbers" : "";
  }
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
    for (const l of ls) { const b = timings.get(l.name); if (b && Number.isFinite(b.forward)) t = (t || 0) + b.forward; }
    return t;
  }
  let maxes = {};
  function bar(kind, value, max, text) { // the number, and under it a bar that never covers it
    const cell = el("div", { class: "bar " + kind });
    cell.appendChild(el("b", {}, text));
    const r = kind === "time" ? (max ? value / max : 0) : ratio(value, max);
    cell.appendChild(el("span", { style: "width:" + (100 * r).toFixed(2) + "%" }));
    return cell;
  }
  function cell(c, r) {
    if (c.key === "name") return el("div", { class: "mono", title: r.name }, r.name);
    if (c.key === "type") return el("div", { title: r.type }, r.type);
    if (c.key === "output" || c.key === "rf") return el("div", { class: "mono" }, r[c.key]);
    if (c.key === "time") return bar("time", r.time || 0, maxes.time, r.time === null ? "" : fmtTime(r.time));
    const text = c.key === "memory" ? fmtBytes(r.memory) : r[c.key] ? fmtInt(r[c.key]) : "";
    return bar(c.key, r[c.key], maxes[c.key], text);
  }
  function renderRows() {
    const body = document.getElementById("table-body");
    const first = Math.max(0, Math.floor(body.scrollTop / ROW_H) - 10);
    const last = Math.min(rows.length, first + Math.ceil(body.clientHeight / ROW_H) + 20);
    const spacer = document.getElementById("table-spacer");
    spacer.style.height = rows.length * ROW_H + "px";
    const frag = document.createDocumentFragment();
    frag.appendChild(spacer);
    const template = document.getElementById("table").dataset.template;
    for (let i = first; i < last; i++) {
      const r = rows[i];
      const row = el("div", { class: "row" + (findingsOf.has(r.index) ? " hit" : ""), style: "top:" + i * ROW_H + "px;grid-template-columns:" + template, "data-row": r.name });
      for (const c of shownColumns) row.appendChild(cell(c, r));
      row.addEventListener("click", () => reveal(r.index));
      frag.appendChild(row);
    }
    body.replaceChildren(frag);
  }
  function table() {
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
    fitColumns();
    update();
  }

  // ------------------------------------------------------------ receptive field along the main path
  function num(v) {
    if (typeof v === "string" && v.includes("/")) { const [p, q] = v.split("/"); return Number(p) / Number(q); }
    return Number(v);
  }
  function rfChart() {
    const box = document.getElementById("rf-chart");
    const path = DATA.main_path.map((i) => LAYERS[i]);
    box.replaceChildren();
    if (!path.length) return;
    const W = Math.max(280, Math.min(900, box.clientWidth)), H = 280, L = 62, R = 14, T = 14, B = 26;
    const largest = (xs) => Math.max(1, ...xs.map(num).filter(Number.isFinite));  // any number of axes; n/a left out
    const values = path.map((l) => largest(l.rf));
    const jumps = path.map((l) => largest(l.jump));
    let top = 2;
    for (const v of values.concat(jumps)) if (Number.isFinite(v) && v > top) top = v;
    const ly = (v) => T + (H - T - B) * (1 - Math.log(Math.max(v, 1)) / Math.log(top));
    const lx = (i) => L + (W - L - R) * (path.length > 1 ? i / (path.length - 1) : 0.5);
    const svg = sv("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, class: "rf" });
    for (let p = 1; p <= top; p *= 10) {
      svg.appendChild(sv("line", { x1: L, x2: W - R, y1: f1(ly(p)), y2: f1(ly(p)), stroke: "#eaeef2" }));
      svg.appendChild(sv("text", { x: L - 6, y: f1(ly(p) + 4), "text-anchor": "end", class: "axis" }, fmtInt(p) + " px"));
    }
    const line = (vals, colour) => svg.appendChild(sv("path", { fill: "none", stroke: colour, "stroke-width": 1.8,
      d: vals.map((v, i) => (i ? "L" : "M") + f1(lx(i)) + "," + f1(ly(v))).join("") }));
    line(values, "#0969da");
    line(jumps, "#bc4c00");
    svg.appendChild(sv("text", { x: L, y: H - 8, class: "axis" }, "1"));
    svg.appendChild(sv("text", { x: W - R, y: H - 8, class: "axis", "text-anchor": "end" }, String(path.length)));
    box.appendChild(svg);
    const last = path[path.length - 1];
    box.appendChild(el("p", { class: "muted" }, "Along the main path, " + path.length + " of " + LAYERS.length +
      " layers from the input to " + last.name + " (the longest path; branches beside it left out). Blue: receptive field " +
      "(px, larger axis, log scale); orange: jump (px between outputs). The last layer sees " + last.rf.join("×") +
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
    head.appendChild(document.createTextNode(shown(f.message)));
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
    const uncounted = S.not_counted.filter((n) => n.layer !== null);
    if (uncounted.length) add("not counted", uncounted.map((n) => n.layer + " (" + n.op + ")").join(", ") +
      ": no counting rule; the MACs, FLOPs and other ops above leave them out");
    for (const n of S.not_counted.filter((n) => n.layer === null)) add("not counted", n.note);
    if (S.parts) {
      add("main path", "params " + fmtInt(S.parts.main.params) + ", MACs " + fmtInt(S.parts.main.macs));
      add("side outputs (" + S.parts.side_outputs.join(", ") + ")", "params " + fmtInt(S.parts.side.params) + ", MACs " + fmtInt(S.parts.side.macs));
    }
    add("training at " + M.dtype + " with " + M.optimizer, "params " + fmtBytes(M.params_bytes) + " + gradients " + fmtBytes(M.gradients_bytes) +
        " + optimizer state " + fmtBytes(M.optimizer_state_bytes) + " + saved activations " + fmtBytes(M.saved_activations_bytes) +
        " = " + fmtBytes(M.training_total_bytes));
    add("inference", "params " + fmtBytes(M.params_bytes) + " + peak activations " + fmtBytes(M.inference_peak_activation_bytes) +
        " (at " + M.inference_peak_layer + ") = " + fmtBytes(M.inference_total_bytes));
    if (BENCH) {
      const setting = [["bench of", BENCH.spec], ["on", BENCH.device], ["at", BENCH.dtype], ["batch", BENCH.batch],
                       ["median of runs:", BENCH.repeats]].filter(([, v]) => v !== null && v !== undefined);
      add("timings", setting.map(([k, v]) => k + " " + v).join(", "));
    }
    box.appendChild(t);
    box.appendChild(el("h3", {}, "Conventions"));
    const c = el("table", { class: "kv" });
    for (const [k, v] of Object.entries(S.conventions)) { const tr = el("tr"); tr.append(el("td", {}, k), el("td", {}, v)); c.appendChild(tr); }
    box.appendChild(c);
  }

  // ------------------------------------------------------------ start
  header();
  fromHash();
  viewSelect.addEventListener("change", () => showView(Number(viewSelect.value)));
  document.getElementById("expand-all").addEventListener("click", () => showView(levels[levels.length - 1][1]));
  document.getElementById("collapse-all").addEventListener("click", () => showView(levels[0][1]));
  document.getElementById("zoom-in").addEventListener("click", () => { zoom = Math.min(3, zoom * 1.25); applyZoom(); });
  document.getElementById("zoom-out").addEventListener("click", () => { zoom = Math.max(0.2, zoom / 1.25); applyZoom(); });
  shares();
  table();
  rfChart();
  findings();
  totals();
  function refit() { fitShareLabels(); fitColumns(); renderRows(); rfChart(); }
  let resizing = null;
  window.addEventListener("resize", () => { clearTimeout(resizing); resizing = setTimeout(refit, 150); });
  window.convauditReport = { showView, reveal, select, shown, refit, views: G.views };
  document.body.setAttribute("data-ready", "true");
})();
