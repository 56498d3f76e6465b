// The browser register: sign-in, scan/search, cart with live availability, cash sale,
// pickup holds, this store's pickup queue (orders and holds), the ship-from-store picking
// list, returns against an original order, and stock at the other stores (endless aisle).
import { api, connect, newOpId, OmnitillError } from "./omnitill.js";
import { bindBanner, clock, el, money, toast, toDate } from "./ui.js";

const $ = (id) => document.getElementById(id);
const SESSION_KEY = "omnitill.register.session";
// Sale lines not yet acknowledged by the server, with their op_ids. In localStorage, so a
// sale rung up offline survives a closed tab or a crashed browser: the next sign-in at this
// store sends them again with the same op_ids, which the server applies exactly once.
const OUTBOX_KEY = "omnitill.register.outbox";
const toasts = $("toasts");

// ---------------------------------------------------------------- session ----------

function loadSession() {
  try { return JSON.parse(sessionStorage.getItem(SESSION_KEY)); } catch { return null; }
}

function expired(session) {
  const t = toDate(session?.expires_at);
  return !session?.token || (t !== null && t.getTime() <= Date.now());
}

function registerId() {
  let id = localStorage.getItem("omnitill.register.id");
  if (!id) {
    id = "reg-" + crypto.randomUUID().slice(0, 8);
    localStorage.setItem("omnitill.register.id", id);
  }
  return id;
}

function outboxLoad() {
  try { return JSON.parse(localStorage.getItem(OUTBOX_KEY)) || []; } catch { return []; }
}

function outboxAdd(entries) {
  localStorage.setItem(OUTBOX_KEY, JSON.stringify([...outboxLoad(), ...entries]));
}

function outboxDrop(opId) {
  localStorage.setItem(OUTBOX_KEY, JSON.stringify(outboxLoad().filter((e) => e.op_id !== opId)));
}

/** Send outbox entries (same op_ids, same args); each leaves the outbox once the server
 * answered it (ack or reject). A closed connection (sign-out) leaves them for next time. */
function sendQueued(entries) {
  return Promise.allSettled(entries.map((e) =>
    conn.command(e.name, e.args, { opId: e.op_id }).finally(() => outboxDrop(e.op_id))));
}

/** Show a sale in "Recent sales" and report how its lines settle. */
async function trackSale(label, settledLines, offline) {
  const status = el("span", { class: "muted" }, offline ? "saved, will sync when back online" : "syncing…");
  $("recent").prepend(el("li", {}, el("span", { class: "grow" }, label), status));
  refreshBanner();
  const settled = await settledLines;
  refreshBanner();
  const failed = settled.filter((r) => r.status === "rejected");
  status.textContent = failed.length ? `${failed.length} line(s) failed: ${failed[0].reason.message}` : "synced";
  status.className = failed.length ? "msg-error" : "";
  return failed;
}

/** At sign-in: the sales of this store that an earlier session could not sync. */
function resumeOutbox() {
  const mine = outboxLoad().filter((e) => e.args.location_id === session.location_id);
  const bySale = new Map();
  for (const e of mine) bySale.set(e.sale, [...(bySale.get(e.sale) || []), e]);
  for (const entries of bySale.values()) {
    const when = new Date(entries[0].at).toLocaleTimeString();
    const items = entries.reduce((n, e) => n + e.args.qty, 0);
    trackSale(`Sale from ${when} (restored): ${items} item(s)`, sendQueued(entries), false)
      .then((failed) => {
        if (failed.length) toast(toasts, `Restored sale: ${failed[0].reason.message}`, "error", 8000);
      });
  }
}

let session = null;
let conn = null;
let expiryTimer = null;
let refreshBanner = () => {};

function showSignin(message = "") {
  $("app").hidden = true;
  $("who").hidden = true;
  $("signin-view").hidden = false;
  $("signin-msg").textContent = message;
  $("store-name").textContent = "";
  const banner = $("banner");
  banner.dataset.state = "offline";
  banner.textContent = "Not signed in";
  $("user-id").focus();
}

function signOut(message = "") {
  const unsynced = session ? outboxLoad().filter((e) => e.args.location_id === session.location_id).length : 0;
  if (unsynced) {
    message = `${message} ${unsynced} sale line(s) not synced yet: they are kept on this register`
      .trim() + " and sync at the next sign-in here.";
  }
  sessionStorage.removeItem(SESSION_KEY);
  clearTimeout(expiryTimer);
  if (conn) { conn.close(); conn = null; }
  session = null;
  resetApp();
  showSignin(message);
}

const EXPIRED_MSG = "Your session has expired. Sign in again to keep selling.";

$("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const user_id = $("user-id").value.trim();
  const pin = $("pin").value;
  const msg = $("signin-msg");
  if (!user_id || !pin) {
    msg.textContent = "Enter your user id and PIN.";
    return;
  }
  $("signin-btn").disabled = true;
  try {
    const res = await api("/api/v1/auth/login", { method: "POST", body: { user_id, pin } });
    session = { ...res, user_id };
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
    $("pin").value = "";
    msg.textContent = "";
    start();
  } catch (e) {
    msg.textContent = e.code === "unauthorized" ? "Wrong user id or PIN."
      : e.code === "unreachable" ? "Cannot reach the omnitill server. Check the network and try again."
      : `Sign-in failed: ${e.message}`;
    $("pin").select();
  } finally {
    $("signin-btn").disabled = false;
  }
});

