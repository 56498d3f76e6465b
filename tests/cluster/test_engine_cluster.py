"""Several real Engines in one process on one PostgreSQL schema and one Redis (key prefix):
cross-node fan-out at the same positions, forwarding to the owner, a stale owner stopped by
the journal, the position check repairing a lost relay message, Redis down and back."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio
from cluster_helpers import PG_DSN, REDIS_URL, PrivateRedis, eventually

from actors.inventory import stock_view
from actors.inventory.shell import load_pool
from clients.python import Client, CommandRejected, open_client
from engine.cluster.wiring import _split_prefix
from engine.config import Config
from engine.server import Engine, _split_schema


def _cfg(data_dir: Path, store: str, bus: str, node: str, demo: str | None) -> Config:
    return Config(port=0, data_dir=data_dir, store=store, bus=bus, node_id=node, demo=demo,
                  demo_scale=0.05, log_level="WARNING")


@asynccontextmanager
async def cluster(
    n: int, store: str, bus: str, data_dir: Path
) -> AsyncIterator[list[Engine]]:
    async with trio.open_nursery() as nursery:
        engines: list[Engine] = []
        for i in range(1, n + 1):  # the first one seeds the (fresh) schema
            engine = Engine(_cfg(data_dir, store, bus, f"n{i}", "apparel" if i == 1 else None))
            await nursery.start(engine.run)
            engines.append(engine)
        try:
            yield engines
        finally:
            for engine in engines:
                engine.stop()


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNITILL_POSITION_CHECK_S", "0.2")
    monkeypatch.setenv("OMNITILL_LEASE_TTL_MS", "1500")


def ws(engine: Engine) -> str:
    return f"ws://127.0.0.1:{engine.bound_port}/ws"


def token(engine: Engine) -> str:
    return engine.signer.mint("admin", sub="cluster-test", location=None, ttl_s=600)  # type: ignore[arg-type]


def pick(engine: Engine) -> tuple[str, str]:
    """A SKU with a stock row, and that row's location."""
    views = engine.inventory.views  # type: ignore[attr-defined]
    for sku, rows in sorted(views.stock.items()):
        if rows:
            return sku, sorted(rows)[0]
    raise AssertionError("no stock seeded")


async def make_available(client: Client, sku: str, loc: str, n: int) -> None:
    await client.command("stock.set_safety", {"sku": sku, "location_id": loc, "safety_stock": 0})
    await client.command("stock.count", {"sku": sku, "location_id": loc, "counted": n})


def test_store_and_bus_urls_carry_schema_and_prefix() -> None:
    assert _split_schema("postgresql://u@h:5432/db?schema=s1&sslmode=disable") == (
        "postgresql://u@h:5432/db?sslmode=disable", "s1")
    assert _split_schema("postgresql://u@h/db") == ("postgresql://u@h/db", "public")
    assert _split_prefix("redis://h:6379/0?prefix=p1") == ("redis://h:6379/0", "p1")
    assert _split_prefix("redis://h:6379/0") == ("redis://h:6379/0", "omnitill")


async def test_cross_node_fanout_forwarding_and_resume(
    pg_schema: str, redis_prefix: str, tmp_path: Path, fast: None
) -> None:
    store = f"{PG_DSN}?schema={pg_schema}"
    async with cluster(2, store, f"{REDIS_URL}?prefix={redis_prefix}", tmp_path) as (a, b):
        sku, loc = pick(a)
        topic = f"stock:{sku}"
        async with open_client(ws(a), token(a)) as ca, open_client(ws(b), token(b)) as cb:
            va, vb = await ca.subscribe(topic), await cb.subscribe(topic)
            assert (va.epoch, va.seq) == (vb.epoch, vb.seq)
            await make_available(ca, sku, loc, 5)  # a takes the lease of sku:{sku}
            await eventually(lambda: vb.seq == va.seq and vb.state == va.state)

            # A command through b is forwarded to the owner a; b sees the change at the
            # owner's position; a release by hold id through b routes via b's follower.
            hold = await cb.command("hold.place", {"sku": sku, "location_id": loc, "qty": 2})
            assert b.cluster.ownership.forwarded >= 1
            assert a.cluster.ownership.served >= 1
            await eventually(lambda: vb.seq == va.seq and vb.state[loc]["reserved"] == 2)
            views_b = b.inventory.views  # type: ignore[attr-defined]
            await eventually(lambda: f"hold:{hold['hold_id']}" in views_b.locations.get(loc, {}))
            await cb.command("hold.release", {"hold_id": hold["hold_id"]})
            await eventually(lambda: vb.state[loc]["reserved"] == 0 and va.seq == vb.seq)
            assert vb.gaps == 0 and va.gaps == 0

            # Resume on the other node: a client at b's position resubscribes on a and gets
            # the missed deltas, not a snapshot (same epoch and seqs on every node).
            old_seq, old_state = vb.seq, dict(vb.state)
            await ca.command("stock.receive", {"sku": sku, "location_id": loc, "qty": 3,
                                               "reference": "t"})
            async with open_client(ws(a), token(a)) as moved:
                view = moved.view(topic)
                view.epoch, view.seq, view.state = vb.epoch, old_seq, old_state
                await moved.subscribe(topic)
                await eventually(lambda: view.seq == va.seq)
                assert view.snapshots == 0 and view.resumes == 1
                assert view.state == va.state
            await eventually(lambda: vb.seq == va.seq)
            pool = await load_pool(a.journal, sku)
            assert stock_view(pool) == vb.state == va.state


