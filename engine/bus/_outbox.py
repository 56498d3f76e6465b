"""Per-connection outbox: the only place a frame waits before it reaches a socket.

Theory of operation
-------------------
Actors never touch sockets. Publishing a delta calls `Outbox.offer_delta` on every subscribed
connection: a synchronous, O(1) call that never blocks and never allocates a queue entry per
delta. The outbox holds at most one pending delta per topic: a new delta for a topic that
already has one pending is merged into it (conflation: state-topic deltas carry absolute
values per key, so the merge keeps the latest value per key and widens `from_seq..seq`).
Memory per connection is therefore bounded by its number of subscriptions, however slow the
client is. Control frames (welcome, snapshot, ack, reject, error, pong) go to a bounded FIFO
that is flushed before deltas; if it overflows the connection is cut off (the client
reconnects and resumes) rather than letting it grow.

The connection's own writer task drains the outbox: `await outbox.wait()` then `drain()`
returns the frames to send. A delta that was never merged reuses the bytes encoded once at
publish time for all subscribers (`DeltaFrame.encoded`).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import trio

from protocol import Delta, encode
from protocol.messages import Encoding

__all__ = ["DeltaFrame", "Outbox", "OutboxOverflow", "merge_deltas"]


class OutboxOverflow(Exception):
    """The client stopped reading control frames: close it with a resumable code."""


class DeltaFrame:
    """A published delta with its encodings cached (encode once, send to many)."""

    __slots__ = ("_json", "_msgpack", "delta")

    def __init__(self, delta: Delta) -> None:
        self.delta = delta
        self._json: bytes | None = None
        self._msgpack: bytes | None = None

    def encoded(self, encoding: Encoding) -> bytes:
        if encoding == "json":
            if self._json is None:
                self._json = encode(self.delta, "json")
            return self._json
        if self._msgpack is None:
            self._msgpack = encode(self.delta, "msgpack")
        return self._msgpack


def merge_deltas(older: Delta, newer: Delta) -> Delta:
    """Conflate two consecutive deltas of one topic (values are absolute; latest wins)."""
    changes: dict[str, Any] = dict(older.changes)
    changes.update(newer.changes)
    return Delta(
        topic=newer.topic,
        epoch=newer.epoch,
        seq=newer.seq,
        changes=changes,
        from_seq=older.first_seq,
    )


class Outbox:
    __slots__ = (
        "_control",
        "_has_data",
        "_pending",
        "closed",
        "conflated",
        "encoding",
        "max_control",
        "subscribed",
    )

    def __init__(self, encoding: Encoding = "json", *, max_control: int = 1000) -> None:
        self.encoding: Encoding = encoding
        self.max_control = max_control
        self._control: deque[bytes] = deque()
        self._pending: dict[str, DeltaFrame | Delta] = {}
        self._has_data = trio.Event()
        self.subscribed: set[str] = set()
        self.closed = False
        self.conflated = 0  # deltas merged instead of sent one by one

    def __len__(self) -> int:
        return len(self._control) + len(self._pending)

    def _wake(self) -> None:
        if not self._has_data.is_set():
            self._has_data.set()

    def wake(self) -> None:
        """Wake the writer without queueing anything (its transport has control frames)."""
        if not self._has_data.is_set():
            self._has_data.set()

    def send(self, msg: Any) -> None:
        """Queue a control message (encoded now, in this connection's encoding)."""
        self.send_encoded(encode(msg, self.encoding))

    def send_encoded(self, frame: bytes) -> None:
        if self.closed:
            return
        if len(self._control) >= self.max_control:
            raise OutboxOverflow("client is not reading its replies")
        self._control.append(frame)
        self._wake()

    def offer_delta(self, frame: DeltaFrame) -> None:
        """Called by the bus for each published delta; never blocks."""
        if self.closed:
            return
        topic = frame.delta.topic
        pending = self._pending.get(topic)
        if pending is None:
            self._pending[topic] = frame
            self._wake()
            return
        older = pending.delta if isinstance(pending, DeltaFrame) else pending
        if older.epoch == frame.delta.epoch and frame.delta.seq <= older.seq:
            return  # a duplicate of what is already pending
        if older.epoch != frame.delta.epoch or frame.delta.first_seq != older.seq + 1:
            # Not contiguous (a new epoch, or a hole upstream): merging would hide the hole.
            # Send the newer delta as it is; the client sees the gap and resumes.
            self._pending[topic] = frame
        else:
            self._pending[topic] = merge_deltas(older, frame.delta)
        self.conflated += 1

    def set_snapshot_floor(self, topic: str, epoch: str, seq: int) -> None:
        """A snapshot at (epoch, seq) is being sent: drop or trim pending deltas it covers."""
        pending = self._pending.get(topic)
        if pending is None:
            return
        delta = pending.delta if isinstance(pending, DeltaFrame) else pending
        if delta.epoch != epoch or delta.seq <= seq:
            del self._pending[topic]
        elif delta.first_seq <= seq:
            self._pending[topic] = Delta(
                topic=topic, epoch=epoch, seq=delta.seq, changes=delta.changes, from_seq=seq + 1
            )

    def drop_topic(self, topic: str) -> None:
        self._pending.pop(topic, None)

    async def wait(self) -> None:
        await self._has_data.wait()

    def drain(self, max_frames: int = 512) -> list[bytes]:
        """Take up to max_frames frames: control first, then pending deltas in arrival order."""
        frames: list[bytes] = []
        control = self._control
        while control and len(frames) < max_frames:
            frames.append(control.popleft())
        pending = self._pending
        while pending and len(frames) < max_frames:
            topic = next(iter(pending))
            item = pending.pop(topic)
            if isinstance(item, DeltaFrame):
                frames.append(item.encoded(self.encoding))
            else:
                frames.append(encode(item, self.encoding))
        if not control and not pending:
            self._has_data = trio.Event()
        return frames

    def close(self) -> None:
        self.closed = True
        self._control.clear()
        self._pending.clear()
        self._wake()
