"""Plot fan-out latency vs clients (and vs change rate) from bench/results/fanout*.json.

    .venv/bin/python bench/plot.py [--out bench/results/fanout.png]

Left: p99 change-to-client latency at the lowest common change rate, per system, against the
number of subscribed clients (one point per results file: 1,000 / 5,000 / 10,000). Right: p50
and p99 against the change rate for every (system, clients) run, with the 100 ms budget line.
Third: server CPU time per delivered update, the number least moved by other load on the box.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

RESULTS = Path(__file__).resolve().parent / "results"
COLORS = {"omnitill": "#1f6feb", "omnitill:hypercorn": "#8fb8f5", "node": "#2da44e", "socketio": "#cf222e"}


def color(system: str) -> str:
    return COLORS.get(system, COLORS.get(system.split(":")[0], "grey"))
LABELS = {"omnitill": "omnitill (trio, journaled)", "omnitill:hypercorn": "omnitill, hypercorn /ws front", "node": "Node.js ws (relay)", "socketio": "python-socketio (relay)"}


def load(paths: list[Path]) -> list[dict[str, Any]]:
    runs = []
    for p in paths:
        data = json.loads(p.read_text())
        for r in data["results"]:
            if r.get("steps"):
                runs.append(r)
    return runs


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=RESULTS / "fanout.png")
    ap.add_argument("files", nargs="*", type=Path)
    args = ap.parse_args()
    files = args.files or sorted(RESULTS.glob("fanout*.json"))
    runs = load(files)
    if not runs:
        print("no fan-out results found: run bench/fanout.py first", file=sys.stderr)
        return 1
    fig, (left, right, cpu) = plt.subplots(1, 3, figsize=(18, 5.2))

    # Left: latency vs clients at the lowest rate every run has.
    common = min(r["steps"][0]["target_rate"] for r in runs)
    by_system: dict[str, list[tuple[int, float, float]]] = {}
    for r in runs:
        step = next((s for s in r["steps"] if s["target_rate"] == common), None)
        if step is None:
            continue
        by_system.setdefault(r["system"], []).append(
            (r["clients"], step["latency"]["p50_ms"], step["latency"]["p99_ms"]))
    for system, pts in sorted(by_system.items()):
        pts.sort()
        xs = [p[0] for p in pts]
        c = color(system)
        left.plot(xs, [p[2] for p in pts], "o-", color=c, label=f"{LABELS.get(system, system)} p99")
        left.plot(xs, [p[1] for p in pts], "o--", color=c, alpha=0.6, label=f"{LABELS.get(system, system)} p50")
    left.axhline(100, color="grey", lw=1, ls=":")
    left.set_xlabel("subscribed WebSocket clients")
    left.set_ylabel("change-to-client latency (ms, log)")
    left.set_yscale("log")
    left.set_title(f"Latency vs clients at {common:.0f} changes/s")
    left.legend(fontsize=7)
    left.grid(True, which="both", alpha=0.3)

    # Right: latency vs change rate.
    styles = {1000: "-", 5000: "--", 10000: ":"}
    for r in runs:
        xs = [s["achieved_rate"] for s in r["steps"]]
        ys = [s["latency"]["p99_ms"] for s in r["steps"]]
        right.plot(xs, ys, marker="o", ls=styles.get(r["clients"], "-."), color=color(r["system"]),
                   label=f"{r['system']} {r['clients']:,} clients p99")
    right.axhline(100, color="grey", lw=1, ls=":", label="100 ms budget")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("changes/s (achieved)")
    right.set_ylabel("p99 latency (ms, log)")
    right.set_title("p99 latency vs change rate")
    right.legend(fontsize=7)
    right.grid(True, which="both", alpha=0.3)

    # Third: server CPU per delivered update (robust on a shared machine), median over steps.
    labels, values, colors = [], [], []
    for r in sorted(runs, key=lambda r: (r["system"], r["clients"])):
        per = sorted(s["server_cpu_us_per_update"] for s in r["steps"] if "server_cpu_us_per_update" in s)
        if not per:
            continue
        labels.append(f"{r['system'].replace(':', chr(10))}\n{r['clients']:,}")
        values.append(per[len(per) // 2])
        colors.append(color(r["system"]))
    cpu.bar(range(len(values)), values, color=colors)
    cpu.set_xticks(range(len(values)), labels, fontsize=7)
    for i, v in enumerate(values):
        cpu.text(i, v, f"{v:.0f}", ha="center", va="bottom", fontsize=7)
    cpu.set_ylabel("server CPU µs per delivered update (median over steps)")
    cpu.set_title("Server CPU per delivered update")
    cpu.grid(True, axis="y", alpha=0.3)

    loads = sorted({json.loads(f.read_text()).get("load_start", {}).get("loadavg_1m", 0) for f in files})
    fig.suptitle(f"Fan-out: K topics/client, same machine (2 cores, shared; 1-min load at start {loads})",
                 fontsize=10)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
