// widget.js — <omnitill-stock sku="..." near="97205 | 45.52,-122.68" endpoint="https://shop-stock.example">
// An embeddable "in stock near you" element for any web shop. Load it as a module from the
// omnitill server:  <script type="module" src="https://<omnitill>/static/widget.js"></script>
// It fetches a public (storefront) token, opens the omnitill WebSocket and shows the nearest
// stores with stock, live. Every element on a page shares one connection per endpoint.
//
// <omnitill-order order="O..." token="<customer_token>" endpoint="..."> — a customer's order
// status, live from the `order:{id}` topic (the token is the `customer_token` that
// POST /api/v1/orders returned; it reads that one order). Curbside orders get "I'm here".
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

// ------------------------------------------------------------------ order status ---

const ORDER_STEPS = {
  pickup: [["placed", "Order received"], ["picking", "Being picked"], ["ready", "Ready for pickup"], ["picked_up", "Picked up"]],
  ship: [["placed", "Order received"], ["picking", "Being picked"], ["packed", "Packed"], ["shipped", "Shipped"], ["delivered", "Delivered"]],
};
const STATUS_TEXT = {
  pending: "We are placing your order…",
  placed: "Order received",
  picking: "We are picking your order",
  packed: "Packed — waiting for the carrier",
  ready: "Ready for pickup",
  partially_picked_up: "Partly picked up",
  picked_up: "Picked up — thank you!",
  shipped: "On its way",
  delivered: "Delivered",
  cancelled: "Cancelled",
  rejected: "We could not place this order",
  returned: "Returned",
};

const ORDER_STYLE = STYLE + `
  h2 { font-size: 18px; margin: 0 0 4px; }
  .sub { color: #4f5661; font-size: 13px; margin: 0 0 10px; }
  .code { font: 700 28px ui-monospace, monospace; letter-spacing: .12em; margin: 6px 0; }
  ol.steps { list-style: none; display: flex; gap: 6px; margin: 10px 0; padding: 0; flex-wrap: wrap; }
  ol.steps li { border: 1px solid #c9ced6; border-radius: 999px; padding: 2px 10px; font-size: 13px; color: #4f5661; }
  ol.steps li.done { background: #e6f2ea; border-color: #0d5a27; color: #0d5a27; }
  ol.steps li.current { background: #0d5a27; color: #fff; border-color: #0d5a27; font-weight: 700; }
  table { width: 100%; border-collapse: collapse; font-size: 14px; }
  th, td { text-align: left; padding: 4px 0; border-top: 1px solid #e3e6ea; }
  td.num, th.num { text-align: right; }
  form { display: flex; gap: 6px; align-items: end; margin-top: 10px; }
  input { font: inherit; padding: 4px 6px; width: 6rem; }
  button { font: inherit; padding: 5px 12px; border-radius: 6px; border: 1px solid #0d5a27; background: #0d5a27; color: #fff; cursor: pointer; }
  .note { margin: 8px 0 0; }
`;

const orderConnections = new Map(); // endpoint + token -> Connection

class OmnitillOrder extends HTMLElement {
  static observedAttributes = ["order", "token", "endpoint"];

  constructor() {
    super();
    this.root = this.attachShadow({ mode: "open" });
    this.root.innerHTML = `<style>${ORDER_STYLE}</style>
      <div class="box" part="box"><h2 class="headline" part="headline">Loading your order…</h2><div class="body"></div>
      <p class="status" role="status" aria-live="polite"><span class="dot" aria-hidden="true"></span><span class="status-text"></span></p></div>`;
    this.box = this.root.querySelector(".box");
    this.view = null;
    this.note = "";
  }

  connectedCallback() { this.setup(); }
  disconnectedCallback() { this.off?.(); this.view?.close(); this.view = null; }
  attributeChangedCallback() { if (this.isConnected) this.setup(); }

  get endpoint() {
    return (this.getAttribute("endpoint") || location.origin).replace(/\/+$/, "");
  }

  setup() {
    this.off?.();
    this.view?.close();
    this.view = null;
    const order = this.getAttribute("order");
    const token = this.getAttribute("token");
    if (!order || !token) { this.error = "This link is incomplete: it needs the order and its token."; return this.render(); }
    this.error = null;
    const key = `${this.endpoint} ${token}`;
    this.conn = orderConnections.get(key);
    if (!this.conn) {
      this.conn = connect({ url: wsUrl(this.endpoint + "/"), token, client: "widget" });
      orderConnections.set(key, this.conn);
    }
    this.view = this.conn.subscribe(`order:${order}`);
    this.off = this.view.on(() => this.render());
    this.conn.on("state", () => this.render());
  }

  async arrived(bay) {
    try {
      await this.conn.command("order.arrived", { order_id: this.getAttribute("order"), bay });
      this.note = `Thanks — we are on our way to bay ${bay}.`;
    } catch (e) {
      this.note = `We couldn't tell the store: ${e.message}`;
    }
    this.render();
  }

