// The ops dashboard: manager sign-in, then live charts of the `ops:metrics` topic.
// The server replaces the "sample" key about once a second; this page keeps the rolling
// history (raw per-delta hook, so conflated rendering never loses a sample) and draws
// each chart on its own <canvas>.
import { api, connect, schedule } from "./omnitill.js";
import { bindBanner, el, toDate } from "./ui.js";

const $ = (id) => document.getElementById(id);
const SESSION_KEY = "omnitill.ops.session";
const KEEP_S = 300;
const PALETTE = ["#1f4e8c", "#c2410c", "#0d7a3a", "#8e1b1b", "#6b3fa0", "#7a6000", "#0e7490", "#4f5661"];
const MANAGERS = new Set(["manager", "admin"]);

let session = null;
let conn = null;
let view = null;
const history = []; // samples, oldest first

// ---------------------------------------------------------------- sign-in ----------

function showSignin(message = "") {
  $("app").hidden = true;
  $("who").hidden = true;
  $("signin-view").hidden = false;
  $("signin-msg").textContent = message;
  $("banner").dataset.state = "offline";
  $("banner").textContent = "Not signed in";
  $("user-id").focus();
}

function signOut(message) {
  sessionStorage.removeItem(SESSION_KEY);
  conn?.close();
  conn = view = session = null;
  history.length = 0;
  showSignin(message);
}

$("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const user_id = $("user-id").value.trim();
  const pin = $("pin").value;
  if (!user_id || !pin) { $("signin-msg").textContent = "Enter your user id and PIN."; return; }
  $("signin-btn").disabled = true;
  try {
    const res = await api("/api/v1/auth/login", { method: "POST", body: { user_id, pin } });
    if (!MANAGERS.has(res.role)) {
      $("signin-msg").textContent = `This dashboard is for managers; ${res.name || user_id} is signed up as ${res.role}.`;
      return;
    }
    session = { ...res, user_id };
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
    $("pin").value = "";
    start();
  } catch (e) {
    $("signin-msg").textContent = e.code === "unauthorized" ? "Wrong user id or PIN."
      : e.code === "unreachable" ? "Cannot reach the omnitill server." : `Sign-in failed: ${e.message}`;
  } finally {
    $("signin-btn").disabled = false;
  }
});
$("signout").addEventListener("click", () => signOut("Signed out."));
api("/api/v1/demo").then((d) => {
  const m = (d.staff || []).find((s) => MANAGERS.has(s.role));
  if (m) $("demo-hint").textContent = `Demo: user id ${m.user_id}, PIN ${m.pin}.`;
}).catch(() => {});

function start() {
  const exp = toDate(session.expires_at);
  if (exp && exp <= new Date()) return signOut("Your session has expired. Sign in again.");
  $("signin-view").hidden = true;
  $("app").hidden = false;
  $("who").hidden = false;
  $("manager").textContent = `${session.name || session.user_id} · ${session.role}`;
  conn = connect({ token: session.token, client: "ops" });
  bindBanner(conn, $("banner"));
  conn.on("unauthorized", () => signOut("Your session has expired. Sign in again."));
  view = conn.subscribe("ops:metrics");
  view.onChange((changes) => {
    const s = changes.sample;
    if (!s || (history.length && s.t <= history[history.length - 1].t)) return;
    history.push(s);
    const cut = s.t - KEEP_S - 5;
    while (history.length && history[0].t < cut) history.shift();
  });
  view.on(render);
}

// ---------------------------------------------------------------- charts -----------

/** Per-second rate of a cumulative counter between consecutive samples. */
function rate(get) {
  const out = [];
  for (let i = 1; i < history.length; i++) {
    const a = history[i - 1], b = history[i];
    const dt = b.t - a.t;
    if (dt <= 0 || dt > 10) continue;
    out.push([b.t, Math.max(0, (get(b) - get(a)) / dt)]);
  }
  return out;
}
const gauge = (get) => history.map((s) => [s.t, get(s)]);
const keysOf = (field) => [...new Set(history.flatMap((s) => Object.keys(s[field] || {})))].sort();

