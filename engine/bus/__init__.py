"""Topics, positions, history and per-connection outboxes."""

from ._local import LocalBus, TopicState
from ._outbox import DeltaFrame, Outbox, OutboxOverflow, merge_deltas

__all__ = ["DeltaFrame", "LocalBus", "Outbox", "OutboxOverflow", "TopicState", "merge_deltas"]
