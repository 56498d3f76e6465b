"""Supervisor: strategies, restart types, intensity escalation, backoff, ordered shutdown."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import trio
import trio.testing

from engine.journal import MemoryJournal
from engine.runtime import (
    Actor,
    ChildSpec,
    Envelope,
    Registry,
    Supervisor,
    SupervisorEscalation,
    TimerService,
)


class Worker:
    """A child whose current incarnation crashes or exits when the test says so."""

    def __init__(self, name: str, journal: list[tuple[str, str]]) -> None:
        self.name = name
        self.journal = journal
        self.starts: list[float] = []
        self.fail_starts = 0
        self._signal = trio.Event()
        self._crash = False

    def crash(self) -> None:
        self._crash = True
        self._signal.set()

    def exit(self) -> None:
        self._crash = False
        self._signal.set()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self.starts.append(trio.current_time())
        if self.fail_starts:
            self.fail_starts -= 1
            raise RuntimeError(f"{self.name} cannot start")
        self._signal = trio.Event()
        self.journal.append(("start", self.name))
        task_status.started()
        try:
            await self._signal.wait()
        except trio.Cancelled:
            self.journal.append(("cancelled", self.name))
            raise
        if self._crash:
            raise RuntimeError(f"{self.name} crashed")
        self.journal.append(("exit", self.name))

    def spec(self, **kwargs: Any) -> ChildSpec:
        return ChildSpec(self.name, self.run, **kwargs)


def make(names: str, journal: list[tuple[str, str]]) -> dict[str, Worker]:
    return {n: Worker(n, journal) for n in names}


async def started(sup: Supervisor, nursery: trio.Nursery) -> None:
    await nursery.start(sup.run)


def counts(workers: dict[str, Worker]) -> dict[str, int]:
    return {n: len(w.starts) for n, w in workers.items()}


@pytest.mark.parametrize(
    ("strategy", "restarted", "stopped_order"),
    [
        ("one_for_one", "b", []),
        ("one_for_all", "abc", ["c", "a"]),
        ("rest_for_one", "bc", ["c"]),
    ],
)
async def test_strategies(
    strategy: Any, restarted: str, stopped_order: list[str], nursery: trio.Nursery
) -> None:
    journal: list[tuple[str, str]] = []
    workers = make("abc", journal)
    sup = Supervisor("s", strategy, backoff_base_s=0.0)
    for w in workers.values():
        sup.add_child(w.spec())
    await started(sup, nursery)
    assert journal == [("start", "a"), ("start", "b"), ("start", "c")]
    journal.clear()
    workers["b"].crash()
    await trio.testing.wait_all_tasks_blocked()
    assert counts(workers) == {n: 2 if n in restarted else 1 for n in "abc"}
    assert [n for what, n in journal if what == "cancelled"] == stopped_order
    assert [n for what, n in journal if what == "start"] == list(restarted)
    assert sup.running_children() == ["a", "b", "c"]
    await sup.aclose()


async def test_transient_and_temporary(nursery: trio.Nursery) -> None:
    journal: list[tuple[str, str]] = []
    workers = make("tpq", journal)
    sup = Supervisor("s", backoff_base_s=0.0)
    sup.add_child(workers["t"].spec(restart="transient"))
    sup.add_child(workers["p"].spec(restart="temporary"))
    sup.add_child(workers["q"].spec(restart="transient"))
    await started(sup, nursery)
    workers["t"].crash()  # transient + crash: restarted
    workers["p"].crash()  # temporary: never restarted, forgotten
    workers["q"].exit()  # transient + normal exit: not restarted
    await trio.testing.wait_all_tasks_blocked()
    assert counts(workers) == {"t": 2, "p": 1, "q": 1}
    assert sup.children() == ["t", "q"]
    assert sup.running_children() == ["t"]
    await sup.aclose()


async def test_intensity_escalates_and_cancels_children(autojump_clock: Any) -> None:
    journal: list[tuple[str, str]] = []
    workers = make("ab", journal)
    sup = Supervisor("s", max_restarts=2, within_s=10.0)
    for w in workers.values():
        sup.add_child(w.spec())
    caught: list[SupervisorEscalation] = []

    async def parent(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await sup.run(task_status=task_status)
        except SupervisorEscalation as exc:
            caught.append(exc)

    async with trio.open_nursery() as nursery:
        await nursery.start(parent)
        for _ in range(3):
            workers["b"].crash()
            await trio.sleep(1)
    assert len(caught) == 1
    assert isinstance(caught[0].__cause__, RuntimeError)
    assert counts(workers) == {"a": 1, "b": 3}
    assert ("cancelled", "a") in journal


async def test_restarts_spread_out_do_not_escalate(
    nursery: trio.Nursery, autojump_clock: Any
) -> None:
    workers = make("a", [])
    sup = Supervisor("s", max_restarts=2, within_s=10.0)
    sup.add_child(workers["a"].spec())
    await started(sup, nursery)
    for _ in range(6):
        workers["a"].crash()
        await trio.sleep(6)  # at most 2 crashes in any 10 s window
    assert len(workers["a"].starts) == 7
    assert sup.restarts == 6
    await sup.aclose()


async def test_child_failing_to_start_escalates_from_start(autojump_clock: Any) -> None:
    workers = make("a", [])
    workers["a"].fail_starts = 100
    sup = Supervisor("s", max_restarts=3, within_s=10.0)
    sup.add_child(workers["a"].spec())
    async with trio.open_nursery() as nursery:
        with pytest.raises(SupervisorEscalation):
            await nursery.start(sup.run)
    assert len(workers["a"].starts) == 4


async def test_start_failure_then_recovery(nursery: trio.Nursery, autojump_clock: Any) -> None:
    workers = make("a", [])
    workers["a"].fail_starts = 2
    sup = Supervisor("s", max_restarts=3, within_s=10.0)
    sup.add_child(workers["a"].spec())
    await started(sup, nursery)  # reports started only once the child is really up
    assert sup.running_children() == ["a"]
    assert len(workers["a"].starts) == 3
    await sup.aclose()


async def test_backoff_has_jitter_and_is_bounded(
    nursery: trio.Nursery, autojump_clock: Any
) -> None:
    workers = make("a", [])
    workers["a"].fail_starts = 10
    sup = Supervisor("s", max_restarts=100, within_s=1000.0, backoff_base_s=0.1, backoff_max_s=0.5)
    sup.add_child(workers["a"].spec())
    await started(sup, nursery)
    times = workers["a"].starts
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 10
    for attempt, gap in enumerate(gaps):
        assert 0 <= gap <= min(0.5, 0.1 * 2**attempt) + 1e-9
    assert len({round(g, 9) for g in gaps}) > 5
    await sup.aclose()


async def test_ordered_shutdown_with_deadline(nursery: trio.Nursery, autojump_clock: Any) -> None:
    order: list[tuple[str, str, float]] = []
    stop_events = {n: trio.Event() for n in "abc"}

    def child(name: str, ignore_stop: bool) -> ChildSpec:
        async def run(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            task_status.started()
            try:
                if ignore_stop:
                    await trio.sleep_forever()
                await stop_events[name].wait()
                await trio.sleep(0.25)  # a little cleanup work
                order.append((name, "stopped", trio.current_time()))
            except trio.Cancelled:
                order.append((name, "cancelled", trio.current_time()))
                raise

        async def stop() -> None:
            stop_events[name].set()

        return ChildSpec(name, run, shutdown_timeout_s=1.5, stop=stop)

    sup = Supervisor("s")
    sup.add_child(child("a", ignore_stop=False))
    sup.add_child(child("b", ignore_stop=False))
    sup.add_child(child("c", ignore_stop=True))  # ignores its stop request
    await started(sup, nursery)
    t0 = trio.current_time()
    await sup.aclose(deadline_s=10.0)
    assert [(n, what) for n, what, _ in order] == [
        ("c", "cancelled"),
        ("b", "stopped"),
        ("a", "stopped"),
    ]
    assert [t - t0 for _, _, t in order] == pytest.approx([1.5, 1.75, 2.0])
    assert sup.running_children() == []


async def test_overall_deadline_cancels_everything(
    nursery: trio.Nursery, autojump_clock: Any
) -> None:
    journal: list[tuple[str, str]] = []

    async def stubborn(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            journal.append(("cancelled", "x"))
            raise

    async def ignore() -> None:
        pass

    sup = Supervisor("s")
    sup.add_child(ChildSpec("x", stubborn, shutdown_timeout_s=60.0, stop=ignore))
    sup.add_child(ChildSpec("y", stubborn, shutdown_timeout_s=60.0, stop=ignore))
    await started(sup, nursery)
    t0 = trio.current_time()
    await sup.aclose(deadline_s=2.0)
    assert trio.current_time() - t0 == pytest.approx(2.0)
    assert journal == [("cancelled", "x"), ("cancelled", "x")]


async def test_child_without_stop_hook_is_cancelled(nursery: trio.Nursery) -> None:
    journal: list[tuple[str, str]] = []
    workers = make("ab", journal)
    sup = Supervisor("s")
    for w in workers.values():
        sup.add_child(w.spec())
    await started(sup, nursery)
    await sup.aclose()
    assert journal[2:] == [("cancelled", "b"), ("cancelled", "a")]


async def test_start_child_while_running(nursery: trio.Nursery) -> None:
    journal: list[tuple[str, str]] = []
    workers = make("ab", journal)
    sup = Supervisor("s", "rest_for_one", backoff_base_s=0.0)
    sup.add_child(workers["a"].spec())
    with pytest.raises(RuntimeError):
        await sup.start_child(workers["b"].spec())  # not running yet
    await started(sup, nursery)
    await sup.start_child(workers["b"].spec())
    assert sup.running_children() == ["a", "b"]
    with pytest.raises(ValueError):
        await sup.start_child(workers["b"].spec())
    with pytest.raises(RuntimeError):
        sup.add_child(workers["b"].spec())
    workers["a"].crash()  # rest_for_one: b was started after a, so it restarts too
    await trio.testing.wait_all_tasks_blocked()
    assert counts(workers) == {"a": 2, "b": 2}
    await sup.aclose()
    assert journal[-2:] == [("cancelled", "b"), ("cancelled", "a")]


async def test_nested_escalation_restarts_the_inner_supervisor(
    nursery: trio.Nursery, autojump_clock: Any
) -> None:
    journal: list[tuple[str, str]] = []
    workers = make("xy", journal)
    inner = Supervisor("inner", max_restarts=1, within_s=10.0)
    inner.add_child(workers["x"].spec())
    outer = Supervisor("outer", max_restarts=3, within_s=100.0)
    outer.add_child(ChildSpec("inner", inner.run, stop=inner.aclose))
    outer.add_child(workers["y"].spec())
    await started(outer, nursery)
    for _ in range(2):  # two crashes in 10 s: the inner supervisor escalates
        workers["x"].crash()
        await trio.sleep(1)
    assert len(workers["x"].starts) == 3  # 2 under the first inner run, 1 after its restart
    assert len(workers["y"].starts) == 1  # one_for_one at the outer level
    assert outer.restarts == 1
    assert inner.running_children() == ["x"]
    await outer.aclose()
    assert journal[-2:] == [("cancelled", "y"), ("cancelled", "x")]
    with pytest.raises(RuntimeError):
        await inner.run()  # closed on purpose: not restartable


async def test_start_child_after_close_is_refused(nursery: trio.Nursery) -> None:
    sup = Supervisor("s")
    await started(sup, nursery)
    await sup.aclose()
    with pytest.raises(RuntimeError):
        await sup.start_child(make("a", [])["a"].spec())


async def test_engine_shaped_tree(nursery: trio.Nursery) -> None:
    """How the engine composes the runtime: registry, then timers, under one supervisor."""

    class Echo(Actor):
        async def handle_batch(self, batch: list[Envelope]) -> None:
            for env in batch:
                env.respond((self.key, env.msg))

    journal = MemoryJournal()
    await journal.open()
    await nursery.start(journal.run)
    registry = Registry(lambda key: Echo())
    timers = TimerService(journal, registry)
    sup = Supervisor("engine", "rest_for_one")
    sup.add_child(ChildSpec("registry", registry.run, stop=registry.aclose))
    sup.add_child(ChildSpec("timers", timers.run))
    await started(sup, nursery)
    assert await registry.ask("k", "hi") == ("k", "hi")
    await sup.aclose()
    assert registry.stats()["active"] == 0
