"""What only the PostgreSQL journal has: migrations under concurrency, many nodes on one
store, data the server refuses, and a writer connection that goes away.

(The whole Journal contract runs against PostgreSQL in tests/journal/.)"""

from __future__ import annotations

import asyncpg
import trio
import trio.testing
from cluster_helpers import PG_DSN

from engine.bridge import ThreadBridge
from engine.journal import AppendResult, Batch, JournalError, VersionConflict
from engine.journal.postgres import PostgresJournal, load_migrations


def evs(*names: str) -> list[tuple[str, bytes]]:
    return [(n, n.encode()) for n in names]


async def test_nodes_starting_together_migrate_once(
    pg_schema: str, bridge: ThreadBridge
) -> None:
    journals = [PostgresJournal(PG_DSN, schema=pg_schema, readers=1) for _ in range(4)]
    async with trio.open_nursery() as n:
        for j in journals:
            n.start_soon(j.open)
    assert len({j.epoch for j in journals}) == 1
    assert await journals[0].applied_migrations() == [m.version for m in load_migrations()]
    for j in journals:
        await j.close()
    again = PostgresJournal(PG_DSN, schema=pg_schema, readers=1)
    await again.open()  # re-opening applies nothing twice
    assert again.epoch == journals[0].epoch
    assert await again.applied_migrations() == [1]
    await again.close()


async def test_two_nodes_share_one_store(pg_schema: str, nursery: trio.Nursery) -> None:
    a = PostgresJournal(PG_DSN, schema=pg_schema, readers=1)
    b = PostgresJournal(PG_DSN, schema=pg_schema, readers=1)
    for j in (a, b):
        await j.open()
        await nursery.start(j.run)

    async def writer(j: PostgresJournal, name: str) -> None:
        for i in range(30):
            await j.append(Batch(f"{name}-{i % 3}", i // 3, events=evs(f"{name}{i}")))

    async with trio.open_nursery() as n:
        n.start_soon(writer, a, "a")
        n.start_soon(writer, b, "b")
    every = await a.read_all(limit=100)
    assert [e.global_pos for e in every] == list(range(1, 61))  # commit order, no holes
    assert await b.read_all(limit=100) == every
    # A stale owner (b decided against version 10 of a-0) is stopped by the version check.
    res = await a.append(Batch("a-0", 10, events=evs("by-a")))
    assert res.version == 11
    try:
        await b.append(Batch("a-0", 10, events=evs("by-stale-b")))
        raise AssertionError("the stale owner's batch committed")
    except VersionConflict as exc:
        assert (exc.expected, exc.actual) == (10, 11)
    await a.close()
    await b.close()


async def test_refused_data_fails_only_its_own_batch(
    pg_schema: str, nursery: trio.Nursery
) -> None:
    j = PostgresJournal(PG_DSN, schema=pg_schema, readers=1)
    await j.open()
    out: dict[str, AppendResult | Exception] = {}
    batches = {
        "ok-1": Batch("s1", 0, events=evs("a")),
        "nul": Batch("s2", 0, events=[("bad\x00type", b"x")]),  # PostgreSQL text has no NUL
        "ok-2": Batch("s3", 0, events=evs("b", "c")),
    }

    async def put(name: str) -> None:
        try:
            out[name] = await j.append(batches[name])
        except JournalError as exc:
            out[name] = exc

    async with trio.open_nursery() as n:
        for name in batches:
            n.start_soon(put, name)
        await trio.testing.wait_all_tasks_blocked()
        await nursery.start(j.run)  # all three in one group
    assert isinstance(out["nul"], JournalError)
    assert isinstance(out["ok-1"], AppendResult) and isinstance(out["ok-2"], AppendResult)
    assert j.stats()["commits"] == 1
    assert j.stats()["isolated_replays"] == 1
    assert [e.global_pos for e in await j.read_all()] == [1, 2, 3]
    assert await j.stream_version("s2") == 0
    await j.close()


async def test_writer_reconnects_after_losing_its_connection(
    pg_schema: str, nursery: trio.Nursery, bridge: ThreadBridge
) -> None:
    j = PostgresJournal(PG_DSN, schema=pg_schema, readers=1)
    await j.open()
    await nursery.start(j.run)
    await j.append(Batch("s", 0, events=evs("a")))
    admin = await bridge.run(asyncpg.connect, PG_DSN)
    assert j._wconn is not None
    await bridge.run(admin.execute, "SELECT pg_terminate_backend($1)", j._wconn.get_server_pid())
    await bridge.run(admin.close)
    version = 1
    for _ in range(2):  # the first commit may find the connection dead; the next reconnects
        try:
            version = (await j.append(Batch("s", version, events=evs("b")))).version
            break
        except JournalError:
            continue
    assert version == 2
    assert [e.type for e in await j.read("s")] == ["a", "b"]
    await j.close()


async def test_unreachable_server_is_a_journal_error() -> None:
    j = PostgresJournal("postgresql://postgres@127.0.0.1:1/test", schema="x")
    try:
        await j.open()
        raise AssertionError("opened a journal on a closed port")
    except JournalError as exc:
        assert "cannot open" in str(exc)
    await j.close()
