// The in-store kiosk: search or scan, live stock here and at the nearest stores, "hold it for
// pickup" at a chosen store, and "order it" to the customer's home or to this store (an
// order.create with channel "kiosk", sold_at this store). Set up once with
// /kiosk?location=<id>&token=<t>.
import { api, connect, nearTopic, OmnitillError } from "./omnitill.js";
import { bindBanner, clock, el, money, toDate } from "./ui.js";

const $ = (id) => document.getElementById(id);
const IDLE_MS = 90_000;

// Setup: the URL wins and is remembered, so the kiosk survives a reload or a power cut.
const params = new URLSearchParams(location.search);
for (const k of ["location", "token"]) {
  if (params.get(k)) localStorage.setItem(`omnitill.kiosk.${k}`, params.get(k));
}
const LOCATION = localStorage.getItem("omnitill.kiosk.location");
const TOKEN = localStorage.getItem("omnitill.kiosk.token");
if (params.get("token")) history.replaceState(null, "", location.pathname + `?location=${encodeURIComponent(LOCATION)}`);

let here = null;
let conn = null;
let group = [];      // the chosen product's variants (same product_id)
let current = null;  // the chosen variant
let stockView = null;
let nearView = null;
let chosenStore = null;

function setupError(text) {
  $("setup-msg").textContent = text;
  $("home").hidden = true;
  $("product").hidden = true;
  $("banner").dataset.state = "offline";
  $("banner").textContent = "Not connected";
}

function describeOptions(p) {
  return Object.values(p.options || {}).filter(Boolean).join(" / ");
}

async function boot() {
  if (!LOCATION || !TOKEN) {
    setupError("This kiosk is not set up yet. Staff: open /kiosk?location=<store id>&token=<kiosk token>.");
    return;
  }
  conn = connect({ token: TOKEN, client: "kiosk" });
  bindBanner(conn, $("banner"));
  conn.on("unauthorized", () => {
    localStorage.removeItem("omnitill.kiosk.token");
    setupError("This kiosk's access has expired. Staff: set it up again with a new kiosk token.");
  });
  try {
    const { items } = await api("/api/v1/locations", { token: TOKEN });
    here = items.find((l) => l.id === LOCATION) || null;
  } catch (e) {
    if (e.code === "unauthorized") return setupError("This kiosk's access has expired. Staff: set it up again.");
    $("search-msg").textContent = "Store details are not available right now; stock near you may be missing.";
  }
  $("store-name").textContent = here ? here.name : LOCATION;
  $("here-name").textContent = here ? here.name : "this store";
  $("order-here").textContent = here ? here.name : "this store";
  $("q").focus();
}

// ------------------------------------------------------------------ search ---------

$("search-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const q = $("q").value.trim();
  const msg = $("search-msg");
  if (!q) return $("q").focus();
  msg.className = "msg msg-info";
  msg.textContent = "Searching…";
  try {
    let items;
    if (/^\d{6,14}$/.test(q)) { // a scanner types digits and Enter
      try { items = [await api(`/api/v1/products/by-barcode/${q}`, { token: TOKEN })]; } catch (e) {
        if (e.code !== "not_found") throw e;
        items = [];
      }
    } else {
      items = (await api(`/api/v1/products?query=${encodeURIComponent(q)}&limit=40`, { token: TOKEN })).items;
    }
    showResults(items, q);
  } catch (e) {
    msg.className = "msg msg-error";
    msg.textContent = e.code === "unreachable" ? "We can't search right now. Please ask a member of staff." : `Search failed: ${e.message}`;
  }
});

function showResults(items, q) {
  const groups = new Map();
  for (const p of items) {
    const k = p.product_id || p.sku;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(p);
  }
  const msg = $("search-msg");
  msg.className = groups.size ? "msg msg-info" : "msg msg-warn";
  msg.textContent = groups.size ? `${groups.size} product(s) for "${q}". Tap one to see stock.` : `Nothing found for "${q}". Try another word.`;
  $("results").replaceChildren(...[...groups.values()].map((vs) => el("li", {},
    el("button", { type: "button", class: "card", onclick: () => openProduct(vs, vs[0]) },
      el("div", { class: "title" }, vs[0].name),
      el("div", { class: "muted" }, vs[0].brand || vs[0].category || ""),
      el("div", {}, money(vs[0].price_cents)),
      el("div", { class: "muted" }, vs.length > 1 ? `${vs.length} options` : describeOptions(vs[0]))))));
  if (items.length === 1) openProduct(items, items[0]);
}

// ------------------------------------------------------------------ product --------

function openProduct(variants, variant) {
  group = variants;
  $("home").hidden = true;
  $("done").hidden = true;
  $("product").hidden = false;
  $("product-h").textContent = variant.name;
  chooseVariant(variant);
  $("product-h").scrollIntoView({ block: "start" });
  $("back").focus();
}

