// widget.js — <omnitill-stock sku="..." near="97205 | 45.52,-122.68" endpoint="https://shop-stock.example">
// An embeddable "in stock near you" element for any web shop. Load it as a module from the
// omnitill server:  <script type="module" src="https://<omnitill>/static/widget.js"></script>
// It fetches a public (storefront) token, opens the omnitill WebSocket and shows the nearest
// stores with stock, live. Every element on a page shares one connection per endpoint.
import { api, connect, nearTopic, wsUrl } from "./omnitill.js";

const connections = new Map(); // endpoint -> Connection

function connectionFor(endpoint) {
  let conn = connections.get(endpoint);
  if (!conn) {
    // A function token: every (re)connect fetches a fresh public token, so expiry heals itself.
    const token = async () => (await api("/api/v1/auth/public-token", { base: endpoint })).token;
    conn = connect({ url: wsUrl(endpoint + "/"), token, client: "widget" });
    connections.set(endpoint, conn);
  }
  return conn;
}

async function resolveNear(endpoint, near) {
  const m = /^\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*$/.exec(near);
  if (m) return { lat: Number(m[1]), lon: Number(m[2]) };
  return api(`/api/v1/geo/resolve?q=${encodeURIComponent(near.trim())}`, { base: endpoint });
}

function toDate(t) {
  if (t === null || t === undefined || t === "") return null;
  const d = typeof t === "number" ? new Date(t < 1e12 ? t * 1000 : t) : new Date(t);
  return Number.isNaN(d.getTime()) ? null : d;
}

function ready(t) {
  const d = toDate(t);
  if (!d) return "soon";
  const time = d.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
  return d.toDateString() === new Date().toDateString() ? `today by ${time}` : `${d.toLocaleDateString([], { weekday: "long" })} ${time}`;
}

const STYLE = `
  :host { display: block; font: 15px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #16191d; }
  .box { border: 1px solid #c9ced6; border-radius: 10px; padding: 12px 14px; background: #fff; }
  .headline { font-weight: 700; margin: 0 0 6px; }
  .headline.in { color: #0d5a27; }
  .headline.out { color: #8e1b1b; }
  ul { list-style: none; margin: 0; padding: 0; }
  li { display: flex; justify-content: space-between; gap: 10px; padding: 5px 0; border-top: 1px solid #e3e6ea; }
  li:first-child { border-top: 0; }
  .store { font-weight: 600; }
  .meta { color: #4f5661; font-size: 13px; }
  .qty { font-weight: 700; white-space: nowrap; font-variant-numeric: tabular-nums; }
  .status { margin: 8px 0 0; font-size: 12px; color: #4f5661; display: flex; align-items: center; gap: 6px; }
  .dot { width: 8px; height: 8px; border-radius: 50%; background: #0d5a27; }
  .stale .dot { background: #8e1b1b; }
  .stale .status { color: #8e1b1b; font-weight: 600; }
  .stale ul, .stale .headline { color: #5a6068; }
  .stale .qty { font-style: italic; font-weight: 600; }
  .stale .qty::after { content: " ?"; }
`;

class OmnitillStock extends HTMLElement {
  static observedAttributes = ["sku", "near", "endpoint", "limit"];

  constructor() {
    super();
    this.root = this.attachShadow({ mode: "open" });
    this.root.innerHTML = `<style>${STYLE}</style>
      <div class="box" part="box"><p class="headline" part="headline">Checking stores near you…</p><ul></ul>
      <p class="status" role="status" aria-live="polite"><span class="dot" aria-hidden="true"></span><span class="status-text"></span></p></div>`;
    this.box = this.root.querySelector(".box");
    this.view = null;
    this.gen = 0;
    this.error = null;
  }

  connectedCallback() { this.setup(); }
  disconnectedCallback() { this.teardown(); }
  attributeChangedCallback() { if (this.isConnected) this.setup(); }

  teardown() {
    this.off?.();
    this.view?.close();
    this.view = null;
  }

  get endpoint() {
    return (this.getAttribute("endpoint") || location.origin).replace(/\/+$/, "");
  }

  async setup() {
    const gen = ++this.gen; // attributes can change while we await
    this.teardown();
    const sku = this.getAttribute("sku");
    const near = this.getAttribute("near");
    this.error = null;
    if (!sku || !near) { this.error = "Set the sku and near attributes."; return this.render(); }
    let pos;
    for (let attempt = 0; ; attempt++) {
      try { pos = await resolveNear(this.endpoint, near); break; } catch (e) {
        if (gen !== this.gen) return;
        if (e.code !== "unreachable") { this.error = `We couldn't find "${near}".`; return this.render(); }
        this.error = "Store stock is unavailable right now.";
        this.render();
        await new Promise((r) => setTimeout(r, Math.min(30000, 1000 * 2 ** attempt) * Math.random() + 500));
        if (gen !== this.gen) return;
      }
    }
    if (gen !== this.gen) return;
    this.error = null;
    this.conn = connectionFor(this.endpoint);
    this.view = this.conn.subscribe(nearTopic(sku, pos.lat, pos.lon));
    this.off = this.view.on(() => this.render());
  }

  render() {
    const head = this.root.querySelector(".headline");
    const list = this.root.querySelector("ul");
    const status = this.root.querySelector(".status-text");
    const v = this.view;
    const stale = !v || v.stale;
    const offline = !!v && this.conn.state === "offline";
    // Grey out numbers we already showed once they may be out of date.
    this.box.classList.toggle("stale", !!this.error || (stale && !!v?.ready));
    this.dataset.state = this.error ? "error"
      : !v || !v.ready ? (offline ? "offline" : "loading")
      : stale ? "stale" : "live";
    if (this.error || (v && v.error)) {
      head.className = "headline";
      head.textContent = this.error || "Store stock is unavailable for this item.";
      list.replaceChildren();
      status.textContent = "";
      return;
    }
    if (!v || !v.ready) {
      head.className = "headline";
      head.textContent = offline ? "Store stock is unavailable right now." : "Checking stores near you…";
      list.replaceChildren();
      status.textContent = offline ? "Offline — retrying" : "";
      return;
    }
    const limit = parseInt(this.getAttribute("limit") || "3", 10);
    const stores = Object.entries(v.state)
      .map(([id, s]) => ({ id, ...s }))
      .filter((s) => s.available > 0)
      .sort((a, b) => a.distance_km - b.distance_km)
      .slice(0, limit);
    if (!stores.length) {
      head.className = "headline out";
      head.textContent = "Not in stock at stores near you right now.";
    } else {
      head.className = "headline in";
      const first = stores[0];
      const d = toDate(first.ready_at);
      const today = !d || d.toDateString() === new Date().toDateString();
      head.textContent = `In stock near you — pick up ${today ? "today" : "soon"} at ${first.name}`;
    }
    list.replaceChildren(...stores.map((s) => {
      const li = document.createElement("li");
      li.dataset.location = s.id;
      li.innerHTML = `<span><span class="store"></span><br><span class="meta"></span></span><span class="qty"></span>`;
      li.querySelector(".store").textContent = s.name;
      li.querySelector(".meta").textContent = `${Number(s.distance_km).toFixed(1)} km · ready ${ready(s.ready_at)}`;
      li.querySelector(".qty").textContent = `${s.available} left`;
      return li;
    }));
    status.textContent = !stale ? "Live stock"
      : offline ? "Offline — availability may be out of date" : "Updating…";
  }
}

if (!customElements.get("omnitill-stock")) customElements.define("omnitill-stock", OmnitillStock);
export { OmnitillStock };