$("signout").addEventListener("click", () => signOut("Signed out."));

api("/api/v1/demo").then((demo) => {
  const s = (demo.staff || []).find((x) => x.role === "cashier");
  if (s) $("demo-hint").textContent = `Demo: user id ${s.user_id}, PIN ${s.pin}.`;
}).catch(() => {});

/** REST with the session token; an expired token sends the cashier back to sign-in. */
async function call(path, opts = {}) {
  try {
    return await api(path, { ...opts, token: session?.token });
  } catch (e) {
    if (e.code === "unauthorized") signOut(EXPIRED_MSG);
    throw e;
  }
}

// ---------------------------------------------------------------- app state --------

let here = null;         // this store's location record
let locations = [];      // all locations, sorted by distance from here
const products = new Map(); // sku -> product
const lines = [];        // cart lines: {product, qty, view, row, refs...}
let queueView = null;
let nearLine = null;     // the cart line shown in the "Other stores" panel

function km(a, b) {
  const r = Math.PI / 180;
  const dLat = (b.lat - a.lat) * r, dLon = (b.lon - a.lon) * r;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * r) * Math.cos(b.lat * r) * Math.sin(dLon / 2) ** 2;
  return 12742 * Math.asin(Math.sqrt(h));
}

function resetApp() {
  for (const l of lines.splice(0)) l.view.close();
  queueView = null;
  nearLine = null;
  $("cart").tBodies[0].replaceChildren();
  $("queue").replaceChildren();
  $("orders").replaceChildren();
  $("ship").replaceChildren();
  $("return-form").hidden = true;
  returning = null;
  $("results").replaceChildren();
  $("recent").replaceChildren();
  renderCartMeta();
}

async function start() {
  session = session || loadSession();
  if (!session) return showSignin();
  if (expired(session)) return signOut(EXPIRED_MSG);
  const exp = toDate(session.expires_at);
  if (exp) {
    clearTimeout(expiryTimer);
    expiryTimer = setTimeout(() => signOut(EXPIRED_MSG), Math.min(exp - Date.now(), 2 ** 31 - 1));
  }
  $("signin-view").hidden = true;
  $("app").hidden = false;
  $("who").hidden = false;
  $("cashier").textContent = `${session.name || session.user_id} · ${session.role}`;

  conn = connect({ token: session.token, client: "register" });
  refreshBanner = bindBanner(conn, $("banner"));
  conn.on("unauthorized", () => signOut(EXPIRED_MSG));
  conn.on("state", () => renderCartMeta());
  conn.on("error", (m) => { if (!m.topic) toast(toasts, m.message, "error"); });

  queueView = conn.subscribe(`location:${session.location_id}`);
  queueView.on(renderQueue);
  $("scan").focus();
  resumeOutbox();

  try {
    const { items } = await call("/api/v1/locations");
    here = items.find((l) => l.id === session.location_id) || null;
    $("store-name").textContent = here ? here.name : session.location_id;
    locations = items
      .filter((l) => l.id !== session.location_id)
      .map((l) => ({ ...l, km: here ? km(here, l) : null }))
      .sort((a, b) => (a.km ?? 0) - (b.km ?? 0));
    renderNear();
  } catch (e) {
    if (e.code !== "unauthorized") toast(toasts, `Could not load the store list: ${e.message}`, "error");
  }
}

// ---------------------------------------------------------------- scan & search ----

function describe(p) {
  const opts = Object.values(p.options || {}).filter(Boolean).join(" / ");
  return opts ? `${p.name} — ${opts}` : p.name;
}

$("scan-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const input = $("scan");
  const code = input.value.trim();
  const msg = $("scan-msg");
  msg.textContent = "";
  input.removeAttribute("aria-invalid");
  if (!code) return input.focus();
  try {
    const p = await call(`/api/v1/products/by-barcode/${encodeURIComponent(code)}`);
    addToCart(p);
    input.value = "";
  } catch (e) {
    input.setAttribute("aria-invalid", "true");
    msg.textContent = e.code === "not_found"
      ? `Unknown barcode "${code}". Check the code or search by name.`
      : e.code === "unreachable" ? "Cannot reach the server to look up the barcode. Search by name when back online."
      : `Lookup failed: ${e.message}`;
    input.select();
  }
  input.focus();
});

let searchSeq = 0;
let searchTimer = null;
$("search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(runSearch, 200);
});
$("search").addEventListener("keydown", (ev) => {
  if (ev.key === "Escape") { $("search").value = ""; $("results").replaceChildren(); $("search-msg").textContent = ""; }
  if (ev.key === "ArrowDown") { ev.preventDefault(); $("results").querySelector("button")?.focus(); }
});

