"""SQLite journal benchmark: appends/s and append latency under concurrent appenders.

One event per append. Two patterns:
  distinct -- every appender writes its own stream (the normal case: one actor per stream);
  hot      -- every appender writes ONE stream with optimistic concurrency, retrying on
              VersionConflict (the worst case; latency includes the retries).
Each is run with 1, 10 and 200 appenders, under synchronous=FULL and NORMAL.

    .venv/bin/python bench/journal_bench.py [--duration 2] [--sync FULL,NORMAL]

Prints a table and writes bench/results/journal.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.journal import Batch, SqliteJournal, VersionConflict

CONCURRENCY = (1, 10, 200)
PATTERNS = ("distinct", "hot")
PAYLOAD = b"\x82\xa3sku\xa6SKU-42\xa3qty\x01"  # ~16 bytes, a typical small msgpack event


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx]


async def scenario(
    db_dir: Path, sync: str, pattern: str, appenders: int, duration: float
) -> dict[str, Any]:
    path = db_dir / f"{sync}-{pattern}-{appenders}.db"
    journal = SqliteJournal(path, synchronous=sync)  # type: ignore[arg-type]
    await journal.open()
    latencies: list[float] = []
    conflicts = 0
    deadline = 0.0

    async def appender(i: int) -> None:
        nonlocal conflicts
        stream = "hot" if pattern == "hot" else f"stream-{i}"
        expected = await journal.stream_version(stream)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            while True:
                try:
                    res = await journal.append(Batch(stream, expected, events=[("E", PAYLOAD)]))
                    break
                except VersionConflict as exc:
                    conflicts += 1
                    expected = exc.actual
            latencies.append(time.perf_counter() - started)
            expected = res.version

    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        t0 = time.perf_counter()
        deadline = t0 + duration
        async with trio.open_nursery() as workers:
            for i in range(appenders):
                workers.start_soon(appender, i)
        elapsed = time.perf_counter() - t0
        stats = journal.stats()
        await journal.close()

    latencies.sort()
    return {
        "synchronous": sync,
        "pattern": pattern,
        "appenders": appenders,
        "appends": len(latencies),
        "seconds": round(elapsed, 3),
        "appends_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 3),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 3),
        "max_ms": round(latencies[-1] * 1000, 3) if latencies else None,
        "conflicts": conflicts,
        "commits": stats["commits"],
        "avg_group": round(stats["avg_group_size"], 2),
        "commit_ms_avg": round(stats["commit_ms_avg"], 3),
    }


async def main(args: argparse.Namespace) -> None:
    results: list[dict[str, Any]] = []
    header = (
        f"{'sync':6} {'pattern':8} {'tasks':>5} {'appends/s':>10} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'avg grp':>7} {'commit ms':>9} {'conflicts':>9}"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory(prefix="journal-bench-", dir=args.tmp) as tmp:
        for sync in args.sync.split(","):
            for pattern in PATTERNS:
                for n in CONCURRENCY:
                    r = await scenario(Path(tmp), sync, pattern, n, args.duration)
                    results.append(r)
                    print(
                        f"{sync:6} {pattern:8} {n:>5} {r['appends_per_s']:>10.0f}"
                        f" {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['avg_group']:>7.1f}"
                        f" {r['commit_ms_avg']:>9.2f} {r['conflicts']:>9}"
                    )
    out = {
        "bench": "journal",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "duration_s": args.duration,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per scenario")
    parser.add_argument("--sync", default="FULL,NORMAL", help="synchronous modes to run")
    parser.add_argument("--tmp", default=None, help="directory for the scratch databases")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "results" / "journal.json",
    )
    trio.run(main, parser.parse_args())