  render() {
    const head = this.root.querySelector(".headline");
    const body = this.root.querySelector(".body");
    const status = this.root.querySelector(".status-text");
    const v = this.view;
    const stale = !v || v.stale;
    this.box.classList.toggle("stale", !!this.error || (stale && !!v?.ready));
    if (this.error || v?.error) {
      this.dataset.state = "error";
      head.textContent = this.error || (v.error.code === "forbidden" || v.error.code === "unauthorized"
        ? "This order link has expired or is not valid." : `Order status is unavailable: ${v.error.message}`);
      body.replaceChildren();
      status.textContent = "";
      return;
    }
    if (!v || !v.ready || !v.state.status) {
      this.dataset.state = "loading";
      head.textContent = v?.ready ? "We can't find this order." : "Loading your order…";
      body.replaceChildren();
      return;
    }
    const o = v.state;
    this.dataset.state = stale ? "stale" : "live";
    this.dataset.status = o.status;
    head.textContent = STATUS_TEXT[o.status] || o.status;
    const parts = [];
    const sub = document.createElement("p");
    sub.className = "sub";
    sub.textContent = `Order ${o.order_id}` + (o.fulfilment === "pickup" ? ` · pick up at ${o.pickup_location}` : o.ship_to ? ` · to ${o.ship_to.address}` : "");
    parts.push(sub);
    const steps = ORDER_STEPS[o.fulfilment] || [];
    const at = steps.findIndex(([s]) => s === (o.status === "partially_picked_up" ? "ready" : o.status));
    if (at >= 0 || o.status === "returned") {
      const ol = document.createElement("ol");
      ol.className = "steps";
      ol.setAttribute("aria-label", "Progress");
      steps.forEach(([s, label], i) => {
        const li = document.createElement("li");
        li.textContent = label;
        if (i < at || o.status === "returned") li.className = "done";
        if (i === at) { li.className = "current"; li.setAttribute("aria-current", "step"); }
        ol.append(li);
      });
      parts.push(ol);
    }
    if (o.pickup_code) {
      const p = document.createElement("div");
      p.innerHTML = `<div class="meta">Show this code at the counter</div><div class="code" part="code"></div>`;
      p.querySelector(".code").textContent = o.pickup_code;
      parts.push(p);
    }
    if (o.shipment) {
      const p = document.createElement("p");
      p.className = "note";
      p.textContent = `Shipped with ${o.shipment.carrier}, tracking ${o.shipment.tracking}.`;
      parts.push(p);
    }
    const table = document.createElement("table");
    table.innerHTML = `<thead><tr><th>Item</th><th class="num">Qty</th><th class="num">Status</th></tr></thead><tbody></tbody>`;
    for (const ln of o.lines || []) {
      const tr = document.createElement("tr");
      tr.dataset.line = ln.line;
      const done = o.fulfilment === "pickup" ? "picked up" : "shipped";
      const state = ln.cancelled >= ln.qty ? "cancelled"
        : ln.returned ? `${ln.returned} returned`
        : ln.fulfilled >= ln.qty - ln.cancelled ? done
        : ln.fulfilled ? `${ln.fulfilled} ${done}` : "on order";
      tr.innerHTML = `<td></td><td class="num"></td><td class="num"></td>`;
      tr.children[0].textContent = ln.sku;
      tr.children[1].textContent = String(ln.qty);
      tr.children[2].textContent = state;
      table.tBodies[0].append(tr);
    }
    parts.push(table);
    if (o.refund_due_cents) {
      const p = document.createElement("p");
      p.className = "note";
      p.textContent = `Refund due: ${(o.refund_due_cents / 100).toLocaleString(undefined, { style: "currency", currency: "USD" })}`;
      parts.push(p);
    }
    const open = ["placed", "picking", "packed", "ready", "partially_picked_up"].includes(o.status);
    if (o.curbside && open) {
      if (o.bay) {
        const p = document.createElement("p");
        p.className = "note";
        p.textContent = `You're checked in at bay ${o.bay}.`;
        parts.push(p);
      } else {
        const form = document.createElement("form");
        form.innerHTML = `<label>Parking bay<br><input name="bay" maxlength="16" required></label><button type="submit">I'm here</button>`;
        form.addEventListener("submit", (ev) => { ev.preventDefault(); const bay = form.bay.value.trim(); if (bay) this.arrived(bay); });
        parts.push(form);
      }
    }
    if (this.note) {
      const p = document.createElement("p");
      p.className = "note";
      p.setAttribute("role", "status");
      p.textContent = this.note;
      parts.push(p);
    }
    const focused = this.root.activeElement?.name;
    body.replaceChildren(...parts);
    if (focused) this.root.querySelector(`[name="${focused}"]`)?.focus();
    const offline = this.conn.state === "offline";
    status.textContent = !stale ? "Live status" : offline ? "Offline — status may be out of date" : "Updating…";
  }
}

if (!customElements.get("omnitill-order")) customElements.define("omnitill-order", OmnitillOrder);
export { OmnitillOrder, OmnitillStock };