async function runSearch() {
  const q = $("search").value.trim();
  const seq = ++searchSeq;
  const list = $("results");
  if (q.length < 2) { list.replaceChildren(); $("search-msg").textContent = ""; return; }
  try {
    const { items } = await call(`/api/v1/products?query=${encodeURIComponent(q)}&limit=20`);
    if (seq !== searchSeq) return;
    $("search-msg").textContent = items.length ? `${items.length} result(s)` : `No products match "${q}".`;
    list.replaceChildren(...items.map((p) => {
      products.set(p.sku, p);
      return el("li", {},
        el("span", { class: "grow" }, describe(p), " ", el("span", { class: "muted" }, p.sku)),
        el("span", {}, money(p.price_cents)),
        el("button", { type: "button", class: "small", "aria-label": `Add ${describe(p)}`,
          onclick: () => { addToCart(p); $("scan").focus(); } }, "Add"));
    }));
  } catch (e) {
    if (seq === searchSeq) $("search-msg").textContent = `Search failed: ${e.message}`;
  }
}

document.addEventListener("keydown", (ev) => {
  if (ev.key === "F2") { ev.preventDefault(); $("scan").focus(); }
  if (ev.key === "F3") { ev.preventDefault(); $("search").focus(); }
});

// ---------------------------------------------------------------- cart -------------

function availableHere(line) {
  const bal = line.view.state[session.location_id];
  return bal ? bal.available : line.view.ready ? 0 : null;
}

function addToCart(p) {
  products.set(p.sku, p);
  $("scan-msg").textContent = "";
  const existing = lines.find((l) => l.product.sku === p.sku);
  if (existing) {
    existing.qty += 1;
    existing.qtyInput.value = existing.qty;
    updateLine(existing);
    renderCartMeta();
    return;
  }
  const line = { product: p, qty: 1, view: conn.subscribe(`stock:${p.sku}`) };
  const name = describe(p);
  line.qtyInput = el("input", { type: "number", min: "1", max: "999", value: "1", style: "width:4.5rem",
    "aria-label": `Quantity of ${name}`,
    oninput: () => {
      const v = parseInt(line.qtyInput.value, 10);
      if (v >= 1) { line.qty = v; updateLine(line); renderCartMeta(); }
    } });
  line.badge = el("span", { class: "badge live-value" }, "…");
  line.warn = el("div", { class: "msg msg-warn", role: "alert" });
  line.cell = el("td", {}, line.badge, el("span", { class: "stale-label" }, "stale"));
  line.row = el("tr", { dataset: { sku: p.sku } },
    el("td", {}, el("div", {}, name), el("div", { class: "muted" }, p.sku), line.warn),
    el("td", { class: "num" }, line.qtyInput),
    line.priceCell = el("td", { class: "num" }),
    line.cell,
    el("td", {},
      el("button", { type: "button", class: "small secondary", "aria-label": `Other stores for ${name}`,
        onclick: () => showNear(line) }, "Other stores"),
      " ",
      el("button", { type: "button", class: "small danger", "aria-label": `Remove ${name}`,
        onclick: () => removeLine(line) }, "Remove")));
  $("cart").tBodies[0].append(line.row);
  lines.push(line);
  line.view.on(() => { updateLine(line); if (nearLine === line) renderNear(); });
  updateLine(line);
  renderCartMeta();
}

function removeLine(line) {
  const i = lines.indexOf(line);
  if (i < 0) return;
  lines.splice(i, 1);
  line.row.remove();
  line.view.close();
  if (nearLine === line) { nearLine = null; renderNear(); }
  renderCartMeta();
  $("scan").focus();
}

function updateLine(line) {
  const avail = availableHere(line);
  const stale = line.view.stale;
  line.cell.classList.toggle("is-stale", stale);
  line.badge.textContent = avail === null ? "…" : String(avail);
  line.badge.className = "badge live-value" + (avail === null ? "" : avail <= 0 ? " out" : avail <= 2 ? " low" : "");
  line.badge.title = stale ? "May be out of date" : "Live";
  line.priceCell.textContent = money(line.product.price_cents * line.qty);
  line.over = avail !== null && line.qty > avail;
  line.warn.textContent = line.over
    ? (avail <= 0 ? "None available here" : `Only ${avail} available here`) + ` — ringing up ${line.qty} needs confirmation.`
    : "";
}

function cartTotal() {
  return lines.reduce((s, l) => s + l.product.price_cents * l.qty, 0);
}

function parseCents(text) {
  const t = text.replace(/[$,\s]/g, "");
  if (!/^\d+(\.\d{0,2})?$/.test(t)) return null;
  return Math.round(parseFloat(t) * 100);
}

