"""Commands over /ws when their actor cannot answer in time (the gateway's fast path).

The reader queues a command in its actor's mailbox with a reply callback; the ask timeout is
kept by the connection sweeper. Here the journal really stalls: another process holds the
SQLite write lock, so the SKU pool's append waits. The client must get `unavailable` after
the ask timeout, the connection and the server stay up, the late commit's answer is dropped
(no second reply for that op_id), and a retry with the same op_id returns the original
result: the hold exists exactly once.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import trio

from engine.server import Engine
from protocol import Ack, Reject
from tests.conftest import _config
from tests.gateway.helpers import stocked, token
from tests.gateway.rawws import raw_ws


async def test_stalled_actor_gets_unavailable_then_retry_applies_once(
    data_dir: Path, nursery: trio.Nursery
) -> None:
    engine = Engine(_config(data_dir, ask_timeout_s=0.6))
    await nursery.start(engine.run)
    sku, loc, balance = stocked(engine, min_available=2)
    args: dict[str, Any] = {"sku": sku, "location_id": loc, "qty": 1}
    async with raw_ws(engine) as ws:
        await ws.hello(token(engine, "admin"))
        # Warm the SKU pool up (activation reads the journal, which a write lock does not block).
        await ws.send({"type": "command", "name": "hold.place", "args": args, "op_id": "warm"})
        assert isinstance(await ws.recv_until(Ack), Ack)

        lock = sqlite3.connect(data_dir / "omnitill.db", isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # a foreign writer: the journal's commit now waits
        try:
            t0 = trio.current_time()
            await ws.send({"type": "command", "name": "hold.place", "args": args, "op_id": "stuck"})
            reject = await ws.reject(timeout=5)
            waited = trio.current_time() - t0
            assert (reject.op_id, reject.code) == ("stuck", "unavailable")
            assert "retry with the same op_id" in reject.message
            assert 0.5 <= waited < 3.0
            await ws.ping()  # the connection is still served meanwhile
        finally:
            lock.execute("COMMIT")
            lock.close()

        # The stalled append commits now; its late answer must not reach the client.
        late: list[Any] = []
        with trio.move_on_after(1.0):
            while True:
                late.append(await ws.recv())
        assert not [m for m in late if isinstance(m, (Ack, Reject))], late
        await ws.send({"type": "command", "name": "hold.place", "args": args, "op_id": "stuck"})
        retry = await ws.recv_until((Ack, Reject))  # type: ignore[arg-type]
        assert isinstance(retry, Ack) and retry.op_id == "stuck"

    pool = engine.inventory.views.stock[sku][loc]  # type: ignore[attr-defined]
    assert pool["reserved"] == balance["reserved"] + 2  # "warm" and "stuck", once each
    ops = await engine.journal.lookup_ops(["warm", "stuck"])
    assert set(ops) == {"warm", "stuck"}
    engine.stop()
