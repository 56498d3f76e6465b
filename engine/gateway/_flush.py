"""One task writes every lean connection's output, in short slices.

Theory of operation
-------------------
Before this, each connection's own writer task woke for every change it had to send. With
5,000 clients subscribed to busy SKUs that put thousands of writer tasks in trio's run queue
at once, and a command (reader -> actor -> journal -> actor -> ack writer: four scheduling
hops) waited behind the whole queue at every hop: hold round trips of ~0.9 s at 1,000
holds/s (bench/fanout.py, cmdlat).

Now an Outbox with something to send marks its connection ready (`Connection.ready`), which
puts it in one of two FIFO sets here: `urgent` (replies: acks, rejects, errors, pongs) or
`dirty` (deltas only). The flusher task takes connections from `urgent` first, then from
`dirty`, and writes each one's whole due output with one non-blocking socket write
(`Connection.flush_now`). After SLICE_S of work it yields to the run queue, so a command
waits at most about one slice per hop instead of one pass over every connection.

When the flusher is busy, deltas to a connection that is being written in a burst (its
last BURST_WRITES writes each came within MIN_DELTA_INTERVAL_S of the one before) wait a
little: the wait grows from 0 at LOADED_FRACTION of the flusher's time spent working
(measured over WINDOW_S) to MIN_DELTA_INTERVAL_S (100 ms) at SATURATED_FRACTION. A waiting
connection sits in `later` (a heap by due time) and its outbox conflates meanwhile.
Saturated, that caps a client at 10 delta frames a second while the CPU is short (no screen
needs more) and spares a socket write per change on hot topics: with 250 subscribers per
SKU at 1,000 holds/s those writes were a quarter of the server's time. When it is not busy,
or the client is not in a burst, nothing waits (a fixed interval cost ~25 ms of latency at
low rates and pushed the 10,000-client p99 over 100 ms). Replies are never delayed. Under
overload the sets simply stay full: each connection is written once per pass, its outbox
conflating what arrived meanwhile, so the fan-out rate adapts to the CPU there is while
replies still jump the queue.

The fan-out itself runs here too: the bus hands each published delta with its subscribers
(`fan_out`) and the flusher offers it to their outboxes within its slices, so an actor that
publishes to 250 subscribers pays O(1) instead of 250 outbox calls in its own turn (which
every command queued behind it waited for). A fan-out backlog beyond FANOUT_BACKLOG entries
is worked off without the time limit, so it cannot grow without bound.

Replies also skip the flusher's turn: after each actor batch the registry calls
`flush_urgent` (Engine wires it as `Registry.after_batch`), so the acks an actor just gave
are written in that actor's task, one hop sooner (measured: hold p99 at 1,000 holds/s with
5,000 subscribers).

A socket that cannot take everything at once (a slow client) is handed back to that
connection's own writer task, which waits for the socket to drain; the flusher skips the
connection until then. Closing, too, is the connection's own writer's job.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from typing import Any, Protocol

import trio

__all__ = [
    "BURST_WRITES",
    "FANOUT_BACKLOG",
    "LOADED_FRACTION",
    "MIN_DELTA_INTERVAL_S",
    "SLICE_S",
    "Flushable",
    "Flusher",
]

SLICE_S = 0.0005
MIN_DELTA_INTERVAL_S = 0.1
LOADED_FRACTION = 0.35
SATURATED_FRACTION = 0.75
BURST_WRITES = 6
WINDOW_S = 0.1
FANOUT_BACKLOG = 256
MIN_FLUSHES_PER_SLICE = 16  # writes still progress while a fan-out backlog is worked off


class Flushable(Protocol):
    queued: int  # 0: not queued; 1: dirty or later; 2: urgent

    def flush_now(self) -> None: ...


class Flusher:
    __slots__ = (
        "_fan_at",
        "_order",
        "_wake",
        "busy_fraction",
        "defer_s",
        "dirty",
        "fanouts",
        "flushes",
        "later",
        "offers",
        "running",
        "slices",
        "urgent",
    )

    def __init__(self) -> None:
        # (outboxes, frame) to offer, oldest first; _fan_at: progress in the oldest entry
        self.fanouts: deque[tuple[tuple[Any, ...], Any]] = deque()
        self._fan_at = 0
        self.offers = 0
        self.urgent: dict[Flushable, None] = {}
        self.dirty: dict[Flushable, None] = {}
        self.later: list[tuple[float, int, Flushable]] = []  # heap: (monotonic due, order, conn)
        self._order = itertools.count()
        self._wake = trio.Event()
        self.running = False
        self.flushes = 0
        self.slices = 0
        # How long deltas to a just-written connection wait: MIN_DELTA_INTERVAL_S while the
        # flusher is busy, 0 otherwise (see the module docstring).
        self.defer_s = 0.0
        self.busy_fraction = 0.0  # of the last window

    def mark(self, conn: Flushable, urgent: bool) -> None:
        (self.urgent if urgent else self.dirty)[conn] = None
        if not self._wake.is_set():
            self._wake.set()

    def defer(self, conn: Flushable, due: float) -> None:
        """Write `conn` (deltas only) at monotonic time `due`."""
        heapq.heappush(self.later, (due, next(self._order), conn))
        if not self._wake.is_set():
            self._wake.set()  # the flusher may be asleep without a deadline

    def fan_out(self, outboxes: tuple[Any, ...], frame: Any) -> None:
        """Offer `frame` to each outbox, in the flusher's slices (LocalBus.fanout)."""
        if not self.running:  # no flusher task (offline tools): do it now
            for outbox in outboxes:
                outbox.offer_delta(frame)
            return
        self.fanouts.append((outboxes, frame))
        if not self._wake.is_set():
            self._wake.set()

    def _offer_some(self, end: float) -> None:
        """Work off queued fan-outs until `end` (past it only while the backlog is long)."""
        fanouts = self.fanouts
        clock = time.perf_counter
        while fanouts:
            outboxes, frame = fanouts[0]
            i = self._fan_at
            topic = frame.delta.topic
            n = len(outboxes)
            stop = min(n, i + 64)
            while i < stop:
                outbox = outboxes[i]
                i += 1
                if topic in outbox.subscribed:
                    outbox.offer_delta(frame)
            self.offers += stop - self._fan_at
            if i >= n:
                fanouts.popleft()
                self._fan_at = 0
            else:
                self._fan_at = i
            if clock() >= end and len(fanouts) <= FANOUT_BACKLOG:
                return

    def flush_urgent(self) -> None:
        """Write every connection with a reply waiting, now (after an actor's batch)."""
        urgent = self.urgent
        while urgent:
            conn = next(iter(urgent))
            del urgent[conn]
            conn.flush_now()
            self.flushes += 1

    def discard(self, conn: Flushable) -> None:
        self.urgent.pop(conn, None)
        self.dirty.pop(conn, None)  # a `later` entry is skipped: its conn is no longer queued

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.running = True
        task_status.started()
        urgent, dirty, later = self.urgent, self.dirty, self.later
        clock = time.perf_counter
        monotonic = time.monotonic
        window_start = clock()
        busy = 0.0
        try:
            while True:
                if not urgent and not dirty and not self.fanouts:
                    delay = later[0][0] - monotonic() if later else None
                    if delay is None:
                        await self._wake.wait()
                    elif delay > 0:
                        with trio.move_on_after(delay):
                            await self._wake.wait()
                    self._wake = trio.Event()
                now = monotonic()
                while later and later[0][0] <= now:
                    conn = heapq.heappop(later)[2]
                    if conn.queued == 1:
                        dirty[conn] = None
                start = clock()
                end = start + SLICE_S
                n = 0
                while urgent:  # replies first, all of them
                    conn = next(iter(urgent))
                    del urgent[conn]
                    conn.flush_now()
                    n += 1
                at_least = 1
                if self.fanouts:
                    self._offer_some(end)
                    at_least = MIN_FLUSHES_PER_SLICE  # the offers may have used the slice up
                done = 0
                while dirty:
                    conn = next(iter(dirty))
                    del dirty[conn]
                    conn.flush_now()
                    done += 1
                    if done >= at_least and clock() >= end:
                        break
                n += done
                self.flushes += n
                self.slices += 1
                now_c = clock()
                busy += now_c - start
                if now_c - window_start >= WINDOW_S:
                    self.busy_fraction = fraction = busy / (now_c - window_start)
                    load = (fraction - LOADED_FRACTION) / (SATURATED_FRACTION - LOADED_FRACTION)
                    self.defer_s = MIN_DELTA_INTERVAL_S * min(1.0, max(0.0, load))
                    window_start, busy = now_c, 0.0
                await trio.lowlevel.checkpoint()  # let commands and readers run
        finally:
            self.running = False
