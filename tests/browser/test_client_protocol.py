"""The shared browser client (clients/web/omnitill.js) against a scripted server, in Chromium.

The page replaces `WebSocket` with a fake whose frames the test writes by hand, so each rule of
the contract is checked exactly: the gap rule (apply, duplicate, conflated, gap -> resume,
epoch change), `resumed`, commands resent with the same op_id after a reconnect, retryable
rejects, close 4003, the heartbeat, and at most one render per animation frame. Topic names
for `near:` must match what the server prints with Python's `{:g}`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from protocol.op_ids import op_id_millis
from tests.browser.conftest import WEB
from tests.browser.harness import static_server

pytestmark = pytest.mark.browser

FAKE_WS = """
window.FakeWS = class FakeWS {
  static OPEN = 1;
  static all = [];
  constructor(url) {
    this.url = url; this.sent = []; this.readyState = 0; FakeWS.all.push(this);
    setTimeout(() => { this.readyState = 1; this.onopen && this.onopen(); }, 0);
  }
  send(data) { this.sent.push(JSON.parse(data)); }
  close(code = 1000, reason = "") {
    if (this.readyState === 3) return;
    this.readyState = 3;
    setTimeout(() => this.onclose && this.onclose({ code, reason }), 0);
  }
  push(m) { this.onmessage && this.onmessage({ data: JSON.stringify(m) }); }
  drop(code) { this.readyState = 3; this.onclose && this.onclose({ code, reason: "" }); }
  last(type) { return [...this.sent].reverse().find((f) => f.type === type); }
};
window.WebSocket = window.FakeWS;
window.tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));
window.frames2 = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
window.until = async (fn, ms = 3000) => {
  const t0 = performance.now();
  while (!fn()) {
    if (performance.now() - t0 > ms) throw new Error("timed out: " + fn);
    await tick(10);
  }
};
window.welcome = (ws, heartbeat_s = 30) => ws.push({ type: "welcome", session: "s1",
  server_version: "t", protocol: 1, roles: ["cashier"], location: "L1", heartbeat_s });
