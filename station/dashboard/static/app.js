// qgs dashboard page: renders the model the server pushes over Server-Sent Events.
// Read-only: it never sends anything but GET requests. Every value from the bus is put into
// the page with textContent / setAttribute (never innerHTML): bus data is untrusted.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const SKY_R = 100; // sky plot radius (px, viewBox units): horizon; zenith at the centre

function el(tag, attrs, ...children) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS(SVG, tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) node.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const fmt = (x, digits) => (typeof x === "number" && isFinite(x) ? x.toFixed(digits) : "–");
const utc = (ts) => (typeof ts === "number" ? new Date(ts * 1000).toISOString().slice(11, 19) + "Z" : "–");

// Polar sky projection: azimuth from north (up) through east (right), elevation 90° at the centre.
function sky(az, elv) {
  const r = (SKY_R * (90 - Math.max(0, Math.min(90, elv)))) / 90;
  const a = (az * Math.PI) / 180;
  return [SKY_R + 10 + r * Math.sin(a), SKY_R + 10 - r * Math.cos(a)];
}

function interpTrack(track, t) {
  if (!track.length || typeof t !== "number" || t < track[0][0] || t > track[track.length - 1][0]) return null;
  for (let i = 1; i < track.length; i++) {
    if (track[i][0] >= t) {
      const [t0, a0, e0] = track[i - 1];
      const [t1, a1, e1] = track[i];
      const f = t1 > t0 ? (t - t0) / (t1 - t0) : 0;
      let da = a1 - a0;
      if (da > 180) da -= 360;
      if (da < -180) da += 360;
      return [(a0 + f * da + 360) % 360, e0 + f * (e1 - e0)];
    }
  }
  return null;
}

function skyPlot(node) {
  const size = 2 * SKY_R + 20;
  const svg = el("svg:svg", { class: "sky", viewBox: `0 0 ${size} ${size}`, role: "img",
    "aria-label": `sky plot of ${node.name}` });
  svg.append(el("svg:circle", { class: "horizon", cx: SKY_R + 10, cy: SKY_R + 10, r: SKY_R }));
  for (const e of [30, 60]) {
    svg.append(el("svg:circle", { class: "ring", cx: SKY_R + 10, cy: SKY_R + 10, r: (SKY_R * (90 - e)) / 90 }));
  }
  for (const [label, az] of [["N", 0], ["E", 90], ["S", 180], ["W", 270]]) {
    const [x, y] = sky(az, -6);
    svg.append(el("svg:text", { class: "label", x, y }, label));
  }
  const line = (pts, cls) => {
    if (pts.length < 2) return;
    svg.append(el("svg:polyline", { class: cls,
      points: pts.map(([, a, e]) => sky(a, e).map((v) => v.toFixed(1)).join(",")).join(" ") }));
  };
  line(node.track, "track");
  line(node.trail, "trail");
  const p = node.pointing;
  const sat = interpTrack(node.track, p ? p.t : node.last_ts);
  if (sat) {
    const [x, y] = sky(sat[0], sat[1]);
    svg.append(el("svg:circle", { class: "sat", cx: x.toFixed(1), cy: y.toFixed(1), r: 4,
      "data-az": sat[0].toFixed(2), "data-el": sat[1].toFixed(2) }, el("svg:title", {}, "satellite (planned)")));
  }
  if (p) {
    const [x, y] = sky(p.az_deg, p.el_deg);
    svg.append(el("svg:circle", { class: "mount", cx: x.toFixed(1), cy: y.toFixed(1), r: 6,
      "data-az": p.az_deg.toFixed(3), "data-el": p.el_deg.toFixed(3) }, el("svg:title", {}, "mount (actual)")));
  }
  return svg;
}

function header(node) {
  const link = node.link;
  const why = link === "offline" && node.reason ? ` (${node.reason === "lwt" ? "connection lost" : node.reason})` : "";
  return el("h2", {}, node.name,
    el("span", { class: `pill link ${link}`, "data-link": link }, link + why),
    el("span", { class: `summary ${node.summary}` }, node.summary),
    el("span", { class: "muted" }, `session ${node.session}`));
}

