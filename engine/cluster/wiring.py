"""Plugs the cluster layer into an Engine when `config.bus` is a redis:// URL.

What the Engine does with it (engine/server.py, the "cluster" lines):

* `Engine.__init__`: `self.cluster = cluster_wiring.install(self)` after the domain plugins
  (None unless the bus is redis://). The relay registers its bus observer at once, so deltas
  published during start-up are queued, not lost.
* `Engine._services()`: the Cluster runs as a supervised child after the registry (the inbox
  server asks it) and before the timer service. `run` returns once the first connection
  attempt is over; it never waits for Redis.
* `Engine._ask` -> `cluster.ownership.ask` (commands run on the lease holder, forwarded if
  need be); `Engine._make_actor` -> `cluster.ownership.wrap` (an activation holds the lease);
  timers go through `cluster.ownership.tell_timer` (only the owner delivers).
* `Engine.readiness()` adds `health()`: Redis down is "degraded", still ready -- a node keeps
  serving its own clients from PostgreSQL. `refresh_gauges()` adds `stats()`.

Domain hooks (the inventory plugin, when present): remote `stock:` deltas update this node's
read models and near/location topics (`InventoryWiring.on_remote` + its follower task); the
position check's resync rebuilds a SKU from the journal (`InventoryWiring.resync_stock`).
`near:` topics are derived per node from `stock:` and are not relayed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from protocol import Delta, Position

from ..bridge import Bridge, ThreadBridge
from ..bus import LocalBus
from ..runtime import Registry
from ._leases import Leases
from ._owner import Ownership
from ._relay import RedisBusRelay

if TYPE_CHECKING:
    from engine.server import Engine

__all__ = ["Cluster", "install"]

log = logging.getLogger("omnitill.cluster")


class Cluster:
    """The relay, the leases and (with a registry) command ownership of one node, sharing
    one asyncio bridge."""

    def __init__(
        self,
        bus: LocalBus,
        url: str,
        *,
        node_id: str,
        bridge: Bridge | None = None,
        prefix: str = "omnitill",
        lease_ttl_ms: int = 10_000,
        on_resync: Callable[[str, Position], Awaitable[None]] | None = None,
        on_remote: Callable[[Delta], None] | None = None,
        on_lease_lost: Callable[[str, int], None] | None = None,
        relay_filter: Callable[[Delta], bool] | None = None,
        registry: Registry | None = None,
        codec: dict[str, Callable[..., Any]] | None = None,
        forward_timeout_s: float = 2.0,
        check_interval: float = 2.0,
    ) -> None:
        self._own_bridge = bridge is None
        self.bridge: Bridge = bridge if bridge is not None else ThreadBridge()
        self.relay = RedisBusRelay(
            bus, url, node_id=node_id, bridge=self.bridge, prefix=prefix,
            on_resync=on_resync, on_remote=on_remote, relay_filter=relay_filter,
            check_interval=check_interval,
        )
        self._on_lease_lost = on_lease_lost
        self.leases = Leases(
            url, node_id=node_id, bridge=self.bridge, prefix=prefix, ttl_ms=lease_ttl_ms,
            on_lost=self._lease_lost,
        )
        self.ownership: Ownership | None = None
        if registry is not None:
            codec = codec or {}
            self.ownership = Ownership(
                registry, self.leases, url, node_id=node_id, bridge=self.bridge, prefix=prefix,
                decode_msg=codec["decode_msg"], encode_msg=codec["encode_msg"],
                encode_outcome=codec["encode_outcome"], decode_outcome=codec["decode_outcome"],
                forward_timeout_s=forward_timeout_s,
            )
        # Extra long-lived tasks of domain hooks (e.g. the inventory follower).
        self.tasks: list[Callable[..., Awaitable[None]]] = []

    def _lease_lost(self, key: str, token: int) -> None:
        if self.ownership is not None:
            self.ownership.on_lease_lost(key, token)
        if self._on_lease_lost is not None:
            self._on_lease_lost(key, token)

    def health(self) -> dict[str, Any]:
        healthy = self.relay.healthy and (self.ownership is None or self.ownership.healthy)
        return {
            "cluster_healthy": healthy,
            "degraded": not healthy,
            "cluster_error": self.relay.last_error,
        }

    def stats(self) -> dict[str, Any]:
        out = {f"relay_{k}": v for k, v in self.relay.stats().items()}
        out["leases_held"] = len(self.leases.held())
        out["leases_lost"] = self.leases.lost
        if self.ownership is not None:
            out.update({f"owner_{k}": v for k, v in self.ownership.stats().items()})
        return out

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if isinstance(self.bridge, ThreadBridge):
            self.bridge.start()
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.relay.run)
                await nursery.start(self.leases.keep_alive)
                if self.ownership is not None:
                    await nursery.start(self.ownership.run)
                for task in self.tasks:
                    await nursery.start(task)
                task_status.started()
        finally:
            with trio.CancelScope(shield=True):
                # Graceful stop: hand our keys over at once instead of after the lease TTL.
                with trio.move_on_after(1.0):
                    await self.leases.release_all()
                await self.leases.aclose()
                if self._own_bridge and isinstance(self.bridge, ThreadBridge):
                    await self.bridge.aclose()


def _codec(engine: Engine) -> dict[str, Callable[..., Any]]:
    """How a forwarded command crosses Redis: CommandMsg out, Outcome back (msgpack)."""
    from ..commands import CommandMsg, Outcome

    enc = msgspec.msgpack.Encoder()
    dec_outcome = msgspec.msgpack.Decoder(Outcome)

    def encode_msg(msg: Any) -> dict[str, Any] | None:
        if not isinstance(msg, CommandMsg):
            return None  # only commands are forwarded; anything else runs locally
        return {
            "op_id": msg.op_id, "name": msg.name, "args": msgspec.to_builtins(msg.args),
            "payload_hash": msg.payload_hash, "now": msg.now, "actor": msg.actor,
        }

    def decode_msg(req: Any) -> CommandMsg:
        args_type = engine.dispatcher.spec(req.name).args_type
        return CommandMsg(
            op_id=req.op_id, name=req.name, args=msgspec.convert(req.args, args_type),
            payload_hash=req.payload_hash, now=req.now, actor=req.actor,
        )

    return {
        "encode_msg": encode_msg,
        "decode_msg": decode_msg,
        "encode_outcome": enc.encode,
        "decode_outcome": dec_outcome.decode,
    }


def _split_prefix(url: str) -> tuple[str, str]:
    """`redis://host/0?prefix=name` -> (the URL without `prefix`, "name"); default "omnitill".

    Clusters (or tests) that share one Redis keep apart by key prefix."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "prefix"), "omnitill")
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


