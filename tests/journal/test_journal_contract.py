"""The Journal contract. Every test runs against every store in conftest.BACKENDS."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing
from journal_backends import BACKENDS, Backend

from engine.journal import (
    AppendResult,
    Batch,
    Journal,
    JournalClosed,
    OpRecord,
    Snapshot,
    StoredEvent,
    Timer,
    VersionConflict,
    streams_with_prefix,
)


def evs(*names: str) -> list[tuple[str, bytes]]:
    return [(name, name.encode()) for name in names]


def op(op_id: str, stream: str = "s", ok: bool = True) -> OpRecord:
    return OpRecord(op_id=op_id, stream=stream, payload_hash="h-" + op_id, ok=ok, result=b"\x81")


async def append_or_conflict(j: Journal, batch: Batch) -> AppendResult | VersionConflict:
    try:
        return await j.append(batch)
    except VersionConflict as exc:
        return exc


# --- append / read ------------------------------------------------------------------------------


async def test_append_read_round_trip(journal: Journal) -> None:
    res = await journal.append(Batch("order:1", 0, events=evs("Created", "Paid", "Shipped")))
    assert (res.stream, res.version, res.first_global_pos) == ("order:1", 3, 1)
    assert res.ts > 0

    got = await journal.read("order:1")
    assert got == [
        StoredEvent("order:1", 1, "Created", b"Created", res.ts, 1),
        StoredEvent("order:1", 2, "Paid", b"Paid", res.ts, 2),
        StoredEvent("order:1", 3, "Shipped", b"Shipped", res.ts, 3),
    ]
    assert [e.version for e in await journal.read("order:1", from_version=2)] == [2, 3]
    assert [e.version for e in await journal.read("order:1", from_version=2, limit=1)] == [2]
    assert await journal.read("order:1", from_version=4) == []
    assert await journal.read("nope") == []


async def test_versions_advance_per_stream(journal: Journal) -> None:
    assert await journal.stream_version("a") == 0
    await journal.append(Batch("a", 0, events=evs("x", "y")))
    await journal.append(Batch("b", 0, events=evs("x")))
    res = await journal.append(Batch("a", 2, events=evs("z")))
    assert res.version == 3
    assert res.first_global_pos == 4
    assert await journal.stream_version("a") == 3
    assert await journal.stream_version("b") == 1


async def test_stale_expected_version_conflicts_and_writes_nothing(journal: Journal) -> None:
    await journal.append(Batch("s", 0, events=evs("a", "b")))
    with pytest.raises(VersionConflict) as info:
        await journal.append(Batch("s", 1, events=evs("c"), ops=[op("o1")]))
    assert (info.value.stream, info.value.expected, info.value.actual) == ("s", 1, 2)
    with pytest.raises(VersionConflict):
        await journal.append(Batch("s", 5, events=evs("c")))  # ahead is as wrong as behind
    assert await journal.stream_version("s") == 2
    assert await journal.lookup_ops(["o1"]) == {}


async def test_batch_without_events_checks_version_and_applies_the_rest(journal: Journal) -> None:
    res = await journal.append(Batch("e", 0, ops=[op("only-op", "e")]))
    assert (res.version, res.first_global_pos) == (0, 0)
    assert await journal.stream_version("e") == 0
    assert "only-op" in await journal.lookup_ops(["only-op"])
    with pytest.raises(VersionConflict):
        await journal.append(Batch("e", 3, ops=[op("other-op", "e")]))
    assert await journal.lookup_ops(["other-op"]) == {}


# --- one group, several outcomes ----------------------------------------------------------------


async def test_conflicting_batches_fail_alone_in_their_group(
    backend: Backend, nursery: trio.Nursery
) -> None:
    seed = await backend.start(nursery)
    await seed.append(Batch("s", 0, events=evs("seed"), ops=[op("seeded-op")]))
    await seed.close()

    # Queue everything before the writer runs, so it all lands in ONE group.
    j = backend.make()
    await j.open()
    batches = {
        "s-a": Batch("s", 1, events=evs("a")),
        "s-b": Batch("s", 1, events=evs("b")),  # same expected version: one of s-a/s-b loses
        "t-stale": Batch("t", 5, events=evs("t")),
        "u-ok": Batch("u", 0, events=evs("u"), ops=[op("u-op", "u")]),
        "v-dup-op": Batch("v", 0, events=evs("v"), ops=[op("seeded-op", "v")]),
        "w-fresh": Batch("w", 0, events=evs("w"), ops=[op("fresh", "w")]),
        "x-fresh": Batch("x", 0, events=evs("x"), ops=[op("fresh", "x")]),  # one of w/x loses
    }
    out: dict[str, AppendResult | VersionConflict] = {}

    async def put(name: str) -> None:
        out[name] = await append_or_conflict(j, batches[name])

    async with trio.open_nursery() as n:
        for name in batches:
            n.start_soon(put, name)
        await trio.testing.wait_all_tasks_blocked()
        await nursery.start(j.run)

    stats = j.stats()
    assert (stats["commits"], stats["batches"]) == (1, len(batches))
    assert stats["conflicts"] == 4
    assert isinstance(out["u-ok"], AppendResult)
    assert isinstance(out["t-stale"], VersionConflict)
    assert isinstance(out["v-dup-op"], VersionConflict)
    s_ok = [k for k in ("s-a", "s-b") if isinstance(out[k], AppendResult)]
    fresh_ok = [k for k in ("w-fresh", "x-fresh") if isinstance(out[k], AppendResult)]
    assert len(s_ok) == 1
    assert len(fresh_ok) == 1

    assert await j.stream_version("s") == 2
    assert [e.type for e in await j.read("s")] == ["seed", s_ok[0][-1]]
    assert await j.stream_version("t") == 0
    assert await j.stream_version("v") == 0
    assert await j.stream_version("u") == 1
    winner = fresh_ok[0][0]
    assert (await j.lookup_ops(["fresh"]))["fresh"].stream == winner
    # the committed events of the group are numbered without gaps
    assert [e.global_pos for e in await j.read_all()] == [1, 2, 3, 4]
    await j.close()


# --- op records ---------------------------------------------------------------------------------


async def test_op_records_stored_and_looked_up(journal: Journal) -> None:
    good, bad = op("op-1", "s"), op("op-2", "s", ok=False)
    await journal.append(Batch("s", 0, events=evs("a"), ops=[good, bad]))
    assert await journal.lookup_ops(["op-1", "op-2", "unknown"]) == {"op-1": good, "op-2": bad}
    assert await journal.lookup_ops([]) == {}
    many = [f"m{i}" for i in range(1200)]  # more ids than one IN (...) query takes
    await journal.append(Batch("m", 0, ops=[op(i, "m") for i in many]))
    found = await journal.lookup_ops([*many, "op-1"])
    assert len(found) == 1201


async def test_duplicate_op_id_rejected(journal: Journal) -> None:
    await journal.append(Batch("s", 0, events=evs("a"), ops=[op("dup")]))
    with pytest.raises(VersionConflict):
        await journal.append(Batch("other", 0, events=evs("b"), ops=[op("dup", "other")]))
    assert await journal.stream_version("other") == 0
    assert (await journal.lookup_ops(["dup"]))["dup"].stream == "s"
    with pytest.raises(VersionConflict):  # the same op_id twice inside one batch
        await journal.append(Batch("twice", 0, events=evs("c"), ops=[op("t"), op("t")]))
    assert await journal.stream_version("twice") == 0
    assert await journal.lookup_ops(["t"]) == {}


# --- timers -------------------------------------------------------------------------------------


async def test_timers_set_replace_clear_and_due_order(journal: Journal) -> None:
    assert await journal.next_timer_due() is None
    assert await journal.due_timers(1e12) == []
    t1 = Timer("expire", "hold:1", 30.0, b"p1")
    t2 = Timer("remind", "hold:1", 10.0, b"p2")
    t3 = Timer("expire", "hold:2", 20.0, b"p3")
    await journal.append(Batch("hold:1", 0, events=evs("Placed"), timers_set=[t1, t2, t3]))

    assert await journal.next_timer_due() == 10.0
    assert await journal.due_timers(25.0) == [t2, t3]
    assert await journal.due_timers(100.0) == [t2, t3, t1]
    assert await journal.due_timers(100.0, limit=2) == [t2, t3]
    assert await journal.due_timers(5.0) == []

    t2b = Timer("remind", "hold:1", 40.0, b"p2b")  # same (actor_key, timer_id): replaces
    await journal.append(Batch("hold:1", 1, timers_set=[t2b]))
    assert await journal.due_timers(100.0) == [t3, t1, t2b]
    assert await journal.next_timer_due() == 20.0

    await journal.append(
        Batch("hold:2", 0, timers_cleared=[("hold:2", "expire"), ("hold:2", "missing")])
    )
    assert await journal.due_timers(100.0) == [t1, t2b]

    # clears are applied before sets: clearing and setting one timer in a batch leaves it set
    t1b = Timer("expire", "hold:1", 50.0, b"p1b")
    await journal.append(
        Batch("hold:1", 1, timers_cleared=[("hold:1", "expire")], timers_set=[t1b])
    )
    assert await journal.due_timers(100.0) == [t2b, t1b]

    await journal.append(
        Batch("hold:1", 1, timers_cleared=[("hold:1", "expire"), ("hold:1", "remind")])
    )
    assert await journal.next_timer_due() is None
    assert await journal.due_timers(1e12) == []


async def test_timer_changes_of_a_conflicting_batch_are_not_applied(journal: Journal) -> None:
    await journal.append(Batch("a", 0, events=evs("x")))
    with pytest.raises(VersionConflict):
        await journal.append(Batch("a", 0, timers_set=[Timer("t", "a", 1.0, b"")]))
    assert await journal.next_timer_due() is None


# --- snapshots ----------------------------------------------------------------------------------


async def test_snapshots_save_load_and_never_go_back(journal: Journal) -> None:
    assert await journal.load_snapshot("sku:1") is None
    await journal.save_snapshot(Snapshot("sku:1", 5, b"five"))
    assert await journal.load_snapshot("sku:1") == Snapshot("sku:1", 5, b"five")
    await journal.save_snapshot(Snapshot("sku:1", 9, b"nine"))
    assert await journal.load_snapshot("sku:1") == Snapshot("sku:1", 9, b"nine")
    await journal.save_snapshot(Snapshot("sku:1", 7, b"seven"))  # older: ignored
    assert await journal.load_snapshot("sku:1") == Snapshot("sku:1", 9, b"nine")
    assert await journal.load_snapshot("sku:2") is None
    assert journal.stats()["snapshots"] == 3


# --- the global order ---------------------------------------------------------------------------


async def test_read_all_is_commit_order_with_contiguous_positions(journal: Journal) -> None:
    await journal.append(Batch("a", 0, events=evs("a1", "a2")))
    await journal.append(Batch("b", 0, events=evs("b1")))
    await journal.append(Batch("a", 2, events=evs("a3")))
    with pytest.raises(VersionConflict):
        await journal.append(Batch("b", 0, events=evs("lost")))
    await journal.append(Batch("c", 0, events=evs("c1", "c2", "c3")))

    every = await journal.read_all()
    assert [(e.global_pos, e.type) for e in every] == [
        (1, "a1"), (2, "a2"), (3, "b1"), (4, "a3"), (5, "c1"), (6, "c2"), (7, "c3"),
    ]
    assert [e.global_pos for e in await journal.read_all(3, limit=2)] == [3, 4]
    assert await journal.read_all(8) == []
    # read_all and read agree on every event
    for stream in ("a", "b", "c"):
        assert await journal.read(stream) == [e for e in every if e.stream == stream]


async def test_list_streams_by_prefix(journal: Journal) -> None:
    names = ["loc:2", "loc:10", "loc:1", "sku:1", "lob", "loc", "loc:\U0010ffff", "loc;"]
    for name in names:
        await journal.append(Batch(name, 0, events=evs("e")))
    await journal.append(Batch("only-ops", 0, ops=[op("o")]))  # no events: not a stream
    assert await journal.list_streams("loc:") == ["loc:1", "loc:10", "loc:2", "loc:\U0010ffff"]
    assert await journal.list_streams("lo") == ["lob", "loc", "loc:1", "loc:10", "loc:2",
                                               "loc:\U0010ffff", "loc;"]
    assert await journal.list_streams("") == sorted(names)
    assert await journal.list_streams("zzz") == []


async def test_read_prefix_pages_through_streams_in_order(journal: Journal) -> None:
    names = ["loc:2", "loc:10", "loc:1", "sku:1", "lob", "loc", "loc:\U0010ffff", "loc;"]
    for i, name in enumerate(names):
        await journal.append(Batch(name, 0, events=evs(*[f"{name}-{k}" for k in range(i % 3 + 1)])))
    v = await journal.stream_version("loc:1")
    await journal.append(Batch("loc:1", v, events=evs("late")))  # appended after the others
    want = [(e.stream, e.version) for n in sorted(names) if n.startswith("loc:")
            for e in await journal.read(n)]
    got = await journal.read_prefix("loc:", limit=100)
    assert [(e.stream, e.version) for e in got] == want
    assert got[0].data and got[0].type  # whole events, not just positions
    # Paging: resume after the last row of the previous page; pages of 2 give the same rows.
    paged: list[tuple[str, int]] = []
    after = ("", 0)
    while page := await journal.read_prefix("loc:", after, 2):
        paged += [(e.stream, e.version) for e in page]
        after = (page[-1].stream, page[-1].version)
    assert paged == want
    assert await journal.read_prefix("zzz") == []
    # The helper yields each stream once, whole, even across page boundaries.
    whole = [(s, [e.version for e in evs_]) async for s, evs_ in streams_with_prefix(journal, "loc:", 3)]
    assert whole == [(n, [e.version for e in await journal.read(n)])
                     for n in sorted(names) if n.startswith("loc:")]


async def test_read_streams_reads_many_named_streams_at_once(journal: Journal) -> None:
    names = [f"order:{i}" for i in range(1200)]  # more than one SQL statement's worth
    for i, name in enumerate(names):
        await journal.append(Batch(name, 0, events=evs(*[f"{i}-{k}" for k in range(i % 3 + 1)])))
    await journal.append(Batch("order:7", 2, events=evs("late")))
    wanted = [*names[::2], "order:missing", "order:7", names[0]]  # unknown names, repeats
    got = await journal.read_streams(wanted)
    want = [(e.stream, e.version, e.data) for n in sorted(set(wanted)) for e in await journal.read(n)]
    assert [(e.stream, e.version, e.data) for e in got] == want
    assert got[0].type and got[0].global_pos
    assert await journal.read_streams([]) == []


async def test_list_timers_by_actor_key_prefix(journal: Journal) -> None:
    far = 253402300799.0  # a parked timer (year 9999): listed, never due
    keys = ["order:b", "order:a", "sku:1", "order", "order;", "order:\U0010ffff"]
    for i, key in enumerate(keys):
        await journal.append(Batch(key, 0, events=evs("e"),
                                   timers_set=[Timer("saga", key, far if i % 2 else 5.0, b"p")]))
    await journal.append(Batch("order:a", 1, timers_set=[Timer("extra", "order:a", 7.0, b"x")]))
    got = await journal.list_timers("order:")
    assert [(t.actor_key, t.timer_id) for t in got] == [
        ("order:a", "extra"), ("order:a", "saga"), ("order:b", "saga"), ("order:\U0010ffff", "saga")
    ]
    assert got[1].due_at == far and got[0].payload == b"x"
    await journal.append(Batch("order:b", 1, timers_cleared=[("order:b", "saga")]))
    assert [t.actor_key for t in await journal.list_timers("order:")] == [
        "order:a", "order:a", "order:\U0010ffff"
    ]
    assert await journal.list_timers("zzz") == []
    assert len(await journal.list_timers("")) == 6
    # Parked timers are listed but never due before their time.
    assert {t.actor_key for t in await journal.due_timers(until=1e9)} == {
        "order:a", "sku:1", "order;"
    }


# --- concurrency and grouping -------------------------------------------------------------------


async def test_200_concurrent_appenders_on_one_stream(journal: Journal) -> None:
    tasks = 200

    async def appender(i: int) -> None:
        expected = await journal.stream_version("hot")
        while True:
            try:
                await journal.append(Batch("hot", expected, events=[("Inc", str(i).encode())]))
                return
            except VersionConflict as exc:
                expected = exc.actual

    async with trio.open_nursery() as n:
        for i in range(tasks):
            n.start_soon(appender, i)

    assert await journal.stream_version("hot") == tasks
    events = await journal.read("hot")
    assert [e.version for e in events] == list(range(1, tasks + 1))
    assert sorted(int(e.data) for e in events) == list(range(tasks))
    assert [e.global_pos for e in await journal.read_all()] == list(range(1, tasks + 1))
    stats = journal.stats()
    assert stats["batches"] - stats["conflicts"] == tasks
    assert stats["events"] == tasks


async def test_group_commit_groups_concurrent_appends(journal: Journal) -> None:
    async with trio.open_nursery() as n:
        for i in range(100):
            n.start_soon(journal.append, Batch(f"s{i}", 0, events=evs("e")))
    stats = journal.stats()
    assert stats["batches"] == 100
    assert stats["events"] == 100
    assert stats["commits"] < stats["batches"]
    assert stats["avg_group_size"] > 1
    buckets = stats["commit_ms_buckets"]
    assert buckets[-1] == (float("inf"), stats["commits"])  # cumulative
    assert [c for _, c in buckets] == sorted(c for _, c in buckets)


async def test_max_group_bounds_a_group(backend: Backend, nursery: trio.Nursery) -> None:
    j = backend.make(max_group=4)
    await j.open()
    async with trio.open_nursery() as n:
        for i in range(10):
            n.start_soon(j.append, Batch(f"s{i}", 0, events=evs("e")))
        await trio.testing.wait_all_tasks_blocked()
        await nursery.start(j.run)
    stats = j.stats()
    assert stats["max_group_size"] <= 4
    assert stats["commits"] >= 3
    assert len(await j.list_streams("s")) == 10
    await j.close()


# --- cancellation and closing -------------------------------------------------------------------


async def test_cancelled_caller_leaves_the_journal_consistent(
    backend: Backend, nursery: trio.Nursery
) -> None:
    j = backend.make()
    await j.open()
    async with trio.open_nursery() as n:
        n.start_soon(j.append, Batch("c", 0, events=evs("maybe")))
        await trio.testing.wait_all_tasks_blocked()
        n.cancel_scope.cancel()  # the caller gives up while its batch is queued
    await nursery.start(j.run)
    await j.append(Batch("d", 0, events=evs("after")))  # queued later, so committed later

    version = await j.stream_version("c")
    assert version in (0, 1)  # a cancelled caller's batch may or may not have committed
    assert len(await j.read("c")) == version
    await j.append(Batch("c", version, events=evs("next")))
    assert await j.stream_version("c") == version + 1
    await j.close()


async def test_close_commits_what_is_queued(journal: Journal) -> None:
    results: list[AppendResult] = []

    async def put(i: int) -> None:
        results.append(await journal.append(Batch(f"q{i}", 0, events=evs("e"))))

    async with trio.open_nursery() as n:
        for i in range(50):
            n.start_soon(put, i)
        await trio.testing.wait_all_tasks_blocked()
        await journal.close()
    assert len(results) == 50
    with pytest.raises(JournalClosed):
        await journal.append(Batch("late", 0, events=evs("e")))
    await journal.close()  # idempotent


async def test_close_before_run_fails_queued_appends(backend: Backend) -> None:
    j = backend.make()
    await j.open()
    failures: list[BaseException] = []

    async def put() -> None:
        try:
            await j.append(Batch("never", 0, events=evs("e")))
        except JournalClosed as exc:
            failures.append(exc)

    async with trio.open_nursery() as n:
        n.start_soon(put)
        await trio.testing.wait_all_tasks_blocked()
        await j.close()
    assert len(failures) == 1


# --- durability and identity --------------------------------------------------------------------


async def test_close_and_reopen_keeps_everything(backend: Backend, nursery: trio.Nursery) -> None:
    j = await backend.start(nursery)
    epoch = j.epoch
    timer = Timer("expire", "hold:9", 123.5, b"payload")
    first = await j.append(
        Batch("hold:9", 0, events=evs("Placed", "Extended"), ops=[op("op-9", "hold:9")],
              timers_set=[timer])
    )
    await j.append(Batch("sku:1", 0, events=evs("Received")))
    await j.save_snapshot(Snapshot("hold:9", 2, b"state"))
    before = await j.read_all()
    await j.close()

    j2 = await backend.start(nursery)
    assert j2.epoch == epoch
    assert await j2.read_all() == before
    assert await j2.stream_version("hold:9") == 2
    assert [e.ts for e in await j2.read("hold:9")] == [first.ts, first.ts]
    assert await j2.lookup_ops(["op-9"]) == {"op-9": op("op-9", "hold:9")}
    assert await j2.due_timers(1000.0) == [timer]
    assert await j2.load_snapshot("hold:9") == Snapshot("hold:9", 2, b"state")
    assert await j2.list_streams("") == ["hold:9", "sku:1"]
    with pytest.raises(VersionConflict):
        await j2.append(Batch("hold:9", 0, events=evs("stale")))
    res = await j2.append(Batch("hold:9", 2, events=evs("Fulfilled")))
    assert (res.version, res.first_global_pos) == (3, 4)
    await j2.close()


async def test_epoch_identifies_the_store(
    backend: Backend, nursery: trio.Nursery, tmp_path: Path
) -> None:
    j = await backend.start(nursery)
    assert isinstance(j.epoch, str)
    assert len(j.epoch) >= 16
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = await BACKENDS[backend.name](other_dir).start(nursery)
    assert other.epoch != j.epoch
    await other.close()
    await j.close()


async def test_appends_after_the_writer_stopped_raise_journal_closed(backend: Backend) -> None:
    j = backend.make()
    await j.open()
    async with trio.open_nursery() as n:
        await n.start(j.run)
        await j.append(Batch("s", 0, events=evs("e")))
        n.cancel_scope.cancel()  # the owner's nursery shuts down
    with pytest.raises(JournalClosed):
        await j.append(Batch("s", 1, events=evs("e")))
    await j.close()
