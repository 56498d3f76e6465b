"""Open orders keep a timer row, and start-up reads only those orders' streams.

An open order's `saga` timer row stays, parked at `PARKED_DUE`, while nothing is due; closing
the order deletes it. Start-up lists the rows (`Journal.list_timers("order:")`) instead of
replaying every order stream ever written. A journal from before the index (no marker, no
parked rows) is replayed whole once and indexed."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.orders.shell import PARKED_DUE, SAGA_TIMER
from actors.orders.wiring import OPEN_INDEX
from engine.auth import Claims
from engine.journal.sqlite import SqliteJournal
from engine.server import Engine
from protocol import ProtocolError
from tests.inventory_e2e.test_e2e_durability import running_engine
from tests.orders.test_orders_journeys import stocked_at

CLAIMS = Claims(sub="t", role="admin", exp=time.time() + 3600)
SHIP_TO = {"address": "1 Main", "lat": 45.52, "lon": -122.68}


async def _run(engine: Engine, op_id: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
    return await engine.dispatcher.execute(CLAIMS, op_id, name, dict(args))


async def _order_timers(engine: Engine) -> dict[str, tuple[str, float]]:
    return {
        t.actor_key[6:]: (t.timer_id, t.due_at)
        for t in await engine.journal.list_timers("order:")
    }


async def test_an_open_order_keeps_a_parked_timer_row_until_it_closes(engine: Engine) -> None:
    store, (s1, s2, s3) = stocked_at(engine, 3, 5)
    pickup = await _run(engine, "ix-p", "order.create",
                        {"lines": [{"sku": s1, "qty": 1}], "pickup_location": store})
    ship = await _run(engine, "ix-s", "order.create", {"lines": [{"sku": s2, "qty": 1}], "ship_to": SHIP_TO})
    gone = await _run(engine, "ix-c", "order.create",
                      {"lines": [{"sku": s3, "qty": 1}], "pickup_location": store})
    with pytest.raises(ProtocolError):  # refused: no order, no row
        await _run(engine, "ix-r", "order.create",
                   {"lines": [{"sku": s3, "qty": 10_000}], "pickup_location": store})
    rows = await _order_timers(engine)
    assert rows == {o["order_id"]: (SAGA_TIMER, PARKED_DUE) for o in (pickup, ship, gone)}

    await _run(engine, "ix-c1", "order.cancel", {"order_id": gone["order_id"]})
    oid = pickup["order_id"]
    await _run(engine, "ix-p1", "order.pick", {"order_id": oid})
    await _run(engine, "ix-p2", "order.ready", {"order_id": oid})
    assert set(await _order_timers(engine)) == {oid, ship["order_id"]}  # still open
    await _run(engine, "ix-p3", "order.pickup", {"order_id": oid})
    await _run(engine, "ix-s1", "order.ship",
               {"order_id": ship["order_id"], "carrier": "UPS", "tracking": "1Z999"})
    assert await _order_timers(engine) == {}  # picked up, shipped, cancelled: all closed
    # Parked rows never reach the timer service's window.
    assert all(t.due_at < PARKED_DUE for t in await engine.journal.due_timers(until=time.time() + 1e6))


@pytest.fixture
def order_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Order streams the SQLite journal reads by name; a scan of every order fails the test."""
    seen: list[str] = []
    real_read, real_read_streams = SqliteJournal.read, SqliteJournal.read_streams

    async def read(self: SqliteJournal, stream: str, *args: Any, **kw: Any) -> Any:
        if stream.startswith("order:"):
            seen.append(stream[6:])
        return await real_read(self, stream, *args, **kw)

    async def read_streams(self: SqliteJournal, streams: list[str]) -> Any:
        seen.extend(s[6:] for s in streams if s.startswith("order:"))
        return await real_read_streams(self, streams)

    async def no_scan(self: SqliteJournal, prefix: str, *args: Any, **kw: Any) -> Any:
        raise AssertionError(f"start-up scanned every {prefix!r} stream")

    monkeypatch.setattr(SqliteJournal, "read", read)
    monkeypatch.setattr(SqliteJournal, "read_streams", read_streams)
    monkeypatch.setattr(SqliteJournal, "read_prefix", no_scan)
    yield seen


async def _three_orders(engine: Engine) -> tuple[str, dict[str, str]]:
    store, (s1, s2, s3) = stocked_at(engine, 3, 3)
    ids = {}
    for name, sku in (("open", s1), ("cancelled", s2), ("collected", s3)):
        created = await _run(engine, f"rs-{name}", "order.create",
                             {"lines": [{"sku": sku, "qty": 1}], "pickup_location": store})
        ids[name] = created["order_id"]
    await _run(engine, "rs-c", "order.cancel", {"order_id": ids["cancelled"]})
    for step in ("pick", "ready", "pickup"):
        await _run(engine, f"rs-{step}", f"order.{step}", {"order_id": ids["collected"]})
    return store, ids


def _queue(engine: Engine, store: str) -> set[str]:
    view = engine.inventory.views.locations.get(store, {})  # type: ignore[attr-defined]
    return {k[6:] for k in view if k.startswith("order:")}


async def test_start_up_reads_only_the_open_orders(data_dir: Path, request: pytest.FixtureRequest) -> None:
    async with running_engine(data_dir) as engine:
        store, ids = await _three_orders(engine)
        assert ids["open"] in _queue(engine, store)
    reads = request.getfixturevalue("order_reads")  # from here on a full scan fails
    async with running_engine(data_dir) as engine:
        assert ids["open"] in _queue(engine, store)
        assert not {ids["cancelled"], ids["collected"]} & _queue(engine, store)
    assert reads == [ids["open"]]  # the closed orders' streams were never read


async def test_a_journal_from_before_the_index_is_indexed_once(
    data_dir: Path, request: pytest.FixtureRequest
) -> None:
    async with running_engine(data_dir) as engine:
        store, ids = await _three_orders(engine)
    # What an older release left behind: no marker, no parked rows for open orders.
    with sqlite3.connect(data_dir / "omnitill.db") as db:
        db.execute("DELETE FROM timers WHERE actor_key LIKE 'order:%'")
        db.execute("DELETE FROM snapshots WHERE stream = ?", (OPEN_INDEX,))
    async with running_engine(data_dir) as engine:  # replays every order stream once
        assert _queue(engine, store) >= {ids["open"]}
        assert set(await _order_timers(engine)) == {ids["open"]}
        assert await engine.journal.load_snapshot(OPEN_INDEX) is not None
    reads = request.getfixturevalue("order_reads")
    async with running_engine(data_dir) as engine:  # and from then on only the open ones
        assert ids["open"] in _queue(engine, store)
    assert reads == [ids["open"]]
