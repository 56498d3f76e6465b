"""Topic sources: who can produce a snapshot of a topic and its current position.

The gateway asks a source for a snapshot when a subscriber is new or resumes outside the
history window. Sources for local read models answer synchronously, so no delta can slip in
between `bus.subscribe` and the snapshot; asynchronous sources are handled by trimming pending
deltas below the snapshot position (Outbox.set_snapshot_floor).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol

from protocol import ErrorCode, ProtocolError
from protocol.topics import Topic

__all__ = ["SnapshotResult", "TopicSource", "TopicSources"]

SnapshotResult = tuple[str, int, dict[str, Any]]  # (epoch, seq, state)


class TopicSource(Protocol):
    def prepare(self, topic: Topic, name: str) -> None:
        """Validate (raise unknown_topic/not_found) and make sure the bus knows its position."""
        ...

    def snapshot(self, topic: Topic, name: str) -> SnapshotResult | Awaitable[SnapshotResult]: ...

    def released(self, name: str) -> None:
        """The last subscriber of `name` on this node left (derived topics may stop work)."""
        ...


class TopicSources:
    def __init__(self) -> None:
        self._by_type: dict[type, TopicSource] = {}

    def register(self, topic_type: type, source: TopicSource) -> None:
        self._by_type[topic_type] = source

    def get(self, topic: Topic) -> TopicSource:
        source = self._by_type.get(type(topic))
        if source is None:
            raise ProtocolError(
                ErrorCode.UNKNOWN_TOPIC, f"topic kind of {topic.name!r} is not served yet"
            )
        return source
