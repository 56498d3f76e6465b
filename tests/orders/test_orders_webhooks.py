"""Signed webhooks against real local HTTP receivers: one that fails first, one that hangs, and
an ERP following stock levels."""

from __future__ import annotations

from functools import partial
from typing import Any

import msgspec
import pytest
import trio

from actors.orders.webhooks import verify
from clients.python import open_client
from engine.server import Engine
from protocol.webhooks import OrderUpdated, StockChanged, StockConflictNotice
from tests.conftest import ws_url
from tests.gateway.helpers import stocked, token
from tests.inventory_e2e.e2e_helpers import balance, set_available
from tests.orders.test_orders_journeys import stocked_at


class Receiver:
    """A tiny HTTP/1.1 server on 127.0.0.1: fails the first `fail_first` requests with 500,
    or never answers at all (`hang`)."""

    def __init__(self, fail_first: int = 0, hang: bool = False) -> None:
        self.fail_first = fail_first
        self.hang = hang
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.port = 0
        self.got = trio.Event()

    async def serve(self, nursery: trio.Nursery) -> None:
        listeners = await nursery.start(partial(trio.serve_tcp, self.handle, 0, host="127.0.0.1"))
        self.port = listeners[0].socket.getsockname()[1]

    async def handle(self, stream: trio.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode().split("\r\n")[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        while len(body) < int(headers.get("content-length", "0")):
            body += await stream.receive_some(65536)
        self.requests.append((headers, body))
        if self.hang:
            await trio.sleep_forever()
        ok = len(self.requests) > self.fail_first
        status = b"200 OK" if ok else b"500 Oops"
        await stream.send_all(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
        if ok:
            self.got.set()


async def test_webhooks_are_signed_retried_and_never_block(
    engine: Engine, nursery: trio.Nursery
) -> None:
    flaky, stuck = Receiver(fail_first=2), Receiver(hang=True)
    await flaky.serve(nursery)
    await stuck.serve(nursery)
    hooks = engine.orders.webhooks  # type: ignore[attr-defined]
    hooks.endpoints = [f"http://127.0.0.1:{flaky.port}/hook", f"http://127.0.0.1:{stuck.port}/hook"]
    hooks.backoff_s = 0.1
    hooks.timeout_s = 0.5
    hooks.max_attempts = 3
    hooks.events = frozenset({"order.updated"})  # stock webhooks: the tests below
    store, (sku,) = stocked_at(engine, 1)
    async with open_client(ws_url(engine), token(engine)) as c:
        with trio.fail_after(3):  # the hanging endpoint must not slow the order down
            created = await c.command(
                "order.create", {"lines": [{"sku": sku, "qty": 1}], "pickup_location": store}
            )
        with trio.fail_after(10):
            await flaky.got.wait()
    headers, body = flaky.requests[-1]
    assert verify(hooks.secret, body, headers["omnitill-signature"])
    assert not verify(b"wrong secret", body, headers["omnitill-signature"])
    assert created["order_id"].encode() in body
    event = msgspec.json.decode(body)
    assert event["type"] == "order.updated"
    assert msgspec.convert(event["data"], OrderUpdated).order_id == created["order_id"]
    assert len(flaky.requests) == 3  # two failures, then delivered
    log: list[dict[str, Any]] = list(hooks.log)
    flaky_log = [e for e in log if str(flaky.port) in e["url"]]
    assert [e["outcome"] for e in flaky_log] == ["retrying", "retrying", "delivered"]
    with trio.fail_after(10):
        while not any(e["outcome"] == "failed" and str(stuck.port) in e["url"] for e in hooks.log):
            await trio.sleep(0.05)
    stuck_log = [e for e in hooks.log if str(stuck.port) in e["url"]]
    assert all("timed out" in e["error"] for e in stuck_log) and len(stuck_log) == 3
    # The attempts are in the journal's delivery log too.
    assert len(await engine.journal.read("webhooks:log")) >= 6
    # Ops sees them: the sample behind the ops page's tile, and /metrics.
    counts = engine.metrics.sample()["webhooks"]
    assert counts == {"delivered": 1, "retrying": 4, "failed": 1, "dropped": 0}
    text = engine.metrics.prometheus()
    assert 'omnitill_webhooks_total{key="failed"} 1' in text
    assert 'omnitill_webhooks_total{key="delivered"} 1' in text


async def _stock_events(receiver: Receiver, event_type: str) -> list[dict[str, Any]]:
    return [
        msgspec.json.decode(body)
        for headers, body in receiver.requests
        if headers.get("omnitill-event") == event_type
    ]


async def test_stock_levels_are_coalesced_and_conflicts_go_out_at_once(
    engine: Engine, nursery: trio.Nursery
) -> None:
    """A burst of stock changes reaches an ERP as a few `stock.changed` deliveries carrying the
    newest level of each (sku, location), never one per change; a sale that uncovers a hold
    sends `stock.conflict` at once."""
    erp = Receiver()
    await erp.serve(nursery)
    hooks = engine.orders.webhooks  # type: ignore[attr-defined]
    feed = engine.orders.stock_feed  # type: ignore[attr-defined]
    hooks.endpoints = [f"http://127.0.0.1:{erp.port}/erp"]
    feed.interval_s = 0.3
    sku, loc, _ = stocked(engine)
    async with open_client(ws_url(engine), token(engine)) as admin:
        await set_available(engine, admin, sku, loc, 60)
        for _ in range(50):  # 50 commits in well under a second
            await admin.command("hold.place", {"sku": sku, "location_id": loc, "qty": 1})
        with trio.fail_after(10):
            while True:
                levels = {
                    (lv["sku"], lv["location_id"]): lv
                    for ev in await _stock_events(erp, "stock.changed")
                    for lv in ev["data"]["levels"]
                }
                if levels.get((sku, loc), {}).get("reserved") == 50:
                    break
                await trio.sleep(0.05)
        changed = await _stock_events(erp, "stock.changed")
        assert len(changed) <= 10  # 52 commits, coalesced by the 0.3 s interval
        final = levels[(sku, loc)]
        assert final == {"sku": sku, "location_id": loc, "version": engine.inventory.views.version(sku),  # type: ignore[attr-defined]
                         **balance(engine, sku, loc)}
        versions = [lv["version"] for ev in changed for lv in ev["data"]["levels"] if lv["sku"] == sku]
        assert versions == sorted(versions)  # no retries here: deliveries in order
        headers, body = erp.requests[-1]
        assert verify(hooks.secret, body, headers["omnitill-signature"])

        # The register sells 11 units, where only 10 are not promised: a hold is uncovered.
        await admin.command("stock.sale", {"sku": sku, "location_id": loc, "qty": 11})
        with trio.fail_after(10):
            while not (conflicts := await _stock_events(erp, "stock.conflict")):
                await trio.sleep(0.05)
        notice = msgspec.convert(conflicts[0]["data"], StockConflictNotice)  # the documented shape
        assert notice.sku == sku and notice.location_id == loc and notice.shortfall == 1
        assert len(notice.uncovered_hold_ids) == 1
        assert all(msgspec.convert(ev["data"], StockChanged).levels for ev in changed)


async def test_webhook_event_filter(engine: Engine, nursery: trio.Nursery, monkeypatch: Any) -> None:
    """OMNITILL_WEBHOOK_EVENTS picks the types sent; an unknown type, or endpoints without a
    signing key, are refused at start-up."""
    from actors.orders.webhooks import Webhooks

    monkeypatch.setenv("OMNITILL_WEBHOOK_URLS", "http://127.0.0.1:9/x")
    with pytest.raises(ValueError, match="OMNITILL_WEBHOOK_SECRET"):  # no key: no webhooks
        Webhooks.from_env()
    monkeypatch.setenv("OMNITILL_WEBHOOK_SECRET", "short")
    with pytest.raises(ValueError, match="at least 16"):
        Webhooks.from_env()
    monkeypatch.setenv("OMNITILL_WEBHOOK_SECRET", "a-shared-key-of-some-length")
    monkeypatch.setenv("OMNITILL_WEBHOOK_EVENTS", "order.updated, stock.conflict")
    hooks = Webhooks.from_env()
    assert hooks.wants("order.updated") and hooks.wants("stock.conflict")
    assert not hooks.wants("stock.changed")
    monkeypatch.setenv("OMNITILL_WEBHOOK_EVENTS", "order.updated,stock.levels")
    with pytest.raises(ValueError, match=r"stock\.levels"):
        Webhooks.from_env()
    # Filtered out: a stock change sends nothing, and nothing piles up for a flush.
    erp = Receiver()
    await erp.serve(nursery)
    live = engine.orders.webhooks  # type: ignore[attr-defined]
    live.endpoints = [f"http://127.0.0.1:{erp.port}/erp"]
    live.events = frozenset({"order.updated"})
    sku, loc, _ = stocked(engine)
    async with open_client(ws_url(engine), token(engine)) as admin:
        await admin.command("stock.receive", {"sku": sku, "location_id": loc, "qty": 3})
    await trio.sleep(1.5)
    assert erp.requests == [] and engine.orders.stock_feed.pending == {}  # type: ignore[attr-defined]


def test_stock_conflict_notice_carries_every_field_of_the_event() -> None:
    """The notice is built as the event's fields plus the SKU: a field added to one and not the
    other must fail here, not in a SKU pool's task."""
    from actors.inventory.events import StockConflict

    assert set(StockConflictNotice.__struct_fields__) == {"sku", *StockConflict.__struct_fields__}


def test_serve_refuses_webhook_urls_without_a_key(tmp_path: Any) -> None:
    """`omnitill serve` with endpoints but no signing key stops with one clear line, exit 2."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMNITILL_WEBHOOK_URLS": "http://127.0.0.1:9/erp"}
    env.pop("OMNITILL_WEBHOOK_SECRET", None)
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", "serve", "--data-dir", str(tmp_path), "--port", "0"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("omnitill serve: OMNITILL_WEBHOOK_URLS is set")
    assert "Traceback" not in done.stderr