const CHARTS = [
  { id: "connections", title: "Connected clients by kind", unit: "", stacked: true,
    series: () => keysOf("connections").map((k) => ({ name: k, points: gauge((s) => s.connections?.[k] ?? 0) })) },
  { id: "topics", title: "Delta rate by topic kind", unit: "/s",
    series: () => keysOf("topic_rates").map((k) => ({ name: k, points: gauge((s) => s.topic_rates?.[k] ?? 0) })) },
  { id: "latency", title: "Command latency", unit: " ms",
    series: () => [
      { name: "p50", points: gauge((s) => s.command_p50_ms) },
      { name: "p99", points: gauge((s) => s.command_p99_ms) }] },
  { id: "throughput", title: "Commands", unit: "/s",
    series: () => [{ name: "commands", points: gauge((s) => s.commands_per_s) }] },
  { id: "rejects", title: "Rejects by code", unit: "/s",
    series: () => keysOf("rejects").map((k) => ({ name: k, points: rate((s) => s.rejects?.[k] ?? 0) })) },
  { id: "resyncs", title: "Resyncs and slow-client disconnects", unit: "/s",
    series: () => [
      { name: "resyncs", points: rate((s) => s.resyncs ?? 0) },
      { name: "resumes", points: rate((s) => s.resumes ?? 0) },
      { name: "slow disconnects", points: rate((s) => s.slow_disconnects ?? 0) }] },
  { id: "journal", title: "Journal commit latency", unit: " ms",
    series: () => [
      { name: "p50", points: gauge((s) => s.journal_p50_ms) },
      { name: "p99", points: gauge((s) => s.journal_p99_ms) }] },
];

