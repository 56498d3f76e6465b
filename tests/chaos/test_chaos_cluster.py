"""Chaos: three `omnitill serve` processes on PostgreSQL (a fresh schema) and a private Redis.

SDK clients on different nodes place and release holds, sell and transfer on a few shared
SKUs while the test kills -9 a node and restarts it, restarts Redis, and pauses a node
(SIGSTOP) past its lease. A prober changes a SKU through node 3 and times its arrival at a
client on node 1. After quiescence: no oversell, every acknowledged op exactly once in the
journal, every client's view equal to the journal, clients reconnected and resumed.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import trio
from chaos_helpers import ROOT, Node, PrivateRedis, percentile

from actors.inventory import stock_view
from actors.inventory.domain import derive_id
from actors.inventory.events import HoldPlaced, StockConflict, TransferCreated, decode_event
from actors.inventory.shell import load_pool
from clients.python import Client, CommandRejected
from engine.auth import TokenSigner
from engine.bridge import ThreadBridge
from engine.journal.postgres import PostgresJournal

pytestmark = pytest.mark.chaos

PG_DSN = os.environ.get("OMNITILL_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
SECRET = "chaos-" + secrets.token_hex(16)
LOAD_S = 24.0  # the holds with a 10 s TTL expire (timers on the owner) during it
LEASE_TTL_MS = 2000


class Worker:
    """One client's workload on the shared SKUs; remembers what was acknowledged."""

    def __init__(self, client: Client, skus: list[tuple[str, str, str]], seed: int) -> None:
        self.client = client
        self.skus = skus
        self.rng = random.Random(seed)
        self.acked: dict[str, str] = {}  # op_id -> command name
        self.rejected: Counter[str] = Counter()
        self.unknown = 0  # timed out: outcome unknown (not counted as acknowledged)
        self.holds: list[tuple[str, str]] = []  # (op_id, hold_id)

    async def do(self, name: str, args: dict[str, Any]) -> dict[str, Any] | None:
        op_id = uuid.uuid4().hex
        try:
            result = await self.client.command(name, args, op_id=op_id, timeout=20)
        except CommandRejected as exc:
            self.rejected[exc.code] += 1
            return None
        except trio.TooSlowError:
            self.unknown += 1
            return None
        self.acked[op_id] = name
        if name == "hold.place":
            self.holds.append((op_id, result["hold_id"]))
        return result

    async def run(self, until: float) -> None:
        while trio.current_time() < until:
            sku, a, b = self.rng.choice(self.skus)
            roll = self.rng.random()
            if roll < 0.35:  # "ship" holds work at any location; some expire during the run
                ttl = 10 if self.rng.random() < 0.3 else 600
                await self.do("hold.place", {"sku": sku, "location_id": a, "qty": 1,
                                             "purpose": "ship", "ttl_s": ttl})
            elif roll < 0.6 and self.holds:
                _op, hold_id = self.holds.pop(self.rng.randrange(len(self.holds)))
                await self.do("hold.release", {"hold_id": hold_id})
            elif roll < 0.75:
                await self.do("stock.sale", {"sku": sku, "location_id": a, "qty": 1})
            elif roll < 0.85:
                made = await self.do("transfer.create", {"sku": sku, "from_location": a,
                                                         "to_location": b, "qty": 1})
                if made is not None:
                    tid = made["transfer_id"]
                    if await self.do("transfer.ship", {"transfer_id": tid}) is not None:
                        await self.do("transfer.receive", {"transfer_id": tid})
            else:
                await self.do("stock.receive", {"sku": sku, "location_id": a, "qty": 2,
                                                "reference": "chaos"})
            await trio.sleep(self.rng.uniform(0.005, 0.03))


async def _sql(bridge: ThreadBridge, query: str, *args: Any) -> list[Any]:
    conn = await bridge.run(asyncpg.connect, PG_DSN)
    try:
        rows: list[Any] = await bridge.run(conn.fetch, query, *args)
        return rows
    finally:
        await bridge.run(conn.close)


