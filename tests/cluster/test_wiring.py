"""cluster.wiring: what the Engine calls when config.bus is a redis:// URL."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import trio
from cluster_helpers import REDIS_URL, eventually

from engine.bus import LocalBus
from engine.cluster.wiring import Cluster, install
from engine.config import Config


def fake_engine(bus_url: str) -> Any:
    return SimpleNamespace(config=Config(bus=bus_url, node_id="n1"), bus=LocalBus())


def test_install_only_for_redis_urls() -> None:
    assert install(fake_engine("local")) is None
    cluster = install(fake_engine(REDIS_URL))
    assert isinstance(cluster, Cluster)


async def test_cluster_runs_relay_and_leases_on_one_bridge(redis_prefix: str) -> None:
    a = Cluster(LocalBus(), REDIS_URL, node_id="a", prefix=redis_prefix, lease_ttl_ms=1500)
    b = Cluster(LocalBus(), REDIS_URL, node_id="b", prefix=redis_prefix, lease_ttl_ms=1500)
    async with trio.open_nursery() as n:
        await n.start(a.run)
        await n.start(b.run)
        assert a.health() == {"cluster_healthy": True, "degraded": False, "cluster_error": None}
        token = await a.leases.acquire("sku:1")
        assert token is not None and await b.leases.acquire("sku:1") is None
        a.relay.bus.publish("stock:1", {"L": 1}, epoch="E" * 16, seq=1)
        await eventually(lambda: b.relay.bus.position("stock:1").seq == 1)
        await trio.sleep(1.7)  # past the TTL: keep_alive renewed it
        assert a.leases.owner("sku:1") == token
        assert a.stats()["leases_held"] == 1
        n.cancel_scope.cancel()
