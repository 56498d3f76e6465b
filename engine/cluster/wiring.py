"""Plugs the cluster layer into an Engine when `config.bus` is a redis:// URL.

What the Engine has to do (three lines in engine/server.py)::

    # Engine.__init__, after the plugins:
    from .cluster import wiring as cluster_wiring
    self.cluster = cluster_wiring.install(self)          # None unless bus is redis://

    # Engine.run / run_offline, right after `await nursery.start(self.timers.run)`:
    if self.cluster is not None:
        await nursery.start(self.cluster.run)            # never waits for Redis to be up

    # Engine.readiness(): add `**self.cluster.health()` to the details (degraded != not ready:
    # a node with Redis down still serves its own writes).

`install` registers the relay as a bus observer at once, so deltas published during start-up
are queued, not lost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from protocol import Delta, Position

from ..bridge import Bridge, ThreadBridge
from ..bus import LocalBus
from ._leases import Leases
from ._relay import RedisBusRelay

if TYPE_CHECKING:
    from engine.server import Engine

__all__ = ["Cluster", "install"]


class Cluster:
    """The relay and the leases of one node, sharing one asyncio bridge."""

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
    ) -> None:
        self._own_bridge = bridge is None
        self.bridge: Bridge = bridge if bridge is not None else ThreadBridge()
        self.relay = RedisBusRelay(
            bus, url, node_id=node_id, bridge=self.bridge, prefix=prefix,
            on_resync=on_resync, on_remote=on_remote,
        )
        self.leases = Leases(
            url, node_id=node_id, bridge=self.bridge, prefix=prefix, ttl_ms=lease_ttl_ms,
            on_lost=on_lease_lost,
        )

    def health(self) -> dict[str, Any]:
        return {"cluster_healthy": self.relay.healthy, "cluster_error": self.relay.last_error}

    def stats(self) -> dict[str, Any]:
        out = {f"relay_{k}": v for k, v in self.relay.stats().items()}
        out["leases_held"] = len(self.leases.held())
        out["leases_lost"] = self.leases.lost
        return out

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if isinstance(self.bridge, ThreadBridge):
            self.bridge.start()
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.relay.run)
                await nursery.start(self.leases.keep_alive)
                task_status.started()
        finally:
            with trio.CancelScope(shield=True):
                await self.leases.aclose()
                if self._own_bridge and isinstance(self.bridge, ThreadBridge):
                    await self.bridge.aclose()


def install(engine: Engine) -> Cluster | None:
    """A Cluster for this engine if `config.bus` is a redis:// URL, else None."""
    url = engine.config.bus
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    return Cluster(engine.bus, url, node_id=engine.config.node_id)