async def test_three_nodes_under_faults(tmp_path: Path) -> None:
    schema = f"omnitill_chaos_{int(time.time())}_{secrets.token_hex(3)}"
    store = f"{PG_DSN}?schema={schema}"
    redis = PrivateRedis(tmp_path)
    await redis.start()
    nodes: list[Node] = []
    bridge = ThreadBridge()
    bridge.start()
    try:
        env = {"OMNITILL_SECRET": SECRET, "OMNITILL_STORE": store, "OMNITILL_BUS": redis.url,
               "OMNITILL_LEASE_TTL_MS": str(LEASE_TTL_MS), "OMNITILL_POSITION_CHECK_S": "0.5",
               "OMNITILL_FORWARD_TIMEOUT_S": "1.0", "OMNITILL_LOG_LEVEL": "WARNING"}
        seeded = subprocess.run(
            [sys.executable, "-m", "engine.cli", "seed", "--retailer", "apparel", "--scale", "0.05",
             "--data-dir", str(tmp_path / "seed")],
            env={**os.environ, **env}, cwd=ROOT, capture_output=True, timeout=120,
        )
        assert seeded.returncode == 0, seeded.stderr.decode()[-2000:]
        nodes = [Node(f"n{i}", env, tmp_path / f"d{i}", tmp_path) for i in (1, 2, 3)]
        async with trio.open_nursery() as nursery:
            for node in nodes:
                nursery.start_soon(node.start)
        n1, n2, n3 = nodes

        journal = PostgresJournal(PG_DSN, schema=schema, bridge=bridge)
        await journal.open()
        pools = [await load_pool(journal, s[4:]) for s in await journal.list_streams("sku:")]
        shared = [(p.sku, *sorted(p.balances)[:2]) for p in pools if len(p.balances) >= 2][:4]
        assert len(shared) == 4, "the seed should give SKUs stocked at two locations"
        work, (probe_sku, probe_loc, _) = shared[:3], shared[3]
        token = TokenSigner(SECRET.encode()).mint("admin", sub="chaos", location=None, ttl_s=3600)

        clients = {f"{node.name}-{i}": (node, Client(node.ws, token)) for node in nodes
                   for i in range(2)}
        observer = Client(n1.ws, token)
        prober = Client(n3.ws, token)
        latencies: list[tuple[float, float]] = []  # (sent at, seconds)
        faults: list[tuple[float, float]] = []  # windows (start, end)

        async with trio.open_nursery() as nursery:
            for _node, client in [*clients.values(), (n1, observer), (n3, prober)]:
                await nursery.start(client.run)
            # Stock to work with, then every client follows the shared SKUs.
            for sku, a, _b in shared:
                await prober.command("stock.receive", {"sku": sku, "location_id": a, "qty": 40,
                                                       "reference": "chaos"})
                await prober.command("stock.set_safety", {"sku": sku, "location_id": a,
                                                          "safety_stock": 0})
            for _node, client in clients.values():
                for sku, _a, _b in work:
                    await client.subscribe(f"stock:{sku}")
            watch = await observer.subscribe(f"stock:{probe_sku}")

            value = 0

            async def probe(until: float) -> None:
                nonlocal value
                while trio.current_time() < until:
                    value = value % 50 + 1
                    sent = trio.current_time()
                    try:
                        await prober.command("stock.set_safety", {
                            "sku": probe_sku, "location_id": probe_loc, "safety_stock": value},
                            timeout=20)
                        await watch.wait_for(
                            lambda s, v=value: s.get(probe_loc, {}).get("safety_stock") == v,
                            timeout=20)
                    except (CommandRejected, trio.TooSlowError):
                        continue
                    latencies.append((sent, trio.current_time() - sent))
                    await trio.sleep(0.05)

            workers = [Worker(c, work, i) for i, (_n, c) in enumerate(clients.values())]
            # First without load or faults (the idle baseline), then the chaos run.
            await probe(trio.current_time() + 3.0)
            idle, latencies[:] = [d for _t, d in latencies], []
            until = trio.current_time() + LOAD_S

            async def chaos() -> None:
                await trio.sleep(4)
                start = trio.current_time()
                await n2.kill()  # kill -9
                await trio.sleep(1.5)
                await n2.start()
                faults.append((start, trio.current_time()))
                await trio.sleep(3)
                start = trio.current_time()
                await redis.stop()
                await redis.start()
                faults.append((start, trio.current_time()))
                await trio.sleep(4)
                start = trio.current_time()
                n2.signal(signal.SIGSTOP)
                await trio.sleep(LEASE_TTL_MS / 1000 * 1.5)  # past its leases
                n2.signal(signal.SIGCONT)
                faults.append((start, trio.current_time()))

            async with trio.open_nursery() as load:
                load.start_soon(chaos)
                load.start_soon(probe, until)
                for worker in workers:
                    load.start_soon(worker.run, until)

            # Quiescence: every client's views equal the journal. The journal may still move
            # after the load (a 10 s hold placed near its end expires later), so the truth is
            # re-read until a view matches it, not read once.
            deadline = trio.current_time() + 25
            for name, (_node, client) in clients.items():
                for sku, _a, _b in work:
                    view = client.view(f"stock:{sku}")
                    while view.state != (truth := stock_view(await load_pool(journal, sku))):
                        if trio.current_time() > deadline:
                            raise AssertionError(f"{name}: stock:{sku} {view.state} != {truth}")
                        await trio.sleep(0.1)
            n2_clients = [c for name, (_n, c) in clients.items() if name.startswith("n2")]
            assert all(c.connections >= 2 for c in n2_clients), "n2's clients reconnected"
            for c in n2_clients:
                assert all(v.resumes + v.snapshots >= 2 for v in c.views.values())
            nursery.cancel_scope.cancel()

        # No oversell: replay every SKU's stream through the pure domain.
        conflicts: set[tuple[str, str]] = set()
        placed: Counter[str] = Counter()
        created: Counter[str] = Counter()
        for sku, _a, _b in shared:
            pool = await load_pool(journal, sku)
            for stored in await journal.read(f"sku:{sku}", 1, None):
                event = decode_event(stored.data)
                if isinstance(event, StockConflict):
                    conflicts.add((sku, event.location_id))
                elif isinstance(event, HoldPlaced):
                    placed[event.hold_id] += 1
                elif isinstance(event, TransferCreated):
                    created[event.transfer_id] += 1
            for loc, bal in pool.balances.items():
                promised = bal.reserved + bal.committed
                assert promised <= bal.on_hand or (sku, loc) in conflicts, (sku, loc, bal)
        # Every acknowledged op is in the op table, and took effect exactly once.
        acked = {op: name for w in workers for op, name in w.acked.items()}
        rows = await _sql(bridge, f'SELECT op_id FROM "{schema}".ops WHERE op_id = ANY($1)',
                          list(acked))
        assert len(rows) == len(acked)
        for op, name in acked.items():
            if name == "hold.place":
                assert placed[derive_id("H", op)] == 1, op
            elif name == "transfer.create":
                assert created[derive_id("T", op)] == 1, op
        await journal.close()

        calm = [d for t, d in latencies if not any(s - 0.1 <= t <= e + 2.0 for s, e in faults)]
        hot = [d for t, d in latencies if any(s - 0.1 <= t <= e + 2.0 for s, e in faults)]
        rejected = sum((w.rejected for w in workers), Counter())
        print(f"\nchaos: {len(acked)} acknowledged ops, rejected {dict(rejected)}, "
              f"unknown {sum(w.unknown for w in workers)}")
        print(f"cross-node latency n3 -> n1 (command sent -> delta seen): idle p50 "
              f"{percentile(idle, 0.5)*1000:.1f} ms p99 {percentile(idle, 0.99)*1000:.1f} ms "
              f"(n={len(idle)})")
        print(f"under load: without faults p50 {percentile(calm, 0.5)*1000:.1f} ms "
              f"p99 {percentile(calm, 0.99)*1000:.1f} ms (n={len(calm)}); during faults "
              f"p50 {percentile(hot, 0.5)*1000:.1f} ms p99 {percentile(hot, 0.99)*1000:.1f} ms "
              f"(n={len(hot)})")
        assert len(acked) > 200
        assert calm and hot
        # Liveness bounds: a change reaches the other node within a second when nothing is
        # failing; during a fault, within what the fault itself allows: a paused owner keeps
        # its lease for LEASE_TTL_MS and each forward to it waits OMNITILL_FORWARD_TIMEOUT_S
        # (1 s), and a Redis restart is repaired by the position checks (two in a row at
        # 0.5 s) after the relay's reconnect. (A 1 s bound there failed once under the
        # parallel suite: 1.07 s.) The < 50 ms target is a speed target:
        # bench/cluster_bench.py measures it on a quiet machine (here the test shares two
        # cores with the rest of the suite).
        assert percentile(hot, 0.99) < LEASE_TTL_MS / 1000 + 1.0
        assert percentile(idle, 0.99) < 1.0
    finally:
        with trio.CancelScope(shield=True):
            for node in nodes:
                await node.stop()
            await redis.stop()
            try:
                await _sql(bridge, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await bridge.aclose()