function alarms(node) {
  const list = el("ul", { class: "alarms" });
  for (const a of [...node.alarms].reverse()) {
    list.append(el("li", { class: a.level }, `${a.t_utc ? a.t_utc.slice(11, 19) : utc(a.ts)} ${a.kind}: ${a.message}`));
  }
  if (!node.alarms.length) list.append(el("li", { class: "muted" }, "no alarms"));
  return [el("h3", {}, "alarms"), list];
}

function stationCard(node) {
  const ps = node.pass || {};
  const p = node.pointing;
  const rates = Object.entries(node.rates_hz).sort();
  const total = rates.reduce((s, [, r]) => s + r, 0);
  const facts = el("dl", { class: "kv" },
    el("dt", {}, "pass"), el("dd", { class: "pass-state", "data-state": ps.state || "" }, ps.state || "–"),
    el("dt", {}, "window"), el("dd", {}, ps.aos_utc ? `${ps.aos_utc.slice(11, 19)} – ${(ps.los_utc || "").slice(11, 19)}` : "–"),
    el("dt", {}, "mount"), el("dd", { class: "pointing" }, p ? `az ${fmt(p.az_deg, 2)}°  el ${fmt(p.el_deg, 2)}°` : "–"),
    el("dt", {}, "error"), el("dd", {}, p && p.error_arcsec !== undefined ? `${fmt(p.error_arcsec, 1)}″` : "–"),
    el("dt", {}, "singles"), el("dd", { class: "rates", "data-total": rates.length ? total.toFixed(1) : "" },
      rates.length ? rates.map(([ch, r]) => `${ch}: ${fmt(r, 0)}`).join("  ") + ` Hz` : "–"),
    el("dt", {}, "events"), el("dd", { class: "events" }, node.events_recorded ?? "–"),
    el("dt", {}, "HWP"), el("dd", {}, node.hwp.actual_deg !== undefined ? `${fmt(node.hwp.actual_deg, 2)}° (θ ${fmt(node.hwp.theta_deg, 1)}°)` : "–"),
    el("dt", {}, "clock"), el("dd", {}, `${utc(node.last_ts)}${node.warped_clock ? " (warped)" : ""}`),
    el("dt", {}, "gaps"), el("dd", {}, node.telemetry_gaps));
  return el("article", { class: "card station", "data-station": node.name, "data-link": node.link,
    "data-summary": node.summary }, header(node), el("div", { class: "row" }, skyPlot(node), facts), ...alarms(node));
}

function liveBlock(live) {
  if (!live) return el("p", { class: "muted live-none" }, "no window running");
  const fig = (cls, value, cap, raw) =>
    el("div", {}, el("div", { class: `fig ${cls}`, "data-value": raw ?? "" }, value), el("div", { class: "cap" }, cap));
  const pm = (x, s, scale, d) => (typeof x === "number" ? `${fmt(x * scale, d)}${typeof s === "number" ? " ± " + fmt(s * scale, d) : ""}` : "–");
  return el("div", {},
    el("div", { class: "muted live-window", "data-window": live.window_id || "", "data-locked": live.locked ? "yes" : "no" }, `${live.window_id || "?"} · ${live.locked ? "locked" : "searching"} · ${fmt(100 * (live.progress || 0), 0)} %`),
    el("div", { class: "live" },
      fig("live-rate", fmt(live.rate_hz, 2), "coincidences / s", live.rate_hz),
      fig("live-coinc", live.coincidences ?? "–", "coincidences", live.coincidences),
      fig("live-qber", pm(live.qber, live.qber_sigma, 100, 1), "QBER (%)", live.qber),
      fig("live-s", pm(live.s, live.s_sigma, 1, 2), "CHSH S", live.s)));
}

