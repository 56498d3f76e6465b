"""Process metrics: cheap counters and histograms, Prometheus text, and ops-page samples.

Hot paths only increment ints and bump a histogram bucket; quantiles and rates are computed
when /metrics is scraped or the ops sampler ticks (once a second).
"""

from __future__ import annotations

import bisect
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

__all__ = ["Histogram", "Metrics"]

# Latency buckets in seconds: 0.1 ms .. 10 s, roughly x1.5 apart (quantiles within ~25%).
_BUCKETS: tuple[float, ...] = tuple(round(0.0001 * (1.5**i), 7) for i in range(0, 29))


class Histogram:
    __slots__ = ("counts", "sum", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_BUCKETS) + 1)
        self.total = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(_BUCKETS, seconds)] += 1
        self.total += 1
        self.sum += seconds

    def quantile(self, q: float, since: list[int] | None = None) -> float:
        """Upper bound of the bucket holding quantile q (over the window since `since`)."""
        counts = self.counts if since is None else [a - b for a, b in zip(self.counts, since, strict=True)]
        n = sum(counts)
        if n == 0:
            return 0.0
        rank = q * n
        acc = 0
        for i, c in enumerate(counts):
            acc += c
            if acc >= rank:
                return _BUCKETS[i] if i < len(_BUCKETS) else _BUCKETS[-1] * 1.5
        return _BUCKETS[-1]

    def prometheus(self, name: str, labels: str = "") -> list[str]:
        lines = []
        acc = 0
        sep = "," if labels else ""
        for le, c in zip(_BUCKETS, self.counts, strict=False):
            acc += c
            lines.append(f'{name}_bucket{{{labels}{sep}le="{le}"}} {acc}')
        lines.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.total}')
        lines.append(f"{name}_sum{{{labels}}} {self.sum}")
        lines.append(f"{name}_count{{{labels}}} {self.total}")
        return lines


class Metrics:
    def __init__(self) -> None:
        self.started = time.time()
        self.connections: Counter[str] = Counter()  # live, by client kind
        self.connections_total = 0
        self.commands = 0
        self.command_latency = Histogram()
        self.journal_latency = Histogram()
        self.rejects: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.deltas_by_kind: Counter[str] = Counter()
        self.resyncs = 0  # subscribers given a fresh snapshot on resume
        self.resumes = 0  # subscribers caught up from history
        self.slow_disconnects = 0
        self.conflated = 0
        self.frames_out = 0
        self.frames_in = 0
        self.frames_batched = 0  # messages that went out inside a batch frame
        self.rate_limited = 0
        self.extra: dict[str, Any] = {}
        # Plugin counters, by name: each call returns {key: count}; they go into every ops
        # sample as `sample[name]` and to /metrics as `omnitill_{name}_total{key="..."}`.
        self.counter_hooks: dict[str, Callable[[], dict[str, int]]] = {}
        self._last_sample: dict[str, Any] = {}
        self._last_t = time.monotonic()
        self._last_counts: dict[str, Any] = defaultdict(int)

    def on_delta_kind(self, topic: str) -> None:
        self.deltas_by_kind[topic.split(":", 1)[0]] += 1

    def sample(self) -> dict[str, Any]:
        """One ops-page sample: rates over the time since the previous sample."""
        now = time.monotonic()
        dt = max(now - self._last_t, 1e-3)
        last = self._last_counts
        cmd_since = last.get("cmd_hist") or [0] * len(self.command_latency.counts)
        jr_since = last.get("jr_hist") or [0] * len(self.journal_latency.counts)
        topic_rates = {
            k: round((v - last.get(f"d:{k}", 0)) / dt, 1) for k, v in self.deltas_by_kind.items()
        }
        sample = {
            "t": time.time(),
            "connections": dict(self.connections),
            "topic_rates": topic_rates,
            "commands_per_s": round((self.commands - last.get("commands", 0)) / dt, 1),
            "command_p50_ms": round(self.command_latency.quantile(0.5, cmd_since) * 1000, 2),
            "command_p99_ms": round(self.command_latency.quantile(0.99, cmd_since) * 1000, 2),
            "journal_p50_ms": round(self.journal_latency.quantile(0.5, jr_since) * 1000, 2),
            "journal_p99_ms": round(self.journal_latency.quantile(0.99, jr_since) * 1000, 2),
            "rejects": dict(self.rejects),
            "resyncs": self.resyncs,
            "resumes": self.resumes,
            "slow_disconnects": self.slow_disconnects,
            "frames_out_per_s": round((self.frames_out - last.get("frames_out", 0)) / dt, 1),
            **{name: hook() for name, hook in self.counter_hooks.items()},
        }
        self._last_t = now
        self._last_counts = {
            "commands": self.commands,
            "frames_out": self.frames_out,
            "cmd_hist": list(self.command_latency.counts),
            "jr_hist": list(self.journal_latency.counts),
            **{f"d:{k}": v for k, v in self.deltas_by_kind.items()},
        }
        self._last_sample = sample
        return sample

    def prometheus(self) -> str:
        lines = [
            "# TYPE omnitill_uptime_seconds gauge",
            f"omnitill_uptime_seconds {time.time() - self.started:.1f}",
            "# TYPE omnitill_connections gauge",
        ]
        for kind, n in sorted(self.connections.items()):
            lines.append(f'omnitill_connections{{kind="{kind}"}} {n}')
        lines += [
            "# TYPE omnitill_connections_total counter",
            f"omnitill_connections_total {self.connections_total}",
            "# TYPE omnitill_commands_total counter",
            f"omnitill_commands_total {self.commands}",
            "# TYPE omnitill_rejects_total counter",
        ]
        for code, n in sorted(self.rejects.items()):
            lines.append(f'omnitill_rejects_total{{code="{code}"}} {n}')
        lines.append("# TYPE omnitill_errors_total counter")
        for code, n in sorted(self.errors.items()):
            lines.append(f'omnitill_errors_total{{code="{code}"}} {n}')
        lines.append("# TYPE omnitill_deltas_total counter")
        for kind, n in sorted(self.deltas_by_kind.items()):
            lines.append(f'omnitill_deltas_total{{topic_kind="{kind}"}} {n}')
        for name, value in (
            ("resyncs", self.resyncs),
            ("resumes", self.resumes),
            ("slow_disconnects", self.slow_disconnects),
            ("conflated_deltas", self.conflated),
            ("frames_out", self.frames_out),
            ("frames_in", self.frames_in),
            ("messages_batched", self.frames_batched),
            ("rate_limited", self.rate_limited),
        ):
            lines += [f"# TYPE omnitill_{name}_total counter", f"omnitill_{name}_total {value}"]
        lines.append("# TYPE omnitill_command_latency_seconds histogram")
        lines += self.command_latency.prometheus("omnitill_command_latency_seconds")
        lines.append("# TYPE omnitill_journal_commit_seconds histogram")
        lines += self.journal_latency.prometheus("omnitill_journal_commit_seconds")
        for name, hook in sorted(self.counter_hooks.items()):
            lines.append(f"# TYPE omnitill_{name}_total counter")
            for key, n in sorted(hook().items()):
                lines.append(f'omnitill_{name}_total{{key="{key}"}} {n}')
        for key, value in sorted(self.extra.items()):
            if isinstance(value, int | float):
                lines += [f"# TYPE omnitill_{key} gauge", f"omnitill_{key} {value}"]
        return "\n".join(lines) + "\n"
