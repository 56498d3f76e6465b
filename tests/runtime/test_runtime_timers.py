"""TimerService: due timers reach their actors, are redelivered until cleared, wake early.

Timing tests use the in-process `MemoryJournal` (same semantics as SQLite, no threads, so
trio's MockClock can jump time); the restart test uses a real `SqliteJournal` file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
import trio.testing

from engine.journal import Batch, MemoryJournal, SqliteJournal, Timer
from engine.journal.base import Journal
from engine.runtime import Actor, Envelope, Registry, TimerFired, TimerService

EPOCH = 1_700_000_000.0


def fake_wall_clock() -> float:
    """Wall-clock time that moves with trio's (mock) clock."""
    return EPOCH + trio.current_time()


class Alarm(Actor):
    """Records TimerFired; clears the timer in its own append when `should_clear` says so."""

    def __init__(
        self,
        journal: Journal,
        fired: list[tuple[str, str, float]],
        should_clear: Callable[[TimerFired], bool],
        clock: Callable[[], float],
        gate: trio.Event | None = None,
    ) -> None:
        self.journal = journal
        self.fired = fired
        self.should_clear = should_clear
        self.clock = clock
        self.gate = gate

    async def handle_batch(self, batch: list[Envelope]) -> None:
        for env in batch:
            msg = env.msg
            if msg == "hold" and self.gate is not None:
                await self.gate.wait()
            if not isinstance(msg, TimerFired):
                continue
            self.fired.append((self.key, msg.timer_id, self.clock()))
            if self.should_clear(msg):
                version = await self.journal.stream_version(self.key)
                await self.journal.append(
                    Batch(
                        stream=self.key,
                        expected_version=version,
                        events=[("TimerHandled", msg.payload)],
                        timers_cleared=[(self.key, msg.timer_id)],
                    )
                )


async def set_timer(journal: Journal, key: str, timer_id: str, due_at: float) -> None:
    stream = f"setup-{key}-{timer_id}-{due_at}"
    timer = Timer(timer_id=timer_id, actor_key=key, due_at=due_at, payload=b"p")
    await journal.append(Batch(stream=stream, expected_version=0, timers_set=[timer]))


async def start_all(
    nursery: trio.Nursery,
    journal: Journal,
    fired: list[tuple[str, str, float]],
    should_clear: Callable[[TimerFired], bool],
    *,
    clock: Callable[[], float] = fake_wall_clock,
    redeliver_after_s: float = 30.0,
    gate: trio.Event | None = None,
    mailbox_size: int = 1024,
) -> tuple[Registry, TimerService]:
    registry = Registry(
        lambda key: Alarm(journal, fired, should_clear, clock, gate), mailbox_size=mailbox_size
    )
    await nursery.start(registry.run)
    service = TimerService(journal, registry, redeliver_after_s=redeliver_after_s, clock=clock)
    await nursery.start(service.run)
    return registry, service


async def memory_journal(nursery: trio.Nursery) -> MemoryJournal:
    journal = MemoryJournal()
    await journal.open()
    await nursery.start(journal.run)
    return journal


async def test_timer_delivered_at_its_time_then_cleared(
    nursery: trio.Nursery, autojump_clock: Any
) -> None:
    journal = await memory_journal(nursery)
    now = fake_wall_clock()
    await set_timer(journal, "hold-1", "expire", now + 10)
    await set_timer(journal, "hold-2", "expire", now + 25)
    fired: list[tuple[str, str, float]] = []
    await start_all(nursery, journal, fired, lambda msg: True)
    await trio.sleep(200)
    assert [(k, t) for k, t, _ in fired] == [("hold-1", "expire"), ("hold-2", "expire")]
    assert [at - now for _, _, at in fired] == [10, 25]
    assert await journal.next_timer_due() is None  # the actors cleared them


async def test_uncleared_timer_is_redelivered(nursery: trio.Nursery, autojump_clock: Any) -> None:
    journal = await memory_journal(nursery)
    now = fake_wall_clock()
    await set_timer(journal, "order-9", "remind", now + 1)
    fired: list[tuple[str, str, float]] = []
    # The actor "crashes before its append" three times, then clears the timer.
    await start_all(nursery, journal, fired, lambda msg: len(fired) >= 4, redeliver_after_s=5.0)
    await trio.sleep(100)
    assert [at - now for _, _, at in fired] == [1, 6, 11, 16]
    assert await journal.next_timer_due() is None


async def test_notify_wakes_the_service_early(nursery: trio.Nursery, autojump_clock: Any) -> None:
    journal = await memory_journal(nursery)
    fired: list[tuple[str, str, float]] = []
    _, service = await start_all(nursery, journal, fired, lambda msg: True)
    await set_timer(journal, "far", "t", fake_wall_clock() + 500)
    service.notify(fake_wall_clock() + 500)
    await trio.sleep(5)  # now sleeping until the far timer (capped)
    now = fake_wall_clock()
    await set_timer(journal, "near", "t", now + 3)
    service.notify(now + 3)  # earlier than the planned wake-up: wake and re-plan
    await trio.sleep(10)
    assert [(k, at - now) for k, _, at in fired] == [("near", 3)]


async def test_timer_waits_for_mailbox_room(nursery: trio.Nursery, autojump_clock: Any) -> None:
    journal = await memory_journal(nursery)
    gate = trio.Event()
    fired: list[tuple[str, str, float]] = []
    registry, service = await start_all(
        nursery, journal, fired, lambda msg: True, mailbox_size=1, gate=gate
    )
    ref = registry.ref("busy")
    await ref.tell("hold")
    await trio.testing.wait_all_tasks_blocked()
    await ref.tell("filler")  # mailbox now full
    now = fake_wall_clock()
    await set_timer(journal, "busy", "t", now + 1)
    service.notify(now + 1)
    await trio.sleep(5)
    assert fired == []  # could not be delivered: retried, not lost
    gate.set()
    await trio.sleep(5)
    assert [(k, t) for k, t, _ in fired] == [("busy", "t")]


async def test_timer_from_previous_run_fires_after_restart(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    path = tmp_path / "journal.db"
    first = SqliteJournal(path)
    await first.open()
    async with trio.open_nursery() as run1:
        await run1.start(first.run)
        await set_timer(first, "hold-7", "expire", time.time() - 1)
        await first.close()

    # "Process restart": a new journal on the same file, a new registry and timer service.
    journal = SqliteJournal(path)
    await journal.open()
    await nursery.start(journal.run)
    fired: list[tuple[str, str, float]] = []
    delivered = trio.Event()

    def clear_and_signal(msg: TimerFired) -> bool:
        delivered.set()
        return True

    await start_all(nursery, journal, fired, clear_and_signal, clock=time.time)
    with trio.fail_after(10):
        await delivered.wait()
    assert [(k, t) for k, t, _ in fired] == [("hold-7", "expire")]
    with trio.fail_after(10):
        while await journal.next_timer_due() is not None:  # cleared by the actor's append
            await trio.sleep(0.01)
    await journal.close()
