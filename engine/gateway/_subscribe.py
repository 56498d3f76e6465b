"""A client's `subscribe`: authorize the topic, then catch it up by resume or by snapshot.

Theory of operation
-------------------
The outbox joins the topic on the bus BEFORE anything is read, so no delta published from
here on is missed. Then, with `resume` (the client's last (epoch, seq)):

* nothing missed -> `resumed`, and the live deltas follow;
* the bus history still covers the gap -> `resumed` with `missed`, then one delta merging
  what was missed (conflated like any pending delta);
* otherwise (another epoch, history gone) -> a resync: a snapshot, as without `resume`.

A snapshot comes from the topic's source (`engine/gateway/_sources.py`): read models are
updated before the bus publishes, so a snapshot at (epoch, seq) never races a delta, and the
outbox drops or trims the pending deltas it covers (`set_snapshot_floor`). A source
may have to await (a cluster reading another node's data): a client that unsubscribed
meanwhile gets nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol import ErrorCode, ProtocolError, Resumed, Snapshot, Subscribe, parse_topic

from ..auth import Claims, check_topic
from ..bus import DeltaFrame, Outbox

if TYPE_CHECKING:
    from ..server import Engine

__all__ = ["subscribe"]


async def subscribe(engine: Engine, claims: Claims, outbox: Outbox, msg: Subscribe) -> None:
    """Raises ProtocolError (forbidden topic, bad name, subscription limit): nothing changed."""
    name = msg.topic
    topic = parse_topic(name)
    check_topic(claims, topic)
    limit = engine.config.outbox_max_topics
    if name not in outbox.subscribed and len(outbox.subscribed) >= limit:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"subscription limit of {limit} topics reached")
    source = engine.sources.get(topic)
    source.prepare(topic, name)
    outbox.drop_topic(name)
    engine.bus.subscribe(name, outbox)
    if msg.resume is not None:
        missed = engine.bus.catch_up(name, msg.resume)
        if missed is True:
            engine.metrics.resumes += 1
            outbox.send(Resumed(topic=name, epoch=msg.resume.epoch, seq=msg.resume.seq))
            return
        if missed is not None and missed is not False:
            engine.metrics.resumes += 1
            outbox.send(
                Resumed(
                    topic=name, epoch=missed.epoch, seq=missed.seq, missed=missed.seq - msg.resume.seq
                )
            )
            outbox.offer_delta(DeltaFrame(missed))
            return
        engine.metrics.resyncs += 1
    result = source.snapshot(topic, name)
    if not isinstance(result, tuple):
        result = await result
    epoch, seq, state = result
    if name not in outbox.subscribed:
        return  # unsubscribed while the snapshot was being made
    outbox.set_snapshot_floor(name, epoch, seq)
    outbox.send(Snapshot(topic=name, epoch=epoch, seq=seq, state=state))
