"""What only the SQLite store has: WAL, pragmas, migrations, the file itself."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import trio
import trio.testing

from engine.journal import (
    AppendResult,
    Batch,
    JournalError,
    OpRecord,
    SqliteJournal,
    StoredEvent,
    Timer,
    VersionConflict,
)
from engine.journal import sqlite as sqlite_mod


async def started(path: Path, nursery: trio.Nursery, **kwargs: object) -> SqliteJournal:
    j = SqliteJournal(path, **kwargs)  # type: ignore[arg-type]
    await j.open()
    await nursery.start(j.run)
    return j


def raw(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_wal_mode_and_full_sync(tmp_path: Path, nursery: trio.Nursery) -> None:
    path = tmp_path / "j.db"
    j = await started(path, nursery)
    assert await j.pragma("journal_mode") == "wal"
    assert await j.pragma("synchronous") == 2  # FULL
    await j.append(Batch("s", 0, events=[("e", b"x")]))
    assert (tmp_path / "j.db-wal").exists()
    assert j.stats()["synchronous"] == "FULL"
    await j.close()
    assert raw(path, "PRAGMA journal_mode") == [("wal",)]  # WAL is persistent in the file


async def test_normal_sync_can_be_chosen(tmp_path: Path, nursery: trio.Nursery) -> None:
    j = await started(tmp_path / "j.db", nursery, synchronous="NORMAL")
    assert await j.pragma("synchronous") == 1
    await j.close()


async def test_inline_writer_waits_for_a_foreign_lock_without_blocking_the_loop(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    """The inline writer (default) must not stall the event loop when another process holds
    the database's write lock: the group waits for the lock in a worker thread instead."""
    path = tmp_path / "j.db"
    j = await started(path, nursery)
    assert j.stats()["writer"] == "inline"
    await j.append(Batch("s", 0, events=[("e", b"a")]))
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # a foreign writer holds the lock
    done = trio.Event()
    result: list[AppendResult] = []

    async def append() -> None:
        result.append(await j.append(Batch("s", 1, events=[("e", b"b")])))
        done.set()

    nursery.start_soon(append)
    ticks = 0
    with trio.move_on_after(0.3):
        while True:  # the loop keeps running while the append waits for the lock
            await trio.sleep(0.01)
            ticks += 1
    assert ticks >= 10 and not done.is_set()
    other.execute("COMMIT")
    other.close()
    with trio.fail_after(5):
        await done.wait()
    assert result[0].version == 2
    await j.append(Batch("s", 2, events=[("e", b"c")]))  # back on the inline path
    assert [e.data for e in await j.read("s")] == [b"a", b"b", b"c"]
    await j.close()


