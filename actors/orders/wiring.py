"""Plugs orders into the engine: actor kinds, command routes, the `order:{id}` topic, the
pickup-queue entries on `location:{id}`, the inventory hook for stock conflicts and hold
expiries, webhooks and the REST routes.

Inventory hook: a listener on `InventoryEnv.listeners` sees every committed batch of stock
events (synchronously, no await: the pool is never slowed). A StockConflict naming an
order's hold (`customer_ref = "order:{id}"`, read from the hold's entry on the location read
model) or commitment, and a HoldExpired of an order's hold, become an internal `order.flag`
command told to the order actor with a deterministic op_id, so a duplicate notification is
a no-op. These notices are not durable: an order actor reconciles its allocations with the
pools when it reads its stream (`OrderActor._ensure_loaded`), which repairs a notice that
was lost.

`order.create` is routed by its op_id (`CommandSpec.route_op`): the order id is derived
from it, so a create goes straight to `order:{id}`.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from actors.inventory.events import Event as PoolEvent
from actors.inventory.events import HoldExpired, StockConflict
from engine.commands import CommandMsg, CommandSpec, payload_hash
from engine.journal import Batch, Snapshot, Timer, VersionConflict, streams_with_prefix
from protocol import ErrorCode, ProtocolError
from protocol.orders import ORDER_COMMAND_ARGS, OrderCreateArgs, OrderReturnArgs
from protocol.topics import OrderTopic, Topic
from protocol.webhooks import OrderUpdated

from . import domain, views
from .events import Event, decode_event
from .routing import RoutingConfig, Site
from .shell import PARKED_DUE, SAGA_TIMER, OrderActor, OrderEnv, OrderQuery
from .stock_webhooks import FEED_KEY, StockFeed, StockFeedActor
from .webhooks import WebhookActor, Webhooks

if TYPE_CHECKING:
    from engine.server import Engine

__all__ = ["OrdersWiring", "install"]

log = logging.getLogger("omnitill.orders")

VIEW_CACHE = 20_000
# Start-up: a snapshot row saying every open order has its timer row (written after the first
# start that indexed them), and how many order streams one read takes.
OPEN_INDEX = "meta:orders:open-index"
REBUILD_READ_STREAMS = 1000


class _Availability(Mapping[str, Mapping[str, int]]):
    """sku -> location -> available: the inventory read model's own map, read-only."""

    def __init__(self, available: dict[str, dict[str, int]]) -> None:
        self._available = available

    def __getitem__(self, sku: str) -> Mapping[str, int]:
        return self._available[sku]

    def get(self, sku: str, default: Any = None) -> Any:
        return self._available.get(sku, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._available)

    def __len__(self) -> int:
        return len(self._available)


class _Prices(Mapping[str, int]):
    def __init__(self, engine: Engine) -> None:
        self._catalog = engine.catalog

    def __getitem__(self, sku: str) -> int:
        found = self._catalog.variant(sku)
        if found is None:
            raise KeyError(sku)
        return int(found[1].price_cents)

    def __contains__(self, sku: object) -> bool:
        return isinstance(sku, str) and self._catalog.variant(sku) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._catalog.skus())

    def __len__(self) -> int:
        return len(self._catalog.skus())