function renderCartMeta() {
  const total = cartTotal();
  $("total").textContent = money(total);
  $("cart-empty").hidden = lines.length > 0;
  $("cart").hidden = lines.length === 0;
  $("cart-panel").classList.toggle("is-stale", !!conn && conn.state !== "live" && lines.length > 0);
  const tenderedText = $("tendered").value.trim();
  const tendered = tenderedText ? parseCents(tenderedText) : null;
  const change = $("change");
  if (!lines.length) change.textContent = "";
  else if (tenderedText && tendered === null) change.innerHTML = '<span class="msg-error">Enter an amount like 40 or 40.00</span>';
  else if (tendered !== null && tendered < total) change.textContent = `Still due ${money(total - tendered)}`;
  else if (tendered !== null) change.textContent = `Change due ${money(tendered - total)}`;
  else change.textContent = "";
  $("complete").disabled = !lines.length;
  $("hold-cart").disabled = !lines.length;
}
$("tendered").addEventListener("input", renderCartMeta);

const confirmDialog = $("confirm-dialog");
function confirmOversell(over) {
  $("confirm-body").replaceChildren(el("ul", {}, over.map((l) => {
    const a = availableHere(l);
    return el("li", {}, `${describe(l.product)}: selling ${l.qty}, ${a <= 0 ? "none" : "only " + a} available here`);
  })));
  return new Promise((resolve) => {
    confirmDialog.returnValue = "cancel";
    confirmDialog.addEventListener("close", () => resolve(confirmDialog.returnValue === "ok"), { once: true });
    confirmDialog.showModal();
  });
}

let saleNo = 0;
$("tender-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!lines.length) return;
  const total = cartTotal();
  const tenderedText = $("tendered").value.trim();
  const tendered = tenderedText ? parseCents(tenderedText) : total; // exact cash if blank
  const msg = $("sale-msg");
  if (tendered === null || tendered < total) {
    msg.className = "msg msg-error";
    msg.textContent = tendered === null ? "Enter the cash tendered, like 40 or 40.00."
      : `Cash tendered is ${money(total - tendered)} short of the total.`;
    $("tendered").focus();
    return;
  }
  const over = lines.filter((l) => l.over);
  if (over.length && !(await confirmOversell(over))) { $("scan").focus(); return; }

  const offline = conn.state !== "live";
  const sold = lines.splice(0);
  const no = ++saleNo;
  const saleId = newOpId();
  const queued = sold.map((l) => ({
    op_id: newOpId(), sale: saleId, at: Date.now(), name: "stock.sale",
    args: {
      sku: l.product.sku, location_id: session.location_id, qty: l.qty, register_id: registerId(),
      ...(offline ? { offline_at: Date.now() / 1000 } : {}),
    },
  }));
  outboxAdd(queued);  // before sending: a closed tab cannot lose the sale
  const label = `Sale ${no}: ${sold.reduce((s, l) => s + l.qty, 0)} item(s), ${money(total)} cash`;
  const done = trackSale(label, sendQueued(queued), offline);
  for (const l of sold) { l.row.remove(); l.view.close(); }
  if (nearLine && sold.includes(nearLine)) { nearLine = null; renderNear(); }
  $("tendered").value = "";
  renderCartMeta();
  msg.className = "msg msg-ok";
  msg.textContent = `Sale ${no} complete. Change due ${money(tendered - total)}.`;
  $("scan").focus();

  const failed = await done;
  if (failed.length) toast(toasts, `Sale ${no}: ${failed[0].reason.message}`, "error", 8000);
});

// ---------------------------------------------------------------- holds ------------

function holdError(e, where) {
  if (!(e instanceof OmnitillError)) return String(e);
  if (e.code === "insufficient_stock") {
    const a = e.details?.available;
    return `Not enough stock at ${where}` + (a !== undefined ? ` (${a} available).` : ".");
  }
  if (e.code === "forbidden") return "Your role may not place holds there.";
  return e.message;
}

async function placeHold(line, location, customer_ref, ttl_s) {
  return conn.command("hold.place", {
    sku: line.product.sku, location_id: location, qty: line.qty, ttl_s, customer_ref,
  });
}

function customerRef(focusOnMissing) {
  const ref = $("customer-ref").value.trim();
  if (!ref && focusOnMissing) {
    $("hold-box").open = true;
    $("hold-msg").className = "msg msg-error";
    $("hold-msg").textContent = "Enter the customer's name or phone first.";
    $("customer-ref").setAttribute("aria-invalid", "true");
    $("customer-ref").focus();
  }
  return ref;
}

$("hold-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const ref = customerRef(true);
  if (!ref || !lines.length) return;
  $("customer-ref").removeAttribute("aria-invalid");
  const ttl = parseInt($("hold-ttl").value, 10);
  const msg = $("hold-msg");
  msg.className = "msg msg-info";
  msg.textContent = "Placing hold…";
  const held = [];
  const errors = [];
  for (const line of [...lines]) {
    try {
      const r = await placeHold(line, session.location_id, ref, ttl);
      held.push(`${describe(line.product)} ×${line.qty} (hold ${r.hold_id}, until ${clock(r.expires_at)})`);
      removeLine(line);
    } catch (e) {
      errors.push(`${describe(line.product)}: ${holdError(e, "this store")}`);
    }
  }
  msg.className = errors.length ? "msg msg-error" : "msg msg-ok";
  msg.textContent = [held.length ? `Held for ${ref}: ${held.join("; ")}.` : "", ...errors].filter(Boolean).join(" ");
  if (!errors.length) $("customer-ref").value = "";
});

