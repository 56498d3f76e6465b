"""Passivation after idleness, reactivation on demand, one activation per key."""

from __future__ import annotations

import random
from typing import Any

import trio

from engine.runtime import Actor, Envelope


class World:
    """Per-key durable stand-in (the journal) plus instrumentation."""

    def __init__(self, stop_delay: float = 0.0) -> None:
        self.log: dict[str, list[int]] = {}
        self.factory_calls = 0
        self.live: dict[str, int] = {}
        self.max_live = 0
        self.stops = 0
        self.stop_delay = stop_delay

    def factory(self, key: str) -> Actor:
        self.factory_calls += 1
        return Tally(self)


class Tally(Actor):
    def __init__(self, world: World) -> None:
        self.world = world
        self.total = 0

    async def on_start(self) -> None:
        w = self.world
        w.live[self.key] = w.live.get(self.key, 0) + 1
        w.max_live = max(w.max_live, w.live[self.key])
        self.total = sum(w.log.get(self.key, []))

    async def handle_batch(self, batch: list[Envelope]) -> None:
        for env in batch:
            if env.msg == "get":
                env.respond(self.total)
            else:
                self.world.log.setdefault(self.key, []).append(env.msg)
                self.total += env.msg
                env.respond(self.total)

    async def on_stop(self) -> None:
        await trio.sleep(self.world.stop_delay)  # e.g. writing a snapshot
        self.world.stops += 1
        self.world.live[self.key] -= 1


async def test_idle_actor_passivates_and_reactivates(
    start_registry: Any, autojump_clock: Any
) -> None:
    world = World()
    registry = await start_registry(world.factory, idle_timeout_s=10.0)
    ref = registry.ref("k")
    assert await ref.ask(4) == 4
    await trio.sleep(9)
    assert registry.active_keys() == ["k"]
    await trio.sleep(2)
    assert registry.active_keys() == []
    assert world.stops == 1
    assert registry.stats()["passivations"] == 1
    # The old ref still works: it activates a new instance, which rebuilds its state.
    assert await ref.ask(1) == 5
    assert registry.stats()["activations"] == 2
    assert world.factory_calls == 2


async def test_activity_keeps_actor_alive(start_registry: Any, autojump_clock: Any) -> None:
    world = World()
    registry = await start_registry(world.factory, idle_timeout_s=10.0)
    for _ in range(10):
        await registry.tell("k", 1)
        await trio.sleep(6)
    assert await registry.ask("k", "get") == 10
    assert registry.stats()["activations"] == 1
    assert registry.stats()["passivations"] == 0


async def test_one_activation_when_many_callers_race(start_registry: Any) -> None:
    world = World()
    registry = await start_registry(world.factory)
    answers: list[int] = []

    async def caller(i: int) -> None:
        if i % 2:
            await registry.tell("hot", 1)
        else:
            answers.append(await registry.ask("hot", 1))

    async with trio.open_nursery() as nursery:
        for i in range(300):
            nursery.start_soon(caller, i)
    assert await registry.ask("hot", "get") == 300
    assert world.factory_calls == 1
    assert registry.stats()["activations"] == 1
    assert len(answers) == 150


async def test_passivation_racing_new_messages_loses_nothing(
    start_registry: Any, autojump_clock: Any
) -> None:
    # on_stop takes a while, and senders keep arriving right around the idle timeout, so
    # new activations overlap with old instances stopping.
    world = World(stop_delay=0.3)
    registry = await start_registry(world.factory, idle_timeout_s=1.0, mailbox_size=8)
    rng = random.Random(1234)
    sent = {"a": 0, "b": 0}
    refs = {key: registry.ref(key) for key in sent}

    async def one(key: str, use_ref: bool) -> None:
        if use_ref:
            await refs[key].tell(1)
        else:
            await registry.tell(key, 1)
        sent[key] += 1

    async def sender(key: str) -> None:
        for _ in range(40):
            # Land exactly on, just before, just after, or well after the idle deadline.
            await trio.sleep(rng.choice([1.0, 1.0, 0.999, 1.001, 1.1, 1.25, 1.5]))
            async with trio.open_nursery() as burst:  # concurrent tellers racing activation
                for _ in range(rng.randint(1, 5)):
                    burst.start_soon(one, key, rng.random() < 0.5)

    async with trio.open_nursery() as nursery:
        for key in sent:
            nursery.start_soon(sender, key)
    for key, count in sent.items():
        assert await registry.ask(key, "get") == count
        assert sum(world.log[key]) == count
    assert world.max_live == 1  # never two live instances of one key
    stats = registry.stats()
    assert stats["passivations"] > 10  # the race was actually exercised
    assert stats["activations"] == stats["passivations"] + 2
