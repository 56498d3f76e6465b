"""Erlang-style supervision for trio tasks.

THEORY OF OPERATION
===================

A `Supervisor` owns one nursery. Every child runs in its own task inside that nursery, wrapped
by `_child_main`, which gives the child a private cancel scope (so one child can be stopped
without touching its siblings) and turns the child's end -- normal return or exception -- into
an *exit report* sent to the supervisor's control loop. The child task never lets an ordinary
exception reach the nursery; only the control loop decides what happens next. That keeps the
nursery alive across child crashes, which a bare trio nursery would not do.

The control loop is a single task and is the only place that starts, stops or restarts
children, so there are no races between restarts, `start_child` and shutdown: everything is a
message on one queue, handled in order. Each start bumps the child's *generation*; reports from
an older generation, or from a child that the loop is stopping on purpose, are ignored.

Starting. A child is started with `nursery.start`, so "started" means the child called
`task_status.started()`. A child that raises before that counts as a crash (its report is
queued like any other), so a child whose start keeps failing is restarted with backoff and
eventually escalates. `run()` itself reports started once every initial child is up.

Restarting. On an exit report the restart type decides: "permanent" always restarts,
"transient" restarts only after an exception, "temporary" never (and is forgotten). Then the
strategy picks the group: one_for_one = the child; one_for_all = every running child;
rest_for_one = the child and the running children added after it. Group members still
running are stopped in reverse order (gracefully, as in shutdown), the loop sleeps a
full-jitter exponential backoff (uniform in [0, min(max, base * 2**n)], n = restarts in the
current window minus one: jitter spreads thundering herds, the cap bounds recovery time),
and the group is started again in order.

Intensity. Every restart is recorded with its time. More than `max_restarts` inside
`within_s` means restarting is not helping: the supervisor cancels all its children and
`run()` raises `SupervisorEscalation` (chained to the last crash) so that *its* parent can
decide -- the same "let it crash, one level up" rule as OTP. A supervisor that escalated or
was cancelled by its parent can `run()` again (a parent supervisor restarting it gets fresh
intensity, like a new OTP supervisor); one closed with `aclose()` cannot.

Ordered shutdown. `aclose()` asks the control loop to stop children in reverse start order.
Each child gets its `stop` hook called (if any; without one, cancellation is the stop signal)
and up to `shutdown_timeout_s` to finish; then its scope is cancelled. `deadline_s` bounds the
whole shutdown: at the deadline everything still running is cancelled.

The per-actor supervision inside the `Registry` is one_for_one with a single child per key;
it reuses `_RestartIntensity` and `_backoff_delay` from here but runs inline in the actor's
own task, because a nursery and a control task per actor would double the task count of a
registry holding many thousands of actors.
"""

from __future__ import annotations

import logging
import math
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import trio

__all__ = ["ChildSpec", "RestartType", "Strategy", "Supervisor", "SupervisorEscalation"]

log = logging.getLogger("omnitill.runtime")

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
RestartType = Literal["permanent", "transient", "temporary"]