def install(engine: Engine) -> Cluster | None:
    """A Cluster for this engine if `config.bus` is a redis:// URL, else None."""
    url = engine.config.bus
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    url, prefix = _split_prefix(url)
    bus = engine.bus
    inventory = getattr(engine, "inventory", None)
    registry = getattr(engine, "registry", None)
    cluster: Cluster | None = None

    def on_remote(delta: Delta) -> None:
        if inventory is not None and delta.topic.startswith("stock:"):
            inventory.on_remote(delta)

    async def on_resync(topic: str, pos: Position) -> None:
        assert cluster is not None
        try:
            if inventory is not None and topic.startswith("stock:"):
                await inventory.resync_stock(topic[len("stock:"):])
                return
        except Exception:
            log.exception("resync of %s failed; subscribers resync from a snapshot", topic)
        cluster.relay.jump(topic, pos)

    def relay_filter(delta: Delta) -> bool:
        # Only journal-positioned topics; near:* is derived on every node from stock:*.
        return delta.epoch != bus.node_epoch and not delta.topic.startswith("near:")

    cluster = Cluster(
        bus, url, node_id=engine.config.node_id, prefix=prefix,
        check_interval=float(os.environ.get("OMNITILL_POSITION_CHECK_S", "2.0")),
        lease_ttl_ms=int(os.environ.get("OMNITILL_LEASE_TTL_MS", "10000")),
        on_remote=on_remote, on_resync=on_resync, relay_filter=relay_filter,
        registry=registry, codec=_codec(engine) if registry is not None else None,
        forward_timeout_s=float(os.environ.get("OMNITILL_FORWARD_TIMEOUT_S", "2.0")),
    )
    if inventory is not None:
        inventory.following = True
        inventory.publish_quiet = cluster.relay.publish_quiet
        cluster.tasks.append(inventory.follow_remote)
        engine.dispatcher.on_route_miss = inventory.wait_remote_refs
    return cluster
