"""Per-connection outbox: the only place a frame waits before it reaches a socket.

Theory of operation
-------------------
Actors never touch sockets. Publishing a delta calls `Outbox.offer_delta` on every subscribed
connection: a synchronous, O(1) call that never blocks. The outbox sends at most one delta per
topic per drain: deltas for a topic that arrive before the connection is written are
conflated (state-topic deltas carry absolute values per key, so the merge keeps the latest
value per key and widens `from_seq..seq`). Conflation is lazy: `offer_delta` only appends the
shared DeltaFrame to the topic's pending run (publishing to 250 subscribers was spending most
of its time building 250 merged deltas that were merged again before they were sent); the
run is merged once at `drain`, and a merge that several connections need alike (same topic
and range, typical within one pass of the flusher) is encoded once for all of them
(`_encoded_run`). A run longer than MAX_RUN is folded into one delta on the spot, so memory
per connection stays bounded by its number of subscriptions, however slow the client is. Control frames (welcome, snapshot, ack, reject, error, pong) go to a bounded FIFO
that is flushed before deltas; if it overflows the connection is cut off (the client
reconnects and resumes) rather than letting it grow.

Someone drains the outbox: `drain()` returns the frames to send. With `notify` set (lean
connections) the outbox calls `notify(urgent)` when it goes from empty to non-empty, and
again with urgent=True for a control frame (a reply jumps the queue: engine/gateway/_flush.py);
without it, the connection's own writer task waits for it with `await outbox.wait()`. A delta that was never merged reuses the bytes encoded once at
publish time for all subscribers (`DeltaFrame.encoded`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import trio

from protocol import Delta, encode
from protocol.messages import Encoding

__all__ = ["DeltaFrame", "Outbox", "OutboxOverflow", "merge_deltas"]


class OutboxOverflow(Exception):
    """The client stopped reading control frames: close it with a resumable code."""


class DeltaFrame:
    """A published delta with its encodings cached (encode once, send to many)."""

    __slots__ = ("_json", "_msgpack", "delta", "merged")

    def __init__(self, delta: Delta) -> None:
        self.delta = delta
        self._json: bytes | None = None
        self._msgpack: bytes | None = None
        # Encoded merges of runs that end with this frame, by (first frame, encoding).
        self.merged: dict[tuple[DeltaFrame, Encoding], bytes] | None = None

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


MAX_RUN = 16  # pending deltas of one topic kept unmerged


def _encoded_run(run: list[DeltaFrame], encoding: Encoding) -> bytes:
    """A run of contiguous frames merged and encoded; cached on its last frame, keyed by its
    first, so every connection that drains the same run shares the bytes. (Identity, not
    seq numbers: engines in one process may reuse a topic's epoch and seqs.)"""
    first, last = run[0], run[-1]
    cache = last.merged
    if cache is None:
        cache = last.merged = {}
    key = (first, encoding)
    data = cache.get(key)
    if data is None:
        data = cache[key] = encode(_fold(run), encoding)
    return data


class Outbox:
    __slots__ = (
        "_control",
        "_has_data",
        "_notify",
        "_pending",
        "closed",
        "conflated",
        "encoding",
        "max_control",
        "subscribed",
    )

    def __init__(
        self,
        encoding: Encoding = "json",
        *,
        max_control: int = 1000,
        notify: Callable[[bool], None] | None = None,
    ) -> None:
        self.encoding: Encoding = encoding
        self._notify = notify
        self.max_control = max_control
        self._control: deque[bytes] = deque()
        # Per topic: one delta, or a run of contiguous shared frames (merged at drain).
        self._pending: dict[str, DeltaFrame | Delta | list[DeltaFrame]] = {}
        self._has_data = trio.Event()
        self.subscribed: set[str] = set()
        self.closed = False
        self.conflated = 0  # deltas merged instead of sent one by one

    def __len__(self) -> int:
        return len(self._control) + len(self._pending)

    def _wake(self, urgent: bool) -> None:
        if self._notify is not None:
            self._notify(urgent)
        elif not self._has_data.is_set():
            self._has_data.set()

    def wake(self) -> None:
        """Wake the writer without queueing anything (its transport has control frames)."""
        self._wake(True)

    def send(self, msg: Any) -> None:
        """Queue a control message (encoded now, in this connection's encoding)."""
        self.send_encoded(encode(msg, self.encoding))

    def send_encoded(self, frame: bytes) -> None:
        if self.closed:
            return
        if len(self._control) >= self.max_control:
            raise OutboxOverflow("client is not reading its replies")
        self._control.append(frame)
        self._wake(True)

    def offer_delta(self, frame: DeltaFrame) -> None:
        """Called by the bus for each published delta; never blocks."""
        if self.closed:
            return
        delta = frame.delta
        topic = delta.topic
        pending = self._pending.get(topic)
        if pending is None:
            self._pending[topic] = frame
            self._wake(False)
            return
        last = _last_delta(pending)
        if last.epoch == delta.epoch and delta.seq <= last.seq:
            return  # a duplicate of what is already pending
        self.conflated += 1
        if last.epoch != delta.epoch or delta.first_seq != last.seq + 1:
            # Not contiguous (a new epoch, or a hole upstream): merging would hide the hole.
            # Send the newer delta as it is; the client sees the gap and resumes.
            self._pending[topic] = frame
        elif isinstance(pending, list):
            pending.append(frame)
            if len(pending) >= MAX_RUN:
                self._pending[topic] = _fold(pending)
        elif isinstance(pending, DeltaFrame):
            self._pending[topic] = [pending, frame]
        else:
            self._pending[topic] = merge_deltas(pending, delta)

    def set_snapshot_floor(self, topic: str, epoch: str, seq: int) -> None:
        """A snapshot at (epoch, seq) is being sent: drop or trim pending deltas it covers."""
        pending = self._pending.get(topic)
        if pending is None:
            return
        delta = _fold(pending) if isinstance(pending, list) else (
            pending.delta if isinstance(pending, DeltaFrame) else pending
        )
        if delta.epoch != epoch or delta.seq <= seq:
            del self._pending[topic]
        elif delta.first_seq <= seq:
            self._pending[topic] = Delta(
                topic=topic, epoch=epoch, seq=delta.seq, changes=delta.changes, from_seq=seq + 1
            )
        elif isinstance(pending, list):
            self._pending[topic] = delta

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
            elif isinstance(item, list):
                frames.append(_encoded_run(item, self.encoding))
            else:
                frames.append(encode(item, self.encoding))
        if not control and not pending:
            self._has_data = trio.Event()
        return frames

    def close(self) -> None:
        self.closed = True
        self._control.clear()
        self._pending.clear()
        self._wake(True)


def _last_delta(pending: DeltaFrame | Delta | list[DeltaFrame]) -> Delta:
    if isinstance(pending, list):
        return pending[-1].delta
    return pending.delta if isinstance(pending, DeltaFrame) else pending


def _fold(run: list[DeltaFrame]) -> Delta:
    merged = run[0].delta
    for frame in run[1:]:
        merged = merge_deltas(merged, frame.delta)
    return merged