function renderQueue(view) {
  const panel = $("queue-panel");
  panel.classList.toggle("is-stale", view.stale);
  $("ship-panel").classList.toggle("is-stale", view.stale);
  renderOrders(view);
  renderShipList(view);
  // An order's holds show on its order card, not again as loose holds.
  const holds = Object.entries(view.state)
    .filter(([k, h]) => k.startsWith("hold:") && h && !String(h.customer_ref || "").startsWith("order:")
      && (!h.status || ["active", "held", "placed", "ready"].includes(h.status)))
    .map(([, h]) => h)
    .sort((a, b) => (toDate(a.expires_at) ?? 0) - (toDate(b.expires_at) ?? 0));
  $("queue-empty").hidden = holds.length > 0;
  $("queue").hidden = holds.length === 0;
  const focusKey = document.activeElement?.dataset?.focusKey;
  $("queue").replaceChildren(...holds.map((h) => {
    const exp = toDate(h.expires_at);
    const soon = exp && exp - Date.now() < 15 * 60 * 1000;
    const name = products.get(h.sku) ? describe(products.get(h.sku)) : h.sku;
    const who = h.customer_ref || "Customer";
    return el("li", { dataset: { hold: h.hold_id } },
      el("span", { class: "who" }, who),
      el("span", { class: "actions" },
        el("button", { type: "button", class: "small", dataset: { focusKey: `pickup:${h.hold_id}` },
          "aria-label": `Picked up: ${who}, ${name}`, onclick: () => holdAction("hold.pickup", h, "picked up") }, "Picked up"),
        el("button", { type: "button", class: "small danger", dataset: { focusKey: `release:${h.hold_id}` },
          "aria-label": `Release the hold for ${who}, ${name}`, onclick: () => holdAction("hold.release", h, "released") }, "Release")),
      el("span", { class: "live-value" }, `${h.qty} × ${name}`),
      el("span", { class: "meta" }, "Hold ", el("code", {}, h.hold_id), " · ",
        el("span", { class: soon ? "soon" : "" }, exp ? `until ${clock(exp)}` : "no expiry")));
  }));
  if (focusKey) document.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`)?.focus();
}

async function holdAction(name, hold, done) {
  try {
    await conn.command(name, { hold_id: hold.hold_id });
    toast(toasts, `Hold ${hold.hold_id} for ${hold.customer_ref || "customer"} ${done}.`, "ok");
    // The row is gone with its button: keep the keyboard somewhere useful.
    requestAnimationFrame(() => { if (!document.activeElement || document.activeElement === document.body) $("scan").focus(); });
  } catch (e) {
    toast(toasts, `Could not update hold ${hold.hold_id}: ${e.message}`, "error", 8000);
  }
}

// ---------------------------------------------------------------- orders -----------

const STATUS_LABEL = {
  placed: "New", picking: "Picking", ready: "Ready", partially_picked_up: "Partly picked up",
};
const partialOpen = new Set();   // order ids whose partial-pickup form is open
const drafts = new Map();        // input key -> typed value (survives live re-renders)
const naming = new Set();        // SKUs whose product name is being looked up

/** A product's display name; unknown SKUs are looked up once and the views re-rendered. */
function itemName(sku) {
  const p = products.get(sku);
  if (p) return describe(p);
  if (!naming.has(sku)) {
    naming.add(sku);
    call(`/api/v1/products?query=${encodeURIComponent(sku)}&limit=5`).then(({ items }) => {
      const hit = items.find((x) => x.sku === sku);
      if (!hit) return;
      products.set(sku, hit);
      if (queueView) renderQueue(queueView);
      for (const n of document.querySelectorAll(`[data-name-sku="${CSS.escape(sku)}"]`)) n.textContent = describe(hit);
    }).catch(() => {});
  }
  return sku;
}

function draftInput(key, attrs) {
  return el("input", {
    ...attrs, value: drafts.has(key) ? drafts.get(key) : (attrs.value ?? ""), dataset: { focusKey: key },
    oninput: (ev) => drafts.set(key, ev.target.value),
  });
}

/** Order items aggregated per line (a line may be split over several holds). */
function orderLines(entry) {
  const byLine = new Map();
  for (const it of entry.items || []) {
    const l = byLine.get(it.line) || { line: it.line, sku: it.sku, qty: 0 };
    l.qty += it.qty;
    byLine.set(it.line, l);
  }
  return [...byLine.values()].sort((a, b) => a.line - b.line);
}

function renderOrders(view) {
  const orders = Object.entries(view.state)
    .filter(([k, o]) => k.startsWith("order:") && o)
    .map(([, o]) => o)
    // Customers waiting at the curb first, then oldest first.
    .sort((a, b) => (b.bay ? 1 : 0) - (a.bay ? 1 : 0) || (a.created_at || 0) - (b.created_at || 0));
  $("orders-empty").hidden = orders.length > 0;
  $("orders").hidden = orders.length === 0;
  const focusKey = document.activeElement?.dataset?.focusKey;
  $("orders").replaceChildren(...orders.map(orderCard));
  if (focusKey) document.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`)?.focus();
}