function chooseVariant(p) {
  current = p;
  chosenStore = null;
  $("hold-msg").textContent = "";
  $("product-price").textContent = `${money(p.price_cents)} · ${p.sku}`;
  $("variants").replaceChildren(...optionPickers(p));
  stockView?.close();
  nearView?.close();
  stockView = conn.subscribe(`stock:${p.sku}`);
  stockView.on(renderHere);
  nearView = null;
  if (here) {
    nearView = conn.subscribe(nearTopic(p.sku, here.lat, here.lon));
    nearView.on(renderNear);
  } else {
    $("near-empty").textContent = "Nearby stores are not available right now.";
  }
  renderHold();
}

/** One row of big buttons per option (colour, size...); a tap keeps the other options. */
function optionPickers(p) {
  if (group.length < 2) return [];
  const keys = [...new Set(group.flatMap((v) => Object.keys(v.options || {})))]
    .filter((k) => new Set(group.map((v) => v.options?.[k])).size > 1);
  return keys.map((k) => {
    const values = [...new Set(group.map((v) => v.options?.[k]))];
    const label = k.charAt(0).toUpperCase() + k.slice(1);
    return el("div", { class: "variants", role: "group", "aria-label": label },
      el("span", { class: "option-label" }, label),
      values.map((val) => {
        const want = { ...p.options, [k]: val };
        const match = group.find((v) => Object.entries(want).every(([kk, vv]) => v.options?.[kk] === vv))
          || group.find((v) => v.options?.[k] === val);
        return el("button", {
          type: "button", "aria-pressed": String(p.options?.[k] === val),
          onclick: () => { chooseVariant(match); document.querySelector(`[aria-label="${label}"] [aria-pressed="true"]`)?.focus(); },
        }, val);
      }));
  });
}

function renderHere(view) {
  if (view !== stockView) return;
  const bal = view.state[LOCATION];
  const a = bal ? bal.available : view.ready ? 0 : null;
  const badge = $("here-qty");
  $("here-box").classList.toggle("is-stale", view.stale);
  badge.textContent = a === null ? "…" : a <= 0 ? "Out of stock" : `${a} available`;
  badge.className = "badge live-value" + (a === null ? "" : a <= 0 ? " out" : a <= 2 ? " low" : "");
}

function nearStores(view) {
  return Object.entries(view.state)
    .map(([id, s]) => ({ id, ...s }))
    .sort((a, b) => a.distance_km - b.distance_km);
}

function renderNear(view) {
  if (view !== nearView) return;
  $("near-panel").classList.toggle("is-stale", view.stale);
  const stores = nearStores(view);
  $("near-empty").hidden = stores.length > 0;
  $("near-empty").textContent = view.ready ? "No store nearby has this in stock right now." : "Looking for stores with stock…";
  if (view.error) $("near-empty").textContent = `Nearby stock is not available: ${view.error.message}`;
  if (chosenStore && !stores.some((s) => s.id === chosenStore.id)) chosenStore = null;
  if (chosenStore) chosenStore = stores.find((s) => s.id === chosenStore.id);
  const focused = document.activeElement?.dataset?.store;
  $("stores").replaceChildren(...stores.map((s) => el("li", {},
    el("button", {
      type: "button", class: "store", "aria-pressed": String(chosenStore?.id === s.id), dataset: { store: s.id },
      onclick: () => { chosenStore = s; renderNear(view); renderHold(); $("customer").focus(); },
    },
    el("span", { class: "name" }, s.id === LOCATION ? `${s.name} (this store)` : s.name),
    el("span", { class: "qty" }, el("span", { class: "badge live-value" + (s.available <= 2 ? " low" : "") }, `${s.available} available`)),
    el("span", { class: "meta" }, `${s.address || ""} · ${Number(s.distance_km).toFixed(1)} km · ready ${readyText(s.ready_at)}`)))));
  if (focused) document.querySelector(`[data-store="${CSS.escape(focused)}"]`)?.focus();
  renderHold();
}

function readyText(t) {
  const d = toDate(t);
  if (!d) return "soon";
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay ? `today by ${clock(d)}` : `${d.toLocaleDateString([], { weekday: "short" })} ${clock(d)}`;
}

function renderHold() {
  $("hold-btn").disabled = !chosenStore;
  $("hold-where").textContent = chosenStore
    ? `At ${chosenStore.name}, ready ${readyText(chosenStore.ready_at)}.`
    : "Choose a store first.";
}

$("hold-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const name = $("customer").value.trim();
  const msg = $("hold-msg");
  if (!chosenStore) return;
  if (!name) {
    msg.className = "msg msg-error";
    msg.textContent = "Please enter your name so staff can find your hold.";
    $("customer").setAttribute("aria-invalid", "true");
    return $("customer").focus();
  }
  $("customer").removeAttribute("aria-invalid");
  const store = chosenStore;
  $("hold-btn").disabled = true;
  msg.className = "msg msg-info";
  msg.textContent = conn.state === "live" ? "Placing your hold…" : "Waiting for the connection… your hold will be placed when it is back.";
  try {
    const r = await conn.command("hold.place", {
      sku: current.sku, location_id: store.id, qty: 1, ttl_s: 7200, customer_ref: name,
    });
    msg.textContent = "";
    $("customer").value = "";
    showDone(r, store);
  } catch (e) {
    msg.className = "msg msg-error";
    msg.textContent = e instanceof OmnitillError && e.code === "insufficient_stock"
      ? `Sorry, ${store.name} just sold out. Please choose another store.`
      : `We couldn't place the hold: ${e.message}`;
  } finally {
    renderHold();
  }
});