class SupervisorEscalation(Exception):
    """Restart intensity exceeded: the supervisor gave up and hands the failure to its parent."""


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to run, restart and stop one supervised child.

    `run` is an async function taking `task_status=` (call `task_status.started()` once up).
    `stop`, if given, is called at shutdown to ask the child to finish by itself (for example
    `registry.aclose`); the child is cancelled if it is still running `shutdown_timeout_s`
    later. Without `stop`, cancellation is the shutdown signal.
    """

    name: str
    run: Callable[..., Awaitable[None]]
    restart: RestartType = "permanent"
    shutdown_timeout_s: float = 5.0
    stop: Callable[[], Awaitable[Any]] | None = None


class _RestartIntensity:
    """Sliding window of restart times: allows at most `max_restarts` within `within_s`."""

    __slots__ = ("_times", "max_restarts", "within_s")

    def __init__(self, max_restarts: int, within_s: float) -> None:
        self.max_restarts = max_restarts
        self.within_s = within_s
        self._times: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self._times and self._times[0] <= now - self.within_s:
            self._times.popleft()

    def record(self, now: float) -> bool:
        """Record a restart at `now`; False if that exceeds the allowed intensity."""
        self._expire(now)
        self._times.append(now)
        return len(self._times) <= self.max_restarts

    def recent(self, now: float) -> int:
        self._expire(now)
        return len(self._times)


def _backoff_delay(
    attempt: int, base_s: float, max_s: float, rng: Callable[[], float] = random.random
) -> float:
    """Full jitter: uniform in [0, min(max_s, base_s * 2**attempt)]."""
    # Cap the exponent first so a long crash history cannot overflow the float.
    ceiling = min(max_s, base_s * 2.0 ** min(max(attempt, 0), 62))
    return rng() * ceiling


class _StartedFlag:
    """Wraps a TaskStatus to remember whether the child reported started.

    A child may pass a value to `started()` (hypercorn's `serve` passes its binds); it is
    accepted and dropped.
    """

    __slots__ = ("_inner", "started_called")

    def __init__(self, inner: trio.TaskStatus[Any]) -> None:
        self._inner = inner
        self.started_called = False

    def started(self, value: Any = None) -> None:
        self.started_called = True
        self._inner.started(value)


class _Child:
    __slots__ = ("done", "gen", "running", "scope", "spec", "stopping")

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.gen = 0
        self.running = False
        self.stopping = False
        self.scope = trio.CancelScope()
        self.done = trio.Event()
        self.done.set()  # not running yet


class _Exit:
    __slots__ = ("child", "error", "gen")

    def __init__(self, child: _Child, gen: int, error: Exception | None) -> None:
        self.child = child
        self.gen = gen
        self.error = error


class _Close:
    __slots__ = ("deadline_s",)

    def __init__(self, deadline_s: float) -> None:
        self.deadline_s = deadline_s


class _AddChild:
    __slots__ = ("added", "child", "started")

    def __init__(self, child: _Child) -> None:
        self.child = child
        self.added = trio.Event()
        self.started = False


_Event = _Exit | _Close | _AddChild


class Supervisor:
    """Runs children, restarts them by strategy, escalates when restarts do not help."""

    def __init__(
        self,
        name: str,
        strategy: Strategy = "one_for_one",
        *,
        max_restarts: int = 5,
        within_s: float = 10.0,
        backoff_base_s: float = 0.05,
        backoff_max_s: float = 2.0,
    ) -> None:
        if strategy not in ("one_for_one", "one_for_all", "rest_for_one"):
            raise ValueError(f"unknown strategy {strategy!r}")
        self.name = name
        self.strategy: Strategy = strategy
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._intensity = _RestartIntensity(max_restarts, within_s)
        self._children: list[_Child] = []
        # Unbounded on purpose: at most one exit report per running child plus one close and
        # the start_child requests, so its size is bounded by the number of children.
        self._events_in, self._events = trio.open_memory_channel[_Event](math.inf)
        self._nursery: trio.Nursery | None = None
        self._state: Literal["new", "running", "closing", "closed", "idle"] = "new"
        self._finished = trio.Event()
        self._close_requested = trio.Event()
        self._start_scope: trio.CancelScope | None = None
        self.restarts = 0

    # -- public API ---------------------------------------------------------------------------

    def add_child(self, spec: ChildSpec) -> None:
        """Add a child before `run()`. Children start in the order added and stop in reverse."""
        if self._state != "new":
            raise RuntimeError("add_child() is for before run(); use start_child()")
        self._check_name(spec.name)
        self._children.append(_Child(spec))

    async def start_child(self, spec: ChildSpec) -> None:
        """Add and start a child while running; returns once the start was attempted."""
        if self._state != "running":
            raise RuntimeError(f"supervisor {self.name!r} is not running")
        self._check_name(spec.name)
        request = _AddChild(_Child(spec))
        self._events_in.send_nowait(request)
        await request.added.wait()
        if not request.started:
            raise RuntimeError(f"supervisor {self.name!r} shut down before starting {spec.name!r}")

    def children(self) -> list[str]:
        """Names of the children, in start order."""
        return [c.spec.name for c in self._children]

    def running_children(self) -> list[str]:
        return [c.spec.name for c in self._children if c.running]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled or `aclose()`; raise SupervisorEscalation if restarts fail."""
        if self._state == "idle":
            self._reset()  # restarted by its parent after an escalation or a cancellation
        elif self._state != "new":
            raise RuntimeError(f"supervisor {self.name!r} is {self._state}")
        self._state = "running"
        escalation: SupervisorEscalation | None = None
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for child in list(self._children):
                    await self._start(child)
                escalation = await self._control_loop(task_status)
                nursery.cancel_scope.cancel()
        finally:
            # Not closed on purpose (escalated, or cancelled by a parent): may run again.
            self._state = "closed" if self._close_requested.is_set() else "idle"
            self._nursery = None
            self._release_waiters()
            self._finished.set()
        if escalation is not None:
            raise escalation

    async def aclose(self, *, deadline_s: float = 5.0) -> None:
        """Stop children in reverse start order, each within its shutdown timeout."""
        if self._state in ("new", "idle"):
            self._state = "closed"
            self._close_requested.set()
            self._finished.set()
            return
        if self._state == "running":
            self._state = "closing"
            self._close_requested.set()
            if self._start_scope is not None:
                self._start_scope.cancel()  # a child hanging in its start must not block us
            self._events_in.send_nowait(_Close(deadline_s))
        await self._finished.wait()

    # -- control loop -------------------------------------------------------------------------

    def _reset(self) -> None:
        self._intensity = _RestartIntensity(self._intensity.max_restarts, self._intensity.within_s)
        self._events_in, self._events = trio.open_memory_channel[_Event](math.inf)
        self._finished = trio.Event()
        for child in self._children:
            child.running = False

    def _release_waiters(self) -> None:
        """Wake start_child() callers whose request the loop will never handle."""
        while True:
            try:
                event = self._events.receive_nowait()
            except trio.WouldBlock:
                return
            if isinstance(event, _AddChild):
                event.added.set()

    def _check_name(self, name: str) -> None:
        if any(c.spec.name == name for c in self._children):
            raise ValueError(f"supervisor {self.name!r} already has a child {name!r}")

    async def _control_loop(
        self, task_status: trio.TaskStatus[None]
    ) -> SupervisorEscalation | None:
        reported = False
        while True:
            if not reported and self._events.statistics().current_buffer_used == 0:
                task_status.started()
                reported = True
            event = await self._events.receive()
            if isinstance(event, _Close):
                await self._shutdown(event.deadline_s)
                return None
            if isinstance(event, _AddChild):
                if not self._close_requested.is_set():
                    self._children.append(event.child)
                    await self._start(event.child)
                    event.started = True
                event.added.set()
                continue
            escalation = await self._on_exit(event)
            if escalation is not None:
                return escalation

    async def _on_exit(self, event: _Exit) -> SupervisorEscalation | None:
        child = event.child
        if event.gen != child.gen or child.stopping:
            return None  # stale report, or a stop we asked for
        child.running = False
        exc = event.error
        if exc is not None:
            log.error("supervisor %r: child %r crashed", self.name, child.spec.name, exc_info=exc)
        restart = child.spec.restart
        if restart == "temporary" or (restart == "transient" and exc is None):
            if restart == "temporary":
                self._children.remove(child)
            log.info("supervisor %r: child %r exited", self.name, child.spec.name)
            return None
        if self._close_requested.is_set():
            return None
        now = trio.current_time()
        if not self._intensity.record(now):
            log.error(
                "supervisor %r: more than %d restarts in %.1fs, escalating",
                self.name,
                self._intensity.max_restarts,
                self._intensity.within_s,
            )
            escalation = SupervisorEscalation(
                f"supervisor {self.name!r}: child {child.spec.name!r} exceeded "
                f"{self._intensity.max_restarts} restarts in {self._intensity.within_s}s"
            )
            escalation.__cause__ = exc
            return escalation
        group = self._restart_group(child)
        for other in reversed(group):
            if other is not child and other.running:
                await self._stop_child(other)
        delay = _backoff_delay(
            self._intensity.recent(now) - 1, self.backoff_base_s, self.backoff_max_s
        )
        with trio.move_on_after(delay):
            await self._close_requested.wait()
        if self._close_requested.is_set():
            return None
        for member in group:
            if member in self._children:
                self.restarts += 1
                await self._start(member)
        return None

    def _restart_group(self, failed: _Child) -> list[_Child]:
        if self.strategy == "one_for_one":
            return [failed]
        if self.strategy == "one_for_all":
            return [c for c in self._children if c is failed or c.running]
        index = self._children.index(failed)
        return [failed, *(c for c in self._children[index + 1 :] if c.running)]

    # -- starting and stopping one child ------------------------------------------------------

    async def _start(self, child: _Child) -> None:
        assert self._nursery is not None
        if self._close_requested.is_set():
            return
        child.gen += 1
        child.stopping = False
        child.done = trio.Event()
        child.scope = trio.CancelScope()
        child.running = True
        try:
            with trio.CancelScope() as self._start_scope:
                await self._nursery.start(self._child_main, child, child.gen)
        except Exception as exc:
            # Failed before started(): handled like any crash, via the queue, with backoff.
            child.running = False
            self._events_in.send_nowait(_Exit(child, child.gen, exc))
        finally:
            self._start_scope = None

    async def _child_main(
        self, child: _Child, gen: int, task_status: trio.TaskStatus[None]
    ) -> None:
        status = _StartedFlag(task_status)
        error: Exception | None = None
        try:
            with child.scope:
                try:
                    await child.spec.run(task_status=status)
                except Exception as exc:
                    if not status.started_called:
                        raise  # nursery.start() re-raises it in _start()
                    error = exc
            if not status.started_called:
                status.started()  # returned (or was cancelled) without starting: a plain exit
        finally:
            child.done.set()
        if gen == child.gen and not child.stopping:
            self._events_in.send_nowait(_Exit(child, gen, error))

    async def _stop_child(self, child: _Child) -> None:
        """Ask one child to stop, wait its shutdown timeout, then cancel it."""
        if child.done.is_set():
            child.running = False
            return
        child.stopping = True
        async with trio.open_nursery() as nursery:
            if child.spec.stop is not None:
                nursery.start_soon(self._call_stop_hook, child)
            else:
                child.scope.cancel()
            with trio.move_on_after(child.spec.shutdown_timeout_s):
                await child.done.wait()
            if not child.done.is_set():
                log.warning(
                    "supervisor %r: child %r did not stop within %.1fs, cancelling",
                    self.name,
                    child.spec.name,
                    child.spec.shutdown_timeout_s,
                )
                child.scope.cancel()
                await child.done.wait()
            nursery.cancel_scope.cancel()  # the stop hook, if it is still going
        child.running = False

    async def _call_stop_hook(self, child: _Child) -> None:
        assert child.spec.stop is not None
        try:
            await child.spec.stop()
        except Exception:
            log.exception("supervisor %r: stop hook of %r failed", self.name, child.spec.name)
            child.scope.cancel()

    async def _shutdown(self, deadline_s: float) -> None:
        with trio.move_on_after(deadline_s):
            for child in reversed(self._children):
                await self._stop_child(child)
        for child in self._children:
            child.scope.cancel()
