"""Actor ownership leases with fencing tokens, against the real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
from cluster_helpers import REDIS_URL, eventually

from engine.bridge import ThreadBridge
from engine.cluster import ClusterUnavailable, Leases


@pytest.fixture
async def pair(
    redis_prefix: str, bridge: ThreadBridge
) -> AsyncIterator[tuple[Leases, Leases, list[tuple[str, int]]]]:
    lost: list[tuple[str, int]] = []
    a = Leases(REDIS_URL, node_id="a", prefix=redis_prefix, bridge=bridge, ttl_ms=1000,
               margin_ms=50, on_lost=lambda k, t: lost.append((k, t)))
    b = Leases(REDIS_URL, node_id="b", prefix=redis_prefix, bridge=bridge, ttl_ms=1000,
               margin_ms=50)
    async with a, b:
        yield a, b, lost


async def test_one_owner_and_growing_fencing_tokens(
    pair: tuple[Leases, Leases, list[tuple[str, int]]],
) -> None:
    a, b, _ = pair
    t1 = await a.acquire("sku:1")
    assert t1 is not None
    assert await b.acquire("sku:1") is None
    assert a.owner("sku:1") == t1
    assert b.owner("sku:1") is None
    assert await b.holder("sku:1") == ("a", t1)
    assert await a.acquire("sku:1") == t1  # ours already: renewed, same token
    assert await b.renew("sku:1", t1) is False  # b cannot renew a's lease

    assert await a.release("sku:1", t1)
    assert a.owner("sku:1") is None
    t2 = await b.acquire("sku:1")
    assert t2 is not None and t2 > t1
    assert await a.renew("sku:1", t1) is False  # the old token is fenced off
    assert await b.release("sku:1", t1) is False  # a wrong token releases nothing
    assert await b.holder("sku:1") == ("b", t2)
    assert sorted(b.held()) == ["sku:1"]


async def test_a_lease_not_renewed_is_lost_locally_before_redis_gives_it_away(
    pair: tuple[Leases, Leases, list[tuple[str, int]]],
) -> None:
    a, b, lost = pair
    t1 = await a.acquire("order:9")
    assert t1 is not None
    # by our own clock the lease ends first; Redis still holds it (b cannot take it yet)
    await eventually(lambda: a.owner("order:9") is None)
    assert lost == [("order:9", t1)]
    assert await b.acquire("order:9") is None
    # after Redis expired it, b gets it with a larger token; a's late renew fails
    t2: list[int] = []

    async def b_takes_over() -> bool:
        got = await b.acquire("order:9")
        if got is not None:
            t2.append(got)
        return bool(t2)

    with trio.fail_after(6):
        while not await b_takes_over():
            await trio.sleep(0.02)
    assert t2[0] > t1
    assert await a.renew("order:9", t1) is False


async def test_keep_alive_holds_leases_past_their_ttl(
    pair: tuple[Leases, Leases, list[tuple[str, int]]],
) -> None:
    a, b, lost = pair
    async with trio.open_nursery() as n:
        await n.start(a.keep_alive)
        token = await a.acquire("sku:keep")
        assert token is not None
        ends = trio.current_time() + 2.5  # well past the TTL (1 s): renewals kept it
        while trio.current_time() < ends:
            assert a.owner("sku:keep") == token
            assert await b.acquire("sku:keep") is None
            await trio.sleep(0.05)
        n.cancel_scope.cancel()
    assert lost == []


async def test_redis_unreachable_raises_cluster_unavailable(bridge: ThreadBridge) -> None:
    leases = Leases("redis://127.0.0.1:1/0", node_id="a", bridge=bridge, connect_timeout=0.2)
    async with leases:
        with pytest.raises(ClusterUnavailable):
            await leases.acquire("sku:1")
    with pytest.raises(ValueError):
        Leases(REDIS_URL, node_id="a:b")