const built = new Map();
function build() {
  for (const c of CHARTS) {
    const canvas = el("canvas", { role: "img", "aria-label": c.title });
    const legend = el("ul", { class: "legend", "aria-label": `${c.title} legend` });
    const fig = el("figure", { class: "chart", id: `chart-${c.id}` },
      el("figcaption", {}, el("h2", {}, c.title), el("span", { class: "muted" }, c.unit.trim() || "count")), canvas, legend);
    $("charts").append(fig);
    built.set(c.id, { canvas, legend });
  }
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

const fmt = (v) => (Number.isInteger(v) ? String(v) : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : String(Number(v.toFixed(2))));

/** Cumulative series (same sample times) for a stacked area chart; keeps the raw values. */
function stack(series) {
  const acc = new Map();
  return series.map((s) => ({
    ...s,
    raw: s.points,
    points: s.points.map(([t, v]) => {
      const base = acc.get(t) || 0;
      acc.set(t, base + (v || 0));
      return [t, base + (v || 0), base];
    }),
  }));
}

function draw(canvas, series, { windowS, now, stacked }) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (!w || !h) return;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const L = 44, R = 8, T = 8, B = 22;
  const pw = w - L - R, ph = h - T - B;
  const t0 = now - windowS;
  let max = 0;
  for (const s of series) for (const [t, v] of s.points) if (t >= t0 && v > max) max = v;
  max = niceMax(max * 1.1);
  const x = (t) => L + ((t - t0) / windowS) * pw;
  const y = (v) => T + ph - (v / max) * ph;

  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#4f5661";
  ctx.strokeStyle = "#e1e4e8";
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4, yy = Math.round(y(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(L, yy); ctx.lineTo(L + pw, yy); ctx.stroke();
    ctx.fillText(fmt(v), L - 6, yy);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const step = windowS <= 120 ? 30 : 60;
  for (let s = 0; s <= windowS; s += step) {
    const xx = x(now - s);
    ctx.textAlign = s === 0 ? "right" : s === windowS ? "left" : "center";
    ctx.fillText(s === 0 ? "now" : `-${s >= 60 && s % 60 === 0 ? s / 60 + "m" : s + "s"}`, xx, T + ph + 6);
  }
  ctx.save();
  ctx.beginPath(); ctx.rect(L, T - 2, pw, ph + 4); ctx.clip();
  ctx.lineWidth = 2;
  ctx.lineJoin = "round";
  if (stacked) { // fill each band between its base and its top, newest band last
    series.forEach((s, i) => {
      const pts = s.points.filter(([t]) => t >= t0 - 2);
      if (pts.length < 2) return;
      ctx.fillStyle = PALETTE[i % PALETTE.length] + "40";
      ctx.beginPath();
      pts.forEach(([t, v], j) => (j ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
      for (let j = pts.length - 1; j >= 0; j--) ctx.lineTo(x(pts[j][0]), y(pts[j][2]));
      ctx.closePath();
      ctx.fill();
    });
  }
  series.forEach((s, i) => {
    ctx.strokeStyle = PALETTE[i % PALETTE.length];
    ctx.beginPath();
    let prev = null;
    for (const [t, v] of s.points) {
      if (t < t0 - 2 || v === null || v === undefined) { prev = null; continue; }
      // A gap of more than 3 s (the engine was unreachable) breaks the line.
      if (prev === null || t - prev > 3) ctx.moveTo(x(t), y(v)); else ctx.lineTo(x(t), y(v));
      prev = t;
    }
    ctx.stroke();
  });
  ctx.restore();
  if (!series.some((s) => s.points.length)) {
    ctx.fillStyle = "#4f5661"; ctx.textAlign = "center"; ctx.textBaseline = "middle";
    ctx.fillText("no data yet", L + pw / 2, T + ph / 2);
  }
}

function tile(label, value) {
  return el("div", { class: "tile" }, el("div", { class: "label" }, label), el("div", { class: "value live-value" }, value));
}

// Webhook attempts since start: a failing or hanging endpoint shows here first.
function webhookTiles(w) {
  if (!w) return [];
  const lost = (w.failed ?? 0) + (w.dropped ?? 0);
  const t = tile("Webhooks failed", `${lost} of ${(w.delivered ?? 0) + lost}`);
  t.classList.toggle("alert", lost > 0);
  t.title = `delivered ${w.delivered ?? 0}, retrying ${w.retrying ?? 0}, failed ${w.failed ?? 0}, dropped ${w.dropped ?? 0}`;
  return [t];
}

function render() {
  if (!view) return;
  if (!built.size) build();
  const stale = view.stale;
  $("app").classList.toggle("is-stale", stale);
  $("view-error").textContent = view.error ? `Metrics unavailable: ${view.error.message}` : "";
  const last = history[history.length - 1];
  const now = conn.live && last ? Math.max(last.t, Date.now() / 1000 - 0.5) : Date.now() / 1000;
  const windowS = parseInt($("window").value, 10);
  $("last-sample").textContent = last ? `Last sample ${new Date(last.t * 1000).toLocaleTimeString()}` : "Waiting for the first sample…";
  if (last) {
    const sum = (o) => Object.values(o || {}).reduce((a, b) => a + b, 0);
    $("tiles").replaceChildren(
      tile("Connections", sum(last.connections)),
      tile("Commands/s", fmt(last.commands_per_s ?? 0)),
      tile("Command p99", `${fmt(last.command_p99_ms ?? 0)} ms`),
      tile("Journal p99", `${fmt(last.journal_p99_ms ?? 0)} ms`),
      tile("Rejects", sum(last.rejects)),
      tile("Resyncs", last.resyncs ?? 0),
      tile("Slow disconnects", last.slow_disconnects ?? 0),
      tile("Frames out/s", fmt(last.frames_out_per_s ?? 0)),
      ...webhookTiles(last.webhooks));
  }
  for (const c of CHARTS) {
    const { canvas, legend } = built.get(c.id);
    const series = c.series();
    draw(canvas, c.stacked ? stack(series) : series, { windowS, now, unit: c.unit, stacked: c.stacked });
    const summary = series.map((s, i) => { // legends show raw values, not stacked sums
      const v = s.points.length ? s.points[s.points.length - 1][1] : null;
      return { name: s.name, color: PALETTE[i % PALETTE.length], text: v === null ? "—" : `${fmt(v)}${c.unit}` };
    });
    legend.replaceChildren(...summary.map((s) => el("li", {},
      el("span", { class: "swatch", style: `background:${s.color}`, "aria-hidden": "true" }), `${s.name}: ${s.text}`)));
    canvas.setAttribute("aria-label", `${c.title}, last ${windowS / 60} minutes. Now: ` +
      (summary.length ? summary.map((s) => `${s.name} ${s.text}`).join(", ") : "no data"));
  }
}

// Redraw each second even without samples, so an outage shows as a growing gap.
setInterval(() => { if (view) schedule(render); }, 1000);
window.addEventListener("resize", () => { if (view) schedule(render); });
$("window").addEventListener("change", () => { if (view) schedule(render); });

try { session = JSON.parse(sessionStorage.getItem(SESSION_KEY)); } catch { session = null; }
if (session) start(); else showSignin();
