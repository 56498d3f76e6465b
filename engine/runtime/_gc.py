"""The engine's garbage-collector policy: keep cycle-collector pauses short under load.

THEORY OF OPERATION
===================

CPython frees most objects by reference counting; the cycle collector only exists for
reference cycles, but every collection walks all objects of the generations it collects. A
server under load holds ~1M container objects that live for seconds to minutes (order
actors until they passivate, bus topic histories, view caches, connections, SKU pools' op
outcomes). The default generational scheme promotes them to the old generation and then
walks all of them in full collections: with 1M objects that was a ~0.4-1 s stop of the
event loop, every few seconds under load.

This policy keeps the collected generations small instead:

* `start()` (after start-up): one full collection, then `gc.freeze()` moves everything
  alive (code, catalog, read models) to the permanent generation, which no automatic
  collection walks.
* `tick()` (once a second, from the engine's ops sampler): a young collection (frees the
  cycles that died since the last one, so they are not frozen), then `gc.freeze()` again.
  Freezing is O(1) (it splices lists), so every automatic collection only walks what was
  born during the last second: a few ms instead of hundreds.
* Thresholds: young collections every `young_threshold` net allocations (small, so each is
  short); the middle and old thresholds are so high that those generations are only ever
  emptied by the freeze.

The cost: a cycle that is frozen while alive and dies later is not collected by the
automatic collections. Such cycles are rare on the hot paths (an order actor, its task and
mailbox die by reference counting) but every HTTP connection's hypercorn state is one. So
the frozen generation is also collected, fully (`gc.unfreeze(); gc.collect()`, a pause in
proportion to the heap: ~0.5 s per million objects):

* when the engine is quiet (no client activity during the last `quiet_ticks` ticks, 3 s by
  default) and the process grew by `quiet_growth` bytes since the last full collection:
  nobody waits on that pause -- but the first command after a lull may. (With one quiet
  second, the orders benchmark's short pause between two rounds was enough: the next round
  started into a 587 ms collection that found 2,743 objects.) Measured after 8 s of orders: a 615 ms pause that found
  243 unreachable objects; the process had grown by live data (caches, SQLite's page cache),
  not garbage. So the threshold backs off: a full collection that finds fewer than
  `productive_objects` unreachable objects doubles `quiet_growth` (up to
  `max_quiet_growth`), a productive one resets it. A workload that does make such garbage
  (many HTTP connections) keeps collecting when quiet; one that does not stops paying;
* under load, only when it grew by `full_growth` times its size after the last full
  collection and by at least `full_min_growth` bytes: a leak stays bounded (about
  (1 + full_growth) x the live heap), and a heap that merely warmed up does not pay full
  collections over and over.

Growth is measured by the resident set size (one read of /proc/self/statm), not by
`gc.get_freeze_count()`: that walks the whole frozen list, ~90 ms per call with 1M objects.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Callable
from typing import Any

__all__ = ["GcPolicy"]

log = logging.getLogger("omnitill.runtime")

# Middle/old generations are emptied by the freeze every tick; these just keep CPython from
# ever starting a (bounded, but pointless) middle or full collection on its own.
_NEVER = 1_000


class GcPolicy:
    """Young collections only, survivors frozen every tick, full collections when it's
    quiet or the process has grown a lot (see the module docstring)."""

    def __init__(
        self,
        *,
        young_threshold: int = 5_000,
        quiet_ticks: int = 3,
        quiet_growth: int = 64 << 20,
        full_growth: float = 1.0,
        full_min_growth: int = 1 << 30,
        productive_objects: int = 10_000,
        max_quiet_growth: int = 4 << 30,
        memory: Callable[[], int] | None = None,
    ) -> None:
        self.young_threshold = young_threshold
        self.quiet_ticks = quiet_ticks  # consecutive quiet ticks before a quiet full collection
        self.quiet_streak = 0
        self.base_quiet_growth = quiet_growth
        self.quiet_growth = quiet_growth  # backs off after unproductive full collections
        self.productive_objects = productive_objects
        self.max_quiet_growth = max_quiet_growth
        self.last_full_freed = 0
        self.full_growth = full_growth
        self.full_min_growth = full_min_growth
        self.memory = memory or resident_bytes
        self.full_collections = 0
        self.last_full_ms = 0.0
        self.memory_after_full = 0  # bytes resident after the last full collection
        self.started = False

    def start(self) -> None:
        """After start-up: collect everything once, freeze it, set the thresholds."""
        self._full()
        gc.set_threshold(self.young_threshold, _NEVER, _NEVER)
        self.started = True

    def tick(self, *, quiet: bool = False) -> bool:
        """Freeze the survivors of the last tick; True if this tick ran a full collection."""
        if not self.started:
            return False
        gc.collect(0)
        gc.freeze()  # O(1): splices the young lists onto the frozen one
        self.quiet_streak = self.quiet_streak + 1 if quiet else 0
        grown = self.memory() - self.memory_after_full
        if (self.quiet_streak >= self.quiet_ticks and grown >= self.quiet_growth) or grown >= max(
            self.full_min_growth, self.full_growth * self.memory_after_full
        ):
            self._full()
            return True
        return False

    def stats(self) -> dict[str, Any]:
        return {
            "full_collections": self.full_collections,
            "last_full_ms": round(self.last_full_ms, 1),
            "memory_after_full_mb": round(self.memory_after_full / 1e6, 1),
            "last_full_freed_objects": self.last_full_freed,
            "quiet_growth_mb": round(self.quiet_growth / 1e6, 1),
        }

    def _full(self) -> None:
        started = time.perf_counter()
        gc.unfreeze()
        freed = gc.collect()
        gc.freeze()
        self.last_full_ms = (time.perf_counter() - started) * 1e3
        self.memory_after_full = self.memory()
        self.full_collections += 1
        self.last_full_freed = freed
        if self.started:
            if freed < self.productive_objects:
                self.quiet_growth = min(2 * self.quiet_growth, self.max_quiet_growth)
            else:
                self.quiet_growth = self.base_quiet_growth
            log.info(
                "full garbage collection: %.0f ms, %d unreachable objects, %.0f MB resident;"
                " next quiet one after %.0f MB of growth",
                self.last_full_ms,
                freed,
                self.memory_after_full / 1e6,
                self.quiet_growth / 1e6,
            )


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """The process's resident set size (its peak where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