async def test_inline_writer_checkpoints_the_wal_in_the_background(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    """Inline mode turns SQLite's in-COMMIT autocheckpoint off (it would stall the loop) and
    checkpoints from its own task: the WAL's frames reach the database file all the same."""
    path = tmp_path / "j.db"
    j = await started(path, nursery)
    assert raw(path, "PRAGMA wal_autocheckpoint") == [(1000,)]  # other connections: default
    for v in range(200):
        await j.append(Batch("s", v, events=[("e", b"x" * 2000)]))
    with trio.fail_after(5):
        while j.stats()["checkpoints"] < 2:
            await trio.sleep(0.05)
    # Everything committed so far is in the main file: a checkpoint now has nothing to copy.
    busy, log_frames, checkpointed = raw(path, "PRAGMA wal_checkpoint(PASSIVE)")[0]
    assert busy == 0 and log_frames == checkpointed
    assert len(await j.read("s")) == 200
    await j.close()


async def test_ack_means_committed_for_other_connections(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    path = tmp_path / "j.db"
    j = await started(path, nursery)
    await j.append(Batch("s", 0, events=[("e", b"x"), ("e", b"y")]))
    assert raw(path, "SELECT stream, version FROM events ORDER BY global_pos") == [
        ("s", 1), ("s", 2),
    ]
    assert raw(path, "SELECT version FROM streams WHERE stream = 's'") == [(2,)]
    await j.close()


async def test_migrations_are_recorded_and_idempotent(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    path = tmp_path / "j.db"
    epochs = set()
    for _ in range(3):
        j = await started(path, nursery)
        epochs.add(j.epoch)
        assert await j.applied_migrations() == [m[0] for m in sqlite_mod.MIGRATIONS]
        await j.close()
    assert len(epochs) == 1
    assert raw(path, "SELECT count(*) FROM schema_migrations") == [(len(sqlite_mod.MIGRATIONS),)]
    assert raw(path, "SELECT value FROM meta WHERE key = 'epoch'") == [(epochs.pop(),)]
    tables = {r[0] for r in raw(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"events", "streams", "ops", "timers", "snapshots", "meta"} <= tables
    indexes = raw(path, "SELECT name FROM sqlite_master WHERE tbl_name = 'timers'")
    assert ("timers_due_at",) in indexes


async def test_a_new_migration_is_applied_once_to_an_existing_db(
    tmp_path: Path, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "j.db"
    j = await started(path, nursery)
    await j.append(Batch("s", 0, events=[("e", b"x")]))
    await j.close()

    extra = (2, "test: extra table", ("CREATE TABLE extra_test (x INTEGER)",))
    monkeypatch.setattr(sqlite_mod, "MIGRATIONS", [*sqlite_mod.MIGRATIONS, extra])
    for _ in range(2):  # the second open must not try to create the table again
        j = await started(path, nursery)
        assert await j.applied_migrations() == [1, 2]
        assert await j.stream_version("s") == 1
        await j.close()
    assert raw(path, "SELECT count(*) FROM extra_test") == [(0,)]


async def test_rejected_data_fails_only_its_batch(tmp_path: Path, nursery: trio.Nursery) -> None:
    path = tmp_path / "j.db"
    j = SqliteJournal(path)
    await j.open()
    bad = Batch("bad", 0, events=[("e", b"ok"), ("e", None)])  # type: ignore[list-item]
    out: dict[str, AppendResult | Exception] = {}

    async def put(name: str, batch: Batch) -> None:
        try:
            out[name] = await j.append(batch)
        except JournalError as exc:
            out[name] = exc

    async with trio.open_nursery() as n:
        n.start_soon(put, "good1", Batch("g1", 0, events=[("e", b"1")]))
        n.start_soon(put, "bad", bad)
        n.start_soon(put, "good2", Batch("g2", 0, events=[("e", b"2")]))
        await trio.testing.wait_all_tasks_blocked()
        await nursery.start(j.run)

    assert j.stats()["commits"] == 1
    assert isinstance(out["bad"], JournalError)
    assert isinstance(out["bad"].__cause__, sqlite3.IntegrityError)
    assert isinstance(out["good1"], AppendResult)
    assert isinstance(out["good2"], AppendResult)
    assert await j.stream_version("bad") == 0
    # the rolled-back batch left no hole in the global positions
    res = await j.append(Batch("g3", 0, events=[("e", b"3")]))
    assert [e.global_pos for e in await j.read_all()] == [1, 2, 3]
    assert res.first_global_pos == 3
    await j.close()


async def test_reads_run_while_the_writer_is_busy(tmp_path: Path, nursery: trio.Nursery) -> None:
    j = await started(tmp_path / "j.db", nursery, readers=2)
    await j.append(Batch("s", 0, events=[("e", b"x")]))
    seen: list[list[StoredEvent]] = []
    async with trio.open_nursery() as n:
        for i in range(50):
            n.start_soon(j.append, Batch(f"w{i}", 0, events=[("e", b"y")]))
        for _ in range(20):
            n.start_soon(lambda: _read_into(j, seen))
    assert all(len(events) == 1 for events in seen)
    assert len(seen) == 20
    await j.close()


async def _read_into(j: SqliteJournal, seen: list[list[StoredEvent]]) -> None:
    seen.append(await j.read("s"))


async def test_in_memory_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SqliteJournal(":memory:")


async def test_run_requires_open(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        await SqliteJournal(tmp_path / "j.db").run()


# --- the bulk path (engine/journal/_sqlite_bulk.py): a group in a few statements ------------


async def _append_as_one_group(j: SqliteJournal, nursery: trio.Nursery,
                               batches: dict[str, Batch]) -> dict[str, AppendResult | Exception]:
    """Queue every batch before the writer starts, so they form ONE group."""
    out: dict[str, AppendResult | Exception] = {}

    async def put(name: str, batch: Batch) -> None:
        try:
            out[name] = await j.append(batch)
        except Exception as exc:  # the outcome is what the test checks
            out[name] = exc

    async with trio.open_nursery() as n:
        for name, batch in batches.items():  # queued one by one: the group keeps this order
            n.start_soon(put, name, batch)
            await trio.testing.wait_all_tasks_blocked()
        await nursery.start(j.run)
    return out


def _op(op_id: str, stream: str) -> OpRecord:
    return OpRecord(op_id=op_id, stream=stream, payload_hash="h", ok=True, result=b"r")


async def test_a_large_group_is_stored_in_order_across_statement_chunks(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    # 700 events and 1,000 ops: more than one multi-row statement (512 rows) each.
    j = SqliteJournal(tmp_path / "j.db")
    await j.open()
    big = Batch("big", 0, events=[("e", str(i).encode()) for i in range(700)],
                ops=[_op(f"op-{i}", "big") for i in range(1000)])
    small = Batch("small", 0, events=[("e", b"s")], ops=[_op("op-small", "small")])
    out = await _append_as_one_group(j, nursery, {"big": big, "small": small})
    assert j.stats()["commits"] == 1
    big_res, small_res = out["big"], out["small"]
    assert isinstance(big_res, AppendResult) and isinstance(small_res, AppendResult)
    assert big_res.version == 700 and small_res.version == 1
    events = await j.read("big")
    assert [e.data for e in events] == [str(i).encode() for i in range(700)]
    assert [e.version for e in events] == list(range(1, 701))
    # positions are contiguous within the batch, and the group's batches share no position
    assert [e.global_pos for e in events] == list(range(big_res.first_global_pos,
                                                         big_res.first_global_pos + 700))
    assert small_res.first_global_pos == 701
    assert [e.global_pos for e in await j.read_all(limit=2000)] == list(range(1, 702))
    assert len(await j.lookup_ops([f"op-{i}" for i in range(1000)])) == 1000
    await j.close()


async def test_a_stored_op_id_fails_only_its_batch_in_a_bulk_group(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    j = await started(tmp_path / "j.db", nursery)
    await j.append(Batch("a", 0, events=[("e", b"1")], ops=[_op("dup", "a")]))
    await j.close()
    j = SqliteJournal(tmp_path / "j.db")
    await j.open()
    batches = {
        "retry": Batch("b", 0, events=[("e", b"x")], ops=[_op("dup", "b")]),
        "fine": Batch("c", 0, events=[("e", b"y")], ops=[_op("new", "c")]),
        "stale": Batch("a", 0, events=[("e", b"z")]),  # a is at version 1
    }
    out = await _append_as_one_group(j, nursery, batches)
    assert isinstance(out["retry"], VersionConflict)
    assert isinstance(out["stale"], VersionConflict)
    assert isinstance(out["fine"], AppendResult)
    assert await j.stream_version("b") == 0
    assert [e.data for e in await j.read("c")] == [b"y"]
    assert (await j.lookup_ops(["dup"]))["dup"].stream == "a"
    await j.close()


async def test_two_appends_to_one_stream_in_a_group_apply_in_order(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    j = SqliteJournal(tmp_path / "j.db")
    await j.open()
    out = await _append_as_one_group(j, nursery, {
        "first": Batch("s", 0, events=[("e", b"1")]),
        "second": Batch("s", 1, events=[("e", b"2")]),
    })
    assert j.stats()["commits"] == 1
    assert isinstance(out["first"], AppendResult) and isinstance(out["second"], AppendResult)
    assert [e.data for e in await j.read("s")] == [b"1", b"2"]
    await j.close()


async def test_timers_in_a_group_end_as_the_last_batch_left_them(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    j = await started(tmp_path / "j.db", nursery)
    await j.append(Batch("t0", 0, timers_set=[Timer("gone", "k", 5.0, b"")]))
    await j.close()
    j = SqliteJournal(tmp_path / "j.db")
    await j.open()
    await _append_as_one_group(j, nursery, {
        # set by one batch and cleared by a later one; cleared then set again; plain clear
        "set": Batch("t1", 0, timers_set=[Timer("x", "k", 1.0, b"a")]),
        "clear": Batch("t2", 0, timers_cleared=[("k", "x"), ("k", "gone")]),
        "clear-set": Batch("t3", 0, timers_cleared=[("k", "y")],
                           timers_set=[Timer("y", "k", 2.0, b"b")]),
    })
    assert [(t.timer_id, t.due_at) for t in await j.due_timers(10.0)] == [("y", 2.0)]
    await j.close()


async def test_a_wide_group_commits_in_a_worker_thread(
    tmp_path: Path, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    # COMMIT_IN_THREAD_MIN_JOBS or more jobs: the COMMIT (WAL write + fsync) runs off the loop;
    # a narrower group commits inline.
    j = SqliteJournal(tmp_path / "j.db")
    await j.open()
    committed_on: list[int] = []
    commit = j._commit_staged

    def spy() -> None:
        committed_on.append(threading.get_ident())
        commit()

    monkeypatch.setattr(j, "_commit_staged", spy)
    n = sqlite_mod.COMMIT_IN_THREAD_MIN_JOBS
    out = await _append_as_one_group(
        j, nursery, {f"s{i}": Batch(f"s{i}", 0, events=[("e", b"1")]) for i in range(n)}
    )
    assert all(isinstance(r, AppendResult) for r in out.values())
    assert len(raw(tmp_path / "j.db", "SELECT * FROM events")) == n  # another connection sees it
    await j.append(Batch("narrow", 0, events=[("e", b"1")]))
    assert committed_on[0] != threading.get_ident()
    assert committed_on[1] == threading.get_ident()
    await j.close()
