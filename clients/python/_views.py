"""Client-side topic views: snapshot + deltas with gap detection (pure, no I/O)."""

from __future__ import annotations

from typing import Any

import trio

from protocol import Delta, Resumed, Snapshot

__all__ = ["TopicView"]


class TopicView:
    """The state of one topic as this client knows it.

    `live` is False until the first snapshot/resume and whenever the connection is down or a
    resync is pending: callers must treat the state as possibly stale then.
    """

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.epoch: str | None = None
        self.seq = 0
        self.state: dict[str, Any] = {}
        self.live = False
        self.snapshots = 0
        self.resumes = 0
        self.deltas = 0
        self.gaps = 0
        self.last_change = 0.0
        self._changed = trio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def apply_snapshot(self, msg: Snapshot) -> None:
        self.epoch, self.seq, self.state = msg.epoch, msg.seq, dict(msg.state)
        self.live = True
        self.snapshots += 1
        self.last_change = trio.current_time() if _in_trio() else 0.0
        self._notify()

    def apply_resumed(self, msg: Resumed) -> None:
        self.resumes += 1
        if msg.missed == 0:
            self.live = True
            self._notify()

    def apply_delta(self, msg: Delta) -> bool:
        """Apply a delta; False means a gap or epoch change: the caller must resubscribe."""
        if self.epoch is None or msg.epoch != self.epoch:
            self.gaps += 1
            self.live = False
            return False
        if msg.seq <= self.seq:
            return True  # duplicate of something we already have
        if msg.first_seq != self.seq + 1:
            self.gaps += 1
            self.live = False
            return False
        for key, value in msg.changes.items():
            if value is None:
                self.state.pop(key, None)
            else:
                self.state[key] = value
        self.seq = msg.seq
        self.deltas += 1
        self.live = True
        self._notify()
        return True

    def mark_stale(self) -> None:
        self.live = False
        self._notify()

    async def wait_for(self, predicate: Any, timeout: float = 5.0) -> dict[str, Any]:
        """Wait until `predicate(state)` holds on live data; returns the state."""
        with trio.fail_after(timeout):
            while not (self.live and predicate(self.state)):
                await self._changed.wait()
        return self.state

    async def changed(self) -> None:
        await self._changed.wait()


def _in_trio() -> bool:
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True