class OrdersWiring:
    def __init__(self, engine: Engine, policy: domain.OrderPolicy | None = None) -> None:
        self.engine = engine
        self.policy = policy or domain.OrderPolicy(routing=_routing_from_env())
        self.cache: OrderedDict[str, tuple[int, dict[str, Any]]] = OrderedDict()
        self.pickup_of: dict[str, str] = {}  # open order -> pickup location (for token scope)
        self.webhooks = Webhooks.from_env()
        self.stock_feed = StockFeed(
            self.webhooks,
            engine,
            interval_s=float(os.environ.get("OMNITILL_WEBHOOK_STOCK_INTERVAL_S", "1")),
        )
        self.env = OrderEnv(
            journal=engine.journal,
            registry=engine.registry,
            ask=engine._ask,
            try_ask=engine.try_ask,
            make_ctx=self.make_ctx,
            on_commit=self.on_commit,
            on_timer=engine.timers.notify,
            ask_timeout_s=engine.config.ask_timeout_s,
        )
        self.flags_sent = 0
        self.flags_dropped = 0
        self._sites_key: tuple[int, ...] = ()
        self._sites: dict[str, Site] = {}
        self._curbside: frozenset[str] = frozenset()

    # --- context for decide ---------------------------------------------------------------

    def sites(self) -> dict[str, Site]:
        """Every location may ship (ship allocations work anywhere with stock, the DC too);
        only pickup-enabled ones take pickup orders. Cached until the location list changes."""
        locations = self.engine.catalog.locations()
        key = tuple(map(id, locations))
        if key != self._sites_key:
            self._sites = {
                loc.id: Site(
                    loc.id,
                    loc.lat,
                    loc.lon,
                    loc.kind,
                    pickup_enabled=loc.pickup_enabled,
                    can_ship=True,
                )
                for loc in locations
            }
            self._curbside = frozenset(loc.id for loc in locations if loc.curbside)
            self._sites_key = key
        return self._sites

    def make_ctx(self, op_id: str, phash: str, now: float) -> domain.Ctx:
        inventory = self.engine.inventory  # type: ignore[attr-defined]
        return domain.Ctx(
            now=now,
            op_id=op_id,
            payload_hash=phash,
            sites=self.sites(),
            curbside=self._curbside,
            availability=_Availability(inventory.views.available),
            prices=_Prices(self.engine),
            policy=self.policy,
        )

    # --- after each commit ----------------------------------------------------------------

    def on_commit(self, state: domain.Order, events: list[Event]) -> None:
        engine = self.engine
        name = f"order:{state.order_id}"
        view = views.order_view(state)
        old = self.cache.pop(state.order_id, None)
        self.cache[state.order_id] = (state.version, view)
        while len(self.cache) > VIEW_CACHE:
            self.cache.popitem(last=False)
        # An order topic nobody subscribed to (almost every order's) is not created by publishing
        # into it: its history would only be kept for a resume that cannot come, and a late
        # subscriber gets a snapshot of the cached view at its version, as from a forgotten
        # idle topic. (On a cluster the relay serves other nodes' subscribers: always publish.)
        if engine.cluster is not None or engine.bus.has_topic(name):
            engine.bus.publish(
                name,
                views.view_changes(old[1] if old else None, view),
                epoch=engine.journal.epoch,
                from_seq=state.version - len(events) + 1,
                seq=state.version,
            )
        self._publish_queue(state)
        status_changed = old is None or old[1]["status"] != view["status"]
        exceptions_changed = old is None or old[1]["exceptions"] != view["exceptions"]
        if state.status != "pending" and (status_changed or exceptions_changed):
            self.webhooks.emit(
                "order.updated",
                OrderUpdated(
                    order_id=state.order_id,
                    status=state.status,
                    version=state.version,
                    fulfilment=state.fulfilment,
                    exceptions=view["exceptions"],
                    shipment=view["shipment"],
                    package=view["package"],
                ),
                self.engine.registry,
            )

    def _publish_queue(self, state: domain.Order) -> None:
        """Pickup orders: `order:{id}` on the pickup queue; ship orders: `ship:{id}` on the
        ship-from-store picking list of each location with units committed to it."""
        locations = self.engine.inventory.views.locations  # type: ignore[attr-defined]
        if state.fulfilment == "pickup":
            key, entries = f"order:{state.order_id}", views.queue_entries(state)
        else:
            key, entries = f"ship:{state.order_id}", views.ship_entries(state)
        for loc, entry in entries.items():
            view = locations.setdefault(loc, {})
            if entry is None and key not in view:
                continue
            if entry is None:
                view.pop(key, None)
            else:
                view[key] = entry
            self.engine.bus.publish(f"location:{loc}", {key: entry})
        if state.fulfilment == "pickup" and state.status in domain.OPEN_STATUSES:
            self.pickup_of[state.order_id] = state.pickup_location
        else:
            self.pickup_of.pop(state.order_id, None)

    async def rebuild_queues(self) -> int:
        """At start-up: pickup-queue and picking-list entries of open orders.

        An open order keeps a timer row (`shell.PARKED_DUE`), so the timers table lists the
        open orders, plus any closing mid-saga: only those streams are read, whatever the
        number of orders ever placed. A journal written before that index existed (no
        `OPEN_INDEX` marker) is replayed whole once, in pages across streams, and its open
        orders get their parked rows."""
        journal = self.engine.journal
        if await journal.load_snapshot(OPEN_INDEX) is None:
            n = await self._index_every_order()
            await journal.save_snapshot(Snapshot(stream=OPEN_INDEX, version=1, state=b""))
            return n
        keys = sorted({t.actor_key for t in await journal.list_timers("order:")})
        n = 0
        for i in range(0, len(keys), REBUILD_READ_STREAMS):
            states: dict[str, domain.Order] = {}
            for item in await journal.read_streams(keys[i : i + REBUILD_READ_STREAMS]):
                state = states.get(item.stream)
                if state is None:
                    state = states[item.stream] = domain.initial(item.stream[6:])
                domain.evolve(state, decode_event(item.data))
            for state in states.values():
                if state.status in domain.OPEN_STATUSES:
                    self._publish_queue(state)
                    n += 1
        return n

    async def _index_every_order(self) -> int:
        """Replay every order stream (pages across streams: one read per 5,000 events, not
        one per order) and give each open order without a timer row its parked row."""
        journal = self.engine.journal
        indexed = {t.actor_key for t in await journal.list_timers("order:")}
        n = 0
        async for stream, stored in streams_with_prefix(journal, "order:"):
            state = domain.initial(stream[6:])
            for item in stored:
                domain.evolve(state, decode_event(item.data))
            if state.status not in domain.OPEN_STATUSES:
                continue
            self._publish_queue(state)
            n += 1
            if stream not in indexed:
                parked = Timer(SAGA_TIMER, stream, PARKED_DUE, b"open")
                try:
                    await journal.append(Batch(stream, state.version, timers_set=[parked]))
                except VersionConflict:
                    pass  # its live actor wrote meanwhile (another node): it parks its own row
        return n

    async def startup(self) -> None:
        n = await self.rebuild_queues()
        log.info("orders: %d open orders in the pickup queues and picking lists", n)

    # --- inventory hook -------------------------------------------------------------------

    def on_pool_events(self, sku: str, events: list[PoolEvent]) -> None:
        """`InventoryEnv.listeners` hook: runs after the pool's commit and view update."""
        for event in events:
            if isinstance(event, StockConflict):
                for hold_id in event.uncovered_hold_ids:
                    ref = self._hold_ref(event.location_id, hold_id)
                    if ref.startswith("order:"):
                        self._tell_flag(
                            ref[6:], "stock_conflict", sku, event.location_id, hold_id, self._pool_version(sku)
                        )
                for order_id in event.uncovered_order_ids:
                    self._tell_flag(
                        order_id,
                        "stock_conflict",
                        sku,
                        event.location_id,
                        "",
                        self._pool_version(sku),
                    )
            elif isinstance(event, HoldExpired) and event.customer_ref.startswith("order:"):
                self._tell_flag(
                    event.customer_ref[6:],
                    "hold_expired",
                    sku,
                    event.location_id,
                    event.hold_id,
                    self._pool_version(sku),
                )

    def _hold_ref(self, location_id: str, hold_id: str) -> str:
        locations = self.engine.inventory.views.locations  # type: ignore[attr-defined]
        entry = locations.get(location_id, {}).get(f"hold:{hold_id}")
        return str(entry.get("customer_ref", "")) if isinstance(entry, dict) else ""

    def _pool_version(self, sku: str) -> int:
        return int(self.engine.inventory.views.version(sku))  # type: ignore[attr-defined]

    def _tell_flag(
        self, order_id: str, kind: str, sku: str, location_id: str, hold_id: str, version: int
    ) -> None:
        args = msgspec.convert(
            {"kind": kind, "sku": sku, "location_id": location_id, "hold_id": hold_id},
            domain.FlagArgs,
        )
        op_id = f"{order_id}:flag:{sku}:{version}:{hold_id or location_id}"
        msg = CommandMsg(
            op_id=op_id,
            name="order.flag",
            args=args,
            payload_hash=payload_hash("order.flag", args),
            now=time.time(),
            actor="inventory",
        )
        try:
            ok = self.engine.registry.ref(f"order:{order_id}").try_tell(msg)
        except Exception:
            ok = False
        if ok:
            self.flags_sent += 1
        else:
            self.flags_dropped += 1
            log.warning("order %s: could not deliver %s flag (mailbox full)", order_id, kind)

    # --- commands -------------------------------------------------------------------------

    def route(self, args: Any) -> str:
        return f"order:{args.order_id}"

    @staticmethod
    def route_create(_args: Any, op_id: str) -> str:
        """A create names its order by its op_id: retries reach the same order actor."""
        return f"order:{domain.order_id_for(op_id)}"

    def locations(self, args: Any) -> tuple[str, ...]:
        """Locations for location-scoped tokens: creates and reads are network-wide (endless
        aisle); store actions are scoped to the order's pickup store, returns to the store."""
        if isinstance(args, OrderCreateArgs):
            return ()
        if isinstance(args, OrderReturnArgs):
            return (args.location_id,)
        loc = self.pickup_of.get(getattr(args, "order_id", ""), "")
        return (loc,) if loc else ()

    def validate(self, args: Any) -> None:
        catalog = self.engine.catalog
        if isinstance(args, OrderCreateArgs):
            if not args.lines:
                raise ProtocolError(
                    ErrorCode.INVALID_ARGS, "the cart is empty: an order needs at least one line"
                )
            for line in args.lines:
                if catalog.variant(line.sku) is None:
                    raise ProtocolError(
                        ErrorCode.NOT_FOUND, f"unknown SKU {line.sku!r}", {"sku": line.sku}
                    )
            for loc in (args.pickup_location, args.sold_at):
                if loc is not None and catalog.location(loc) is None:
                    raise ProtocolError(
                        ErrorCode.NOT_FOUND, f"unknown location {loc!r}", {"location_id": loc}
                    )
        elif isinstance(args, OrderReturnArgs) and catalog.location(args.location_id) is None:
            raise ProtocolError(
                ErrorCode.NOT_FOUND,
                f"unknown location {args.location_id!r}",
                {"location_id": args.location_id},
            )

    async def get(self, order_id: str) -> tuple[int, domain.Order]:
        version, state = await self.engine.registry.ask(
            f"order:{order_id}", OrderQuery(), timeout=self.engine.config.ask_timeout_s
        )
        return int(version), state


