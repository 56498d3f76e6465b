"""Per-kind idle timeouts, and what an idle actor keeps alive while it waits."""

from __future__ import annotations

import gc
from typing import Any

import trio

from engine.runtime import Actor, Envelope, Registry


class Counter(Actor):
    """Counts the messages it handled since it was (re)activated."""

    def __init__(self, starts: dict[str, int]) -> None:
        self.starts = starts
        self.seen = 0

    async def on_start(self) -> None:
        self.starts[self.key] = self.starts.get(self.key, 0) + 1

    async def handle_batch(self, batch: list[Envelope]) -> None:
        for env in batch:
            self.seen += 1
            env.respond(self.seen)


async def test_kinds_passivate_after_their_own_idle_timeout(
    start_registry: Any, autojump_clock: Any
) -> None:
    starts: dict[str, int] = {}
    registry: Registry = await start_registry(
        lambda key: Counter(starts), idle_timeout_s=300.0, idle_timeouts={"order": 5.0}
    )
    for key in ("order:1", "order:2", "sku:A", "webhooks:main"):
        assert await registry.ask(key, "hi") == 1
    await trio.sleep(4.5)
    assert sorted(registry.active_keys()) == ["order:1", "order:2", "sku:A", "webhooks:main"]
    await trio.sleep(1.0)
    assert sorted(registry.active_keys()) == ["sku:A", "webhooks:main"]
    assert registry.stats()["passivations"] == 2
    # A message resets the idle clock of that actor only.
    await trio.sleep(200.0)
    assert await registry.ask("sku:A", "again") == 2
    await trio.sleep(150.0)
    assert registry.active_keys() == ["sku:A"]  # webhooks:main idled for 300 s
    # A passivated order comes back on demand as a fresh activation.
    assert await registry.ask("order:1", "back") == 1
    assert starts["order:1"] == 2 and starts["sku:A"] == 1


async def test_changing_a_kinds_timeout_applies_from_the_next_idle_wait(
    start_registry: Any, autojump_clock: Any
) -> None:
    registry: Registry = await start_registry(lambda key: Counter({}), idle_timeout_s=300.0)
    await registry.ask("order:1", "hi")
    registry.idle_timeouts["order"] = 1.0
    await registry.ask("order:1", "hi")  # ends the 300 s wait; the next one is 1 s
    await trio.sleep(1.5)
    assert registry.active_keys() == []


async def test_idle_actors_hold_no_exception_while_waiting(start_registry: Any) -> None:
    # An idle actor waits for its next message; that wait must not sit inside an `except`
    # block, which would keep the exception, its traceback and their frames alive per actor.
    registry: Registry = await start_registry(lambda key: Counter({}))
    for i in range(50):
        assert await registry.ask(f"order:{i}", "hi") == 1
    await trio.testing.wait_all_tasks_blocked()
    assert len(registry.active_keys()) == 50
    gc.collect()
    held = [
        o for o in gc.get_objects()
        if isinstance(o, trio.WouldBlock) and _raised_in_registry(o)
    ]
    assert held == []


def _raised_in_registry(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith("_registry.py"):
            return True
        tb = tb.tb_next
    return False