// max elevation per station ({"delingha": 52.1, ...}) or one number, in degrees
function maxEl(x) {
  const values = x && typeof x === "object" ? Object.values(x) : [x];
  return values.map((v) => `${fmt(v, 0)}°`).join(" / ");
}

function planTable(plan) {
  const table = el("table", { class: "plan" }, el("tr", {}, ...["window (UTC)", "stations", "s", "max el", "status"].map((h) => el("th", {}, h))));
  const windows = (plan && Array.isArray(plan.windows) ? plan.windows : []).slice(0, 8);
  for (const w of windows) {
    table.append(el("tr", { "data-status": w.status },
      el("td", {}, `${String(w.start_utc || "").slice(0, 19)}`),
      el("td", {}, (w.stations || []).join(" – ")),
      el("td", { class: "num" }, fmt(w.duration_s, 0)),
      el("td", { class: "num" }, maxEl(w.max_elevation_deg)),
      el("td", {}, w.status + (w.reason ? ` (${w.reason})` : ""))));
  }
  if (!windows.length) table.append(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "no plan published")));
  return table;
}

function resultsTable(results) {
  const table = el("table", { class: "results" }, el("tr", {}, ...["window", "status", "coinc.", "S ± σ", "QBER"].map((h) => el("th", {}, h))));
  for (const [id, r] of Object.entries(results).reverse()) {
    const f = r.figures || {};
    table.append(el("tr", { "data-window": id },
      el("td", {}, id), el("td", {}, r.status || "?"),
      el("td", { class: "num" }, f.coincidences ?? "–"),
      el("td", {}, typeof f.s === "number" ? `${fmt(f.s, 3)} ± ${fmt(f.s_sigma, 3)}` : "–"),
      el("td", {}, typeof f.qber === "number" ? `${fmt(100 * f.qber, 2)} %` : typeof f.qber_from_s === "number" ? `${fmt(100 * f.qber_from_s, 2)} % (from S)` : "–")));
  }
  return table;
}

function coordinatorCard(node) {
  const plan = node.plan || {};
  return el("article", { class: "card coordinator", "data-node": node.name, "data-link": node.link,
    "data-summary": node.summary }, header(node),
    el("div", { class: "muted" }, `campaign ${plan.campaign || "–"} · mode ${plan.mode || "–"}`),
    el("h3", {}, "live (classical channel)"), liveBlock(node.live),
    el("h3", {}, "next common windows"), planTable(node.plan),
    el("h3", {}, "window results"), Object.keys(node.results).length ? resultsTable(node.results) : el("p", { class: "muted" }, "none yet"),
    ...alarms(node));
}

function render(model) {
  const b = model.broker;
  const broker = document.getElementById("broker");
  broker.className = `pill ${b.connected ? "online" : "offline"}`;
  broker.textContent = `broker ${b.url}${b.embedded ? " (embedded)" : ""}: ${b.connected ? "connected" : "not connected" + (b.error ? " – " + b.error : "")}`;
  document.getElementById("updated").textContent = `updated ${new Date().toISOString().slice(11, 19)}Z`;
  const stations = model.nodes.filter((n) => n.role === "station");
  const coordinators = model.nodes.filter((n) => n.role === "coordinator");
  document.getElementById("stations").replaceChildren(...stations.map(stationCard));
  document.getElementById("network").replaceChildren(...coordinators.map(coordinatorCard));
  const empty = document.getElementById("empty");
  empty.textContent = model.nodes.length
    ? ""
    : `Nothing connected yet: no station or coordinator has published on ${b.url}` +
      (b.embedded ? ` (the embedded broker: start stations with --broker ${b.url})` : "") + ".";
  document.body.dataset.version = String(model.version);
}

function connect() {
  const source = new EventSource("/events");
  source.addEventListener("model", (ev) => render(JSON.parse(ev.data)));
  source.onerror = () => {
    const broker = document.getElementById("broker");
    broker.className = "pill offline";
    broker.textContent = "dashboard server not reachable (retrying)";
  };
}

connect();
