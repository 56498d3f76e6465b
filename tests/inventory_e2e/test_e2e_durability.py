"""Durability across an engine restart: two engines in sequence on one data dir.

What the first engine acknowledged is there after the restart (invariant 2), a pickup hold's
expiry timer survives and fires on time in the second engine, and an SDK client that stays up
through the restart reconnects by itself and resumes its topics without a fresh snapshot.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

from actors.inventory import HoldExpired, decode_event
from clients.python import Client, open_client
from engine.server import Engine
from tests.conftest import _config, http_url, ws_url
from tests.gateway.helpers import stocked
from tests.inventory_e2e.e2e_helpers import balance, journal_truth, token

HOLD_TTL_S = 10  # the shortest hold the protocol allows


@asynccontextmanager
async def running_engine(data_dir: Path, **config: Any) -> AsyncIterator[Engine]:
    """Start an engine; on exit stop it and wait until it has shut down (journal closed)."""
    engine = Engine(_config(data_dir, **config))
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        try:
            yield engine
        finally:
            engine.stop()


async def test_quantities_holds_and_timers_survive_a_restart(data_dir: Path) -> None:
    async with trio.open_nursery() as outer:
        # --- first engine: receive stock, place a short hold; a kiosk watches --------------
        async with running_engine(data_dir) as first:
            port = first.bound_port
            sku, loc, _ = stocked(first)
            kiosk = Client(ws_url(first), token(first, "kiosk"), backoff_max_s=0.5)
            await outer.start(kiosk.run)
            stock = await kiosk.subscribe(f"stock:{sku}")
            queue = await kiosk.subscribe(f"location:{loc}")
            start = balance(first, sku, loc)
            async with open_client(ws_url(first), token(first)) as admin:
                await admin.command("stock.receive", {"sku": sku, "location_id": loc, "qty": 6})
                hold = await admin.command("hold.place", {"sku": sku, "location_id": loc, "qty": 2,
                                                          "ttl_s": HOLD_TTL_S})
            key = f"hold:{hold['hold_id']}"
            acked = balance(first, sku, loc)
            assert (acked["on_hand"], acked["reserved"]) == (start["on_hand"] + 6, start["reserved"] + 2)
            await stock.wait_for(lambda s: s[loc] == acked)
            await queue.wait_for(lambda s: key in s)
            version_acked, truth_acked = await journal_truth(first, sku)
            stock_snapshots = stock.snapshots
        assert hold["expires_at"] > time.time(), "the restart took longer than the hold's ttl"
        # The stopping engine told the kiosk to go away (1001) instead of just dropping it.
        assert kiosk.close_codes[:1] == [1001]

        # --- second engine on the same data dir and port ----------------------------------
        async with running_engine(data_dir, port=port) as second:
            assert second.bound_port == port
            # Acked before the restart = there after it: the read models were rebuilt from
            # the journal, and so is a fresh replay.
            assert balance(second, sku, loc) == acked
            assert await journal_truth(second, sku) == (version_acked, truth_acked)
            assert key in second.inventory.views.locations[loc]  # type: ignore[attr-defined]

            # The kiosk came back by itself and resumed the stock topic (same journal epoch,
            # nothing changed while it was down): no snapshot was needed.
            await kiosk.wait_connected(timeout=15)
            await stock.wait_for(lambda s: s[loc] == acked, timeout=5)
            assert stock.resumes >= 1
            assert stock.snapshots == stock_snapshots
            assert kiosk.connections >= 2
            # The pickup queue lives in a per-boot history: a snapshot brings it back, hold and all.
            await queue.wait_for(lambda s: key in s, timeout=5)
            queue_snapshots = queue.snapshots

            # The hold's timer was set by the first engine and fires in the second, on time.
            wait = hold["expires_at"] - time.time() + 5
            await queue.wait_for(lambda s: key not in s, timeout=wait)
            assert time.time() >= hold["expires_at"]
            assert queue.snapshots == queue_snapshots  # removed by a delta, not a resync
            freed = balance(second, sku, loc)
            assert freed["reserved"] == start["reserved"]
            assert freed["available"] == acked["available"] + 2
            await stock.wait_for(lambda s: s[loc] == freed)

            events = [decode_event(e.data) for e in
                      await second.journal.read(f"sku:{sku}", version_acked + 1)]
            assert [type(e) for e in events] == [HoldExpired]
            assert await journal_truth(second, sku) == (stock.seq, stock.state)

            # The expired hold is gone for good, over REST too.
            headers = {"Authorization": f"Bearer {token(second)}", "Idempotency-Key": "late-extend"}
            async with httpx.AsyncClient(base_url=http_url(second), headers=headers) as http:
                r = await http.post(f"/api/v1/holds/{hold['hold_id']}/extend", json={"ttl_s": 600})
            assert r.status_code == 404, r.text
            assert r.json()["code"] == "not_found" and r.json()["details"]["state"] == "expired"
        kiosk.close()
        outer.cancel_scope.cancel()
