"""Crash -> restart -> state rebuilt; intensity per key; backoff with jitter."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
import trio
import trio.testing

from engine.runtime import Actor, ActorCrashed, Envelope
from engine.runtime._supervisor import _backoff_delay


class World:
    """What survives a crash: `log` stands in for the journal the actor rebuilds from."""

    def __init__(self) -> None:
        self.log: list[int] = []
        self.instances = 0
        self.start_times: list[float] = []
        self.start_failures = 0  # how many of the next on_start calls fail
        self.gate = trio.Event()


class Ledger(Actor):
    def __init__(self, world: World) -> None:
        self.world = world
        self.total = 0
        world.instances += 1

    async def on_start(self) -> None:
        self.world.start_times.append(trio.current_time())
        if self.world.start_failures > 0:
            self.world.start_failures -= 1
            raise RuntimeError("cannot rebuild")
        self.total = sum(self.world.log)  # rebuild from the "journal"

    async def handle_batch(self, batch: list[Envelope]) -> None:
        for env in batch:
            match env.msg:
                case "boom":
                    raise RuntimeError("boom")
                case "boom-at-gate":
                    await self.world.gate.wait()
                    raise RuntimeError("boom")
                case "get":
                    env.respond(self.total)
                case int(n):
                    self.world.log.append(n)
                    self.total += n
                    env.respond(self.total)


async def test_crash_restarts_and_rebuilds_state(start_registry: Any) -> None:
    world = World()
    registry = await start_registry(lambda key: Ledger(world))
    assert await registry.ask("k", 5) == 5
    assert await registry.ask("k", 7) == 12
    with pytest.raises(ActorCrashed) as info:
        await registry.ask("k", "boom")
    assert isinstance(info.value.__cause__, RuntimeError)
    assert await registry.ask("k", "get") == 12  # the fresh instance rebuilt from the log
    assert world.instances == 2
    stats = registry.stats()
    assert (stats["activations"], stats["crashes"], stats["restarts"]) == (1, 1, 1)


async def test_unanswered_asks_of_the_crashed_batch_fail(start_registry: Any) -> None:
    world = World()
    registry = await start_registry(lambda key: Ledger(world))
    ref = registry.ref("k")
    world.gate = trio.Event()
    await ref.tell("boom-at-gate")
    await trio.testing.wait_all_tasks_blocked()
    results: dict[str, Any] = {}

    async def ask(name: str, msg: Any) -> None:
        try:
            results[name] = await ref.ask(msg)
        except ActorCrashed as exc:
            results[name] = exc

    # Queue [1, boom, 2] as one batch behind the held message: 1 is answered before the
    # crash, boom and 2 are not and fail with ActorCrashed.
    async with trio.open_nursery() as nursery:
        for name, msg in (("one", 1), ("boom", "boom"), ("two", 2)):
            nursery.start_soon(ask, name, msg)
            await trio.testing.wait_all_tasks_blocked()
        world.gate.set()
    assert results["one"] == 1
    assert isinstance(results["boom"], ActorCrashed)
    assert isinstance(results["two"], ActorCrashed)
    assert registry.stats()["crashes"] == 2


async def test_messages_queued_during_crash_are_processed(
    start_registry: Any, autojump_clock: Any
) -> None:
    world = World()
    registry = await start_registry(lambda key: Ledger(world), backoff_base_s=1.0)
    ref = registry.ref("k")
    await ref.tell("boom-at-gate")
    await trio.testing.wait_all_tasks_blocked()
    world.gate.set()
    await trio.testing.wait_all_tasks_blocked()  # crashed, now in backoff
    assert world.instances == 1
    for n in (1, 2, 3):
        await ref.tell(n)  # queued while no instance is running
    assert registry.mailbox_depths() == {"k": 3}
    assert await ref.ask("get") == 6
    assert world.instances == 2


async def test_give_up_on_one_key_then_reactivate(start_registry: Any, autojump_clock: Any) -> None:
    world = World()
    world.start_failures = 10**6
    other = World()
    registry = await start_registry(
        lambda key: Ledger(world if key == "bad" else other), max_restarts=3, within_s=10.0
    )
    with pytest.raises(ActorCrashed):
        await registry.ask("bad", 1)  # queued, then failed when the registry gave up
    assert len(world.start_times) == 4  # first start + 3 restarts
    assert registry.stats()["gave_up"] == 1
    with pytest.raises(ActorCrashed):
        await registry.ask("bad", 1)  # fails fast during the cool-down
    with pytest.raises(ActorCrashed):
        registry.ref("bad").try_tell(1)
    assert len(world.start_times) == 4
    assert registry.active_keys() == []
    assert await registry.ask("good", 2) == 2  # other keys are unaffected

    await trio.sleep(10.5)  # cool-down over: the key activates afresh
    world.start_failures = 0
    assert await registry.ask("bad", 3) == 3
    assert registry.stats()["activations"] == 3  # bad, good, bad again


async def test_restart_backoff_has_jitter_and_is_bounded(
    start_registry: Any, autojump_clock: Any
) -> None:
    world = World()
    world.start_failures = 12
    registry = await start_registry(
        lambda key: Ledger(world),
        max_restarts=100,
        within_s=1000.0,
        backoff_base_s=0.1,
        backoff_max_s=0.4,
    )
    assert await registry.ask("k", 1, timeout=60) == 1
    gaps = [b - a for a, b in itertools.pairwise(world.start_times)]
    assert len(gaps) == 12
    for attempt, gap in enumerate(gaps):
        assert 0 <= gap <= min(0.4, 0.1 * 2**attempt) + 1e-9
    assert len({round(g, 9) for g in gaps}) > 6  # jittered, not a fixed schedule


def test_backoff_delay_full_jitter_bounds() -> None:
    assert _backoff_delay(0, 0.05, 2.0, rng=lambda: 1.0) == pytest.approx(0.05)
    assert _backoff_delay(3, 0.05, 2.0, rng=lambda: 1.0) == pytest.approx(0.4)
    assert _backoff_delay(10_000, 0.05, 2.0, rng=lambda: 1.0) == pytest.approx(2.0)
    assert _backoff_delay(5, 0.05, 2.0, rng=lambda: 0.0) == 0.0
    rng = random.Random(7)
    samples = [_backoff_delay(4, 0.05, 2.0, rng=rng.random) for _ in range(200)]
    assert all(0 <= s <= 0.8 for s in samples)
    assert min(samples) < 0.1 and max(samples) > 0.7  # spread over the whole range
