"""The SQLite writer in a child process (`writer="process"`): the contract tests run against it
too (journal_backends.py); here, what only a process can do -- die -- and the shutdown."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from engine.journal import Batch, JournalError
from engine.journal.sqlite import SqliteJournal


async def test_a_killed_writer_process_fails_its_group_and_is_replaced(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "journal.db", writer="process")
    await journal.open()
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        first = await journal.append(Batch("s", 0, events=[("E", b"1")]))
        assert first.version == 1
        writer = journal._writer_proc
        assert writer is not None
        proc = writer.process
        assert proc is not None and proc.returncode is None
        proc.kill()
        await proc.wait()
        with pytest.raises(JournalError, match="writer process gone"):
            await journal.append(Batch("s", 1, events=[("E", b"2")]))
        again = await journal.append(Batch("s", 1, events=[("E", b"2")]))  # a new child
        assert again.version == 2 and writer.process is not proc
        assert [e.data for e in await journal.read("s")] == [b"1", b"2"]
        assert journal.stats()["writer"] == "process"
        second = writer.process
        assert second is not None
        await journal.close()
    assert writer.process is None and second.returncode == 0  # told to stop, exited cleanly


async def test_an_engine_on_the_process_writer_and_back(data_dir: Path) -> None:
    """A whole engine runs on the process writer (orders, stock, timers), and a journal it
    wrote opens with the default inline writer: the same file, the same rows."""
    import time

    from engine.auth import Claims
    from tests.inventory_e2e.test_e2e_durability import running_engine
    from tests.orders.test_orders_journeys import stocked_at

    claims = Claims(sub="t", role="admin", exp=time.time() + 3600)
    async with running_engine(data_dir, sqlite_writer="process") as engine:
        assert engine.journal.stats()["writer"] == "process"
        store, (sku,) = stocked_at(engine, 1)
        order = await engine.dispatcher.execute(
            claims, "pw-1", "order.create", {"lines": [{"sku": sku, "qty": 1}], "pickup_location": store}
        )
        assert order["status"] == "placed"
    async with running_engine(data_dir) as engine:
        assert engine.journal.stats()["writer"] == "inline"
        version, view = await engine.orders.get(order["order_id"])  # type: ignore[attr-defined]
        assert view.status == "placed" and version == order["version"]
        queue = engine.inventory.views.locations[store]  # type: ignore[attr-defined]
        assert f"order:{order['order_id']}" in queue
