// omnitill.js — the one browser client for the omnitill /ws protocol (ES module, no deps).
//
// Theory of operation
// - One Connection owns one WebSocket at a time. After `open` it sends `hello`; only after
//   `welcome` is it "live": then it (re)subscribes every open view and resends every command
//   that has no ack yet, with the SAME op_id (the server turns a retry into the original result).
// - A View holds one topic's state: a plain object key -> value. A snapshot replaces it; a
//   delta replaces values per key (null deletes). Gap rule: a delta applies iff its epoch is
//   ours and (from_seq ?? seq) == seq + 1; seq <= ours is a duplicate; anything else makes us
//   resubscribe with resume {epoch, seq} and ignore further deltas until the server answers
//   with `resumed` (+ one merged delta of what we missed) or a fresh snapshot. A view is
//   stale while the socket is not live or a resync is pending.
// - Rendering is conflated: view and connection listeners run at most once per animation
//   frame however many frames arrived (raw per-delta hooks exist for history-keeping pages).
// - Liveness: a ping every heartbeat_s; one missing pong marks the connection "stale", two
//   missing pongs close it. Reconnects use exponential backoff with full jitter.
//   Close 4003 (unauthorized) stops reconnecting unless `token` is a function (refetched).

export const PROTOCOL = 1;
export const RETRYABLE = new Set(["unavailable", "internal", "rate_limited"]);

/** A rejected command or a failed request, with the stable wire `code`. */
export class OmnitillError extends Error {
  constructor(code, message, details = {}) {
    super(message || code);
    this.name = "OmnitillError";
    this.code = code;
    this.details = details || {};
  }
}

// --- conflated scheduling -------------------------------------------------------------

const dirty = new Set();
let flushScheduled = false;

function flush() {
  flushScheduled = false;
  const fns = [...dirty];
  dirty.clear();
  for (const fn of fns) {
    try { fn(); } catch (e) { console.error("omnitill listener failed", e); }
  }
}

/** Run `fn` once at the next animation frame (deduplicated). Hidden tabs fall back to a timer. */
export function schedule(fn) {
  dirty.add(fn);
  if (flushScheduled) return;
  flushScheduled = true;
  if (typeof document !== "undefined" && document.visibilityState === "visible") {
    requestAnimationFrame(flush);
  } else {
    setTimeout(flush, 100);
  }
}

// --- small helpers -------------------------------------------------------------------

/** Format a coordinate like the server's topic names (Python `{:g}` of a 4-decimal value). */
/** A time-ordered op_id (UUIDv7 layout, 32 hex digits): the millisecond clock first, so the
 * server's op table gets its new keys at one edge instead of a random page each (random v4
 * ids cost the hot-SKU bench 30 % of its holds/s; see protocol/op_ids.py). */
export function newOpId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let ms = Date.now();
  for (let i = 5; i >= 0; i--) { bytes[i] = ms % 256; ms = Math.floor(ms / 256); }
  bytes[6] = 0x70 | (bytes[6] & 0x0f);  // version 7
  bytes[8] = 0x80 | (bytes[8] & 0x3f);  // RFC 9562 variant
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function coord(x) {
  return String(Number(Number(x).toPrecision(6)));
}

export function nearTopic(sku, lat, lon) {
  return `near:${sku}:${coord(lat)},${coord(lon)}`;
}

