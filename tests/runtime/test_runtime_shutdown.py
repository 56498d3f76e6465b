"""Registry shutdown: drain mailboxes, on_stop, cancel stragglers at the deadline."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from engine.runtime import Actor, ActorStopped, Envelope, Registry


class Slow(Actor):
    def __init__(self, done: list[tuple[str, Any]], stopped: list[str]) -> None:
        self.done = done
        self.stopped = stopped

    async def handle_batch(self, batch: list[Envelope]) -> None:
        for env in batch:
            if env.msg == "hang":
                await trio.sleep_forever()
            await trio.sleep(0.01)
            self.done.append((self.key, env.msg))
            env.respond(env.msg)

    async def on_stop(self) -> None:
        self.stopped.append(self.key)


async def test_aclose_drains_mailboxes_then_stops(start_registry: Any, autojump_clock: Any) -> None:
    done: list[tuple[str, Any]] = []
    stopped: list[str] = []
    registry = await start_registry(lambda key: Slow(done, stopped))
    for key in ("a", "b", "c"):
        for i in range(20):
            await registry.tell(key, i)
    assert sum(registry.mailbox_depths().values()) > 0
    await registry.aclose(deadline_s=5.0)
    assert len(done) == 60  # everything queued before aclose was handled
    assert sorted(stopped) == ["a", "b", "c"]
    assert registry.active_keys() == []
    assert registry.stats()["active"] == 0


async def test_straggler_is_cancelled_at_deadline(start_registry: Any, autojump_clock: Any) -> None:
    done: list[tuple[str, Any]] = []
    stopped: list[str] = []
    registry = await start_registry(lambda key: Slow(done, stopped))
    ref = registry.ref("stuck")
    await ref.tell("hang")
    await registry.tell("fine", 1)
    await trio.testing.wait_all_tasks_blocked()
    outcome: list[BaseException] = []

    async def queued_ask() -> None:
        try:
            await ref.ask("behind", timeout=30)
        except ActorStopped as exc:
            outcome.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(queued_ask)
        await trio.testing.wait_all_tasks_blocked()
        t0 = trio.current_time()
        await registry.aclose(deadline_s=2.0)
        assert trio.current_time() - t0 == pytest.approx(2.0)
    assert len(outcome) == 1  # the ask queued behind the stuck message was failed, not left
    assert stopped == ["fine"]  # the cancelled actor got no on_stop
    with pytest.raises(ActorStopped):
        await registry.ask("fine", 2)


async def test_aclose_twice_and_before_run() -> None:
    registry = Registry(lambda key: Slow([], []))
    await registry.aclose()
    await registry.aclose()
    with pytest.raises(ActorStopped):
        registry.ref("x")


async def test_cancelling_run_fails_pending_asks(autojump_clock: Any) -> None:
    registry = Registry(lambda key: Slow([], []))
    errors: list[BaseException] = []

    async def asker() -> None:
        try:
            await registry.ask("k", "hang")
        except ActorStopped as exc:
            errors.append(exc)

    async with trio.open_nursery() as outer:
        async with trio.open_nursery() as inner:
            await inner.start(registry.run)
            outer.start_soon(asker)
            await trio.testing.wait_all_tasks_blocked()
            inner.cancel_scope.cancel()
    assert len(errors) == 1
