"""The flusher (engine/gateway/_flush.py): one task writes every lean connection's output.

Replies jump the queue, deltas to a connection written moments ago wait for
MIN_DELTA_INTERVAL_S (and conflate meanwhile), and a long pass over many connections is cut
into short slices so other tasks (commands) run in between."""

from __future__ import annotations

import time

import trio
import trio.testing

from engine.gateway._flush import MIN_DELTA_INTERVAL_S, SLICE_S, Flusher


class FakeConn:
    def __init__(self, name: str, log: list[tuple[str, float]], cost_s: float = 0.0) -> None:
        self.name = name
        self.queued = 0
        self.log = log
        self.cost_s = cost_s

    def flush_now(self) -> None:
        self.queued = 0
        end = time.perf_counter() + self.cost_s
        while time.perf_counter() < end:  # stands for the socket write's CPU time
            pass
        self.log.append((self.name, time.monotonic()))


async def test_replies_first_then_deltas_in_arrival_order(nursery: trio.Nursery) -> None:
    flusher = Flusher()
    await nursery.start(flusher.run)
    log: list[tuple[str, float]] = []
    a, b, c = (FakeConn(n, log) for n in "abc")
    a.queued = b.queued = 1
    flusher.mark(a, False)
    flusher.mark(b, False)
    c.queued = 2
    flusher.mark(c, True)
    await trio.testing.wait_all_tasks_blocked()
    assert [n for n, _ in log] == ["c", "a", "b"]


async def test_deferred_deltas_wait_for_their_time(nursery: trio.Nursery) -> None:
    flusher = Flusher()
    await nursery.start(flusher.run)
    log: list[tuple[str, float]] = []
    slow = FakeConn("deferred", log)
    slow.queued = 1
    due = time.monotonic() + MIN_DELTA_INTERVAL_S
    flusher.defer(slow, due)
    reply = FakeConn("reply", log)
    reply.queued = 2
    flusher.mark(reply, True)  # a reply meanwhile is not held back
    with trio.fail_after(2):
        while len(log) < 2:
            await trio.sleep(0.005)
    assert [n for n, _ in log] == ["reply", "deferred"]
    assert log[1][1] >= due
    # An entry whose connection was written since (no longer queued) is skipped.
    gone = FakeConn("gone", log)
    flusher.defer(gone, time.monotonic())
    await trio.sleep(0.05)
    assert [n for n, _ in log] == ["reply", "deferred"]


async def test_a_long_pass_yields_between_slices(nursery: trio.Nursery) -> None:
    flusher = Flusher()
    await nursery.start(flusher.run)
    log: list[tuple[str, float]] = []
    conns = [FakeConn(str(i), log, cost_s=SLICE_S / 4) for i in range(80)]  # ~20 slices
    turns = 0

    async def other_work() -> None:
        nonlocal turns
        while len(log) < len(conns):
            turns += 1
            await trio.lowlevel.checkpoint()

    for conn in conns:
        conn.queued = 1
        flusher.mark(conn, False)
    with trio.fail_after(5):
        await other_work()
    assert len(log) == len(conns)
    assert turns >= 10  # another task ran between the flusher's slices
    assert flusher.slices >= 10


async def test_fan_out_runs_in_the_flusher_not_in_the_publisher(nursery: trio.Nursery) -> None:
    from engine.bus import LocalBus, Outbox

    flusher = Flusher()
    bus = LocalBus()
    bus.fanout = flusher.fan_out
    boxes = [Outbox() for _ in range(300)]
    for box in boxes:
        bus.subscribe("stock:S", box)
    # Before the flusher runs, publishing does the offers itself (offline tools).
    bus.publish("stock:S", {"x": 1})
    assert all(len(b) == 1 for b in boxes)
    for b in boxes:
        b.drain()
    await nursery.start(flusher.run)
    bus.publish("stock:S", {"x": 2})
    assert all(len(b) == 0 for b in boxes)  # the publisher paid O(1)
    bus.unsubscribe("stock:S", boxes[0])  # gone before its turn: skipped
    await trio.testing.wait_all_tasks_blocked()
    assert len(boxes[0]) == 0
    assert all(len(b) == 1 for b in boxes[1:])
    assert flusher.offers == 300 and not flusher.fanouts


async def test_deltas_wait_only_while_the_flusher_is_busy(nursery: trio.Nursery) -> None:
    from engine.gateway._flush import WINDOW_S

    flusher = Flusher()
    await nursery.start(flusher.run)
    log: list[tuple[str, float]] = []
    assert flusher.defer_s == 0.0
    busy = [FakeConn(str(i), log, cost_s=0.002) for i in range(150)]  # ~0.3 s of writing
    for conn in busy:
        conn.queued = 1
        flusher.mark(conn, False)
    with trio.fail_after(5):
        while len(log) < 100:
            await trio.sleep(0)
    assert flusher.defer_s == MIN_DELTA_INTERVAL_S  # loaded: deltas conflate a little
    with trio.fail_after(5):
        while len(log) < len(busy):
            await trio.sleep(0.01)
    await trio.sleep(WINDOW_S * 1.5)  # idle
    quick = FakeConn("quick", log)
    quick.queued = 1
    flusher.mark(quick, False)
    await trio.sleep(0.01)
    assert flusher.defer_s == 0.0  # not busy any more: nothing waits
