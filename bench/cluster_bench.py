"""Scale-out benchmark: omnitill on PostgreSQL + Redis with 1, 2 and 3 nodes, and the row-lock
baseline on the same PostgreSQL, in one run.

    .venv/bin/python bench/cluster_bench.py [--clients 120] [--duration 6] [--depth 4]

What runs:
  hot        C raw WebSocket clients (bench/_wsraw.py via hot_sku.omni_worker) placing
             `hold.place` qty 1 on ONE SKU, spread evenly over the N nodes (one generator process
             per node). The SKU's lease holder runs every command; the other nodes forward.
  many       one generator per SKU (3 SKUs), generator i connected to node i % N: with 3 nodes
             each node owns one SKU's actor.
  fanout     a client on node N changes a SKU (stock.set_safety), a client on node 1 waits for
             the delta: command sent -> delta seen, 200 samples, idle cluster.
  postgres   the mainstream baseline: SELECT ... FOR UPDATE, one transaction per hold
             (hot_sku.run_pg), same PostgreSQL, same clients.
Prints a table and writes bench/results/cluster.json. Each configuration gets a fresh schema
(seeded with `omnitill seed --scale 0.05`) and its own Redis key prefix.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from array import array
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cmdgen import merge, spawn
from _server import ROOT, free_port, load_info, machine_info
from _wsraw import summarize
from hot_sku import LOCATION, omni_worker, run_pg

PG = os.environ.get("OMNITILL_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("OMNITILL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET = "bench-" + secrets.token_hex(16)
PY = sys.executable


class Cluster:
    def __init__(self, n: int, tmp: Path) -> None:
        self.schema = f"omnitill_bench_{int(time.time())}_{secrets.token_hex(3)}"
        self.prefix = f"bench-{secrets.token_hex(4)}"
        self.env = {**os.environ, "OMNITILL_SECRET": SECRET, "OMNITILL_LOG_LEVEL": "WARNING",
                    "OMNITILL_STORE": f"{PG}?schema={self.schema}",
                    "OMNITILL_BUS": f"{REDIS}?prefix={self.prefix}", "OMNITILL_DEMO": "none"}
        self.ports = [free_port() for _ in range(n)]
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []
        self.token = ""

    def start(self) -> None:
        subprocess.run([PY, "-m", "engine.cli", "seed", "--scale", "0.05", "--data-dir",
                        str(self.tmp / "seed")], env=self.env, cwd=ROOT, check=True,
                       capture_output=True)
        for i, port in enumerate(self.ports, 1):
            env = {**self.env, "PORT": str(port), "OMNITILL_NODE_ID": f"n{i}",
                   "OMNITILL_DATA_DIR": str(self.tmp / f"d{i}")}
            log = open(self.tmp / f"n{i}.log", "ab")
            self.procs.append(subprocess.Popen([PY, "-m", "engine.cli", "serve"], env=env,
                                               cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
        for port in self.ports:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                        break
                except OSError:
                    time.sleep(0.1)
        self.token = subprocess.run(
            [PY, "-m", "engine.cli", "token", "--role", "admin", "--ttl", "86400"],
            env=self.env, cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.ports[0]}{path}", method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"authorization": f"Bearer {self.token}", "content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        import asyncio

        import asyncpg

        async def drop() -> None:
            conn = await asyncpg.connect(PG)
            await conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            await conn.close()

        asyncio.run(drop())


def skus(cluster: Cluster, n: int) -> list[str]:
    items = cluster.request("GET", "/api/v1/products?limit=50")
    items = items.get("items", items)
    return [it["sku"] for it in items][:n]


def stock_up(cluster: Cluster, sku: str) -> None:
    cluster.request("POST", "/api/v1/commands/stock.receive" , {
        "op_id": f"bench-recv-{sku}", "args": {"sku": sku, "location_id": LOCATION,
                                               "qty": 1_000_000, "reference": "bench"}})


def drive(cluster: Cluster, plan: list[tuple[int, str, int]], depth: int, duration: float) -> dict[str, Any]:
    """plan: (port, sku, connections) per generator process."""
    start_at = time.time() + 2.0
    results = spawn(omni_worker, [(w, port, cluster.token, conns, depth, sku, start_at, duration, None)
                                  for w, (port, sku, conns) in enumerate(plan)])
    lat, codes, acks, seconds, _sent = merge(results)
    return {"holds": acks, "seconds": round(seconds, 2),
            "holds_per_s": round(acks / seconds, 1) if seconds else 0.0,
            **summarize(lat), "rejects": dict(codes)}


def fanout(cluster: Cluster, samples: int) -> dict[str, Any]:
    import trio

    from clients.python import open_client

    first, last = cluster.ports[0], cluster.ports[-1]
    sku = skus(cluster, 1)[0]

    async def main() -> list[float]:
        out: list[float] = []
        async with open_client(f"ws://127.0.0.1:{first}/ws", cluster.token) as watcher, \
                open_client(f"ws://127.0.0.1:{last}/ws", cluster.token) as writer:
            view = await watcher.subscribe(f"stock:{sku}")
            for i in range(samples + 10):
                value = i % 50 + 1
                t0 = time.perf_counter()
                await writer.command("stock.set_safety", {"sku": sku, "location_id": LOCATION,
                                                          "safety_stock": value})
                await view.wait_for(lambda s, v=value: s.get(LOCATION, {}).get("safety_stock") == v)
                if i >= 10:
                    out.append(time.perf_counter() - t0)
                await trio.sleep(0.01)
        return out

    lat = array("d", trio.run(main))
    return {"samples": len(lat), **summarize(lat)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=120)
    ap.add_argument("--duration", type=float, default=6.0)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--nodes", default="1,2,3")
    args = ap.parse_args()
    import tempfile

    rows: list[dict[str, Any]] = []
    for n in [int(x) for x in args.nodes.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            cluster = Cluster(n, Path(tmp))
            try:
                cluster.start()
                hot, *others = skus(cluster, 4)
                for sku in (hot, *others):
                    stock_up(cluster, sku)
                per = [args.clients // n + (1 if i < args.clients % n else 0) for i in range(n)]
                r = drive(cluster, [(cluster.ports[i], hot, per[i]) for i in range(n)],
                          args.depth, args.duration)
                rows.append({"system": "omnitill", "nodes": n, "workload": "hot-sku",
                             "clients": args.clients, **r})
                plan = [(cluster.ports[i % n], others[i], args.clients // 3) for i in range(3)]
                r = drive(cluster, plan, args.depth, args.duration)
                rows.append({"system": "omnitill", "nodes": n, "workload": "3-skus",
                             "clients": args.clients // 3 * 3, **r})
                if n > 1:
                    rows.append({"system": "omnitill", "nodes": n, "workload": "fanout n->1",
                                 **fanout(cluster, 200)})
            finally:
                cluster.stop()
    r = run_pg(PG, args.clients, args.duration, 10_000_000, False)
    rows.append({**r, "nodes": 0, "workload": "hot-sku"})

    print(f"\n{'system':<22}{'nodes':>6} {'workload':<13}{'holds/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for row in rows:
        rate = row.get("holds_per_s", "")
        print(f"{row['system']:<22}{row['nodes']:>6} {row['workload']:<13}{rate!s:>10}"
              f"{row.get('p50_ms', '')!s:>9}{row.get('p99_ms', '')!s:>9}")
    out = {"machine": machine_info(), "load": load_info(), "args": vars(args), "rows": rows}
    path = ROOT / "bench" / "results" / "cluster.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
