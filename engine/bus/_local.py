"""The in-process bus: topics with positions, bounded history, and fan-out to outboxes.

Positions. Every topic has an epoch and a seq. Topics backed by a journal stream (stock:{sku})
use the store's epoch and the stream version, so positions survive a restart and a client can
resume across it; a delta published after a batch of N events covers `from_seq..seq` (N
versions). Topics with no journal behind them get this node's boot epoch and a counter.

History. Each topic keeps its last `history` deltas. A subscriber resuming at (epoch, seq)
gets the deltas after seq if they are all in the history, nothing if it is current, and a
fresh snapshot otherwise (the caller provides snapshots; the bus only says which case).
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable
from typing import Any

from protocol import Delta, Position

from ._outbox import DeltaFrame, Outbox, merge_deltas

__all__ = ["LocalBus", "TopicState"]


class TopicState:
    __slots__ = ("epoch", "history", "name", "seq", "subscribers")

    def __init__(self, name: str, epoch: str, seq: int, history: int) -> None:
        self.name = name
        self.epoch = epoch
        self.seq = seq
        self.history: deque[Delta] = deque(maxlen=history)
        self.subscribers: set[Outbox] = set()


class LocalBus:
    def __init__(self, *, history: int = 256) -> None:
        self.node_epoch = "n" + secrets.token_hex(6)
        self._history = history
        self._topics: dict[str, TopicState] = {}
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
        return state

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
        for observer in self._observers:
            observer(delta)
        return delta

    def subscribe(self, name: str, outbox: Outbox) -> None:
        self.topic(name).subscribers.add(outbox)
        outbox.subscribed.add(name)

    def unsubscribe(self, name: str, outbox: Outbox) -> None:
        state = self._topics.get(name)
        if state is not None:
            state.subscribers.discard(outbox)
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

    def forget_idle(self) -> int:
        """Drop topics with no subscribers (their positions are re-learned on next publish)."""
        idle = [n for n, s in self._topics.items() if not s.subscribers and not s.history]
        for n in idle:
            del self._topics[n]
        return len(idle)
