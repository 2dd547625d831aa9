// The page keeps one server-sent-event stream open and redraws from each state it receives.
// Text only ever goes in through textContent: nothing from the topics is parsed as HTML.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

function show(id, value) {
  const el = $(id);
  const text = value === null || value === undefined ? "–" : String(value);
  if (el && el.textContent !== text) el.textContent = text;
}

function rows(tableId, list, cells, empty) {
  const body = $(tableId).tBodies[0];
  const fresh = document.createElement("tbody");
  if (!list.length) {
    const tr = fresh.insertRow();
    const td = tr.insertCell();
    td.colSpan = $(tableId).tHead.rows[0].cells.length;
    td.textContent = empty;
  }
  for (const item of list) {
    const tr = fresh.insertRow();
    cells(item).forEach(([text, cls, header], i) => {
      const cell = document.createElement(header ? "th" : "td");
      if (header) cell.scope = "row";
      cell.textContent = text;
      if (cls) cell.className = cls;
      tr.appendChild(cell);
    });
  }
  body.replaceWith(fresh);
}

// Event times read the same for everyone in the room: minutes, in UTC.
function utc(iso) {
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? String(iso) : t.toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

function chart(weeks) {
  const svg = $("chart");
  [...svg.querySelectorAll("g")].forEach((g) => g.remove());
  const g = document.createElementNS(SVG, "g");
  svg.appendChild(g);
  const W = 720, H = 240, left = 36, bottom = 40, top = 10;
  const shown = weeks.slice(-26);
  const max = Math.max(1, ...shown.map((w) => Math.max(w.cap || 0, w.returns_executed || 0, w.admissions_offered || 0)));
  const y = (v) => H - bottom - ((H - bottom - top) * v) / max;
  const slot = Math.min(72, (W - left) / Math.max(shown.length, 1));
  const add = (name, attrs, text) => {
    const el = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    g.appendChild(el);
    return el;
  };
  add("line", { x1: left, y1: y(0), x2: W, y2: y(0), stroke: "#505a5f" });
  for (const tick of [0, Math.round(max / 2), max]) {
    add("text", { x: left - 6, y: y(tick) + 4, "text-anchor": "end", "font-size": 11, fill: "#505a5f" }, tick);
  }
  shown.forEach((w, i) => {
    const x = left + i * slot;
    const bw = Math.min(28, slot * 0.35);
    const mid = x + slot / 2;
    add("rect", { x: mid - bw, y: y(w.returns_executed || 0), width: bw, height: y(0) - y(w.returns_executed || 0), fill: "#1d70b8" });
    add("rect", { x: mid, y: y(w.admissions_offered || 0), width: bw, height: y(0) - y(w.admissions_offered || 0), fill: "#f47738" });
    if (w.cap !== null && w.cap !== undefined) {
      add("line", { x1: x + 2, x2: x + slot - 2, y1: y(w.cap), y2: y(w.cap), stroke: "#d4351c", "stroke-dasharray": "5 3", "stroke-width": 2 });
    }
    add("text", { x: mid, y: H - bottom + 16, "text-anchor": "middle", "font-size": 11, fill: "#0b0c0c" }, w.week.replace(/^\d{4}-/, ""));
  });
}

function render(s) {
  show("week", s.week || "no figures yet");
  show("pairs-formed", s.pairs_formed);
  show("cap", s.cap);
  show("cap-left", s.cap === null || s.cap === undefined ? null : Math.max(0, s.cap - (s.pairs_formed || 0)));
  show("cum-executed", s.cumulative.returns_executed);
  show("cum-offered", s.cumulative.admissions_offered);
  show("balance", s.cumulative.returns_executed - s.cumulative.admissions_offered);
  $("paused").hidden = !s.admissions_paused;
  for (const stage of ["requested", "accepted", "refused", "executed"]) {
    show(`ret-${stage}-week`, s.returns.this_week[`returns_${stage}`]);
    show(`ret-${stage}`, s.returns.scheme[`returns_${stage}`]);
  }
  show("ret-on-hold", s.returns.on_hold);
  for (const [stage, n] of Object.entries(s.admissions.stages)) show(`adm-${stage}`, n);
  chart(s.weeks);
  rows("weeks", s.weeks.slice().reverse(), (w) => [[w.week, "", true], [w.cap], [w.pairs_formed], [w.returns_executed],
    [w.admissions_offered], [w.cumulative_returns_executed], [w.cumulative_admissions_offered]].map(([v, c, h]) => [String(v ?? "–"), c, h]),
    "No weekly figures yet.");
  rows("alerts", s.alerts, (a) => [[a.severity, `sev-${a.severity}`], [a.kind], [a.subject_ref], [utc(a.occurred_at)], [a.message]],
    "None yet.");
  rows("letters", Object.entries(s.dead_letters), ([code, n]) => [[code, "", true], [String(n)]], "None.");
  rows("services", s.services, (g) => [[g.group, "", true], [String(g.committed)], [String(g.end)],
    [String(g.lag), g.lag > 0 ? "bad" : "ok"]], "Consumer groups not reachable.");
  rows("readiness", s.readiness, (r) => [[r.instance, "", true], [r.ready ? "ready" : "NOT READY", r.ready ? "ok" : "bad"], [r.detail]],
    "No health URLs configured.");
  show("redis", s.redis);
  const feed = $("feed");
  feed.classList.toggle("down", s.feed !== "live");
  feed.textContent = s.feed === "live" ? `Live: ${s.records} ops records read, updated ${s.as_of}` : `Feed: ${s.feed}`;
}

function connect() {
  const source = new EventSource("/events");
  source.addEventListener("state", (e) => render(JSON.parse(e.data)));
  source.onerror = () => {
    const feed = $("feed");
    feed.classList.add("down");
    feed.textContent = "Connection lost: reconnecting…";
  };
}

document.addEventListener("DOMContentLoaded", connect);
