"""Cross-node fan-out: mirror this node's bus deltas to Redis, apply the other nodes' deltas.

Theory of operation
-------------------
Positions are already global for the topics worth relaying: a stock topic's (epoch, seq) is
the journal's epoch and the stream's version, the same on every node. So the relay forwards
deltas with their (epoch, from_seq, seq) untouched, and a remote delta is published into the
local `LocalBus` at exactly those positions; local subscribers cannot tell a remote delta from
a local one, and a client can resume on any node. Topics with node-local positions (the bus's
boot epoch: ops metrics, per-node counters) are not relayed (`relay_filter`).

Out: the relay is a bus observer (`observe`, synchronous, called inside `LocalBus.publish`).
It puts the delta on a bounded channel and never blocks the publisher; a full channel drops
the delta (counted) -- the position check below repairs that on the other nodes. The
publisher task takes everything queued, groups it per shard channel (`{prefix}:bus:{n}`, topic
-> crc32 % shards) and PUBLISHes it in one pipeline: one bridge crossing per batch.

In: the subscriber task owns the Redis connection. It subscribes to every shard, reads
messages in batches (one crossing per batch, or per second when idle), skips its own, and
applies each delta: contiguous -> publish; already seen -> drop; a hole (first_seq > local seq
+ 1) or another epoch -> publish anyway (the local bus and every subscriber see the jump, and
clients resync from a snapshot, invariant 4) and report the topic to `on_resync`.

Silent loss (pub/sub is fire-and-forget; a reconnect loses whatever was sent meanwhile) is
caught by the position check: every `check_interval` each node HSETs the latest position of
every topic it published to the hash `{prefix}:pos`, then HMGETs the positions of the topics it
knows. A topic behind the hash at two checks in a row (once could be a delta still in flight)
is resynced: `on_resync(topic, position)` if given (refresh the source from the journal, then
publish), else the relay publishes an empty delta at the remote position so subscribers see the
hole and resync. A reconnect triggers a check at once.

Redis down: `healthy` turns False, every local publish and subscriber keeps working (this
node serves its own writes), the subscriber reconnects with exponential back-off, and the
first check after the reconnect repairs what was missed.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import trio

from protocol import Delta, Position

from ..bridge import Bridge, ThreadBridge
from ..bus import LocalBus
from . import _redis as r

__all__ = ["RedisBusRelay"]

log = logging.getLogger("omnitill.cluster.relay")

_READ_BATCH = 512
_PUBLISH_BATCH = 1024
_HMGET_CHUNK = 1000


class _Wire(msgspec.Struct, array_like=True, frozen=True):
    """One delta on the wire (msgpack, positional: small and fast)."""

    origin: str
    topic: str
    epoch: str
    seq: int
    from_seq: int | None
    changes: dict[str, Any]


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(list[_Wire]).decode


class RedisBusRelay:
    """Relay one node's LocalBus through Redis. Construct, then `await nursery.start(relay.run)`.

    The constructor registers the bus observer, so deltas published before `run` starts are
    queued (up to `queue_size`) rather than lost.
    """

    def __init__(
        self,
        bus: LocalBus,
        url: str,
        *,
        node_id: str,
        bridge: Bridge | None = None,
        prefix: str = "omnitill",
        shards: int = 16,
        check_interval: float = 2.0,
        queue_size: int = 10_000,
        connect_timeout: float = 2.0,
        reconnect_delay: tuple[float, float] = (0.1, 5.0),
        relay_filter: Callable[[Delta], bool] | None = None,
        on_resync: Callable[[str, Position], Awaitable[None]] | None = None,
        on_remote: Callable[[Delta], None] | None = None,
    ) -> None:
        if shards < 1:
            raise ValueError("shards must be >= 1")
        self.bus = bus
        self.node_id = node_id
        self._url = url
        self._own_bridge = bridge is None
        self._bridge: Bridge = bridge if bridge is not None else ThreadBridge()
        self._prefix = prefix
        self._shards = shards
        self._channels = [f"{prefix}:bus:{i}" for i in range(shards)]
        self.pos_key = f"{prefix}:pos"
        self._check_interval = check_interval
        self._timeout = connect_timeout
        self._delay_min, self._delay_max = reconnect_delay
        self._filter = relay_filter or self._global_positions
        self._on_resync = on_resync
        self._on_remote = on_remote
        self._send, self._recv = trio.open_memory_channel[Delta](queue_size)
        self._client: Any = None  # redis.asyncio.Redis, only touched through the bridge
        self._connected = False
        self._publish_ok = True
        self._applying = False  # set while a remote delta is published locally: don't echo it
        self._dirty: dict[str, tuple[str, int]] = {}  # positions to HSET at the next check
        self._suspects: dict[str, Position] = {}  # behind at the last check
        self._pending_resync: dict[str, Position] = {}  # holes seen on receipt
        self._check_now = trio.Event()
        self.last_error: str | None = None
        # metrics
        self.sent = 0
        self.received = 0
        self.applied = 0
        self.duplicates = 0
        self.gaps = 0
        self.resyncs = 0
        self.dropped = 0
        self.reconnects = 0
        self.checks = 0
        bus.add_observer(self.observe)

    # --- status -----------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """Connected to Redis and the last publish/check worked. False = degraded, local only."""
        return self._connected and self._publish_ok

    def stats(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "sent": self.sent,
            "received": self.received,
            "applied": self.applied,
            "duplicates": self.duplicates,
            "gaps": self.gaps,
            "resyncs": self.resyncs,
            "dropped": self.dropped,
            "reconnects": self.reconnects,
            "checks": self.checks,
            "queue_depth": self._send.statistics().current_buffer_used,
        }

    def _global_positions(self, delta: Delta) -> bool:
        return delta.epoch != self.bus.node_epoch

    # --- out --------------------------------------------------------------------------------

    def observe(self, delta: Delta) -> None:
        """Bus observer: queue a local delta for Redis. Never blocks."""
        if self._applying or not self._filter(delta):
            return
        self._dirty[delta.topic] = (delta.epoch, delta.seq)
        try:
            self._send.send_nowait(delta)
        except trio.WouldBlock:
            self.dropped += 1  # the position check repairs the other nodes

    def _channel(self, topic: str) -> str:
        return self._channels[zlib.crc32(topic.encode()) % self._shards]

    async def _publisher(self) -> None:
        async for first in self._recv:
            batch = [first]
            while len(batch) < _PUBLISH_BATCH:
                try:
                    batch.append(self._recv.receive_nowait())
                except trio.WouldBlock:
                    break
            client = self._client
            if client is None:
                self.dropped += len(batch)
                continue
            per_channel: dict[str, list[_Wire]] = {}
            for d in batch:
                per_channel.setdefault(self._channel(d.topic), []).append(
                    _Wire(self.node_id, d.topic, d.epoch, d.seq, d.from_seq, d.changes)
                )
            messages = [(ch, _encode(wires)) for ch, wires in per_channel.items()]
            try:
                await self._bridge.run(r.publish_many, client, messages)
            except r.REDIS_ERRORS as exc:
                self._degraded("publish", exc)
                self.dropped += len(batch)
            else:
                self._publish_ok = True
                self.sent += len(batch)

    # --- in ---------------------------------------------------------------------------------

    async def _subscriber(self, task_status: trio.TaskStatus[None]) -> None:
        delay = self._delay_min
        started = False
        while True:
            client: Any = None
            pubsub: Any = None
            try:
                client = await self._bridge.run(r.make_client, self._url, self._timeout)
                pubsub = await self._bridge.run(r.open_pubsub, client, self._channels)
            except r.REDIS_ERRORS as exc:
                self._degraded("connect", exc)
                if client is not None:
                    await self._quietly(r.close_client, client)
            else:
                if self.reconnects == 0:
                    log.info("relay %s connected to Redis", self.node_id)
                else:
                    log.warning("relay %s reconnected to Redis", self.node_id)
                self.reconnects += 1
                self._client, self._connected, self._publish_ok = client, True, True
                self.last_error = None
                delay = self._delay_min
                self._check_now.set()  # whatever was sent while we were away is lost: check
                if not started:
                    started = True
                    task_status.started()
                try:
                    while True:
                        raw = await self._bridge.run(r.read_messages, pubsub, _READ_BATCH, 1.0)
                        for data in raw:
                            self._on_message(data)
                except r.REDIS_ERRORS as exc:
                    self._degraded("subscribe", exc)
                finally:
                    self._client, self._connected = None, False
                    with trio.CancelScope(shield=True):
                        await self._quietly(r.close_pubsub, pubsub)
                        await self._quietly(r.close_client, client)
            if not started:  # never block the engine's start-up on Redis
                started = True
                task_status.started()
            await trio.sleep(delay)
            delay = min(delay * 2, self._delay_max)

    def _on_message(self, data: bytes) -> None:
        try:
            wires = _decode(data)
        except msgspec.DecodeError:
            log.warning("relay %s: undecodable message dropped", self.node_id)
            return
        for w in wires:
            if w.origin == self.node_id:
                continue
            self.received += 1
            self._apply_remote(w)

    def _apply_remote(self, w: _Wire) -> None:
        local = self.bus.position(w.topic)
        first = w.seq if w.from_seq is None else w.from_seq
        from_seq = w.from_seq
        if local.epoch == w.epoch:
            if w.seq <= local.seq:
                self.duplicates += 1
                return
            if first > local.seq + 1:
                self.gaps += 1
                self._want_resync(w.topic, Position(w.epoch, w.seq))
            elif first <= local.seq:  # overlaps what we have: values are absolute, trim it
                from_seq = local.seq + 1
        elif local.epoch != self.bus.node_epoch:
            self.gaps += 1  # another history (store re-created): subscribers must resync
            self._want_resync(w.topic, Position(w.epoch, w.seq))
        # else: a topic this node never had a position for: adopt the remote one
        delta = self._publish_local(w.topic, w.changes, w.epoch, w.seq, from_seq)
        self.applied += 1
        self._suspects.pop(w.topic, None)
        if self._on_remote is not None:
            self._on_remote(delta)

    def publish_quiet(
        self, topic: str, changes: dict[str, Any], *, epoch: str, seq: int, from_seq: int | None
    ) -> Delta:
        """Publish on the local bus without relaying it (a resync's repair of this node)."""
        return self._publish_local(topic, changes, epoch, seq, from_seq)

    def jump(self, topic: str, pos: Position) -> None:
        """The default repair: an empty delta at `pos`; subscribers see the hole and resync."""
        if self._still_behind(topic, pos):
            self._publish_local(topic, {}, pos.epoch, pos.seq, None)

    def _publish_local(
        self, topic: str, changes: dict[str, Any], epoch: str, seq: int, from_seq: int | None
    ) -> Delta:
        self._applying = True
        try:
            return self.bus.publish(topic, changes, epoch=epoch, seq=seq, from_seq=from_seq)
        finally:
            self._applying = False

    # --- the position check -----------------------------------------------------------------

    def _want_resync(self, topic: str, pos: Position) -> None:
        self._pending_resync[topic] = pos

    async def _checker(self) -> None:
        while True:
            with trio.move_on_after(self._check_interval):
                await self._check_now.wait()
            self._check_now = trio.Event()
            if self._client is None:
                continue
            try:
                await self.check_positions()
            except r.REDIS_ERRORS as exc:
                self._degraded("position check", exc)

    async def check_positions(self) -> list[str]:
        """One position check now. Returns the topics it resynced."""
        client = self._client
        if client is None:
            return []
        self.checks += 1
        if self._dirty:
            dirty, self._dirty = self._dirty, {}
            try:
                await self._bridge.run(
                    r.hset, client, self.pos_key, {t: f"{e}:{s}" for t, (e, s) in dirty.items()}
                )
            except BaseException:
                for t, es in dirty.items():  # keep them for the next check
                    self._dirty.setdefault(t, es)
                raise
        topics = self.bus.topics()
        behind: dict[str, Position] = {}
        for i in range(0, len(topics), _HMGET_CHUNK):
            chunk = topics[i : i + _HMGET_CHUNK]
            values = await self._bridge.run(r.hmget, client, self.pos_key, chunk)
            for topic, raw in zip(chunk, values, strict=True):
                if raw is None:
                    continue
                epoch, _, seq_s = raw.decode().rpartition(":")
                remote = Position(epoch, int(seq_s))
                # Only within one history: an entry of another epoch may be a leftover of a
                # re-created store; real epoch changes arrive as deltas.
                if self._still_behind(topic, remote):
                    behind[topic] = remote
        self._publish_ok = True
        # Behind twice in a row (not merely a delta in flight) -> resync.
        resync = {
            t: pos for t, pos in behind.items()
            if (old := self._suspects.get(t)) is not None and self._still_behind(t, old)
        }
        self._suspects = {t: pos for t, pos in behind.items() if t not in resync}
        resync.update(self._pending_resync)
        self._pending_resync = {}
        for topic, pos in resync.items():
            await self._resync(topic, pos)
        return sorted(resync)

    def _still_behind(self, topic: str, remote: Position) -> bool:
        local = self.bus.position(topic)
        return local.epoch == remote.epoch and local.seq < remote.seq

    async def _resync(self, topic: str, pos: Position) -> None:
        self.resyncs += 1
        log.info("relay %s: resync %s at %s:%s", self.node_id, topic, pos.epoch, pos.seq)
        if self._on_resync is not None:
            await self._on_resync(topic, pos)
        else:
            # Nothing to replay from: jump to the remote position with an empty delta; every
            # subscriber sees the hole and resyncs from a snapshot (invariant 4).
            self.jump(topic, pos)

    # --- lifecycle --------------------------------------------------------------------------

    def _degraded(self, what: str, exc: BaseException) -> None:
        if self.healthy:
            log.warning("relay %s degraded (%s): %r", self.node_id, what, exc)
        self.last_error = f"{what}: {exc!r}"
        if what in ("publish", "position check"):
            self._publish_ok = False
        else:
            self._connected = False

    async def _quietly(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        try:
            await self._bridge.run(fn, *args)
        except r.REDIS_OR_CLOSED:
            pass

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Publisher, subscriber (with reconnects) and position check, until cancelled.

        `started` once the first connection attempt is over: subscribed if Redis is up,
        degraded (and retrying) if it is not -- the engine never waits for Redis to serve.
        """
        if isinstance(self._bridge, ThreadBridge):
            self._bridge.start()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._publisher)
                nursery.start_soon(self._checker)
                await nursery.start(self._subscriber)
                task_status.started()
        finally:
            self._client, self._connected = None, False
            if self._own_bridge and isinstance(self._bridge, ThreadBridge):
                await self._bridge.aclose()
