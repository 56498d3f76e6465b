"""The in-process bus: topics with positions, bounded history, and fan-out to outboxes.

Positions. Every topic has an epoch and a seq. Topics backed by a journal stream (stock:{sku})
use the store's epoch and the stream version, so positions survive a restart and a client can
resume across it; a delta published after a batch of N events covers `from_seq..seq` (N
versions). Topics with no journal behind them get this node's boot epoch and a counter.

History. Each topic keeps its last `history` deltas. A subscriber resuming at (epoch, seq)
gets the deltas after seq if they are all in the history, nothing if it is current, and a
fresh snapshot otherwise (the caller provides snapshots; the bus only says which case).

Forgetting. A topic nobody subscribes to still gets every delta (each order publishes on
`order:{id}`, watched or not), so without forgetting, every topic ever published would keep
its history for good. Topics whose position comes from the store (an explicit epoch: the
journal's, with seq = stream version) sit in an LRU of idle topics while they have no
subscriber, refreshed by each publish and by the last unsubscribe. `forget_idle()` (the
engine calls it once a second) drops the ones idle longer than `idle_topic_s`, oldest first,
a bounded number per call; creating one beyond `max_idle_topics` drops the oldest at once.
A dropped topic is re-created at the right position by its next publish or subscribe (the
sources prepare it from the store's version), with an empty history, so a client resuming
it gets a snapshot instead of deltas. Topics on this node's own counter (epoch =
`node_epoch`: `location:`, `ops:`) are never dropped: their position exists only here and a
re-created counter would restart at 0 under the same epoch; there are few of them.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from protocol import Delta, Position

from ._outbox import DeltaFrame, Outbox, merge_deltas

__all__ = ["LocalBus", "TopicState"]


class TopicState:
    __slots__ = ("epoch", "history", "name", "seq", "stored", "subscribers", "touched")

    def __init__(self, name: str, epoch: str, seq: int, history: int) -> None:
        self.name = name
        self.epoch = epoch
        self.seq = seq
        self.history: deque[Delta] = deque(maxlen=history)
        self.subscribers: set[Outbox] = set()
        self.stored = False  # position from the store: safe to forget when idle
        self.touched = 0.0  # when it last had a subscriber or a delta (bus clock)


class LocalBus:
    def __init__(
        self,
        *,
        history: int = 256,
        idle_topic_s: float = 600.0,
        max_idle_topics: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_idle_topics < 1:
            raise ValueError("max_idle_topics must be >= 1")
        self.node_epoch = "n" + secrets.token_hex(6)
        self._history = history
        self._topics: dict[str, TopicState] = {}
        self.idle_topic_s = idle_topic_s
        self.max_idle_topics = max_idle_topics
        # Forgettable topics without subscribers, least recently touched first.
        self._idle: OrderedDict[str, TopicState] = OrderedDict()
        self._clock = clock
        self._now = clock()  # read once per forget_idle(), not per publish
        self.forgotten = 0
        # Observers see every published delta (metrics, cross-node relay, derived topics).
        self._observers: list[Callable[[Delta], None]] = []
        self.published = 0
        self.delivered = 0
        # Hands a published frame and its subscribers (as of publishing) to someone who
        # offers it to each of them later, in time slices (the gateway's flusher): publishing
        # to 250 subscribers then costs the publishing actor O(1), not 250 outbox calls.
        self.fanout: Callable[[tuple[Outbox, ...], DeltaFrame], None] | None = None

    def add_observer(self, fn: Callable[[Delta], None]) -> None:
        self._observers.append(fn)

    def topic(self, name: str, *, epoch: str | None = None, seq: int = 0) -> TopicState:
        state = self._topics.get(name)
        if state is None:
            state = TopicState(name, epoch or self.node_epoch, seq, self._history)
            self._topics[name] = state
            if epoch is not None and epoch != self.node_epoch:
                state.stored = True
                state.touched = self._now
                idle = self._idle
                idle[name] = state
                if len(idle) > self.max_idle_topics:
                    self._drop(next(iter(idle)))  # never `name`: it is the newest
        return state

    def has_topic(self, name: str) -> bool:
        """Whether `name` exists on this node: subscribed to, or published to and not forgotten."""
        return name in self._topics

    def position(self, name: str) -> Position:
        state = self._topics.get(name)
        if state is None:
            return Position(self.node_epoch, 0)
        return Position(state.epoch, state.seq)

    def publish(
        self,
        name: str,
        changes: dict[str, Any],
        *,
        epoch: str | None = None,
        seq: int | None = None,
        from_seq: int | None = None,
    ) -> Delta:
        """Publish a delta. Journal-backed topics pass their own (epoch, from_seq, seq)."""
        state = self._topics.get(name)
        if state is None:
            state = self.topic(name, epoch=epoch, seq=(from_seq - 1) if from_seq else 0)
        if epoch is not None and epoch != state.epoch:
            state.epoch = epoch
            state.history.clear()
        if seq is None:
            seq = state.seq + 1
            from_seq = None
        elif from_seq is None or from_seq == seq:
            from_seq = None
        if (from_seq or seq) != state.seq + 1:
            # The topic jumped (another node wrote, or we started mid-stream): history before
            # this point cannot be replayed contiguously.
            state.history.clear()
        delta = Delta(topic=name, epoch=state.epoch, seq=seq, changes=changes, from_seq=from_seq)
        state.seq = seq
        state.history.append(delta)
        self.published += 1
        if state.subscribers:
            frame = DeltaFrame(delta)
            if self.fanout is not None:
                self.fanout(tuple(state.subscribers), frame)
            else:
                for outbox in state.subscribers:
                    outbox.offer_delta(frame)
            self.delivered += len(state.subscribers)
        elif state.stored:
            state.touched = self._now
            self._idle.move_to_end(name)
        for observer in self._observers:
            observer(delta)
        return delta

    def subscribe(self, name: str, outbox: Outbox) -> None:
        state = self.topic(name)
        if state.stored and not state.subscribers:
            self._idle.pop(name, None)
        state.subscribers.add(outbox)
        outbox.subscribed.add(name)

    def unsubscribe(self, name: str, outbox: Outbox) -> None:
        state = self._topics.get(name)
        if state is not None and outbox in state.subscribers:
            state.subscribers.discard(outbox)
            if state.stored and not state.subscribers:
                state.touched = self._now
                self._idle[name] = state  # the newest idle topic
        outbox.subscribed.discard(name)
        outbox.drop_topic(name)

    def unsubscribe_all(self, outbox: Outbox) -> None:
        for name in list(outbox.subscribed):
            self.unsubscribe(name, outbox)

    def subscriber_count(self, name: str) -> int:
        state = self._topics.get(name)
        return len(state.subscribers) if state else 0

    def catch_up(self, name: str, resume: Position) -> Delta | bool | None:
        """What a subscriber at `resume` is missing.

        Returns True if it is current, one merged Delta covering what it missed if that is all
        in the history, or None if it must get a snapshot.
        """
        state = self._topics.get(name)
        if state is None or resume.epoch != state.epoch or resume.seq > state.seq:
            return None
        if resume.seq == state.seq:
            return True
        missed: Delta | None = None
        for delta in state.history:
            if delta.seq <= resume.seq:
                continue
            if missed is None:
                if delta.first_seq > resume.seq + 1:
                    return None  # the history does not reach back far enough
                missed = delta
            else:
                missed = merge_deltas(missed, delta)
        if missed is None:
            return None
        if missed.first_seq <= resume.seq:
            missed = Delta(
                topic=name, epoch=missed.epoch, seq=missed.seq, changes=missed.changes,
                from_seq=resume.seq + 1,
            )
        return missed

    def topics(self) -> list[str]:
        return list(self._topics)

    def idle_topics(self) -> int:
        """How many forgettable topics have no subscriber now."""
        return len(self._idle)

    def forget_idle(self, *, limit: int = 5000) -> int:
        """Drop topics idle longer than `idle_topic_s` (at most `limit`, oldest first) and any
        beyond `max_idle_topics`; their next publish or subscribe re-creates them at the
        store's position without history. Returns how many were dropped."""
        now = self._now = self._clock()
        cutoff = now - self.idle_topic_s
        idle = self._idle
        dropped = 0
        while idle and dropped < limit:
            name = next(iter(idle))
            if idle[name].touched > cutoff and len(idle) <= self.max_idle_topics:
                break
            self._drop(name)
            dropped += 1
        return dropped

    def _drop(self, name: str) -> None:
        del self._idle[name]
        del self._topics[name]
        self.forgotten += 1
