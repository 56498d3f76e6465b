"""PostgreSQL journal through each asyncio bridge: appends/s and latency percentiles.

The same PostgresJournal, once over `ThreadBridge` (asyncio loop in a dedicated thread) and
once over `TrioAsyncioBridge` (trio-asyncio), with 1, 10 and 200 concurrent appenders:

  append -- every appender writes its own stream, one event per append (group commit);
  read   -- every reader calls stream_version() in a loop (one crossing per call, no grouping).

Each scenario runs in a fresh schema (dropped afterwards); bridges alternate per round so
machine noise hits both alike. Per scenario the table shows the median round and the best
round (ops/s); the JSON keeps every round.

    .venv/bin/python bench/journal_bridge_bench.py [--duration 2] [--rounds 2] [--dsn URL]

Prints a table and writes bench/results/journal_bridge.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.bridge import Bridge, BridgeKind, open_bridge
from engine.journal import Batch
from engine.journal.postgres import PostgresJournal

CONCURRENCY = (1, 10, 200)
KINDS: tuple[BridgeKind, ...] = ("thread", "trio-asyncio")
PAYLOAD = b"\x82\xa3sku\xa6SKU-42\xa3qty\x01"


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx]


async def _drop(bridge: Bridge, dsn: str, schema: str) -> None:
    conn = await bridge.run(asyncpg.connect, dsn)
    await bridge.run(conn.execute, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await bridge.run(conn.close)


async def scenario(
    kind: BridgeKind, dsn: str, op: str, workers: int, duration: float
) -> dict[str, Any]:
    schema = f"omnitill_bench_{secrets.token_hex(4)}"
    async with open_bridge(kind) as bridge:
        journal = PostgresJournal(dsn, schema=schema, bridge=bridge, readers=4)
        await journal.open()
        latencies: list[float] = []
        deadline = 0.0

        async def appender(i: int) -> None:
            stream = f"stream-{i}"
            expected = 0
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                res = await journal.append(Batch(stream, expected, events=[("E", PAYLOAD)]))
                latencies.append(time.perf_counter() - started)
                expected = res.version

        async def reader(i: int) -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await journal.stream_version(f"stream-{i}")
                latencies.append(time.perf_counter() - started)

        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(journal.run)
                t0 = time.perf_counter()
                deadline = t0 + duration
                async with trio.open_nursery() as work:
                    for i in range(workers):
                        work.start_soon(appender if op == "append" else reader, i)
                elapsed = time.perf_counter() - t0
                stats = journal.stats()
                await journal.close()
        finally:
            await journal.close()
            await _drop(bridge, dsn, schema)
    latencies.sort()
    return {
        "bridge": kind,
        "op": op,
        "workers": workers,
        "ops": len(latencies),
        "ops_per_s": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": (latencies[-1] if latencies else float("nan")) * 1000,
        "avg_group": stats["avg_group_size"] if op == "append" else None,
        "crossings": getattr(bridge, "calls", None),
    }


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    rounds: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for rnd in range(args.rounds):
        kinds = KINDS if rnd % 2 == 0 else tuple(reversed(KINDS))
        for op in ("append", "read"):
            for workers in CONCURRENCY:
                for kind in kinds:
                    res = await scenario(kind, args.dsn, op, workers, args.duration)
                    rounds.setdefault((kind, op, workers), []).append(res)
                    print(
                        f"  round {rnd + 1} {kind:12} {op:6} x{workers:<3} "
                        f"{res['ops_per_s']:8.0f}/s p99 {res['p99_ms']:7.2f} ms",
                        file=sys.stderr,
                    )
    out = []
    for key in sorted(rounds, key=lambda k: (k[1], k[2], k[0])):
        runs = sorted(rounds[key], key=lambda r: r["ops_per_s"])
        median = dict(runs[(len(runs) - 1) // 2])
        median["best_ops_per_s"] = runs[-1]["ops_per_s"]
        median["rounds"] = rounds[key]
        out.append(median)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--dsn",
        default=os.environ.get("OMNITILL_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()
    results = trio.run(main_async, args)
    header = f"{'op':6} {'workers':>7} {'bridge':12} {'ops/s':>9} {'best':>9}"
    print(header + f" {'p50 ms':>8} {'p99 ms':>8} {'avg group':>9}   (median round)")
    for r in results:
        group = f"{r['avg_group']:9.1f}" if r["avg_group"] is not None else f"{'-':>9}"
        print(
            f"{r['op']:6} {r['workers']:>7} {r['bridge']:12} {r['ops_per_s']:9.0f} "
            f"{r['best_ops_per_s']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {group}"
        )
    out = Path(__file__).resolve().parent / "results" / "journal_bridge.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "loadavg": os.getloadavg(),
                },
                "duration_s": args.duration,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
