"""Engine configuration: CLI flags override environment variables override defaults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import msgspec

__all__ = ["Config"]


def _env_list(name: str, default: str) -> list[str]:
    return [x.strip() for x in os.environ.get(name, default).split(",") if x.strip()]


class Config(msgspec.Struct, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path(".data")
    # "sqlite" (embedded default, file in data_dir), "memory", or a postgresql:// URL.
    store: str = "sqlite"
    # "local" (in-process) or a redis:// URL for cross-node fan-out.
    bus: str = "local"
    node_id: str = "node-1"
    demo: str | None = "apparel"  # retailer to seed on first start; None = no demo data
    demo_scale: float = 1.0
    # Browser origins allowed to open /ws and call the API (the storefront widget's shops).
    # "*" allows any origin (the widget is public); an empty list allows none but same-origin.
    allowed_origins: list[str] = msgspec.field(default_factory=lambda: ["*"])
    max_frame_bytes: int = 64 * 1024
    commands_per_s: float = 200.0  # per connection, token bucket refill rate
    command_burst: int = 400
    heartbeat_s: float = 20.0
    history_per_topic: int = 256
    outbox_max_topics: int = 1000  # per connection: subscriptions are capped at this
    outbox_max_control: int = 1000  # pending acks/errors before the client is cut off
    slow_client_grace_s: float = 10.0  # a connection that cannot drain this long is closed
    connections_per_s: float = 2000.0  # accept rate limit (reconnect storms)
    idle_actor_s: float = 300.0
    # Order actors passivate sooner: a finished order is rarely touched again, and each idle
    # one costs ~25 KB (hundreds of orders/s would keep GBs). Re-activation reads its stream.
    idle_order_actor_s: float = 5.0
    # Bus topics with no subscribers (e.g. `order:{id}` after the client left) keep their
    # history for resumes this long, and at most this many of them (oldest dropped first);
    # a client resuming a dropped topic gets a snapshot.
    idle_topic_s: float = 600.0
    max_idle_topics: int = 20_000
    ask_timeout_s: float = 5.0
    log_level: str = "INFO"
    # "lean": /ws on the engine's own sockets and framing (engine/gateway/_front.py), HTTP on
    # hypercorn, one port. "hypercorn": everything through hypercorn's ASGI (the old path).
    ws_front: Literal["lean", "hypercorn"] = "lean"
    # SQLite group commit on the trio thread ("inline", fast when fsync is sub-ms) or in a
    # worker thread ("thread", for slow disks). See engine/journal/sqlite.py.
    sqlite_writer: Literal["inline", "thread", "process"] = "inline"

    @classmethod
    def from_env(cls, **overrides: object) -> Config:
        env = os.environ
        cfg = cls(
            host=env.get("OMNITILL_HOST", env.get("HOST", "127.0.0.1")),
            port=int(env.get("PORT", env.get("OMNITILL_PORT", "8000"))),
            data_dir=Path(env.get("OMNITILL_DATA_DIR", ".data")),
            store=env.get("OMNITILL_STORE", env.get("DATABASE_URL", "sqlite")),
            bus=env.get("OMNITILL_BUS", env.get("REDIS_URL", "local")),
            node_id=env.get("OMNITILL_NODE_ID", "node-1"),
            demo=(env.get("OMNITILL_DEMO", "apparel") or None),
            allowed_origins=_env_list("OMNITILL_ALLOWED_ORIGINS", "*"),
            log_level=env.get("OMNITILL_LOG_LEVEL", "INFO"),
            ws_front="hypercorn" if env.get("OMNITILL_WS_FRONT") == "hypercorn" else "lean",
            sqlite_writer=_sqlite_writer(env.get("OMNITILL_SQLITE_WRITER", "inline")),
            idle_order_actor_s=float(env.get("OMNITILL_IDLE_ORDER_ACTOR_S", "5")),
            idle_topic_s=float(env.get("OMNITILL_IDLE_TOPIC_S", "600")),
            max_idle_topics=int(env.get("OMNITILL_MAX_IDLE_TOPICS", "20000")),
        )
        for key, value in overrides.items():
            if value is not None:
                setattr(cfg, key, value)
        if cfg.demo in ("none", "off", ""):
            cfg.demo = None
        return cfg


def _sqlite_writer(value: str) -> Literal["inline", "thread", "process"]:
    if value == "thread":
        return "thread"
    if value == "process":
        return "process"
    return "inline"