function orderCard(o) {
  const id = o.order_id;
  const who = o.customer_ref || "Customer";
  const lines = orderLines(o);
  const canReady = ["placed", "picking"].includes(o.status);
  const canHand = ["placed", "picking", "ready", "partially_picked_up"].includes(o.status);
  const btn = (label, key, onclick, cls = "small") => el("button", { type: "button", class: cls,
    dataset: { focusKey: `${key}:${id}` }, "aria-label": `${label}: order ${id} for ${who}`, onclick }, label);
  const actions = el("span", { class: "actions" },
    canReady ? btn("Ready", "ready", () => orderAction("order.ready", { order_id: id }, `Order ${id} is ready; the customer has been told.`)) : null,
    canHand ? btn("Picked up", "pickup", () => orderAction("order.pickup", { order_id: id }, `Order ${id} picked up by ${who}.`)) : null,
    canHand && lines.some((l) => l.qty > 1) || canHand && lines.length > 1
      ? btn(partialOpen.has(id) ? "Close" : "Partial…", "partial", () => { partialOpen.has(id) ? partialOpen.delete(id) : partialOpen.add(id); renderQueue(queueView); }, "small secondary")
      : null);
  const li = el("li", { dataset: { order: id, status: o.status } },
    el("span", { class: "who" }, who, " ",
      o.bay ? el("span", { class: "bay", title: "Waiting at the curb" }, `Bay ${o.bay}`) : null),
    actions,
    el("span", { class: "status-tag" }, STATUS_LABEL[o.status] || o.status,
      o.open_exceptions ? el("span", { class: "msg-error" }, ` · ${o.open_exceptions} exception(s)`) : null),
    el("ul", { class: "items" }, lines.map((l) => el("li", { dataset: { line: l.line } }, `${l.qty} × ${itemName(l.sku)}`))),
    el("span", { class: "meta" }, "Order ", el("code", {}, id), ` · ${o.channel}`,
      o.curbside ? " · curbside" : "", ` · since ${clock(o.created_at)}`));
  if (partialOpen.has(id) && canHand) {
    const form = el("form", { class: "partial", "aria-label": `Partial pickup of order ${id}`,
      onsubmit: (ev) => { ev.preventDefault(); partialPickup(o, lines); } },
      lines.map((l) => el("label", {}, `${itemName(l.sku)} (of ${l.qty}) `,
        draftInput(`partial:${id}:${l.line}`, { type: "number", min: "0", max: String(l.qty), value: "0", "aria-label": `Hand over how many of line ${l.line}` }))),
      el("button", { type: "submit", class: "small", dataset: { focusKey: `partial-go:${id}` } }, "Hand over these"));
    li.append(form);
  }
  return li;
}

async function orderAction(name, args, done) {
  try {
    await conn.command(name, args);
    toast(toasts, done, "ok");
    requestAnimationFrame(() => { if (!document.activeElement || document.activeElement === document.body) $("scan").focus(); });
    return true;
  } catch (e) {
    toast(toasts, `Could not ${name.split(".")[1]} order ${args.order_id}: ${e.message}`, "error", 8000);
    return false;
  }
}

async function partialPickup(o, lines) {
  const picked = lines
    .map((l) => ({ line: l.line, qty: parseInt(drafts.get(`partial:${o.order_id}:${l.line}`) || "0", 10) }))
    .filter((l) => l.qty > 0);
  if (!picked.length) return toast(toasts, "Enter how many of each item the customer takes.", "error");
  const ok = await orderAction("order.pickup", { order_id: o.order_id, lines: picked },
    `Order ${o.order_id}: ${picked.reduce((s, l) => s + l.qty, 0)} item(s) handed over.`);
  if (ok) {
    partialOpen.delete(o.order_id);
    for (const l of lines) drafts.delete(`partial:${o.order_id}:${l.line}`);
    renderQueue(queueView);
  }
}

// ---------------------------------------------------------------- ship from store --