class OrderSource:
    """`order:{id}` topic: served from the view cache, else asked of the order actor."""

    def __init__(self, w: OrdersWiring) -> None:
        self.w = w

    def prepare(self, topic: Topic, name: str) -> None:
        assert isinstance(topic, OrderTopic)
        cached = self.w.cache.get(topic.order_id)
        epoch = self.w.engine.journal.epoch
        self.w.engine.bus.topic(name, epoch=epoch, seq=cached[0] if cached else 0)

    def snapshot(self, topic: Topic, name: str) -> Any:
        assert isinstance(topic, OrderTopic)
        cached = self.w.cache.get(topic.order_id)
        epoch = self.w.engine.journal.epoch
        if cached is not None:
            return epoch, cached[0], dict(cached[1])

        async def load() -> tuple[str, int, dict[str, Any]]:
            version, state = await self.w.get(topic.order_id)
            if version == 0:
                return epoch, 0, {}
            return epoch, version, views.order_view(state)

        return load()

    def released(self, name: str) -> None:
        pass


def _routing_from_env() -> RoutingConfig:
    rules = os.environ.get("OMNITILL_ROUTING_RULES", "")
    if not rules:
        return RoutingConfig()
    return msgspec.convert(
        {"rules": [r.strip() for r in rules.split(",") if r.strip()]}, RoutingConfig
    )


