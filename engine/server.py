"""The Engine: owns the nursery and every long-lived part, in start-up order.

journal -> registry (actors) -> timer service -> catalog + read models -> demo seed (first
start only) -> ops sampler -> hypercorn serving the gateway. Shutdown runs in reverse: stop
accepting (hypercorn's shutdown trigger), close connections with 1001 "going away" so clients
resume elsewhere, drain the actors, flush the journal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import hypercorn.trio
import trio
from hypercorn.config import Config as HypercornConfig

from actors.catalog import Catalog
from protocol import SERVER_VERSION, OpsTopic
from protocol.topics import Topic

from .auth import TokenSigner, load_or_create_secret
from .bus import LocalBus, Outbox
from .commands import Dispatcher
from .config import Config
from .gateway import GatewayApp, TopicSources
from .gateway._flush import Flusher
from .gateway._ratelimit import TokenBucket
from .journal import Journal, MemoryJournal, SqliteJournal
from .metrics import Metrics
from .runtime import (
    Actor,
    ChildSpec,
    GcPolicy,
    Registry,
    ReplyCallback,
    Supervisor,
    TimerService,
)

__all__ = ["Engine"]

log = logging.getLogger("omnitill.engine")

# Domains plugged into the engine, in order (each module has `install(engine)`).
PLUGINS: tuple[str, ...] = ("actors.inventory.wiring", "actors.orders.wiring")


class OpsSource:
    """`ops:metrics`: one key, "sample", replaced every second by the sampler."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def prepare(self, topic: Topic, name: str) -> None:
        self.engine.bus.topic(name)

    def snapshot(self, topic: Topic, name: str) -> tuple[str, int, dict[str, Any]]:
        pos = self.engine.bus.position(name)
        return pos.epoch, pos.seq, {"sample": self.engine.last_sample}

    def released(self, name: str) -> None:
        pass


