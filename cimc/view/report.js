/* cimc report pages: a mapping report or a search report, drawn from the data embedded in the
   page (gzip, base64). No network, no library. Names from the model are written as text
   (textContent, attributes), never as markup. When drawn, <body data-ready="1">. */
"use strict";
const NS = "http://www.w3.org/2000/svg";
const state = { selected: null, layerCtl: [] };

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}
function sv(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}
function trim(s) { // trailing zeros after a decimal point only
  if (s.indexOf(".") < 0) return s;
  return s.replace(/\.?0+(e.*)?$/, (m, e) => e || "");
}
function num(x, digits) {
  if (x === null || x === undefined || x === "") return "-";
  if (typeof x !== "number") return String(x);
  if (!isFinite(x)) return String(x);
  if (Number.isInteger(x) && Math.abs(x) < 1e15) return x.toLocaleString("en-US");
  return trim(x.toPrecision(digits || 4));
}
function si(x, unit) {
  if (x === null || x === undefined || !isFinite(x)) return "-";
  const p = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"], [1, ""], [1e-3, "m"], [1e-6, "\u00b5"], [1e-9, "n"], [1e-12, "p"]];
  for (const [s, pre] of p) if (Math.abs(x) >= s) return trim((x / s).toPrecision(4)) + " " + pre + unit;
  return x.toPrecision(4) + " " + unit;
}
const ns = (x) => si(x * 1e-9, "s");
const share = (g) => (100 * g).toFixed(1) + " %";
function colour(i) { return `hsl(${(i * 137.508) % 360}, 62%, ${44 + (i % 3) * 9}%)`; }