def install(engine: Engine) -> OrdersWiring:
    w = OrdersWiring(engine)
    engine.orders = w  # type: ignore[attr-defined]
    engine.actor_factories["order"] = lambda order_id: OrderActor(w.env, order_id)
    # An order is busy for a moment and then rarely touched: passivate it soon (its stream
    # brings it back), instead of keeping every recent order's actor for `idle_actor_s`.
    engine.registry.idle_timeouts["order"] = engine.config.idle_order_actor_s
    engine.metrics.counter_hooks["webhooks"] = lambda: dict(w.webhooks.outcomes)
    engine.actor_factories["webhooks"] = lambda name: (
        StockFeedActor(w.stock_feed) if f"webhooks:{name}" == FEED_KEY else WebhookActor(w.webhooks, engine)
    )
    inventory = getattr(engine, "inventory", None)
    if inventory is not None:
        inventory.env.listeners.append(w.on_pool_events)
        inventory.env.listeners.append(w.stock_feed.on_pool_events)
    for name, args_type in ORDER_COMMAND_ARGS.items():
        engine.dispatcher.register(
            CommandSpec(
                name=name,
                args_type=args_type,
                route=w.route,
                locations=w.locations,
                validate=w.validate,
                route_op=w.route_create if args_type is OrderCreateArgs else None,
            )
        )
    engine.sources.register(OrderTopic, OrderSource(w))
    engine.startup_hooks.append(w.startup)
    from .http import install_http

    engine.http_installers.append(lambda app, bearer, body: install_http(w, app, bearer, body))
    return w