class _TimerTarget:
    """What the timer service delivers to: the registry, or the cluster's owner check."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def tell(self, key: str, msg: Any, *, timeout: float | None = None) -> None:
        cluster = self.engine.cluster
        if cluster is not None and cluster.ownership is not None:
            await cluster.ownership.tell_timer(key, msg, timeout=timeout)
        else:
            await self.engine.registry.tell(key, msg, timeout=timeout)


class Engine:
    cluster: Any = None  # set at the end of __init__ (engine/cluster/wiring.py)

    def __init__(self, config: Config) -> None:
        self.config = config
        self.metrics = Metrics()
        self.bus = LocalBus(
            history=config.history_per_topic,
            idle_topic_s=config.idle_topic_s,
            max_idle_topics=config.max_idle_topics,
        )
        self.journal: Journal = self._make_journal(config)
        self.registry = Registry(
            self._make_actor, idle_timeout_s=config.idle_actor_s, mailbox_size=1024, max_batch=512
        )
        # Through _TimerTarget: in a cluster only the owner of a key delivers its timers.
        self.timers = TimerService(self.journal, _TimerTarget(self))  # type: ignore[arg-type]
        self.signer = TokenSigner(load_or_create_secret(config.data_dir))
        self.dispatcher = Dispatcher(self._ask, self.metrics, timeout_s=config.ask_timeout_s)
        self.sources = TopicSources()
        self.catalog = Catalog()
        self.connections: set[Any] = set()
        self.flusher = Flusher()  # writes lean connections' output (gateway/_flush.py)
        self.registry.after_batch = self.flusher.flush_urgent
        self.bus.fanout = self.flusher.fan_out
        self.actor_factories: dict[str, Callable[[str], Actor]] = {}
        self.http_installers: list[Callable[..., None]] = []
        self.extra_openapi: dict[str, Any] = {}
        self.extra_openapi_webhooks: dict[str, Any] = {}  # OpenAPI 3.1 `webhooks` (plugins)
        self.startup_hooks: list[Callable[[], Awaitable[None]]] = []
        self.last_sample: dict[str, Any] = {}
        self.gc_policy = GcPolicy()  # started once start-up is done, ticked by the sampler
        self.bound_port: int | None = None
        self._accept_bucket = TokenBucket(config.connections_per_s, config.connections_per_s)
        self._stop = trio.Event()
        self._ready = False
        self.sources.register(OpsTopic, OpsSource(self))
        self.bus.add_observer(lambda d: self.metrics.on_delta_kind(d.topic))
        import importlib

        for module in PLUGINS:
            try:
                plugin = importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if not exc.name or not module.startswith(exc.name):
                    raise
                continue  # an optional domain that is not built yet
            plugin.install(self)
        # --- cluster (scale-out) wiring: None unless config.bus is redis:// ------------------
        # Relay (cross-node fan-out), leases and command forwarding: engine/cluster/wiring.py.
        from .cluster import wiring as cluster_wiring

        self.cluster = cluster_wiring.install(self)

    # --- construction helpers -------------------------------------------------------------

    @staticmethod
    def _make_journal(config: Config) -> Journal:
        if config.store == "memory":
            return MemoryJournal()
        if config.store in ("sqlite", "") or config.store.startswith("sqlite:"):
            path = (
                config.store[len("sqlite:") :].lstrip("/")
                if config.store.startswith("sqlite:")
                else ""
            )
            config.data_dir.mkdir(parents=True, exist_ok=True)
            return SqliteJournal(
                Path(path) if path else config.data_dir / "omnitill.db",
                writer=config.sqlite_writer,
            )
        if config.store.startswith(("postgresql://", "postgres://")):
            from .journal.postgres import PostgresJournal

            dsn, schema = _split_schema(config.store)
            return PostgresJournal(dsn, schema=schema)
        raise ValueError(f"unknown store {config.store!r}: use sqlite, memory or postgresql://...")

    def _make_actor(self, key: str) -> Actor:
        prefix = key.split(":", 1)[0]
        factory = self.actor_factories.get(prefix)
        if factory is None:
            raise KeyError(f"no actor kind for key {key!r}")
        actor = factory(key.split(":", 1)[1])
        if self.cluster is not None and self.cluster.ownership is not None:
            actor = self.cluster.ownership.wrap(key, actor)  # the activation holds the lease
        return actor

    async def _ask(self, key: str, msg: Any, timeout: float) -> Any:
        if self.cluster is not None and self.cluster.ownership is not None:
            # Cluster: run on the lease holder of `key`, forwarded there if need be.
            return await self.cluster.ownership.ask(key, msg, timeout)
        return await self.registry.ask(key, msg, timeout=timeout)

    def try_ask(self, key: str, msg: Any, callback: ReplyCallback) -> bool:
        """Queue a command for its local owner without a task of its own (the gateway's fast
        path); False when it must take `_ask` instead (cluster ownership, full mailbox)."""
        if self.cluster is not None and self.cluster.ownership is not None:
            return False
        return self.registry.try_ask(key, msg, callback)

    def install_http_routes(self, app: Any, bearer: Any, json_body: Any) -> None:
        for installer in self.http_installers:
            installer(app, bearer, json_body)

    def openapi(self) -> dict[str, Any]:
        from .gateway._http import openapi_document

        return openapi_document(SERVER_VERSION, self.extra_openapi, self.extra_openapi_webhooks)

    # --- gateway hooks --------------------------------------------------------------------

    def origin_allowed(self, origin: str | None) -> bool:
        if origin is None:
            return True  # not a browser (SDK, hub, load generator): the token decides
        allowed = self.config.allowed_origins
        if "*" in allowed or origin in allowed:
            return True
        # Same-origin pages of our own web clients are always allowed.
        host = self.config.host
        return origin in (f"http://{host}:{self.bound_port}", f"http://localhost:{self.bound_port}")

    def accept_ok(self) -> bool:
        return self._accept_bucket.take()

    def command_limiter_ok(self, bucket: TokenBucket) -> bool:
        if bucket.take():
            return True
        self.metrics.rate_limited += 1
        self.metrics.rejects["rate_limited"] += 1
        return False

    def unsubscribe(self, name: str, outbox: Outbox) -> None:
        self.bus.unsubscribe(name, outbox)
        if self.bus.subscriber_count(name) == 0:
            self._released(name)

    def bus_release(self, outbox: Outbox) -> None:
        for name in list(outbox.subscribed):
            self.unsubscribe(name, outbox)

    def _released(self, name: str) -> None:
        from protocol import parse_topic

        try:
            self.sources.get(parse_topic(name)).released(name)
        except Exception:
            pass

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        detail: dict[str, Any] = {
            "store": self.config.store.split("://")[0],
            "bus": self.config.bus.split("://")[0],
        }
        if self.cluster is not None:  # degraded (Redis down) is still ready: it says so
            detail.update(self.cluster.health())
        return self._ready, detail

    def refresh_gauges(self) -> None:
        stats = self.registry.stats()
        for key, value in stats.items():
            self.metrics.extra[f"actors_{key}"] = value
        self.metrics.extra["topics"] = len(self.bus.topics())
        self.metrics.extra["topics_idle"] = self.bus.idle_topics()
        self.metrics.extra["topics_forgotten"] = self.bus.forgotten
        self.metrics.extra["bus_published"] = self.bus.published
        self.metrics.extra["bus_delivered"] = self.bus.delivered
        for key, value in self.gc_policy.stats().items():
            self.metrics.extra[f"gc_{key}"] = value
        stats_fn = getattr(self.journal, "stats", None)
        if callable(stats_fn):
            for key, value in stats_fn().items():
                if isinstance(value, int | float):
                    self.metrics.extra[f"journal_{key}"] = value
        if self.cluster is not None:
            for key, value in self.cluster.stats().items():
                if isinstance(value, int | float):
                    self.metrics.extra[f"cluster_{key}"] = value

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def stopping(self) -> trio.Event:
        """Set when shutdown begins: connections close with 1001 so clients resume elsewhere."""
        return self._stop

    def stop(self) -> None:
        self._stop.set()

    async def _sweeper(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        from .gateway._ws import sweep_connections

        task_status.started()
        await sweep_connections(self)

    async def _ops_sampler(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        activity = self._activity()
        while True:
            await trio.sleep(1.0)
            self.metrics.extra["flusher_busy_pct"] = round(self.flusher.busy_fraction * 100, 1)
            self.metrics.extra["flusher_defer_ms"] = round(self.flusher.defer_s * 1000, 1)
            self.last_sample = self.metrics.sample()
            self.bus.publish("ops:metrics", {"sample": self.last_sample})
            self.bus.forget_idle()  # topics nobody watched for idle_topic_s (bounded work)
            # Freeze this second's survivors; a full collection only when it's quiet or the
            # frozen generation grew a lot (engine/runtime/_gc.py).
            last, activity = activity, self._activity()
            self.gc_policy.tick(quiet=activity == last)

    def _activity(self) -> tuple[int, int, int]:
        """Changes whenever a client did something (quiet ticks may pay a full collection)."""
        m = self.metrics
        return m.commands, m.frames_in, m.connections_total

    def _services(self, *, with_sampler: bool) -> Supervisor:
        """The engine's long-lived services under one rest_for_one supervisor: if the journal
        writer dies, everything that depends on it restarts after it; shutdown runs in
        reverse (sampler, timers, actors drain, then the journal writer flushes)."""
        sup = Supervisor("engine", "rest_for_one", max_restarts=3, within_s=30.0)
        sup.add_child(ChildSpec("journal", self.journal.run, shutdown_timeout_s=5.0))
        sup.add_child(
            ChildSpec(
                "registry", self.registry.run, stop=self.registry.aclose, shutdown_timeout_s=6.0
            )
        )
        if self.cluster is not None:  # after the registry (it forwards into it), before timers
            sup.add_child(ChildSpec("cluster", self.cluster.run, shutdown_timeout_s=3.0))
        sup.add_child(ChildSpec("timers", self.timers.run, shutdown_timeout_s=1.0))
        if with_sampler:
            sup.add_child(ChildSpec("connection-flusher", self.flusher.run, shutdown_timeout_s=1.0))
            sup.add_child(ChildSpec("ops-sampler", self._ops_sampler, shutdown_timeout_s=1.0))
            sup.add_child(ChildSpec("connection-sweeper", self._sweeper, shutdown_timeout_s=1.0))
        self.supervisor = sup
        return sup

    async def run_offline(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` with the journal, actors and read models up but no network (CLI seed)."""
        await self.journal.open()
        try:
            async with trio.open_nursery() as nursery:
                services = self._services(with_sampler=False)
                await nursery.start(services.run)
                for hook in self.startup_hooks:
                    await hook()
                await work()
                await services.aclose(deadline_s=8.0)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self.journal.close()

    async def run(self, *, task_status: trio.TaskStatus[Engine] = trio.TASK_STATUS_IGNORED) -> None:
        cfg = self.config
        logging.basicConfig(
            level=cfg.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        await self.journal.open()
        try:
            async with trio.open_nursery() as nursery:
                services = self._services(with_sampler=True)
                await nursery.start(services.run)
                started = time.perf_counter()
                for hook in self.startup_hooks:
                    await hook()
                log.info("read models ready in %.2fs", time.perf_counter() - started)
                # Start-up objects (catalog, read models, code) live for the whole process:
                # freeze them; from now on only young objects are collected, and the ops
                # sampler freezes each second's survivors (p99 is set by GC pauses).
                self.gc_policy.start()
                hconfig = HypercornConfig()
                hconfig.bind = [f"{cfg.host}:{cfg.port}"]
                hconfig.accesslog = None
                hconfig.errorlog = logging.getLogger("hypercorn.error")
                hconfig.websocket_max_message_size = max(cfg.max_frame_bytes * 16, 1 << 20)
                hconfig.websocket_ping_interval = cfg.heartbeat_s
                hconfig.keep_alive_timeout = 75
                hconfig.graceful_timeout = 3
                hconfig.backlog = 4096
                app: Any = GatewayApp(self)  # an ASGI app; hypercorn's types want its own scopes
                if cfg.ws_front == "lean":  # /ws on the engine's own sockets, HTTP to hypercorn
                    from .gateway._front import serve_front

                    self.bound_port = await nursery.start(serve_front, self, app, hconfig)
                else:
                    binds = await nursery.start(
                        partial(hypercorn.trio.serve, app, hconfig, shutdown_trigger=self._stop.wait)
                    )
                    self.bound_port = _port_of(binds, cfg.port)
                self._ready = True
                log.info(
                    "omnitill %s serving on http://%s:%s", SERVER_VERSION, cfg.host, self.bound_port
                )
                task_status.started(self)
                await self._stop.wait()
                self._ready = False
                # hypercorn stops accepting and closes connections (graceful_timeout) on the
                # shutdown trigger; then the actors drain and the journal flushes.
                with trio.move_on_after(5):
                    while self.connections:
                        await trio.sleep(0.05)
                await services.aclose(deadline_s=8.0)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self.journal.close()


def _split_schema(url: str) -> tuple[str, str]:
    """`postgresql://...?schema=name` -> (the DSN without `schema`, "name"); default "public".

    Lets several nodes (and tests) share one fresh schema through the store URL alone."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), "public")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def _port_of(binds: Any, default: int) -> int:
    try:
        return int(str(binds[0]).rsplit(":", 1)[1])
    except Exception:
        return default