function renderShipList(view) {
  const orders = Object.entries(view.state)
    .filter(([k, o]) => k.startsWith("ship:") && o)
    .map(([, o]) => o)
    .sort((a, b) => (a.created_at || 0) - (b.created_at || 0));
  $("ship-empty").hidden = orders.length > 0;
  $("ship").hidden = orders.length === 0;
  const focusKey = document.activeElement?.dataset?.focusKey;
  $("ship").replaceChildren(...orders.map((o) => {
    const id = o.order_id;
    const who = o.customer_ref || o.ship_to?.name || "Customer";
    return el("li", { dataset: { ship: id, status: o.status } },
      el("span", { class: "who" }, who),
      el("span", { class: "actions" },
        o.status === "placed" ? el("button", { type: "button", class: "small secondary", dataset: { focusKey: `pick:${id}` },
          "aria-label": `Start picking order ${id}`, onclick: () => orderAction("order.pick", { order_id: id }, `Picking order ${id}.`) }, "Start picking") : null,
        o.status === "picking" ? el("form", { class: "partial", "aria-label": `Pack order ${id}`, onsubmit: (ev) => { ev.preventDefault(); packOrder(id); } },
          el("label", {}, "Parcels ", draftInput(`parcels:${id}`, { type: "number", value: "1", min: "1", max: "99", style: "width:4rem" })),
          el("button", { type: "submit", class: "small secondary", dataset: { focusKey: `pack:${id}` } }, "Packed")) : null),
      el("span", { class: "status-tag" }, SHIP_STATUS[o.status] || "To pick",
        o.status === "packed" ? ` · ${o.parcels} parcel${o.parcels === 1 ? "" : "s"}` : "",
        o.shipments > 1 ? ` · 1 of ${o.shipments} shipments` : ""),
      el("ul", { class: "items" }, o.items.map((it) => el("li", {}, `${it.qty} × ${itemName(it.sku)}`))),
      el("span", { class: "meta" }, "Order ", el("code", {}, id), o.ship_to ? ` · to ${o.ship_to.address}` : ""),
      el("form", { class: "partial", "aria-label": `Ship order ${id}`, onsubmit: (ev) => { ev.preventDefault(); shipOrder(id); } },
        el("label", {}, "Carrier ", draftInput(`carrier:${id}`, { type: "text", value: "ups", maxlength: "40", style: "width:6rem" })),
        el("label", {}, "Tracking ", draftInput(`tracking:${id}`, { type: "text", maxlength: "60", style: "width:10rem" })),
        el("button", { type: "submit", class: "small", dataset: { focusKey: `ship-go:${id}` } }, "Ship")));
  }));
  if (focusKey) document.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`)?.focus();
}

const SHIP_STATUS = { placed: "To pick", picking: "Picking", packed: "Packed" };

async function packOrder(id) {
  const parcels = parseInt(drafts.get(`parcels:${id}`) ?? "1", 10);
  if (!(parcels >= 1 && parcels <= 99)) return toast(toasts, "Parcels: a number from 1 to 99.", "error");
  if (await orderAction("order.pack", { order_id: id, parcels }, `Order ${id} packed (${parcels} parcel${parcels === 1 ? "" : "s"}).`)) {
    drafts.delete(`parcels:${id}`);
  }
}

async function shipOrder(id) {
  const carrier = (drafts.get(`carrier:${id}`) ?? "ups").trim();
  const tracking = (drafts.get(`tracking:${id}`) || "").trim();
  if (!carrier || !tracking) return toast(toasts, "Enter the carrier and the tracking number.", "error");
  if (await orderAction("order.ship", { order_id: id, carrier, tracking }, `Order ${id} shipped (${carrier} ${tracking}).`)) {
    drafts.delete(`carrier:${id}`);
    drafts.delete(`tracking:${id}`);
  }
}

// ---------------------------------------------------------------- returns ----------

const REASONS = [["unwanted", "Changed mind"], ["wrong_size", "Wrong size"], ["wrong_item", "Wrong item"],
  ["late", "Arrived late"], ["damaged", "Damaged"], ["defective", "Defective"], ["other", "Other"]];
let returning = null; // the order view being returned against

$("return-find").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const code = $("return-code").value.trim().toUpperCase();
  const msg = $("return-msg");
  $("return-form").hidden = true;
  returning = null;
  if (!code) return $("return-code").focus();
  msg.className = "msg msg-info";
  msg.textContent = "Looking up the order…";
  try {
    const o = await call(`/api/v1/orders/${encodeURIComponent(code)}`);
    showReturn(o);
    msg.textContent = "";
    msg.className = "";
  } catch (e) {
    msg.className = "msg msg-error";
    msg.textContent = e.code === "not_found" ? `No order ${code}. Check the code on the receipt.` : `Lookup failed: ${e.message}`;
    $("return-code").select();
  }
});

function showReturn(o) {
  returning = o;
  const rows = o.lines.map((ln) => {
    const returnable = ln.fulfilled - ln.returned;
    return el("tr", { dataset: { line: ln.line } },
      el("td", {}, el("div", { dataset: { nameSku: ln.sku } }, itemName(ln.sku)), el("div", { class: "muted" }, `${ln.sku} · ${money(ln.price_cents)} each`)),
      el("td", { class: "num" }, String(returnable)),
      el("td", { class: "num" }, el("input", { type: "number", min: "0", max: String(returnable), value: "0",
        disabled: returnable <= 0, "aria-label": `Return how many of line ${ln.line}`,
        oninput: () => { $("return-msg").textContent = ""; $("return-msg").className = ""; renderReturnTotal(); } })),
      el("td", {}, el("select", { "aria-label": `Reason for line ${ln.line}`, disabled: returnable <= 0 },
        REASONS.map(([v, label]) => el("option", { value: v }, label)))));
  });
  $("return-lines").tBodies[0].replaceChildren(...rows);
  $("return-order").textContent = `Order ${o.order_id} · ${o.status.replaceAll("_", " ")} · ${o.channel}` +
    (o.customer_ref ? ` · ${o.customer_ref}` : "") + (o.refund_due_cents ? ` · refunded so far ${money(o.refund_due_cents)}` : "");
  $("return-form").hidden = false;
  renderReturnTotal();
  $("return-lines").querySelector("input:not([disabled])")?.focus();
}

function returnPicks() {
  if (!returning) return [];
  return [...$("return-lines").tBodies[0].rows].map((tr) => {
    const line = returning.lines.find((l) => l.line === Number(tr.dataset.line));
    const qty = parseInt(tr.querySelector("input").value || "0", 10);
    return { line, qty, reason: tr.querySelector("select").value };
  }).filter((p) => p.qty > 0);
}

function renderReturnTotal() {
  const picks = returnPicks();
  const due = picks.reduce((s, p) => s + p.qty * p.line.price_cents, 0);
  $("return-total").textContent = picks.length ? `Refund due ${money(due)}` : "Choose what comes back.";
  $("return-btn").disabled = !picks.length;
}

$("return-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const picks = returnPicks();
  const msg = $("return-msg");
  if (!returning || !picks.length) return;
  const bad = picks.find((p) => p.qty > p.line.fulfilled - p.line.returned);
  if (bad) {
    msg.className = "msg msg-error";
    msg.textContent = `Line ${bad.line.line}: only ${bad.line.fulfilled - bad.line.returned} can come back.`;
    return;
  }
  $("return-btn").disabled = true;
  try {
    const r = await conn.command("order.return", {
      order_id: returning.order_id, location_id: session.location_id,
      lines: picks.map((p) => ({ line: p.line.line, qty: p.qty, reason: p.reason })),
    });
    msg.className = "msg msg-ok";
    msg.textContent = `Returned to this store. Refund due ${money(r.refund_due_cents)} for order ${returning.order_id}.`;
    $("return-form").hidden = true;
    $("return-code").value = "";
    returning = null;
  } catch (e) {
    msg.className = "msg msg-error";
    msg.textContent = `Return refused: ${e.message}`;
    $("return-btn").disabled = false;
  }
});

// ---------------------------------------------------------------- other stores -----

function showNear(line) {
  nearLine = line;
  for (const l of lines) l.row.classList.toggle("selected", l === line);
  renderNear();
  $("near-panel").scrollIntoView({ block: "nearest" });
  $("near").querySelector("button:not([disabled])")?.focus();
}

function renderNear() {
  const body = $("near-body");
  $("near-empty").hidden = !!nearLine;
  body.hidden = !nearLine;
  if (!nearLine) return;
  const view = nearLine.view;
  $("near-panel").classList.toggle("is-stale", view.stale);
  $("near-title").textContent = `${describe(nearLine.product)} — holding ${nearLine.qty}`;
  const focusKey = document.activeElement?.dataset?.focusKey;
  // The nearest pickup stores (sorted by distance from this one): the endless aisle.
  const nearest = locations.filter((l) => l.pickup_enabled !== false && l.kind !== "dc").slice(0, 8);
  const rows = nearest.map((loc) => {
    const bal = view.state[loc.id];
    const a = bal ? bal.available : 0;
    const enough = a >= nearLine.qty;
    return el("tr", { dataset: { location: loc.id } },
      el("td", {}, loc.name, el("div", { class: "muted" }, loc.city || "")),
      el("td", { class: "num" }, loc.km === null ? "—" : loc.km.toFixed(1)),
      el("td", { class: "num" }, el("span", { class: "badge live-value" + (a <= 0 ? " out" : a <= 2 ? " low" : "") }, a)),
      el("td", {}, el("button", {
        type: "button", class: "small", disabled: !enough, dataset: { focusKey: `holdat:${loc.id}` },
        "aria-label": `Hold ${nearLine.qty} at ${loc.name}`, onclick: () => holdThere(nearLine, loc),
      }, "Hold there")));
  });
  $("near").tBodies[0].replaceChildren(...rows);
  if (focusKey) document.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`)?.focus();
}

async function holdThere(line, loc) {
  const ref = customerRef(true);
  if (!ref) return;
  const msg = $("near-msg");
  msg.className = "msg msg-info";
  msg.textContent = `Placing hold at ${loc.name}…`;
  try {
    const r = await placeHold(line, loc.id, ref, parseInt($("hold-ttl").value, 10));
    msg.className = "msg msg-ok";
    msg.textContent = `Held ${line.qty} × ${describe(line.product)} at ${loc.name} for ${ref}: hold ${r.hold_id}, until ${clock(r.expires_at)}.`;
    removeLine(line);
  } catch (e) {
    msg.className = "msg msg-error";
    msg.textContent = holdError(e, loc.name);
  }
}

// ---------------------------------------------------------------- boot -------------

session = loadSession();
if (session && expired(session)) signOut(EXPIRED_MSG);
else if (session) start();
else showSignin();