const tip = el("div", { id: "tip" });
function showTip(ev, text) {
  tip.textContent = text;
  tip.style.display = "block";
  const x = Math.min(ev.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
  const y = Math.min(ev.clientY + 14, window.innerHeight - tip.offsetHeight - 8);
  tip.style.left = x + "px";
  tip.style.top = y + "px";
}
function hideTip() { tip.style.display = "none"; }

function section(id, title, note) {
  const s = el("section", { id });
  s.appendChild(el("h2", {}, title));
  if (note) s.appendChild(el("p", { class: "note" }, note));
  document.getElementById("main").appendChild(s);
  const a = el("a", { href: "#" + id }, title);
  document.getElementById("nav").appendChild(a);
  return s;
}

/* A sortable, filterable table. cols: [{head, get(row), fmt(v), text (left-aligned), title}] */
function dataTable(parent, id, rows, cols, opts) {
  opts = opts || {};
  const ctl = el("div", { class: "controls" });
  const filter = el("input", { type: "search", placeholder: opts.placeholder || "filter", "aria-label": "filter" });
  const count = el("span", { class: "note" });
  ctl.appendChild(filter); ctl.appendChild(count);
  parent.appendChild(ctl);
  const wrap = el("div", { class: "scroll" });
  const table = el("table", { id });
  const thead = el("thead"), tr = el("tr"), tbody = el("tbody");
  let sortCol = -1, sortDir = 1;
  const trs = rows.map((row, i) => {
    const r = el("tr", { "data-row": i });
    cols.forEach((c) => {
      const v = c.get(row);
      const td = el("td", { class: c.text ? "text" + (c.name ? " name" : "") : "" }, c.fmt ? c.fmt(v, row) : num(v));
      if (c.name) td.title = String(v);
      r.appendChild(td);
    });
    if (opts.rowClass) { const k = opts.rowClass(row); if (k) r.className = k; }
    if (opts.onClick) r.addEventListener("click", () => opts.onClick(row, r, i));
    r._row = row;
    r._key = opts.search ? opts.search(row).toLowerCase() : "";
    return r;
  });
  cols.forEach((c, j) => {
    const th = el("th", { class: "sortable" + (c.text ? " text" : ""), title: c.title || "sort" }, c.head);
    th.addEventListener("click", () => {
      sortDir = sortCol === j ? -sortDir : (c.text ? 1 : -1);
      sortCol = j;
      const key = (r) => c.get(r._row);
      trs.sort((a, b) => {
        const x = key(a), y = key(b);
        if (typeof x === "number" && typeof y === "number") return sortDir * (x - y);
        return sortDir * String(x).localeCompare(String(y));
      });
      trs.forEach((r) => tbody.appendChild(r));
    });
    tr.appendChild(th);
  });
  thead.appendChild(tr);
  trs.forEach((r) => tbody.appendChild(r));
  table.appendChild(thead); table.appendChild(tbody);
  wrap.appendChild(table);
  parent.appendChild(wrap);
  const apply = () => {
    const q = filter.value.trim().toLowerCase();
    let shown = 0;
    trs.forEach((r) => { const ok = !q || r._key.includes(q); r.style.display = ok ? "" : "none"; shown += ok; });
    count.textContent = `${shown} of ${trs.length} rows`;
  };
  filter.addEventListener("input", apply);
  apply();
  return { table, trs };
}

function kvTable(parent, pairs, id) {
  const t = el("table", { class: "kv", id: id || "" });
  pairs.forEach(([k, v]) => { const tr = el("tr"); tr.appendChild(el("td", {}, k)); tr.appendChild(el("td", {}, v)); t.appendChild(tr); });
  parent.appendChild(t);
  return t;
}

/* Horizontal bars: items [{label, value, parts: [[name, value, colour]]?, colour}] */
function barChart(parent, items, unit, opts) {
  opts = opts || {};
  const W = 560, L = opts.labelWidth || 190, H = 16;
  const max = Math.max(1e-30, ...items.map((x) => x.value), opts.line || 0);
  const show = opts.fmt || ((v) => `${num(v)} ${unit}`);
  const svg = sv("svg", { width: W + L + 90, height: items.length * H + 24, class: opts.cls || "" });
  items.forEach((it, i) => {
    const y = i * H + 4;
    const keep = Math.floor(L / 6.3), lab = it.label;
    const short = lab.length > keep ? lab.slice(0, Math.floor(keep / 2) - 1) + "\u2026" + lab.slice(lab.length - Math.ceil(keep / 2)) : lab;
    const t = sv("text", { x: L - 6, y: y + 11, "text-anchor": "end" }, short);
    if (short !== lab) t.appendChild(sv("title", {}, lab));
    svg.appendChild(t);
    let x = L;
    const parts = it.parts || [[it.label, it.value, it.colour || colour(i)]];
    parts.forEach(([name, v, c]) => {
      const w = (v / max) * W;
      const r = sv("rect", { x, y, width: Math.max(w, 0), height: H - 4, fill: c, class: opts.barClass || "" });
      r.addEventListener("mousemove", (ev) => showTip(ev, `${it.label}\n${name}: ${show(v)}`));
      r.addEventListener("mouseleave", hideTip);
      svg.appendChild(r);
      x += w;
    });
    svg.appendChild(sv("text", { x: x + 4, y: y + 11, class: "muted" }, show(it.value)));
  });
  if (opts.line) {
    const x = L + (opts.line / max) * W;
    svg.appendChild(sv("line", { x1: x, x2: x, y1: 0, y2: items.length * H + 8, class: "period" }));
    svg.appendChild(sv("text", { x: x + 3, y: items.length * H + 20, fill: "#c2410c" }, opts.lineLabel || ""));
  }
  parent.appendChild(svg);
  return svg;
}

const COMPONENT_COLOURS = { adc: "#4c6ef5", dac_and_periphery: "#12b886", array: "#fab005", digital: "#e64980",
  buffer: "#7950f2", network: "#fd7e14", static: "#868e96", group_periphery: "#15aabf", other: "#adb5bd" };

/* ---------------------------------------------------------------- the mapping report */

function renderMapping(d) {
  const r = d.report;
  document.getElementById("title").textContent = `${r.model} on ${r.target}`;
  document.getElementById("subtitle").textContent = `passes: ${r.passes}`;
  const L = r.layers;
  summary(d, r);
  layers(d, r, L);
  crossbarMap(d, r, L);
  schedule(d, r, L);
  breakdowns(r, L);
  chips(d, r);
}

function summary(d, r) {
  const s = section("summary", "Summary");
  const t = el("table", { id: "summary-figures" });
  const head = el("tr");
  ["figure", "value", "bound", "gap"].forEach((h, i) => head.appendChild(el("th", { class: i ? "" : "text" }, h)));
  t.appendChild(head);
  const pct = (g) => (g === undefined || g === null ? "" : (100 * g).toFixed(1) + " %");
  const rows = [
    ["crossbars used", "crossbars_used", `${num(r.crossbars_used)} of ${num(r.crossbars_available)} (budget ${num(r.budget)})`, `\u2265 ${num(r.crossbars_lower_bound)}`, pct(r.gap.crossbars)],
    ["utilization", "utilization", (100 * r.utilization).toFixed(1) + " %", "", ""],
    ["latency", "latency_ns", ns(r.latency_ns), "\u2265 " + ns(r.latency_lower_bound_ns), pct(r.gap.latency)],
    ["throughput", "throughput_ips", si(r.throughput_ips, "inf/s"), "\u2264 " + si(r.throughput_upper_bound_ips, "inf/s"), pct(r.gap.throughput)],
    ["period", "period_ns", ns(r.period_ns), "\u2265 " + ns(r.period_lower_bound_ns), pct(r.gap.throughput)],
    ["energy / inference", "energy_nj", si(r.energy_nj * 1e-9, "J"), "", ""],
    ["area (tiles used)", "area_mm2", num(r.area_mm2) + " mm\u00b2", `chip ${num(r.chip_area_mm2)} mm\u00b2`, ""],
    ["EDAP", "edap", num(r.edap) + " nJ\u00b7ns\u00b7mm\u00b2", "", ""],
    ["tiles used", "tiles_used", num(r.tiles_used), `on ${r.chips_used} chip${r.chips_used > 1 ? "s" : ""}`, ""],
    ["speedup vs ISAAC-like baseline", "speedup_throughput", `${num(r.speedup_vs_baseline.throughput)}\u00d7 throughput`, `${num(r.speedup_vs_baseline.latency)}\u00d7 latency`, ""],
    ["compile time", "compile_s", num(r.compile_s) + " s", "", ""],
  ];
  const raw = { ...r, speedup_throughput: r.speedup_vs_baseline.throughput };
  rows.forEach(([label, key, v, b, g]) => {
    const tr = el("tr", { "data-key": key, "data-value": String(raw[key]) });
    tr.appendChild(el("td", { class: "text" }, label));
    tr.appendChild(el("td", { class: "value" }, v));
    tr.appendChild(el("td", {}, b));
    tr.appendChild(el("td", {}, g));
    t.appendChild(tr);
  });
  s.appendChild(t);
  const what = { crossbars: "the busiest crossbar's reads", digital: "the tiles' digital units",
    buffer: "one op's buffer traffic", network: "the network (byte-hops over all links)",
    link: "the busiest link between chips", offchip: "activations spilled to off-chip memory",
    reload: "reprogramming the chips between rounds" };
  s.appendChild(el("p", { id: "period-set-by", "data-by": r.period_set_by },
    `The period is set by ${what[r.period_set_by] || r.period_set_by}` + (r.bottleneck ? `; the op with the most work there: ${r.bottleneck}.` : ".")));
  const parts = r.period_parts_ns || {};
  if (Object.keys(parts).length) {
    s.appendChild(el("p", { class: "note" }, "What could set the period, per inference:"));
    const names = { crossbars: "the busiest crossbar", digital: "the busiest tile's digital units", buffer: "one op's buffer traffic", network: "the network",
      link: "the busiest link between chips", offchip: "spills to off-chip memory", reload: "the rounds' writes and runs" };
    barChart(s, Object.keys(parts).map((k) => ({ label: names[k] || k, value: parts[k], colour: k === r.period_set_by ? "#c2410c" : "#adb5bd" })), "ns", { labelWidth: 230, cls: "period-parts", fmt: ns });
  }
  s.appendChild(el("h3", {}, "Pass pipeline and solvers"));
  const pairs = [["pipeline", r.passes]];
  Object.keys(r.solver || {}).forEach((k) => pairs.push([k.replace(/_/g, " "), String(r.solver[k])]));
  Object.keys(r.pass_seconds || {}).forEach((k) => pairs.push([`${k} time`, num(r.pass_seconds[k]) + " s"]));
  if (r.stream && r.stream.stream_inferences) pairs.push([`stream of ${r.stream.stream_inferences} inferences`, ns(r.stream.stream_makespan_ns)]);
  if (r.converter && r.converter.adc_bits !== undefined) pairs.push(["ADC", `${r.converter.adc_bits} bits; a full read needs ${r.converter.bits_needed}; partial sums ${r.converter.partial_sums}`]);
  kvTable(s, pairs, "solvers");
  (r.warnings || []).forEach((w) => s.appendChild(el("p", { class: "warn" }, "warning: " + w)));
}

function selectLayer(i) {
  state.selected = state.selected === i ? null : i;
  state.layerCtl.forEach((f) => f(state.selected));
}

function layers(d, r, L) {
  const s = section("layers", "Layers", "Click a row to highlight its blocks in the crossbar map and its pieces in the schedule; click a header to sort. \u25B2 marks the op that sets the period.");
  const cols = [
    { head: "#", get: (x) => x.i },
    { head: "layer", get: (x) => x.name, text: true, name: true },
    { head: "op", get: (x) => x.op, text: true },
    { head: "matrix", get: (x) => x.rows * x.cols, fmt: (v, x) => (x.rows ? `${x.rows}\u00d7${x.cols}` : "") },
    { head: "groups", get: (x) => x.groups },
    { head: "MVMs", get: (x) => x.mvms },
    { head: "blocks", get: (x) => x.blocks },
    { head: "copies", get: (x) => x.copies, fmt: (v, x) => (x.lanes > 1 ? `${x.copies}\u00d7${x.lanes}` : num(v)) },
    { head: "crossbars", get: (x) => x.crossbars },
    { head: "busy", get: (x) => x.busy_ns, fmt: ns, title: "work per inference on its busiest crossbar (or one tile's digital units)" },
    { head: "of period", get: (x) => x.busy_ns / r.period_ns, fmt: (v) => (100 * v).toFixed(1) + " %" },
    { head: "latency", get: (x) => x.latency_ns, fmt: ns },
    { head: "energy", get: (x) => x.energy_nj, fmt: (v) => si(v * 1e-9, "J") },
    { head: "area mm\u00b2", get: (x) => x.area_mm2, fmt: (v) => (v ? num(v) : "") },
    { head: "buffer", get: (x) => x.buffer_ns, fmt: ns },
    { head: "network", get: (x) => x.network_ns, fmt: ns },
  ];
  const rows = L.map((x, i) => ({ ...x, i }));
  const tab = dataTable(s, "layers-table", rows, cols, {
    placeholder: "filter by name or op", search: (x) => x.name + " " + x.op + " " + (x.fn || ""),
    rowClass: (x) => (x.name === r.bottleneck ? "bottleneck" : ""),
    onClick: (x) => selectLayer(x.i),
  });
  state.layerCtl.push((sel) => tab.trs.forEach((tr) => tr.classList.toggle("selected", tr._row.i === sel)));
  s.appendChild(el("h3", {}, "Busy time per inference against the period"));
  s.appendChild(el("p", { class: "note" }, "Each op's work on its busiest unit (a crossbar's reads, or one tile's digital units) in its colour; its buffer traffic in grey. The dashed line is the period: the op nearest to it sets the pace."));
  const items = rows.filter((x) => x.busy_ns > 0 || x.buffer_ns > 0).map((x) => ({
    label: x.name, value: Math.max(x.busy_ns, x.buffer_ns),
    parts: [["busy", x.busy_ns, colour(x.i)], ["buffer beyond busy", Math.max(0, x.buffer_ns - x.busy_ns), "#ced4da"]],
  }));
  barChart(s, items, "ns", { line: r.period_ns, lineLabel: "period " + ns(r.period_ns), cls: "busy-chart", barClass: "busy", labelWidth: 230, fmt: ns });
}

function crossbarMap(d, r, L) {
  const X = d.crossbars, B = d.blocks;
  const s = section("map", "Crossbar map",
    `Every used crossbar drawn to scale (${X.length} of ${r.crossbars_available}), grouped by tile; a block is coloured by its layer, grey is unused cells. Hover for details.`);
  if (!X.length) {
    s.appendChild(el("p", { id: "map-none", class: "note" }, d.unplaced_blocks ? `This mapping does not place its ${d.unplaced_blocks} blocks on crossbars (pipeline: ${r.passes}); compile with pack or place (the full or baseline pipeline) to see them.` : "No crossbars."));
    return;
  }
  const maxDim = Math.max(...X.map((x) => Math.max(x.rows, x.cols)));
  const px = (X.length > 1500 ? 16 : 30) / maxDim; // pixels per cell
  const slot = maxDim * px + 3;
  const width = Math.max(600, Math.min(1500, document.getElementById("main").clientWidth - 24));
  const byTile = new Map();
  X.forEach((x, i) => { if (!byTile.has(x.tile)) byTile.set(x.tile, []); byTile.get(x.tile).push(i); });
  const pos = new Array(X.length);
  let cx = 0, cy = 0, rowH = 0;
  const tiles = [];
  for (const [tile, idx] of byTile) {
    const per = Math.max(1, Math.ceil(Math.sqrt(idx.length)));
    const w = per * slot + 6, h = Math.ceil(idx.length / per) * slot + 18;
    if (cx + w > width && cx > 0) { cx = 0; cy += rowH + 8; rowH = 0; }
    tiles.push({ tile, x: cx, y: cy, w, h, n: idx.length, chip: X[idx[0]].chip });
    idx.forEach((i, k) => { pos[i] = [cx + 3 + (k % per) * slot, cy + 15 + Math.floor(k / per) * slot]; });
    cx += w + 8; rowH = Math.max(rowH, h);
  }
  const svg = sv("svg", { id: "xbar-map", width, height: cy + rowH + 4 });
  const perTile = d.target.xbars_per_tile;
  tiles.forEach((t) => {
    const g = sv("g", { class: "tile", "data-tile": t.tile });
    g.appendChild(sv("rect", { class: "tile-box", x: t.x, y: t.y, width: t.w, height: t.h }));
    g.appendChild(sv("text", { x: t.x + 3, y: t.y + 11, class: "muted" }, `tile ${t.tile}${r.chips_used > 1 ? " (chip " + t.chip + ")" : ""}: ${t.n}/${perTile}`));
    svg.appendChild(g);
  });
  const used = new Float64Array(X.length);
  B.forEach((b) => { used[b.x] += b.h * b.w; });
  const gx = sv("g", { class: "xbars" });
  X.forEach((x, i) => {
    gx.appendChild(sv("rect", { class: "xbar", "data-x": i, x: pos[i][0], y: pos[i][1], width: x.cols * px, height: x.rows * px }));
  });
  svg.appendChild(gx);
  const gb = sv("g", { class: "blocks" });
  const byLayer = new Map();
  B.forEach((b, j) => {
    const [x0, y0] = pos[b.x];
    const rect = sv("rect", { class: "blk", "data-b": j, x: x0 + b.at[1] * px, y: y0 + b.at[0] * px,
      width: Math.max(b.w * px, 0.4), height: Math.max(b.h * px, 0.4), fill: colour(b.layer) });
    gb.appendChild(rect);
    if (!byLayer.has(b.layer)) byLayer.set(b.layer, []);
    byLayer.get(b.layer).push(rect);
  });
  svg.appendChild(gb);
  svg.addEventListener("mousemove", (ev) => {
    const t = ev.target;
    if (t.dataset.b !== undefined) {
      const b = B[+t.dataset.b], x = X[b.x];
      showTip(ev, `${b.name}\nlayer ${L[b.layer].name}, copy ${b.copy}${b.compact > 1 ? ` (stands for ${b.compact} compact copies)` : ""}\n` +
        `weights: rows ${b.rows[0]}\u2013${b.rows[1]}, cols ${b.cols[0]}\u2013${b.cols[1]}, groups ${b.groups[0]}\u2013${b.groups[1]}` +
        `${b.lanes > 1 ? `, ${b.lanes} lanes` : ""} (${b.layout})\ncells ${b.h}\u00d7${b.w} at row ${b.at[0]}, col ${b.at[1]} of tile ${x.tile} xbar ${x.xbar}\n` +
        `share of time: ${(100 * b.load_ns / r.period_ns).toFixed(1)} % of the period (${ns(b.load_ns)} per inference)`);
    } else if (t.dataset.x !== undefined) {
      const i = +t.dataset.x, x = X[i];
      showTip(ev, `tile ${x.tile}, crossbar ${x.xbar}${d.target.pools.length > 1 ? `, pool ${x.pool}` : ""} (${x.rows}\u00d7${x.cols})\n` +
        `cells used ${(100 * used[i] / (x.rows * x.cols)).toFixed(1)} %; busy ${(100 * x.load_ns / r.period_ns).toFixed(1)} % of the period`);
    } else hideTip();
  });
  svg.addEventListener("mouseleave", hideTip);
  const wrap = el("div", { class: "scroll", style: "max-height: 720px" });
  wrap.appendChild(svg);
  s.appendChild(wrap);
  const info = el("p", { id: "map-selection", class: "note" });
  s.appendChild(info);
  state.layerCtl.push((sel) => {
    svg.classList.toggle("hl", sel !== null);
    svg.querySelectorAll(".blk.on").forEach((e) => e.classList.remove("on"));
    if (sel !== null) (byLayer.get(sel) || []).forEach((e) => e.classList.add("on"));
    info.textContent = sel === null ? "" : `${L[sel].name}: ${(byLayer.get(sel) || []).length} blocks highlighted`;
  });
}

function schedule(d, r, L) {
  const S = d.schedule;
  const s = section("schedule", "Schedule",
    "One inference, then the pipelined stream, per crossbar and per tile's digital units; each bar is one scheduled piece (a row chunk of an op on that unit), coloured by layer. Buffer streaming is not drawn.");
  if (!S || !S.one) {
    s.appendChild(el("p", { id: "schedule-none", class: "note" }, `This mapping has no schedule (pipeline: ${r.passes}); the schedule pass (in the full pipeline) makes one.`));
    return;
  }
  const R = d.resources;
  const ctl = el("div", { class: "controls" });
  const size = el("select", { id: "gantt-rows", "aria-label": "rows per page" });
  [32, 64, 128, 256].filter((n) => n < R.length).concat(R.length <= 1000 ? ["all"] : []).forEach((n) => size.appendChild(el("option", { value: n }, `${n} rows`)));
  const prev = el("button", {}, "\u2190"), next = el("button", {}, "\u2192"), where = el("span", { class: "note" });
  ctl.appendChild(el("span", {}, "units:")); ctl.appendChild(size); ctl.appendChild(prev); ctl.appendChild(next); ctl.appendChild(where);
  s.appendChild(ctl);
  s.appendChild(el("p", { class: "note" }, `How: ${S.method}; ${S.chunks} row chunks per op at most.`));
  const one = el("div", { id: "gantt-one" }), stream = el("div", { id: "gantt-stream" });
  s.appendChild(el("h3", {}, "One inference"));
  s.appendChild(one);
  s.appendChild(el("h3", {}, `Steady state: ${S.inferences} inferences back to back` + (S.window ? ` (pieces between ${ns(S.window[0])} and ${ns(S.window[1])}: three periods from the moment the last inference enters, when the most are in flight)` : "")));
  s.appendChild(stream);
  let page = 0;
  const draw = () => {
    const n = size.value === "all" ? R.length : +size.value;
    const pages = Math.max(1, Math.ceil(R.length / n));
    page = Math.min(Math.max(page, 0), pages - 1);
    const lo = page * n, hi = Math.min(R.length, lo + n);
    where.textContent = `units ${lo + 1}\u2013${hi} of ${R.length}`;
    gantt(one, S.one, lo, hi, R, L, r, null);
    gantt(stream, S.stream, lo, hi, R, L, r, S.window);
  };
  size.addEventListener("change", () => { page = 0; draw(); });
  prev.addEventListener("click", () => { page -= 1; draw(); });
  next.addEventListener("click", () => { page += 1; draw(); });
  state.layerCtl.push(draw);
  draw();
}

function gantt(box, flat, lo, hi, R, L, r, win) {
  box.textContent = "";
  if (!flat) { box.appendChild(el("p", { class: "note" }, "not kept")); return; }
  const rowH = 12, left = 150, W = 1000;
  let t0 = win ? win[0] : 0, t1 = win ? win[1] : 0;
  if (!win) for (let k = 5; k < flat.length; k += 6) t1 = Math.max(t1, flat[k]);
  t1 = Math.max(t1, t0 + 1e-9);
  const sx = W / (t1 - t0);
  const svg = sv("svg", { class: "gantt", width: left + W + 20, height: (hi - lo) * rowH + 34, "data-lo": lo, "data-hi": hi });
  for (let i = lo; i < hi; i++) {
    const y = (i - lo) * rowH;
    svg.appendChild(sv("text", { x: left - 6, y: y + 9, "text-anchor": "end", class: "muted" }, R[i]));
    if ((i - lo) % 2 === 0) svg.appendChild(sv("rect", { x: left, y, width: W, height: rowH, fill: "#f6f7f9" }));
  }
  const sel = state.selected;
  const g = sv("g", {});
  for (let k = 0; k < flat.length; k += 6) {
    const row = flat[k];
    if (row < lo || row >= hi) continue;
    const op = flat[k + 1], s = Math.max(flat[k + 4], t0), e = Math.min(flat[k + 5], t1);
    const rect = sv("rect", { class: "bar" + (sel === op ? " on" : ""), "data-p": k / 6, "data-row": row, x: left + (s - t0) * sx, y: (row - lo) * rowH + 1,
      width: Math.max((e - s) * sx, 0.5), height: rowH - 2, fill: colour(op), "fill-opacity": 1 - 0.12 * (flat[k + 2] % 4) });
    g.appendChild(rect);
  }
  svg.appendChild(g);
  if (sel !== null) svg.classList.add("hl");
  const y = (hi - lo) * rowH + 4;
  svg.appendChild(sv("line", { x1: left, x2: left + W, y1: y, y2: y, class: "axis" }));
  for (let i = 0; i <= 8; i++) {
    const t = t0 + (i / 8) * (t1 - t0);
    svg.appendChild(sv("line", { x1: left + (i / 8) * W, x2: left + (i / 8) * W, y1: y, y2: y + 4, class: "axis" }));
    svg.appendChild(sv("text", { x: left + (i / 8) * W, y: y + 16, "text-anchor": "middle", class: "muted" }, ns(t)));
  }
  svg.addEventListener("mousemove", (ev) => {
    const p = ev.target.dataset.p;
    if (p === undefined) { hideTip(); return; }
    const k = 6 * p;
    showTip(ev, `${L[flat[k + 1]].name}\ninference ${flat[k + 2]}, row chunk ${flat[k + 3]}\n${R[flat[k]]}: ${ns(flat[k + 4])} \u2013 ${ns(flat[k + 5])}`);
  });
  svg.addEventListener("mouseleave", hideTip);
  box.appendChild(svg);
}

function breakdowns(r, L) {
  const s = section("breakdowns", "Energy and area");
  const grid = el("div", { class: "grid2" });
  s.appendChild(grid);
  const part = (title, obj, unit, scale, id) => {
    const box = el("div", { id });
    box.appendChild(el("h3", {}, title));
    const items = Object.keys(obj || {}).filter((k) => obj[k] > 0).map((k) => ({ label: k, value: obj[k] * scale, colour: COMPONENT_COLOURS[k] || "#999" }));
    barChart(box, items, unit, { labelWidth: 130 });
    grid.appendChild(box);
  };
  part("Energy per inference by component", r.energy_breakdown_nj, "nJ", 1, "energy-components");
  part("Area of the tiles used by component", r.area_breakdown_mm2, "mm\u00b2", 1, "area-components");
  const top = (key, n) => L.map((x, i) => ({ x, i })).filter((o) => o.x[key] > 0).sort((a, b) => b.x[key] - a.x[key]).slice(0, n);
  const byLayerE = el("div", { id: "energy-layers" });
  byLayerE.appendChild(el("h3", {}, "Energy by layer (the 25 largest), by component"));
  barChart(byLayerE, top("energy_nj", 25).map(({ x }) => ({ label: x.name, value: x.energy_nj,
    parts: Object.keys(x.energy_breakdown_nj || {}).filter((k) => x.energy_breakdown_nj[k] > 0).map((k) => [k, x.energy_breakdown_nj[k], COMPONENT_COLOURS[k] || "#999"]) })), "nJ", { labelWidth: 230 });
  const legend = el("p", { class: "legend note" });
  Object.keys(COMPONENT_COLOURS).forEach((k) => { const sp = el("span"); sp.appendChild(el("i", { class: "swatch", style: `background:${COMPONENT_COLOURS[k]}` })); sp.appendChild(document.createTextNode(k)); legend.appendChild(sp); });
  byLayerE.appendChild(legend);
  s.appendChild(byLayerE);
  const byLayerA = el("div", { id: "area-layers" });
  byLayerA.appendChild(el("h3", {}, "Crossbar area by layer (the 25 largest: its share of the crossbars it uses)"));
  barChart(byLayerA, top("area_mm2", 25).map(({ x, i }) => ({ label: x.name, value: x.area_mm2, colour: colour(i) })), "mm\u00b2", { labelWidth: 230 });
  s.appendChild(byLayerA);
}

function chips(d, r) {
  const c = d.chips;
  const ch = r.chips || {};
  const ch_ = ch;
  const rounds = ch.reload ? ` They run in ${ch.reload.rounds} rounds on ${r.chips_used} chip${r.chips_used > 1 ? "s" : ""}, reprogrammed between rounds (batch ${ch.reload.batch}).` : "";
  const span = ch.reload ? `The weights are in ${c.count} stages, each one chip of ${c.tiles_per_chip} tiles; arrows are data one inference sends from stage to stage.`
    : `The weights span ${c.count} chips of ${c.tiles_per_chip} tiles each; arrows are data one inference sends from chip to chip.`;
  const s = section("chips", "Chips", c.count > 1 ? span + rounds : "");
  const extra = [];
  if (ch.link && c.count > 1) {
    extra.push(["link bytes per inference", si(ch.link.bytes_per_inference, "B")], ["link share of the period", share(ch.link.share_of_period)],
      ["link share of the energy", share(ch.link.share_of_energy)]);
  }
  if (ch.spills && ch.spills.bytes_per_inference) {
    extra.push(["spilled to off-chip memory per inference", si(ch.spills.bytes_per_inference, "B")], ["off-chip time per inference", ns(ch.spills.period_ns)]);
  }
  if (ch.reload) {
    extra.push(["rounds per batch", String(ch.reload.rounds)], ["writes per inference", ns(ch.reload.write_ns_per_inference)],
      ["writes' share of the period", share(ch.reload.share_of_period)], ["writes per cell per inference", num(ch.reload.writes_per_cell_per_inference)],
      ["lifetime at this throughput", ch.reload.lifetime]);
  }
  if (c.count <= 1) {
    s.appendChild(el("p", { class: "note", id: "one-chip" }, `One chip: ${r.tiles_used} of ${c.tiles_per_chip} tiles, ${r.crossbars_used} of ${c.xbars_per_chip} crossbars used.`));
    if (extra.length) kvTable(s, extra, "chip-figures");
    return;
  }
  const W = 180, H = 80, gap = 70;
  const svg = sv("svg", { id: "chip-graph", width: c.chips.length * (W + gap) + 20, height: H + 150 });
  const x = (i) => 10 + i * (W + gap);
  const index = new Map(c.chips.map((ch, i) => [ch.chip, i]));
  c.chips.forEach((ch, i) => {
    svg.appendChild(sv("rect", { class: "chip", x: x(i), y: 60, width: W, height: H, fill: "#eef2ff", stroke: "#4c6ef5" }));
    svg.appendChild(sv("text", { x: x(i) + 8, y: 80 }, ch_.reload ? `stage ${ch.chip} (round ${Math.floor(ch.chip / r.chips_used)})` : `chip ${ch.chip}`));
    svg.appendChild(sv("text", { x: x(i) + 8, y: 97, class: "muted" }, `${ch.tiles} tiles, ${ch.crossbars} crossbars`));
    svg.appendChild(sv("text", { x: x(i) + 8, y: 113, class: "muted" }, `${ch.layers} layers`));
  });
  c.links.forEach((l, k) => {
    const a = index.get(l.from), b = index.get(l.to);
    if (a === undefined || b === undefined) return;
    const up = a < b, xa = x(a) + W / 2, xb = x(b) + W / 2, y0 = up ? 60 : 140, bend = (up ? -1 : 1) * (22 + 10 * Math.abs(b - a));
    const path = sv("path", { class: "link", d: `M${xa},${y0} C${xa},${y0 + bend} ${xb},${y0 + bend} ${xb},${y0}`, fill: "none", stroke: "#fd7e14", "stroke-width": 1.5 + Math.min(5, Math.log10(1 + l.bytes)) });
    path.addEventListener("mousemove", (ev) => showTip(ev, `chip ${l.from} \u2192 chip ${l.to}: ${si(l.bytes, "B")} per inference`));
    path.addEventListener("mouseleave", hideTip);
    svg.appendChild(path);
    svg.appendChild(sv("text", { x: (xa + xb) / 2, y: y0 + bend * 0.8 + (up ? -2 : 10), "text-anchor": "middle" }, si(l.bytes, "B")));
  });
  s.appendChild(svg);
  const rows = c.links.map((l) => [`chip ${l.from} \u2192 chip ${l.to}`, si(l.bytes, "B") + " per inference"]);
  Object.keys(c.reprogramming || {}).forEach((k) => rows.push([`reprogramming: ${k.replace(/_/g, " ")}`, num(c.reprogramming[k])]));
  kvTable(s, rows.concat(extra), "chip-links");
}

/* ---------------------------------------------------------------- the search report */

function renderSearch(S) {
  const doc = S.doc;
  const objs = Object.keys(doc.objectives);
  document.getElementById("title").textContent = `Search: ${doc.family} on ${doc.target}`;
  document.getElementById("subtitle").textContent = `study ${doc.study}, data ${doc.data}, sampler ${doc.sampler}, seed ${doc.seed}`;
  const s = section("summary", "Summary");
  const pairs = [["objectives", objs.map((k) => `${k} (${doc.objectives[k]})`).join(", ")],
    ["constraints", Object.keys(doc.constraints || {}).map((k) => `${k} ${doc.constraints[k].join(" ")}`).join(", ") || "none"],
    ["trials", `${doc.trials} (${doc.completed} complete, ${doc.feasible} feasible)`],
    ["Pareto front", `${doc.points.length} points`],
    ["hypervolume", doc.hypervolume === null || doc.hypervolume === undefined ? "-" : num(doc.hypervolume)],
    ["reference point", doc.reference_point ? objs.map((k) => `${k} ${num(doc.reference_point[k])}`).join(", ") : "-"],
    ["pipelines", `in the loop: ${doc.pipeline}; Pareto points: ${doc.final_pipeline || "not re-compiled"}`]];
  kvTable(s, pairs, "search-summary").querySelectorAll("tr").forEach((tr, i) => { if (i === 3) tr.dataset.points = doc.points.length; });
  front(S, doc, objs);
  history(S);
  trialsTable(S, doc, objs);
}

function front(S, doc, objs) {
  const s = section("front", "Pareto front", "Grey: every feasible trial; coloured: the Pareto front over all objectives (in this projection some may look dominated). Hover a point for its configuration; click a front point to open its mapping report.");
  const metrics = new Set(objs);
  S.trials.forEach((t) => Object.keys(t.metrics || {}).forEach((k) => { if (typeof t.metrics[k] === "number") metrics.add(k); }));
  const keys = [...metrics];
  const ctl = el("div", { class: "controls" });
  const xs = el("select", { id: "front-x" }), ys = el("select", { id: "front-y" });
  keys.forEach((k) => { xs.appendChild(el("option", { value: k }, k)); ys.appendChild(el("option", { value: k }, k)); });
  xs.value = objs[1] || objs[0]; ys.value = objs[0];
  const logx = el("input", { type: "checkbox", id: "front-logx" });
  ctl.appendChild(el("span", {}, "x")); ctl.appendChild(xs); ctl.appendChild(el("span", {}, "y")); ctl.appendChild(ys);
  ctl.appendChild(logx); ctl.appendChild(el("label", { for: "front-logx" }, "log x"));
  s.appendChild(ctl);
  const box = el("div");
  s.appendChild(box);
  const onFront = new Set(doc.points.map((p) => p.trial));
  const draw = () => {
    box.textContent = "";
    const kx = xs.value, ky = ys.value, lg = logx.checked;
    const W = 760, H = 440, m = { l: 80, r: 20, t: 14, b: 46 };
    const feas = S.trials.filter((t) => t.feasible && typeof t.metrics[kx] === "number" && typeof t.metrics[ky] === "number" && (!lg || t.metrics[kx] > 0));
    const fx = (v) => (lg ? Math.log10(v) : v);
    const vx = feas.map((t) => fx(t.metrics[kx])), vy = feas.map((t) => t.metrics[ky]);
    const ext = (v) => { let a = Math.min(...v), b = Math.max(...v); if (!(b > a)) { a -= 1; b += 1; } const p = (b - a) * 0.05; return [a - p, b + p]; };
    const [x0, x1] = vx.length ? ext(vx) : [0, 1], [y0, y1] = vy.length ? ext(vy) : [0, 1];
    const X = (v) => m.l + ((fx(v) - x0) / (x1 - x0)) * (W - m.l - m.r), Y = (v) => H - m.b - ((v - y0) / (y1 - y0)) * (H - m.t - m.b);
    const svg = sv("svg", { id: "front-plot", width: W, height: H });
    svg.appendChild(sv("line", { x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b, class: "axis" }));
    svg.appendChild(sv("line", { x1: m.l, x2: m.l, y1: m.t, y2: H - m.b, class: "axis" }));
    for (let i = 0; i <= 5; i++) {
      const vxI = x0 + (i / 5) * (x1 - x0), vyI = y0 + (i / 5) * (y1 - y0);
      const px = m.l + (i / 5) * (W - m.l - m.r), py = H - m.b - (i / 5) * (H - m.t - m.b);
      svg.appendChild(sv("text", { x: px, y: H - m.b + 15, "text-anchor": "middle", class: "muted" }, num(lg ? Math.pow(10, vxI) : vxI, 3)));
      svg.appendChild(sv("text", { x: m.l - 6, y: py + 4, "text-anchor": "end", class: "muted" }, num(vyI, 3)));
    }
    svg.appendChild(sv("text", { x: (W + m.l) / 2, y: H - 8, "text-anchor": "middle" }, kx + (doc.objectives[kx] ? ` (${doc.objectives[kx]})` : "")));
    svg.appendChild(sv("text", { x: 14, y: (H - m.b) / 2, transform: `rotate(-90 14 ${(H - m.b) / 2})`, "text-anchor": "middle" }, ky + (doc.objectives[ky] ? ` (${doc.objectives[ky]})` : "")));
    const tipText = (t) => `trial ${t.trial}${onFront.has(t.trial) ? " (Pareto front)" : ""}\n` +
      Object.keys(t.metrics).filter((k) => metrics.has(k)).map((k) => `${k}: ${num(t.metrics[k])}`).join("\n") + "\n\n" +
      Object.entries({ ...t.network, ...t.hardware }).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join("\n");
    const pts = [];
    feas.forEach((t) => {
      const f = onFront.has(t.trial);
      const c = sv("circle", { cx: X(t.metrics[kx]), cy: Y(t.metrics[ky]), r: f ? 5.5 : 3, fill: f ? "#c2410c" : "#adb5bd", class: f ? "pt front" : "pt trial", "data-trial": t.trial });
      c.addEventListener("mousemove", (ev) => showTip(ev, tipText(t)));
      c.addEventListener("mouseleave", hideTip);
      if (f) {
        const href = S.reports[t.trial];
        if (href) { const a = sv("a", { href }); a.appendChild(c); pts.push(a); } else pts.push(c);
      } else svg.appendChild(c);
    });
    pts.forEach((p) => svg.appendChild(p)); // the front on top
    box.appendChild(svg);
  };
  [xs, ys, logx].forEach((e) => e.addEventListener("change", draw));
  draw();
}

function history(S) {
  const s = section("history", "Hypervolume", "Hypervolume of the feasible front after each completed trial (objectives in their own units, maximised ones negated, against the reference point).");
  const h = S.history;
  if (!h.length) { s.appendChild(el("p", { class: "note" }, "No reference point: no hypervolume.")); return; }
  const W = 760, H = 260, m = { l: 80, r: 20, t: 10, b: 36 };
  const n1 = Math.max(...h.map((p) => p[0])), v1 = Math.max(...h.map((p) => p[1]), 1e-30);
  const X = (n) => m.l + (n / n1) * (W - m.l - m.r), Y = (v) => H - m.b - (v / v1) * (H - m.t - m.b);
  const svg = sv("svg", { id: "hv-plot", width: W, height: H });
  svg.appendChild(sv("line", { x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b, class: "axis" }));
  svg.appendChild(sv("line", { x1: m.l, x2: m.l, y1: m.t, y2: H - m.b, class: "axis" }));
  svg.appendChild(sv("polyline", { points: h.map((p) => `${X(p[0])},${Y(p[1])}`).join(" "), fill: "none", stroke: "#4c6ef5", "stroke-width": 2 }));
  for (let i = 0; i <= 4; i++) {
    svg.appendChild(sv("text", { x: m.l - 6, y: Y((i / 4) * v1) + 4, "text-anchor": "end", class: "muted" }, num((i / 4) * v1, 3)));
    svg.appendChild(sv("text", { x: X((i / 4) * n1), y: H - m.b + 15, "text-anchor": "middle", class: "muted" }, num(Math.round((i / 4) * n1))));
  }
  svg.appendChild(sv("text", { x: (W + m.l) / 2, y: H - 4, "text-anchor": "middle" }, "trials completed"));
  s.appendChild(svg);
}

function trialsTable(S, doc, objs) {
  const s = section("trials", "Trials");
  const onFront = new Set(doc.points.map((p) => p.trial));
  const net = [...new Set(S.trials.flatMap((t) => Object.keys(t.network || {})))];
  const hw = [...new Set(S.trials.flatMap((t) => Object.keys(t.hardware || {})))];
  const val = (v) => (v === undefined ? "" : typeof v === "number" ? v : JSON.stringify(v));
  const cols = [{ head: "trial", get: (t) => t.trial }, { head: "state", get: (t) => t.state, text: true },
    { head: "front", get: (t) => (onFront.has(t.trial) ? 1 : 0), fmt: (v) => (v ? "\u2605" : "") }]
    .concat(objs.map((k) => ({ head: k, get: (t) => (t.metrics[k] === undefined ? NaN : t.metrics[k]), fmt: (v) => (isNaN(v) ? "-" : num(v)) })))
    .concat(net.map((k) => ({ head: k, get: (t) => val(t.network[k]), text: true, title: "network knob" })))
    .concat(hw.map((k) => ({ head: k, get: (t) => val(t.hardware[k]), text: true, title: "hardware knob" })))
    .concat([{ head: "seconds", get: (t) => (t.seconds === null ? NaN : t.seconds), fmt: (v) => (isNaN(v) ? "-" : v.toFixed(2)) },
      { head: "why infeasible", get: (t) => t.reason || "", text: true, name: true }]);
  dataTable(s, "trials-table", S.trials, cols, {
    search: (t) => JSON.stringify([t.state, t.reason, t.network, t.hardware]),
    rowClass: (t) => (onFront.has(t.trial) ? "selected" : ""),
    onClick: (t) => { const href = S.reports[t.trial]; if (href) window.location.href = href; },
  });
}

/* ---------------------------------------------------------------- start */

async function readData() {
  const raw = document.getElementById("cimc-data").textContent.trim();
  const bin = atob(raw);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return JSON.parse(await new Response(stream).text());
}

(async function main() {
  document.body.appendChild(tip);
  const main = document.getElementById("main");
  try {
    const data = await readData();
    window.cimcData = data;
    main.textContent = "";
    if (document.body.dataset.kind === "search") renderSearch(data); else renderMapping(data);
    document.body.dataset.ready = "1";
  } catch (e) {
    main.textContent = "";
    main.appendChild(el("p", { id: "error" }, "This report could not be drawn: " + e + "\n" + (e.stack || "")));
    document.body.dataset.ready = "error";
  }
})();
