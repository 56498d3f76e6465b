"""One durable timer per SKU pool instead of one per hold.

Why: the hot-SKU profile showed the per-hold timer row (an INSERT OR REPLACE into a table
with two indexes, keyed by a random hold id) as the most expensive of the three rows a hold
wrote: ~16 % of the server's CPU. A pool now keeps a single journal timer, `POOL_TIMER`, due
no later than its earliest active hold. The journal still makes expiry durable: the timer row
is written in the same append as the hold that needs it, and on activation the pool rebuilds
this queue from its state.

`ExpiryQueue` is the in-memory index: a heap of (expires_at, hold_id) with lazy deletion.
Entries go stale when a hold is released, committed, picked up or extended; they are dropped
when they reach the top, after checking against the state (the source of truth). No I/O.

The timer is moved earlier at once when a new hold expires sooner, but never moved later
eagerly (a released hold would cost a timer write): a timer that fires with nothing due just
re-arms at the real earliest expiry. Older journals may still hold per-hold timers
(`hold:{id}`); they fire, sweep the pool like the pool timer does, and are cleared.
"""

from __future__ import annotations

import heapq

from .state import SkuPool

__all__ = ["POOL_TIMER", "ExpiryQueue"]

POOL_TIMER = "expiry"


class ExpiryQueue:
    __slots__ = ("_heap",)

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []

    @classmethod
    def of(cls, state: SkuPool) -> ExpiryQueue:
        queue = cls()
        queue._heap = [(h.expires_at, h.hold_id) for h in state.holds.values()]
        heapq.heapify(queue._heap)
        return queue

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, expires_at: float, hold_id: str) -> None:
        heapq.heappush(self._heap, (expires_at, hold_id))

    def _drop_stale(self, state: SkuPool) -> None:
        heap = self._heap
        holds = state.holds
        while heap:
            expires_at, hold_id = heap[0]
            hold = holds.get(hold_id)
            if hold is not None and hold.expires_at == expires_at:
                return
            heapq.heappop(heap)

    def earliest(self, state: SkuPool) -> float | None:
        """The earliest expiry among the state's active holds (None without holds)."""
        self._drop_stale(state)
        return self._heap[0][0] if self._heap else None

    def pop_due(self, state: SkuPool, now: float) -> list[str]:
        """Active holds due at `now`, earliest first; they leave the queue."""
        due: list[str] = []
        heap = self._heap
        while True:
            self._drop_stale(state)
            if not heap or heap[0][0] > now:
                return list(dict.fromkeys(due))  # a hold pushed twice is due once
            due.append(heapq.heappop(heap)[1])
