// The browser register: sign-in, scan/search, cart with live availability, cash sale,
// pickup holds, this store's pickup queue and stock at the other stores (endless aisle).
import { api, connect, OmnitillError } from "./omnitill.js";
import { bindBanner, clock, el, money, toast, toDate } from "./ui.js";

const $ = (id) => document.getElementById(id);
const SESSION_KEY = "omnitill.register.session";
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
  const status = el("span", { class: "muted" }, offline ? "saved, will sync when back online" : "syncing…");
  $("recent").prepend(el("li", { dataset: { sale: String(no) } },
    el("span", { class: "grow" }, `Sale ${no}: ${sold.reduce((s, l) => s + l.qty, 0)} item(s), ${money(total)} cash`),
    status));
  const results = Promise.allSettled(sold.map((l) => conn.command("stock.sale", {
    sku: l.product.sku, location_id: session.location_id, qty: l.qty, register_id: registerId(),
    ...(offline ? { offline_at: Date.now() / 1000 } : {}),
  })));
  refreshBanner();
  for (const l of sold) { l.row.remove(); l.view.close(); }
  if (nearLine && sold.includes(nearLine)) { nearLine = null; renderNear(); }
  $("tendered").value = "";
  renderCartMeta();
  msg.className = "msg msg-ok";
  msg.textContent = `Sale ${no} complete. Change due ${money(tendered - total)}.`;
  $("scan").focus();

  const settled = await results;
  refreshBanner();
  const failed = settled.filter((r) => r.status === "rejected");
  status.textContent = failed.length ? `${failed.length} line(s) failed: ${failed[0].reason.message}` : "synced";
  status.className = failed.length ? "msg-error" : "";
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
  const holds = Object.entries(view.state)
    .filter(([k, h]) => k.startsWith("hold:") && h && (!h.status || ["active", "held", "placed", "ready"].includes(h.status)))
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
