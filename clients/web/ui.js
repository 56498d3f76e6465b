// ui.js — small DOM helpers shared by the omnitill pages (no framework).

const BANNER_TEXT = {
  connecting: "Reconnecting…",
  live: "Live",
  stale: "Connection slow — data may be stale",
  offline: "Offline — data may be stale",
};

/** Keep a banner element in step with the connection (aria-live lives in the markup). */
/** Returns a function that refreshes the banner (e.g. after queuing a change offline). */
export function bindBanner(conn, node) {
  let everLive = false;
  const update = () => {
    const s = conn.state;
    if (s === "live") everLive = true;
    node.dataset.state = s;
    let text = BANNER_TEXT[s];
    if (s === "connecting" && !everLive) text = "Connecting…";
    if (s !== "live" && conn.pendingCount) text += ` · ${conn.pendingCount} change(s) waiting to sync`;
    node.textContent = text;
  };
  conn.on("state", update);
  return update;
}

/** Show a short message in a toast region (role=status / aria-live set in the markup). */
export function toast(region, text, kind = "info", ms = 5000) {
  const div = document.createElement("div");
  div.className = `toast toast-${kind}`;
  div.textContent = text;
  region.append(div);
  setTimeout(() => div.remove(), ms);
}

export function money(cents) {
  return (cents / 100).toLocaleString(undefined, { style: "currency", currency: "USD" });
}

/** Accept epoch seconds, epoch ms or an ISO string. */
export function toDate(t) {
  if (t === null || t === undefined || t === "") return null;
  if (typeof t === "number") return new Date(t < 1e12 ? t * 1000 : t);
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? null : d;
}

export function clock(t) {
  const d = toDate(t);
  return d ? d.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" }) : "—";
}

export function el(tag, attrs = {}, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
    else if (k === "class") n.className = v;
    else if (k === "dataset") Object.assign(n.dataset, v);
    else n.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    n.append(c instanceof Node ? c : String(c));
  }
  return n;
}
