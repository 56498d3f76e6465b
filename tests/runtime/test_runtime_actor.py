"""Mailbox basics: tell/ask, replies and failures, ask timeouts, push-back, batching."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from engine.runtime import (
    Actor,
    ActorCrashed,
    ActorStopped,
    AskTimeout,
    Envelope,
    Overloaded,
    Registry,
)


class Counter(Actor):
    """Adds numbers; can be held on a gate to let its mailbox fill up."""

    def __init__(self, gates: dict[str, trio.Event] | None = None) -> None:
        self.total = 0
        self.batch_sizes: list[int] = []
        self.gates = gates if gates is not None else {}

    async def handle_batch(self, batch: list[Envelope]) -> None:
        self.batch_sizes.append(len(batch))
        for env in batch:
            match env.msg:
                case ("add", int(n)):
                    self.total += n
                    env.respond(self.total)
                case "get":
                    env.respond(self.total)
                case ("fail", str(text)):
                    env.fail(ValueError(text))
                case ("hold", str(gate)):
                    await self.gates[gate].wait()
                    env.respond("released")
                case "forget":
                    pass  # a buggy actor: never answers


def single(actor: Actor) -> Any:
    return lambda key: actor


async def test_tell_then_ask(start_registry: Any) -> None:
    counter = Counter()
    registry = await start_registry(single(counter))
    await registry.tell("c", ("add", 2))
    ref = registry.ref("c")
    await ref.tell(("add", 3))
    assert ref.try_tell(("add", 5))
    assert await ref.ask("get") == 10
    assert await registry.ask("c", ("add", 1)) == 11
    assert registry.active_keys() == ["c"]
    assert registry.stats()["activations"] == 1


async def test_fail_raises_in_asker_and_actor_lives_on(start_registry: Any) -> None:
    registry = await start_registry(lambda key: Counter())
    with pytest.raises(ValueError, match="nope"):
        await registry.ask("c", ("fail", "nope"))
    assert await registry.ask("c", ("add", 1)) == 1
    assert registry.stats()["crashes"] == 0


async def test_unanswered_ask_fails_instead_of_hanging(start_registry: Any) -> None:
    registry = await start_registry(lambda key: Counter())
    with pytest.raises(ActorCrashed, match="did not answer"):
        await registry.ask("c", "forget")


async def test_ask_timeout_does_not_leak(start_registry: Any, autojump_clock: Any) -> None:
    gates = {"g": trio.Event()}
    counter = Counter(gates)
    registry = await start_registry(single(counter))
    t0 = trio.current_time()
    with pytest.raises(AskTimeout):
        await registry.ask("c", ("hold", "g"), timeout=0.5)
    assert trio.current_time() - t0 == pytest.approx(0.5)
    # The actor answers after the asker left: harmless, and the actor keeps serving.
    gates["g"].set()
    assert await registry.ask("c", ("add", 4)) == 4
    assert registry.mailbox_depths() == {"c": 0}


async def test_pushback_when_mailbox_full(start_registry: Any, autojump_clock: Any) -> None:
    gates = {"g": trio.Event()}
    counter = Counter(gates)
    registry = await start_registry(single(counter), mailbox_size=4)
    ref = registry.ref("c")
    await ref.tell(("hold", "g"))
    await trio.testing.wait_all_tasks_blocked()  # the actor is holding on the gate
    for _ in range(4):
        await ref.tell(("add", 1), timeout=0.1)
    assert registry.mailbox_depths() == {"c": 4}
    with pytest.raises(Overloaded):
        await ref.tell(("add", 100), timeout=0.2)
    with pytest.raises(Overloaded):
        await ref.ask(("add", 100), timeout=0.2)
    assert not ref.try_tell(("add", 100))
    assert registry.mailbox_depths() == {"c": 4}  # nothing grew past the bound

    # A tell without timeout waits for room instead of failing.
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ref.tell, ("add", 10))
        await trio.sleep(1)
        gates["g"].set()
    assert await ref.ask("get") == 14


async def test_queued_messages_arrive_as_one_batch(start_registry: Any) -> None:
    gates = {"g": trio.Event()}
    counter = Counter(gates)
    registry = await start_registry(single(counter))
    ref = registry.ref("c")
    await ref.tell(("hold", "g"))
    await trio.testing.wait_all_tasks_blocked()  # the actor is holding on the gate
    for _ in range(50):
        assert ref.try_tell(("add", 1))
    gates["g"].set()
    assert await ref.ask("get") == 50
    assert counter.batch_sizes == [1, 51]  # the 50 tells and the ask, in one batch


async def test_batches_are_capped_at_max_batch(start_registry: Any) -> None:
    gates = {"g": trio.Event()}
    counter = Counter(gates)
    registry = await start_registry(single(counter), max_batch=8)
    ref = registry.ref("c")
    await ref.tell(("hold", "g"))
    await trio.testing.wait_all_tasks_blocked()  # the actor is holding on the gate
    for _ in range(20):
        assert ref.try_tell(("add", 1))
    gates["g"].set()
    assert await ref.ask("get") == 20
    assert counter.batch_sizes == [1, 8, 8, 5]  # 20 tells + the ask, 8 at a time


async def test_envelope_answers_once() -> None:
    tell = Envelope("x")
    assert tell.answered and not tell.wants_reply
    tell.respond(1)  # no-op
    tell.fail(RuntimeError())  # no-op

    registry = Registry(lambda key: Counter())
    with pytest.raises(ActorStopped):
        registry.ref("not-running")


async def test_stopped_registry_refuses(start_registry: Any) -> None:
    registry = await start_registry(lambda key: Counter())
    ref = registry.ref("c")
    await registry.aclose()
    with pytest.raises(ActorStopped):
        await ref.tell(("add", 1))
    with pytest.raises(ActorStopped):
        ref.try_tell(("add", 1))
    with pytest.raises(ActorStopped):
        await registry.ask("d", "get")


async def test_try_ask_answers_through_the_callback(start_registry: Any, autojump_clock: Any) -> None:
    """The gateway's fast path: no task per ask; the actor's answer calls back exactly once."""
    gates = {"g": trio.Event()}
    registry = await start_registry(single(Counter(gates)), mailbox_size=2)
    answers: list[tuple[Any, BaseException | None]] = []

    def record(value: Any, error: BaseException | None) -> None:
        answers.append((value, error))

    assert registry.try_ask("c", ("add", 2), record)
    assert registry.try_ask("c", ("fail", "bad"), record)
    await trio.testing.wait_all_tasks_blocked()
    assert answers[0] == (2, None)
    assert answers[1][0] is None and isinstance(answers[1][1], ValueError)

    # A full mailbox refuses at once (nothing queued): the caller takes the awaiting path.
    ref = registry.ref("c")
    await ref.tell(("hold", "g"))
    await trio.testing.wait_all_tasks_blocked()
    assert ref.try_ask(("add", 1), record) and ref.try_ask(("add", 1), record)
    assert not ref.try_ask(("add", 100), record)
    gates["g"].set()
    await trio.testing.wait_all_tasks_blocked()
    assert [v for v, _ in answers[2:]] == [3, 4]

    # An unanswered ask is failed by the registry, through the callback too.
    assert ref.try_ask("forget", record)
    await trio.testing.wait_all_tasks_blocked()
    assert isinstance(answers[-1][1], ActorCrashed)


async def test_a_raising_callback_does_not_crash_the_actor(start_registry: Any) -> None:
    registry = await start_registry(lambda key: Counter())

    def broken(value: Any, error: BaseException | None) -> None:
        raise RuntimeError("asker bug")

    assert registry.try_ask("c", ("add", 5), broken)
    assert await registry.ask("c", ("add", 1)) == 6
    assert registry.stats()["crashes"] == 0