async def test_position_check_repairs_a_dropped_relay_message(
    pg_schema: str, redis_prefix: str, tmp_path: Path, fast: None
) -> None:
    store = f"{PG_DSN}?schema={pg_schema}"
    async with cluster(2, store, f"{REDIS_URL}?prefix={redis_prefix}", tmp_path) as (a, b):
        sku, loc = pick(a)
        topic = f"stock:{sku}"
        relay = b.cluster.relay
        dropped: list[bytes] = []
        real = relay._on_message

        def lossy(data: bytes) -> None:  # lose exactly one message about our topic
            if not dropped and topic.encode() in data:
                dropped.append(data)
                return
            real(data)

        relay._on_message = lossy  # type: ignore[method-assign]
        async with open_client(ws(a), token(a)) as ca, open_client(ws(b), token(b)) as cb:
            va, vb = await ca.subscribe(topic), await cb.subscribe(topic)
            await ca.command("stock.receive", {"sku": sku, "location_id": loc, "qty": 7,
                                               "reference": "t"})
            await eventually(lambda: bool(dropped))
            await eventually(lambda: vb.seq == va.seq and vb.state == va.state, timeout=5)
            assert relay.resyncs >= 1
            # The repair is one delta from b's position: the client applied it without a gap.
            assert vb.gaps == 0


async def test_a_stale_owner_is_stopped_by_the_journal(
    pg_schema: str, redis_prefix: str, tmp_path: Path, fast: None
) -> None:
    store = f"{PG_DSN}?schema={pg_schema}"
    async with cluster(2, store, f"{REDIS_URL}?prefix={redis_prefix}", tmp_path) as (a, b):
        sku, loc = pick(a)
        key = f"sku:{sku}"
        async with open_client(ws(a), token(a)) as ca, open_client(ws(b), token(b)) as cb:
            await make_available(ca, sku, loc, 1)
            assert a.cluster.leases.owner(key) is not None
            # a's lease vanishes in Redis (as after a pause past its TTL) while a still
            # believes it owns the key and keeps its in-memory state: b takes over and sells
            # the last unit.
            leases = a.cluster.leases
            await leases._eval("return redis.call('DEL', KEYS[1])", [leases.lease_key(key)], [])
            await cb.command("hold.place", {"sku": sku, "location_id": loc, "qty": 1})
            assert b.cluster.leases.owner(key) is not None
            # a, stale, decides on its old state (1 available): the append fails on the
            # expected version, a reloads from the journal and the hold is refused.
            with pytest.raises(CommandRejected) as exc:
                await ca.command("hold.place", {"sku": sku, "location_id": loc, "qty": 1})
            assert exc.value.code == "insufficient_stock"
        pool = await load_pool(a.journal, sku)
        bal = pool.balances[loc]
        assert bal.reserved + bal.committed <= bal.on_hand
        assert bal.reserved == 1


async def test_redis_down_nodes_serve_locally_and_recover(
    pg_schema: str, tmp_path: Path, fast: None
) -> None:
    store = f"{PG_DSN}?schema={pg_schema}"
    with tempfile.TemporaryDirectory() as workdir:
        redis = PrivateRedis(workdir)
        await redis.start()
        try:
            async with cluster(2, store, redis.url, tmp_path) as (a, b):
                sku, loc = pick(a)
                topic = f"stock:{sku}"
                async with open_client(ws(a), token(a)) as ca, open_client(ws(b), token(b)) as cb:
                    va, vb = await ca.subscribe(topic), await cb.subscribe(topic)
                    await make_available(ca, sku, loc, 10)
                    await eventually(lambda: vb.seq == va.seq)

                    await redis.stop()
                    await eventually(lambda: a.cluster.health()["degraded"]
                                     and b.cluster.health()["degraded"], timeout=5)
                    async with httpx.AsyncClient() as http:
                        r = await http.get(f"http://127.0.0.1:{b.bound_port}/readyz")
                    assert r.status_code == 200
                    assert r.json()["ready"] is True and r.json()["degraded"] is True
                    # Both nodes keep taking commands for the same SKU from PostgreSQL truth.
                    await ca.command("hold.place", {"sku": sku, "location_id": loc, "qty": 1})
                    await cb.command("hold.place", {"sku": sku, "location_id": loc, "qty": 2})
                    await ca.command("hold.place", {"sku": sku, "location_id": loc, "qty": 3})
                    assert b.cluster.ownership.degraded_local >= 1

                    await redis.start()
                    await eventually(lambda: not a.cluster.health()["degraded"]
                                     and not b.cluster.health()["degraded"], timeout=10)
                    truth = stock_view(await load_pool(a.journal, sku))
                    assert truth[loc]["reserved"] == 6
                    await eventually(lambda: va.state == truth and vb.state == truth, timeout=10)
                    assert va.seq == vb.seq
                    # And fan-out flows again.
                    await cb.command("hold.place", {"sku": sku, "location_id": loc, "qty": 1})
                    await eventually(lambda: va.state[loc]["reserved"] == 7 == vb.state[loc]["reserved"])
        finally:
            await redis.stop()