// ------------------------------------------------------------------ order it ------

function dest() {
  return document.querySelector('input[name="dest"]:checked').value;
}
for (const r of document.querySelectorAll('input[name="dest"]')) {
  r.addEventListener("change", () => { $("home-fields").hidden = dest() !== "home"; $("order-msg").textContent = ""; });
}

function orderError(e) {
  if (!(e instanceof OmnitillError)) return `We couldn't place the order: ${e}`;
  if (e.code === "insufficient_stock") {
    if (dest() === "store") {
      const other = (e.details?.suggest || []).length ? " It is in stock at a store nearby, or" : "";
      return `Sorry, this store doesn't have it right now.${other} we can send it to your home.`;
    }
    return "Sorry, it's sold out everywhere right now.";
  }
  if (e.code === "unreachable") return "We can't place orders right now. Please ask a member of staff.";
  return `We couldn't place the order: ${e.message}`;
}

$("order-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const msg = $("order-msg");
  const name = $("order-name").value.trim();
  const fail = (text, field) => {
    msg.className = "msg msg-error";
    msg.textContent = text;
    if (field) { $(field).setAttribute("aria-invalid", "true"); $(field).focus(); }
  };
  for (const f of ["order-name", "order-address", "order-zip"]) $(f).removeAttribute("aria-invalid");
  if (!current) return;
  if (!name) return fail("Please enter your name.", "order-name");
  const args = { lines: [{ sku: current.sku, qty: 1 }], channel: "kiosk", sold_at: LOCATION, customer_ref: name };
  const home = dest() === "home";
  if (home) {
    const address = $("order-address").value.trim();
    const zip = $("order-zip").value.trim();
    if (!address) return fail("Please enter your street address.", "order-address");
    if (!/^\d{5}$/.test(zip)) return fail("Please enter a 5-digit ZIP code.", "order-zip");
    try {
      const pos = await api(`/api/v1/geo/resolve?q=${encodeURIComponent(zip)}`, { token: TOKEN });
      args.ship_to = { address, postal_code: zip, name, lat: pos.lat, lon: pos.lon };
    } catch (e) {
      return fail(e.code === "not_found" ? `We don't deliver to ${zip} yet.` : `We couldn't check that ZIP code: ${e.message}`, "order-zip");
    }
  } else {
    args.pickup_location = LOCATION;
  }
  $("order-btn").disabled = true;
  msg.className = "msg msg-info";
  msg.textContent = "Placing your order…";
  try {
    const r = await conn.command("order.create", args);
    msg.textContent = "";
    $("order-name").value = $("order-address").value = $("order-zip").value = "";
    showOrderDone(r, home);
  } catch (e) {
    fail(orderError(e));
  } finally {
    $("order-btn").disabled = false;
  }
});

function showOrderDone(r, home) {
  $("product").hidden = true;
  $("done").hidden = false;
  $("done-h").textContent = home ? "It's on its way to you" : "It's ordered for you";
  $("done-label").textContent = "Your order number";
  $("done-id").textContent = r.order_id;
  const what = `${current.name}${describeOptions(current) ? " (" + describeOptions(current) + ")" : ""}`;
  $("done-text").textContent = home
    ? `${what} will be shipped to your home. Staff can look it up with this number.`
    : `${what} will be ready at ${here ? here.name : "this store"}. Your pickup code is ${r.pickup_code}.`;
  $("done").focus();
}

function showDone(r, store) {
  $("product").hidden = true;
  $("done").hidden = false;
  $("done-h").textContent = "It's held for you";
  $("done-label").textContent = "Your hold number";
  $("done-id").textContent = r.hold_id;
  $("done-text").textContent = `${current.name}${describeOptions(current) ? " (" + describeOptions(current) + ")" : ""} ` +
    `will be ready at ${store.name} ${readyText(r.ready_at ?? store.ready_at)}. ` +
    `We'll keep it until ${clock(r.expires_at)}.`;
  $("done").focus();
}

function goHome() {
  stockView?.close(); nearView?.close();
  stockView = nearView = null;
  current = chosenStore = null;
  $("product").hidden = true;
  $("done").hidden = true;
  $("home").hidden = false;
  $("q").focus();
}
$("back").addEventListener("click", goHome);
$("done-btn").addEventListener("click", () => { goHome(); $("q").select(); });

// Idle: after a while with nobody touching it, the kiosk returns to the start.
let idleTimer = null;
function poke() {
  clearTimeout(idleTimer);
  idleTimer = setTimeout(() => {
    if (!$("home").hidden && !$("q").value) return;
    goHome();
    $("q").value = "";
    $("results").replaceChildren();
    $("search-msg").textContent = "";
  }, IDLE_MS);
}
for (const t of ["pointerdown", "keydown"]) document.addEventListener(t, poke, { passive: true });

boot();