/** fetch JSON; non-2xx becomes OmnitillError(code from body or `http_<status>`). */
export async function api(path, { base = "", token, method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(base + path, {
      method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new OmnitillError("unreachable", "Cannot reach the omnitill server.");
  }
  let data = null;
  try { data = await res.json(); } catch { data = null; }
  if (!res.ok) {
    throw new OmnitillError(
      (data && data.code) || `http_${res.status}`,
      (data && data.message) || `${res.status} ${res.statusText}`,
      (data && data.details) || {},
    );
  }
  return data;
}

export function wsUrl(base) {
  const u = new URL("/ws", base || location.href);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  return u.href;
}

// --- views ---------------------------------------------------------------------------

class View {
  constructor(conn, topic) {
    this.conn = conn;
    this.topic = topic;
    this.state = {};
    this.epoch = null;
    this.seq = -1;
    this.ready = false; // has had a snapshot
    this.resyncPending = false;
    this.resyncAt = 0;
    this.error = null; // {code, message} from an `error` frame naming this topic
    this.refs = 0;
    this.listeners = new Set();
    this.rawListeners = new Set();
    this._notify = () => { for (const fn of this.listeners) fn(this); };
  }

  get stale() {
    return this.conn.state !== "live" || this.resyncPending || !this.ready;
  }

  get(key) { return this.state[key]; }

  /** Conflated listener: called at most once per frame with the view. Returns an unsubscriber. */
  on(fn) {
    this.listeners.add(fn);
    schedule(this._notify);
    return () => this.listeners.delete(fn);
  }

  /** Raw listener: called synchronously with (changes, view) for every snapshot/delta. */
  onChange(fn) {
    this.rawListeners.add(fn);
    return () => this.rawListeners.delete(fn);
  }

  changed(changes) {
    for (const fn of this.rawListeners) {
      try { fn(changes, this); } catch (e) { console.error(e); }
    }
    schedule(this._notify);
  }

  close() {
    if (--this.refs > 0) return;
    this.conn.views.delete(this.topic);
    this.listeners.clear();
    this.rawListeners.clear();
    this.conn.send({ type: "unsubscribe", topic: this.topic });
  }

  subscribeFrame() {
    const f = { type: "subscribe", topic: this.topic };
    if (this.epoch !== null && this.seq >= 0) f.resume = { epoch: this.epoch, seq: this.seq };
    return f;
  }

  resync(fresh = false) {
    if (fresh) { this.epoch = null; this.seq = -1; }
    this.resyncPending = true;
    this.resyncAt = Date.now();
    this.conn.send(this.subscribeFrame());
    schedule(this._notify);
  }

  onSnapshot(m) {
    this.state = { ...m.state };
    this.epoch = m.epoch;
    this.seq = m.seq;
    this.ready = true;
    this.resyncPending = false;
    this.error = null;
    this.changed(m.state);
  }

  // The server kept us: nothing missed (we are current), or one merged delta follows.
  onResumed(m) {
    if (!m.missed && m.epoch === this.epoch && m.seq === this.seq) {
      this.resyncPending = false;
      schedule(this._notify);
    }
  }

  onDelta(m) {
    if (!this.ready) return; // a snapshot is on its way
    const first = m.from_seq ?? m.seq;
    if (m.epoch === this.epoch && m.seq <= this.seq) return; // duplicate
    if (m.epoch === this.epoch && first === this.seq + 1) {
      for (const [k, v] of Object.entries(m.changes)) {
        if (v === null) delete this.state[k];
        else this.state[k] = v;
      }
      this.seq = m.seq;
      this.resyncPending = false;
      this.changed(m.changes);
      return;
    }
    // Gap or new epoch. While a resync is in flight, old deltas are expected: ignore them,
    // unless the server has not answered for a while.
    if (!this.resyncPending || Date.now() - this.resyncAt > 5000) this.resync();
  }
}

// --- connection ----------------------------------------------------------------------

class Connection {
  constructor(opts) {
    this.url = opts.url || wsUrl();
    this.tokenSource = opts.token;
    this.client = opts.client || "sdk";
    this.state = "connecting";
    this.welcome = null;
    this.lastClose = null; // {code, reason}
    this.views = new Map();
    this.pending = new Map(); // op_id -> {frame, resolve, reject, tries}
    this.handlers = { state: new Set(), welcome: new Set(), unauthorized: new Set(), error: new Set() };
    this.ws = null;
    this.attempt = 0;
    this.closed = false;
    this.timer = null;
    this.pingTimer = null;
    this.missedPongs = 0;
    this.nonce = 0;
    this._emitState = () => this.emit("state", this.state);
    if (opts.onState) this.on("state", opts.onState);
    this.wake = () => { if (this.state === "offline" && !this.ws) this.reconnectNow(); };
    if (typeof window !== "undefined") window.addEventListener("online", this.wake);
    this.open();
  }

  on(event, fn) {
    this.handlers[event].add(fn);
    if (event === "state") schedule(this._emitState);
    return () => this.handlers[event].delete(fn);
  }

  emit(event, arg) {
    for (const fn of this.handlers[event]) {
      try { fn(arg, this); } catch (e) { console.error(e); }
    }
  }

  setState(s) {
    if (this.state === s) return;
    this.state = s;
    schedule(this._emitState);
    for (const v of this.views.values()) schedule(v._notify);
  }

  get live() { return this.state === "live" || this.state === "stale"; }

  send(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.welcome) {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  async open() {
    if (this.closed) return;
    let token = this.tokenSource;
    if (typeof token === "function") {
      try { token = await token(); } catch (e) {
        this.setState("offline");
        return this.retryLater();
      }
    }
    if (this.closed) return;
    let ws;
    try { ws = new WebSocket(this.url); } catch (e) {
      this.setState("offline");
      return this.retryLater();
    }
    this.ws = ws;
    this.welcome = null;
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "hello", protocol: PROTOCOL, token, client: this.client, encoding: "json", batch: true }));
    };
    ws.onmessage = (ev) => {
      if (ws !== this.ws || typeof ev.data !== "string") return;
      let m;
      try { m = JSON.parse(ev.data); } catch { return; }
      // With `batch: true` the server may send several messages in one frame (an array).
      if (Array.isArray(m)) { for (const one of m) this.dispatch(one); } else this.dispatch(m);
    };
    ws.onclose = (ev) => {
      if (ws !== this.ws) return;
      // Right after losing a live socket we show "Reconnecting…"; once a try has failed we
      // stay "offline" through the later tries so the banner does not flicker.
      const wasLive = this.welcome !== null;
      this.ws = null;
      this.welcome = null;
      this.lastClose = { code: ev.code, reason: ev.reason };
      clearInterval(this.pingTimer);
      if (this.closed) return;
      this.setState(wasLive && ev.code !== 4003 ? "connecting" : "offline");
      if (ev.code === 4003 && typeof this.tokenSource !== "function") {
        this.emit("unauthorized", { code: ev.code, reason: ev.reason });
        return; // a fixed token will not get better: the page asks for a new one
      }
      this.retryLater();
    };
    ws.onerror = () => {}; // onclose follows with the details
  }

  retryLater() {
    if (this.closed) return;
    const cap = Math.min(5000, 250 * 2 ** this.attempt++);
    const delay = Math.random() * cap; // full jitter
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), delay);
  }

  reconnectNow() {
    clearTimeout(this.timer);
    this.attempt = 0;
    if (this.ws) this.ws.close(); else this.open();
  }

  dispatch(m) {
    switch (m.type) {
      case "welcome": {
        this.welcome = m;
        this.attempt = 0;
        this.missedPongs = 0;
        this.setState("live");
        this.startHeartbeat((m.heartbeat_s || 20) * 1000);
        for (const v of this.views.values()) {
          if (v.ready) { v.resyncPending = true; v.resyncAt = Date.now(); }
          this.send(v.subscribeFrame());
        }
        for (const p of this.pending.values()) this.send(p.frame);
        this.emit("welcome", m);
        break;
      }
      case "snapshot": this.views.get(m.topic)?.onSnapshot(m); break;
      case "delta": this.views.get(m.topic)?.onDelta(m); break;
      case "resumed": this.views.get(m.topic)?.onResumed(m); break;
      case "ack": {
        const p = this.pending.get(m.op_id);
        if (p) { this.pending.delete(m.op_id); p.resolve(m.result || {}); }
        break;
      }
      case "reject": {
        const p = this.pending.get(m.op_id);
        if (!p) break;
        if (RETRYABLE.has(m.code) && p.tries++ < 3) {
          setTimeout(() => this.send(p.frame), 300 * p.tries + Math.random() * 300);
          break;
        }
        this.pending.delete(m.op_id);
        p.reject(new OmnitillError(m.code, m.message, m.details));
        break;
      }
      case "pong": {
        this.missedPongs = 0;
        if (this.state === "stale") this.setState("live");
        break;
      }
      case "error": {
        const v = m.topic ? this.views.get(m.topic) : null;
        if (v) { v.error = { code: m.code, message: m.message }; v.resyncPending = false; schedule(v._notify); }
        if (m.code === "unauthorized" && !m.topic) this.emit("unauthorized", m);
        this.emit("error", m);
        break;
      }
      default: break;
    }
  }

  startHeartbeat(ms) {
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (this.missedPongs >= 2) { // two pings unanswered: the socket is dead
        clearInterval(this.pingTimer);
        this.ws?.close(4000, "heartbeat timeout");
        return;
      }
      if (this.missedPongs >= 1) this.setState("stale");
      this.missedPongs++;
      this.send({ type: "ping", nonce: ++this.nonce });
      // Also re-check views whose resync has gone unanswered.
      for (const v of this.views.values()) {
        if (v.resyncPending && Date.now() - v.resyncAt > ms) v.resync(true);
      }
    }, ms);
  }

  /** Open (or share) the view of `topic`. Call view.close() when done. */
  subscribe(topic) {
    let v = this.views.get(topic);
    if (!v) {
      v = new View(this, topic);
      this.views.set(topic, v);
      this.send(v.subscribeFrame());
    }
    v.refs++;
    return v;
  }

  /** Send a command; resolves with the ack's result, rejects with OmnitillError.
   * Survives reconnects: the same op_id is resent until an ack or a reject arrives. */
  command(name, args = {}, { opId } = {}) {
    const op_id = opId || newOpId();
    const frame = { type: "command", op_id, name, args };
    return new Promise((resolve, reject) => {
      this.pending.set(op_id, { frame, resolve, reject, tries: 0 });
      this.send(frame);
    });
  }

  get pendingCount() { return this.pending.size; }

  /** Close for good (sign-out): no more events, pending commands are abandoned. */
  close() {
    this.closed = true;
    clearTimeout(this.timer);
    clearInterval(this.pingTimer);
    if (typeof window !== "undefined") window.removeEventListener("online", this.wake);
    for (const set of Object.values(this.handlers)) set.clear();
    for (const v of this.views.values()) v.listeners.clear();
    this.ws?.close(1000, "bye");
    this.ws = null;
    this.state = "offline";
  }
}

/** Connect to omnitill. `token` is a string or an async function returning one. */
export function connect({ url, token, client, onState } = {}) {
  return new Connection({ url, token, client, onState });
}