"""


@pytest.fixture(scope="module")
def web_origin() -> Iterator[str]:
    """clients/web served as static files; /static/<file> maps to clients/web/<file>."""
    with static_server(WEB.parent, "/web/omnitill.js") as url:
        yield url


@pytest.fixture
def page(browser: Browser, web_origin: str) -> Iterator[Page]:
    ctx = browser.new_context()
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.add_init_script(FAKE_WS)
    pg.goto(web_origin + "/web/ui.js")  # any page of the origin will do
    pg.evaluate("async () => { window.ot = await import('/web/omnitill.js'); }")
    try:
        yield pg
    finally:
        ctx.close()
    assert not errors, errors


def run(page: Page, body: str) -> Any:
    return page.evaluate(f"async () => {{ const {{ connect }} = window.ot; {body} }}")


def test_gap_rule_duplicates_conflation_and_resume(page: Page) -> None:
    r = run(page, """
      const conn = connect({ url: "ws://fake/ws", token: "t", client: "register" });
      await until(() => FakeWS.all.length === 1 && FakeWS.all[0].sent.length === 1);
      const ws = FakeWS.all[0];
      const out = { hello: ws.sent[0] };
      welcome(ws);
      const v = conn.subscribe("stock:A");
      out.sub = ws.last("subscribe");
      out.staleBeforeSnapshot = v.stale;
      ws.push({ type: "snapshot", topic: "stock:A", epoch: "e1", seq: 5, state: { L1: 3, L2: 7 } });
      out.afterSnapshot = { ...v.state, stale: v.stale };
      ws.push({ type: "delta", topic: "stock:A", epoch: "e1", seq: 6, changes: { L1: 2 } });
      ws.push({ type: "delta", topic: "stock:A", epoch: "e1", seq: 6, changes: { L1: 99 } });
      out.afterDuplicate = v.state.L1;
      ws.push({ type: "delta", topic: "stock:A", epoch: "e1", seq: 9, from_seq: 7,
                changes: { L3: 1 } });
      out.afterConflated = { seq: v.seq, L3: v.state.L3 };
      const subsBefore = ws.sent.filter((f) => f.type === "subscribe").length;
      ws.push({ type: "delta", topic: "stock:A", epoch: "e1", seq: 11, changes: { L1: 50 } });
      ws.push({ type: "delta", topic: "stock:A", epoch: "e1", seq: 12, changes: { L1: 51 } });
      const subsAfter = ws.sent.filter((f) => f.type === "subscribe").length;
      out.gap = { L1: v.state.L1, stale: v.stale, resume: ws.last("subscribe").resume,
                  newSubscribes: subsAfter - subsBefore };
      ws.push({ type: "resumed", topic: "stock:A", epoch: "e1", seq: 12, missed: 3 });
      out.stillStale = v.stale;
      ws.push({ type: "delta", topic: "stock:A", epoch: "e1", seq: 12, from_seq: 10,
                changes: { L1: 51, L2: null } });
      out.caughtUp = { state: { ...v.state }, seq: v.seq, stale: v.stale };
      ws.push({ type: "delta", topic: "stock:A", epoch: "e2", seq: 1, changes: { L1: 0 } });
      out.epochChange = { L1: v.state.L1, stale: v.stale, resume: ws.last("subscribe").resume };
      ws.push({ type: "snapshot", topic: "stock:A", epoch: "e2", seq: 1, state: { L9: 4 } });
      out.newEpoch = { state: { ...v.state }, epoch: v.epoch, stale: v.stale };
      v.resync();
      ws.push({ type: "resumed", topic: "stock:A", epoch: "e2", seq: 1, missed: 0 });
      out.resumedCurrent = v.stale;
      return out;
    """)
    assert r["hello"] == {"type": "hello", "protocol": 1, "token": "t", "client": "register",
                          "encoding": "json", "batch": True}
    assert r["sub"] == {"type": "subscribe", "topic": "stock:A"}
    assert r["staleBeforeSnapshot"] is True
    assert r["afterSnapshot"] == {"L1": 3, "L2": 7, "stale": False}
    assert r["afterDuplicate"] == 2
    assert r["afterConflated"] == {"seq": 9, "L3": 1}
    assert r["gap"] == {"L1": 2, "stale": True, "resume": {"epoch": "e1", "seq": 9},
                        "newSubscribes": 1}
    assert r["stillStale"] is True
    assert r["caughtUp"] == {"state": {"L1": 51, "L3": 1}, "seq": 12, "stale": False}
    assert r["epochChange"] == {"L1": 51, "stale": True, "resume": {"epoch": "e1", "seq": 12}}
    assert r["newEpoch"] == {"state": {"L9": 4}, "epoch": "e2", "stale": False}
    assert r["resumedCurrent"] is False


def test_commands_resend_same_op_id_after_reconnect(page: Page) -> None:
    r = run(page, """
      const conn = connect({ url: "ws://fake/ws", token: "t", client: "register" });
      await until(() => FakeWS.all.length === 1 && FakeWS.all[0].sent.length === 1);
      let ws = FakeWS.all[0];
      welcome(ws);
      const states = [];
      conn.on("state", (s) => states.push(s));
      const v = conn.subscribe("location:L1");
      ws.push({ type: "snapshot", topic: "location:L1", epoch: "e", seq: 3, state: {} });
      const sale = conn.command("stock.sale", { sku: "A", location_id: "L1", qty: 1 });
      const first = ws.last("command");
      ws.drop(1001);
      await frames2();
      const offline = { state: conn.state, stale: v.stale };
      await until(() => FakeWS.all.length === 2 && FakeWS.all[1].sent.length === 1, 5000);
      ws = FakeWS.all[1];
      welcome(ws);
      const resent = ws.last("command");
      const resub = ws.last("subscribe");
      ws.push({ type: "resumed", topic: "location:L1", epoch: "e", seq: 3, missed: 0 });
      ws.push({ type: "ack", op_id: first.op_id, result: { balance: { available: 4 } } });
      const result = await sale;
      const hold = conn.command("hold.place", { sku: "A", location_id: "L1", qty: 9 });
      const h1 = ws.last("command");
      ws.push({ type: "reject", op_id: h1.op_id, code: "unavailable", message: "busy",
                details: {} });
      await until(() => ws.sent.filter((f) => f.type === "command").length === 3, 3000);
      const h2 = ws.last("command");
      ws.push({ type: "reject", op_id: h1.op_id, code: "insufficient_stock", message: "no",
                details: { available: 2 } });
      let err = null;
      try { await hold; } catch (e) { err = { code: e.code, details: e.details, name: e.name }; }
      await frames2();
      return { offline, first, resent, resub, result, stale: v.stale, states,
               retried: h2.op_id === h1.op_id, err };
    """)
    assert r["offline"] == {"state": "connecting", "stale": True}
    assert r["resent"] == r["first"]  # same op_id, same payload
    assert r["resub"] == {"type": "subscribe", "topic": "location:L1",
                          "resume": {"epoch": "e", "seq": 3}}
    assert r["result"] == {"balance": {"available": 4}}
    assert r["stale"] is False
    assert r["states"][-1] == "live" and "connecting" in r["states"]
    assert r["retried"] is True
    assert r["err"] == {"code": "insufficient_stock", "details": {"available": 2},
                        "name": "OmnitillError"}


def test_unauthorized_close_stops_reconnecting(page: Page) -> None:
    r = run(page, """
      const conn = connect({ url: "ws://fake/ws", token: "expired", client: "register" });
      let unauthorized = 0;
      conn.on("unauthorized", () => unauthorized++);
      await until(() => FakeWS.all.length === 1 && FakeWS.all[0].sent.length === 1);
      FakeWS.all[0].drop(4003);
      await tick(800);
      return { unauthorized, sockets: FakeWS.all.length, state: conn.state };
    """)
    assert r == {"unauthorized": 1, "sockets": 1, "state": "offline"}


def test_token_function_is_refetched_after_4003(page: Page) -> None:
    r = run(page, """
      let n = 0;
      const token = async () => `tok${++n}`;
      const conn = connect({ url: "ws://fake/ws", token, client: "widget" });
      await until(() => FakeWS.all.length === 1 && FakeWS.all[0].sent.length === 1);
      FakeWS.all[0].drop(4003);
      await until(() => FakeWS.all.length === 2 && FakeWS.all[1].sent.length === 1, 5000);
      return [FakeWS.all[0].sent[0].token, FakeWS.all[1].sent[0].token];
    """)
    assert r == ["tok1", "tok2"]


def test_heartbeat_marks_stale_then_reconnects(page: Page) -> None:
    r = run(page, """
      const conn = connect({ url: "ws://fake/ws", token: "t" });
      await until(() => FakeWS.all.length === 1 && FakeWS.all[0].sent.length === 1);
      const ws = FakeWS.all[0];
      welcome(ws, 0.1);
      await until(() => ws.sent.filter((f) => f.type === "ping").length === 1);
      const nonce = ws.last("ping").nonce;
      ws.push({ type: "pong", nonce, server_time: 1 });
      const afterPong = conn.state;
      await until(() => conn.state === "stale");  // one ping unanswered
      await until(() => ws.readyState === 3);      // two unanswered: closed
      await until(() => FakeWS.all.length === 2, 5000);
      return { afterPong, pings: ws.sent.filter((f) => f.type === "ping").length };
    """)
    assert r["afterPong"] == "live"
    assert r["pings"] >= 2


def test_listeners_run_once_per_frame(page: Page) -> None:
    r = run(page, """
      const conn = connect({ url: "ws://fake/ws", token: "t" });
      await until(() => FakeWS.all.length === 1 && FakeWS.all[0].sent.length === 1);
      const ws = FakeWS.all[0];
      welcome(ws);
      const v = conn.subscribe("stock:A");
      ws.push({ type: "snapshot", topic: "stock:A", epoch: "e", seq: 0, state: { n: 0 } });
      let renders = 0, raw = 0, seen = null;
      v.on((view) => { renders++; seen = view.state.n; });
      v.onChange(() => raw++);
      await frames2();
      renders = 0;
      for (let i = 1; i <= 200; i++) {
        ws.push({ type: "delta", topic: "stock:A", epoch: "e", seq: i, changes: { n: i } });
      }
      await frames2();
      return { renders, raw, seen };
    """)
    assert r == {"renders": 1, "raw": 200, "seen": 200}


@pytest.mark.parametrize(
    ("lat", "lon"),
    [(45.5236, -122.682), (45.52, -122.68), (45.0, -122.0), (-33.868820, 151.209296),
     (45.5231234, -122.6765432), (0.5, -0.25)],
)
def test_near_topic_names_match_the_server_format(page: Page, lat: float, lon: float) -> None:
    name = page.evaluate("([lat, lon]) => window.ot.nearTopic('SKU-1', lat, lon)", [lat, lon])
    assert name == f"near:SKU-1:{lat:g},{lon:g}"


def test_commands_carry_time_ordered_op_ids(page: Page) -> None:
    # UUIDv7 layout, as protocol/op_ids.py: the server reads the clock back the same way.
    ids = page.evaluate("() => Array.from({ length: 200 }, () => window.ot.newOpId())")
    assert len(set(ids)) == 200
    now_ms = time.time() * 1000
    for op in ids:
        assert op_id_millis(op) == op[:12]
        assert abs(int(op[:12], 16) - now_ms) < 60_000
    assert [op[:12] for op in ids] == sorted(op[:12] for op in ids)
