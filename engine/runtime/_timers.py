"""Durable timers: deliver journal timers to their actors, at least once.

The journal stores timers (set and cleared by actors in their own appends). This service
sleeps until the earliest one is due, reads the due ones and tells each actor a `TimerFired`.
It never deletes a timer: the actor clears it in the same append that records the timer's
effect, so a crash between delivery and that append just means another delivery. Until the
timer is cleared it is redelivered every `redeliver_after_s` (at-least-once; the domain turns
that into an exactly-once effect). Because timers live in the journal, a timer set in an
earlier run of the process fires after a restart.

Wake-ups. The service reads a window `[.., now + redeliver_after_s]` of timers: due ones are
delivered (unless already in flight), the rest tell it when to wake next. If the window is
empty, `next_timer_due()` says how long it may sleep. `notify(due_at)` (called after an
append that set a timer) wakes it early when the new timer is due before its planned wake.
Sleeps are capped so a wall-clock jump is noticed within `_MAX_SLEEP_S`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Protocol

import msgspec
import trio

from ..journal.base import Timer
from ._actor import ActorCrashed, ActorStopped, Overloaded
from ._registry import Registry

__all__ = ["TimerFired", "TimerService", "TimerSource"]

log = logging.getLogger("omnitill.runtime")

_MAX_SLEEP_S = 60.0  # re-read the clock at least this often
_RETRY_S = 1.0  # after a failed delivery (mailbox full, key given up)
_DELIVER_TIMEOUT_S = 1.0  # how long one delivery may wait for mailbox room


class TimerFired(msgspec.Struct, frozen=True):
    """What an actor receives when one of its timers is due."""

    timer_id: str
    payload: bytes
    due_at: float


class TimerSource(Protocol):
    """The part of `engine.journal.base.Journal` the timer service needs."""

    async def due_timers(self, until: float, limit: int = 1000) -> list[Timer]: ...

    async def next_timer_due(self) -> float | None: ...


class TimerService:
    """Fires journal timers into the registry; redelivers until the actor clears them."""

    def __init__(
        self,
        journal: TimerSource,
        registry: Registry,
        *,
        redeliver_after_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        batch_limit: int = 1000,
    ) -> None:
        self._journal = journal
        self._registry = registry
        self._redeliver_s = redeliver_after_s
        self._clock = clock
        self._limit = batch_limit
        # (actor_key, timer_id) -> (due_at, delivered at) of delivered, not yet cleared timers
        self._inflight: dict[tuple[str, str], tuple[float, float]] = {}
        self._wake = trio.Event()
        self._sleep_until = math.inf  # while reading, any notify forces another pass
        self.delivered = 0
        self.redelivered = 0

    def notify(self, due_at: float) -> None:
        """A timer due at `due_at` was just set: wake up if that is before the planned wake."""
        if due_at < self._sleep_until:
            self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            self._wake = trio.Event()
            self._sleep_until = math.inf
            wake_at = await self._pass()
            self._sleep_until = wake_at
            delay = min(wake_at - self._clock(), _MAX_SLEEP_S)
            if delay > 0:
                with trio.move_on_after(delay):
                    await self._wake.wait()
            else:
                await trio.lowlevel.checkpoint()

    async def _pass(self) -> float:
        """Deliver what is due; return the clock time to wake up next."""
        now = self._clock()
        horizon = now + self._redeliver_s
        timers = await self._journal.due_timers(horizon, limit=self._limit)
        wake_at = math.inf
        seen: set[tuple[str, str]] = set()
        for timer in timers:
            if timer.due_at > now:
                wake_at = min(wake_at, timer.due_at)
                continue
            ident = (timer.actor_key, timer.timer_id)
            seen.add(ident)
            sent = self._inflight.get(ident)
            if sent is not None and sent[0] == timer.due_at and now < sent[1] + self._redeliver_s:
                wake_at = min(wake_at, sent[1] + self._redeliver_s)
                continue
            if await self._deliver(timer):
                if sent is not None and sent[0] == timer.due_at:
                    self.redelivered += 1
                self.delivered += 1
                self._inflight[ident] = (timer.due_at, now)
                wake_at = min(wake_at, now + self._redeliver_s)
            else:
                wake_at = min(wake_at, now + min(_RETRY_S, self._redeliver_s))
        if len(timers) < self._limit:
            # Timers the window no longer shows were cleared by their actors.
            for ident in [i for i in self._inflight if i not in seen]:
                del self._inflight[ident]
        else:
            wake_at = min(wake_at, horizon)
        if not timers:
            nxt = await self._journal.next_timer_due()
            if nxt is not None:
                wake_at = nxt
        return wake_at

    async def _deliver(self, timer: Timer) -> bool:
        fired = TimerFired(timer_id=timer.timer_id, payload=timer.payload, due_at=timer.due_at)
        try:
            await self._registry.tell(timer.actor_key, fired, timeout=_DELIVER_TIMEOUT_S)
        except (Overloaded, ActorCrashed, ActorStopped) as exc:
            log.warning(
                "timer %r for %r not delivered (%s); retrying",
                timer.timer_id,
                timer.actor_key,
                type(exc).__name__,
            )
            return False
        return True
