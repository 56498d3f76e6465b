"""Plugs the catalog and inventory domains into the engine: actor kinds, command routes,
topic sources, start-up (catalog load, demo seed, read-model rebuild) and REST reads."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from actors.catalog import Catalog, build_demo, demo_events, resolve_near
from actors.catalog.model import CatalogEvent, Location, decode_catalog_event, encode_catalog_event
from engine.auth import Claims
from engine.commands import CommandSpec
from engine.journal.base import Batch, JournalError
from protocol import Delta, ErrorCode, ProtocolError
from protocol.topics import LocationTopic, NearTopic, StockTopic, Topic

from . import domain, views
from .events import (
    Allocated,
    Event,
    HoldCommitted,
    HoldExpired,
    HoldPickedUp,
    HoldPlaced,
    HoldReleased,
    TransferCancelled,
    TransferCreated,
    TransferReceived,
    decode_event,
)
from .projection import InventoryViews, NearViews
from .shell import InventoryEnv, SkuPoolActor, load_pool, stream_of

if TYPE_CHECKING:
    from engine.server import Engine

__all__ = ["CATALOG_STREAM", "install"]

log = logging.getLogger("omnitill.inventory")

CATALOG_STREAM = "catalog"
DEMO_MARKER_STREAM = "meta:demo"
SEED_CLAIMS = Claims(sub="seed", role="admin", exp=math.inf)


# Which end of a transfer a by-id transfer command acts at (index into (from, to)).
_TRANSFER_END = {"transfer.ship": 0, "transfer.cancel": 0, "transfer.receive": 1}


def _locations_of(args: Any) -> tuple[str, ...]:
    out = []
    for field in ("location_id", "from_location", "to_location"):
        value = getattr(args, field, None)
        if value:
            out.append(value)
    return tuple(out)


class InventoryWiring:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.catalog: Catalog = engine.catalog
        self.views = InventoryViews()
        self.near = NearViews(self.catalog, self.views)
        self._location_infos: dict[str, domain.LocationInfo] = {}
        self.env = InventoryEnv(
            journal=engine.journal,
            bus=engine.bus,
            views=self.views,
            near=self.near,
            locations=self.location_infos,
            on_commit=engine.metrics.journal_latency.observe,
            on_timer=engine.timers.notify,
        )
        # Cluster (engine/cluster/wiring.py turns `following` on): writes made on other nodes
        # reach these read models as relayed stock deltas plus a journal-reading follower.
        self.following = False
        self.publish_quiet: Callable[..., Any] = engine.bus.publish  # a publish not relayed
        self._followed: dict[str, domain.SkuPool] = {}  # sku -> pool as of the last catch-up
        self._dirty: set[str] = set()
        self._dirty_wake = trio.Event()
        self._follow_lock = trio.Lock()

    # --- catalog ------------------------------------------------------------------------

    def location_infos(self) -> Mapping[str, domain.LocationInfo]:
        return self._location_infos

    def apply_catalog(self, event: CatalogEvent) -> None:
        self.catalog.apply(event)
        loc = getattr(event, "location", None)
        if isinstance(loc, Location):
            self._location_infos[loc.id] = domain.LocationInfo(
                id=loc.id,
                name=loc.name,
                pickup_enabled=loc.pickup_enabled,
                pickup_lead_s=loc.pickup_lead_s,
                kind=loc.kind,
            )

    async def load_catalog(self) -> int:
        journal = self.engine.journal
        version = 0
        while True:
            events = await journal.read(CATALOG_STREAM, version + 1, 5000)
            if not events:
                return version
            for stored in events:
                self.apply_catalog(decode_catalog_event(stored.data))
                version = stored.version

    async def append_catalog(self, events: list[CatalogEvent]) -> None:
        journal = self.engine.journal
        for start in range(0, len(events), 500):
            chunk = events[start : start + 500]
            version = await journal.stream_version(CATALOG_STREAM)
            await journal.append(
                Batch(
                    stream=CATALOG_STREAM,
                    expected_version=version,
                    events=[encode_catalog_event(e) for e in chunk],
                )
            )
            for event in chunk:
                self.apply_catalog(event)

    def _catalog_has(self, event: CatalogEvent) -> bool:
        loc = getattr(event, "location", None)
        if loc is not None:
            return bool(self.catalog.location(loc.id) == loc)
        product = getattr(event, "product", None)
        if product is not None:
            return bool(self.catalog.product(product.id) == product)
        staff = getattr(event, "staff", None)
        return staff is not None and bool(self.catalog.staff(staff.user_id) == staff)

    async def seed_demo(self, retailer: str, *, scale: float = 1.0, progress: Any = None) -> int:
        """Load a demo retailer: catalog, then opening stock through the real command path.

        Every stock row is a `stock.receive` with a deterministic op_id, so an interrupted
        seed simply runs again: rows already received are answered from the op table.
        """
        data = build_demo(retailer, scale=scale)  # type: ignore[arg-type]
        missing = [e for e in demo_events(data) if not self._catalog_has(e)]
        if missing:
            await self.append_catalog(missing)
        rows: list[tuple[str, str, dict[str, Any]]] = []
        for sku, loc, qty in data.stock:
            if qty > 0:
                rows.append((f"seed:{retailer}:recv:{sku}:{loc}", "stock.receive",
                             {"sku": sku, "location_id": loc, "qty": qty, "reference": "demo seed"}))
        for sku, loc, qty in data.safety_stock:
            rows.append((f"seed:{retailer}:safety:{sku}:{loc}", "stock.set_safety",
                         {"sku": sku, "location_id": loc, "safety_stock": qty}))
        done = 0
        limiter = trio.Semaphore(128)
        dispatcher = self.engine.dispatcher

        async def one(op_id: str, name: str, args: dict[str, Any]) -> None:
            nonlocal done
            try:
                for _attempt in range(5):
                    try:
                        await dispatcher.execute(SEED_CLAIMS, op_id, name, args)
                        break
                    except ProtocolError as exc:
                        if exc.code != ErrorCode.UNAVAILABLE:
                            raise
                        await trio.sleep(0.05)
            finally:
                limiter.release()
            done += 1
            if progress is not None:
                progress(done, len(rows))

        async with trio.open_nursery() as nursery:
            for row in rows:
                await limiter.acquire()
                nursery.start_soon(one, *row)
        marker = await self.engine.journal.stream_version(DEMO_MARKER_STREAM)
        await self.engine.journal.append(
            Batch(
                stream=DEMO_MARKER_STREAM,
                expected_version=marker,
                events=[("demo.seeded", msgspec.msgpack.encode({"retailer": retailer, "rows": len(rows)}))],
            )
        )
        return len(rows)

    async def rebuild_views(self) -> int:
        journal = self.engine.journal
        streams = await journal.list_streams("sku:")
        for stream in streams:
            state = await load_pool(journal, stream[4:])
            self.restore_pool(state)
        return len(streams)

    def restore_pool(self, state: domain.SkuPool) -> None:
        if self.following:
            self._followed[state.sku] = state
        by_location = {loc: views.location_view(state, loc) for loc in state.balances}
        self.views.apply(state.sku, state.version, views.stock_view(state), by_location)
        for hold_id, hold in state.holds.items():
            self.views.remember_ref(hold_id, state.sku, (hold.location_id,))
        for transfer_id, t in state.transfers.items():
            self.views.remember_ref(transfer_id, state.sku, (t.from_location, t.to_location))
        for ref in (*state.closed_holds, *state.closed_transfers):
            self.views.remember_closed_ref(ref, state.sku)

    async def seed_demo_if_needed(self) -> None:
        engine = self.engine
        demo = engine.config.demo
        if demo and await engine.journal.stream_version(DEMO_MARKER_STREAM) == 0:
            started = time.perf_counter()
            await self.rebuild_views()
            rows = await self.seed_demo(demo, scale=engine.config.demo_scale)
            log.info("seeded %s demo: %d stock rows in %.1fs", demo, rows, time.perf_counter() - started)

    async def startup(self) -> None:
        await self.load_catalog()
        await self.seed_demo_if_needed()
        n = await self.rebuild_views()
        log.info("inventory read models: %d SKU pools, %d locations", n, len(self.catalog.locations()))

    # --- cluster: writes made through other nodes ------------------------------------------
    #
    # The owner of a SKU publishes `stock:{sku}`; the relay republishes it here at the same
    # (epoch, seq) and calls `on_remote`, which updates the stock read model and this node's
    # `near:` topics at once (no checkpoint between, so snapshots never race). `location:`
    # views and the hold/transfer id routes need the events themselves: the follower task reads
    # them from the journal (coalesced per SKU) and projects them exactly as the owner does.

    def on_remote(self, delta: Delta) -> None:
        sku = delta.topic[len("stock:") :]
        self.views.apply(sku, delta.seq, delta.changes, {})
        for name, changes in self.near.changes_for(sku):
            self.engine.bus.publish(
                name, changes, epoch=delta.epoch, from_seq=delta.from_seq, seq=delta.seq
            )
        self._dirty.add(sku)
        self._dirty_wake.set()

    async def follow_remote(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        while True:
            await self._dirty_wake.wait()
            await trio.sleep(0.005)  # a burst of deltas -> one journal read per SKU
            async with self._follow_lock:
                await self._catch_up()

    async def wait_remote_refs(self) -> None:
        """A hold/transfer id was not found: catch up with what other nodes wrote."""
        async with self._follow_lock:
            caught = await self._catch_up()
        if not caught:  # the delta may still be on its way through Redis
            await trio.sleep(0.05)
            async with self._follow_lock:
                await self._catch_up()

    async def _catch_up(self) -> int:
        self._dirty_wake = trio.Event()
        dirty, self._dirty = self._dirty, set()
        for sku in dirty:
            try:
                await self._follow(sku)
            except JournalError as exc:
                log.warning("follower: %s not caught up (%r); retrying", sku, exc)
                self._followed.pop(sku, None)
                self._dirty.add(sku)
                self._dirty_wake.set()
        return len(dirty)

    async def _follow(self, sku: str) -> None:
        journal = self.engine.journal
        state = self._followed.pop(sku, None)  # back only once fully caught up
        if state is None:
            state = await load_pool(journal, sku)
            self._replace_locations(state)
            self._followed[sku] = state
            return
        events: list[Event] = []
        while True:
            stored = await journal.read(stream_of(sku), state.version + 1, 2000)
            if not stored:
                break
            for item in stored:
                event = decode_event(item.data)
                state = domain.evolve(state, event)
                events.append(event)
        self._followed[sku] = state
        if events:
            self._project_locations(state, views.location_changes(state, events), events)

    def _project_locations(
        self, state: domain.SkuPool, by_location: dict[str, dict[str, Any]], events: list[Event]
    ) -> None:
        for event in events:
            if isinstance(event, HoldPlaced):
                self.views.remember_ref(event.hold_id, state.sku, (event.location_id,))
            elif isinstance(event, TransferCreated):
                self.views.remember_ref(
                    event.transfer_id, state.sku, (event.from_location, event.to_location)
                )
            elif isinstance(event, HoldReleased | HoldExpired | HoldCommitted | HoldPickedUp):
                self.views.close_ref(event.hold_id)
            elif isinstance(event, Allocated):
                self.views.remember_closed_ref(event.hold_id, state.sku, (event.location_id,))
            elif isinstance(event, TransferReceived | TransferCancelled):
                self.views.close_ref(event.transfer_id)
        self.views.apply_locations(state.sku, by_location)
        for location_id, changes in by_location.items():
            self.engine.bus.publish(f"location:{location_id}", changes)

    def _replace_locations(self, state: domain.SkuPool) -> None:
        """Make this pool's share of every `location:` view equal `state` (and publish it)."""
        old = self.views.pool_location_keys(state.sku)
        new = {loc: views.location_view(state, loc) for loc in state.balances}
        by_location: dict[str, dict[str, Any]] = {}
        for loc in set(old) | set(new):
            fresh = new.get(loc, {})
            current = self.views.locations.get(loc, {})
            changes: dict[str, Any] = {k: v for k, v in fresh.items() if current.get(k) != v}
            changes.update({k: None for k in old.get(loc, ()) if k not in fresh})
            if changes:
                by_location[loc] = changes
        for hold_id, hold in state.holds.items():
            self.views.remember_ref(hold_id, state.sku, (hold.location_id,))
        for transfer_id, t in state.transfers.items():
            self.views.remember_ref(transfer_id, state.sku, (t.from_location, t.to_location))
        for ref in (*state.closed_holds, *state.closed_transfers):
            self.views.remember_closed_ref(ref, state.sku)
        self._project_locations(state, by_location, [])

    async def resync_stock(self, sku: str) -> None:
        """The position check found `stock:{sku}` behind (a lost delta): rebuild it from the
        journal and publish the difference as one delta, so subscribers just apply it."""
        async with self._follow_lock:
            self._dirty.discard(sku)
            state = await load_pool(self.engine.journal, sku)
            self._replace_locations(state)
            self._followed[sku] = state
            name = f"stock:{sku}"
            epoch = self.engine.journal.epoch
            pos = self.engine.bus.position(name)
            if pos.epoch == epoch and pos.seq >= state.version:
                return
            current = self.views.stock.get(sku, {})
            fresh = views.stock_view(state)
            changes: dict[str, Any] = {loc: None for loc in current if loc not in fresh}
            changes.update(fresh)  # values are absolute: the whole pool is a valid delta
            from_seq = pos.seq + 1 if pos.epoch == epoch else None
            self.views.apply(sku, state.version, changes, {})
            self.publish_quiet(name, changes, epoch=epoch, seq=state.version, from_seq=from_seq)
            for near_name, near_changes in self.near.changes_for(sku):
                self.engine.bus.publish(
                    near_name, near_changes, epoch=epoch, seq=state.version, from_seq=from_seq
                )

    # --- commands -----------------------------------------------------------------------

    def route(self, args: Any) -> str:
        sku = getattr(args, "sku", None)
        if sku is None:
            ref = getattr(args, "hold_id", None) or getattr(args, "transfer_id", None)
            sku = self.views.sku_of(ref) if ref else None
            if sku is None:
                kind = "hold" if hasattr(args, "hold_id") else "transfer"
                raise ProtocolError(ErrorCode.NOT_FOUND, f"unknown {kind} {ref!r}", {f"{kind}_id": ref})
        return f"sku:{sku}"

    def validate(self, args: Any) -> None:
        sku = getattr(args, "sku", None)
        if sku is not None and self.catalog.variant(sku) is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"unknown SKU {sku!r}", {"sku": sku})
        for loc in _locations_of(args):
            if loc not in self._location_infos:
                raise ProtocolError(ErrorCode.NOT_FOUND, f"unknown location {loc!r}", {"location_id": loc})

    def ref_locations(self, args: Any) -> tuple[str, ...]:
        """Locations an id-only command touches (for location-scoped tokens)."""
        found = _locations_of(args)
        if found:
            return found
        ref = getattr(args, "hold_id", None) or getattr(args, "transfer_id", None)
        return (self.views.locations_of(ref) or ()) if ref else ()

    def transfer_source(self, args: Any) -> tuple[str, ...]:
        """transfer.create is acted on by the sending store: a manager scoped to a store may
        send stock from it to anywhere (the receiver acts on its own end later)."""
        return (args.from_location,)

    def transfer_end(self, end: int, args: Any) -> tuple[str, ...]:
        """The one end of a transfer that acts on it: the sender ships and cancels (0), the
        receiver receives (1). Both ends would forbid every location-scoped token."""
        ends = self.views.locations_of(args.transfer_id)
        return (ends[end],) if ends else ()

    # --- topics ---------------------------------------------------------------------------

    def _known_sku(self, sku: str, name: str) -> None:
        if self.catalog.variant(sku) is None:
            raise ProtocolError(ErrorCode.UNKNOWN_TOPIC, f"unknown topic {name!r}: no SKU {sku!r}")


class StockSource:
    def __init__(self, w: InventoryWiring) -> None:
        self.w = w

    def prepare(self, topic: Topic, name: str) -> None:
        assert isinstance(topic, StockTopic)
        self.w._known_sku(topic.sku, name)
        self.w.engine.bus.topic(name, epoch=self.w.engine.journal.epoch, seq=self.w.views.version(topic.sku))

    def snapshot(self, topic: Topic, name: str) -> tuple[str, int, dict[str, Any]]:
        assert isinstance(topic, StockTopic)
        state = dict(self.w.views.stock.get(topic.sku, {}))
        return self.w.engine.journal.epoch, self.w.views.version(topic.sku), state

    def released(self, name: str) -> None:
        pass


class NearSource:
    def __init__(self, w: InventoryWiring) -> None:
        self.w = w

    def prepare(self, topic: Topic, name: str) -> None:
        assert isinstance(topic, NearTopic)
        self.w._known_sku(topic.sku, name)
        self.w.engine.bus.topic(name, epoch=self.w.engine.journal.epoch, seq=self.w.views.version(topic.sku))
        if name not in self.w.near.last:
            self.w.near.snapshot(topic.sku, name, topic.lat, topic.lon)
        self.w.near.track(topic.sku, name, topic.lat, topic.lon)

    def snapshot(self, topic: Topic, name: str) -> tuple[str, int, dict[str, Any]]:
        assert isinstance(topic, NearTopic)
        state = self.w.near.last.get(name)
        if state is None:
            state = self.w.near.snapshot(topic.sku, name, topic.lat, topic.lon)
        return self.w.engine.journal.epoch, self.w.views.version(topic.sku), dict(state)

    def released(self, name: str) -> None:
        self.w.near.release(name)


class LocationSource:
    def __init__(self, w: InventoryWiring) -> None:
        self.w = w

    def prepare(self, topic: Topic, name: str) -> None:
        assert isinstance(topic, LocationTopic)
        if self.w.catalog.location(topic.location_id) is None:
            raise ProtocolError(
                ErrorCode.UNKNOWN_TOPIC, f"unknown topic {name!r}: no location {topic.location_id!r}"
            )
        self.w.engine.bus.topic(name)

    def snapshot(self, topic: Topic, name: str) -> tuple[str, int, dict[str, Any]]:
        assert isinstance(topic, LocationTopic)
        pos = self.w.engine.bus.position(name)
        return pos.epoch, pos.seq, dict(self.w.views.locations.get(topic.location_id, {}))

    def released(self, name: str) -> None:
        pass


def install(engine: Engine) -> InventoryWiring:
    w = InventoryWiring(engine)
    engine.inventory = w  # type: ignore[attr-defined]
    engine.actor_factories["sku"] = lambda sku: SkuPoolActor(w.env, sku)
    for name, args_type in domain.INVENTORY_COMMAND_ARGS.items():
        end = _TRANSFER_END.get(name)
        locations = w.ref_locations if end is None else partial(w.transfer_end, end)
        if name == "transfer.create":
            locations = w.transfer_source
        engine.dispatcher.register(
            CommandSpec(name=name, args_type=args_type, route=w.route,
                        locations=locations, validate=w.validate)
        )
    engine.sources.register(StockTopic, StockSource(w))
    engine.sources.register(NearTopic, NearSource(w))
    engine.sources.register(LocationTopic, LocationSource(w))
    engine.startup_hooks.append(w.startup)
    from .http import install_http

    engine.http_installers.append(lambda app, bearer, body: install_http(w, app, bearer, body))
    return w


def product_item(product: Any, variant: Any) -> dict[str, Any]:
    return {
        "product_id": product.id,
        "name": product.name,
        "brand": product.brand,
        "category": product.category,
        "sku": variant.sku,
        "barcode": variant.barcode,
        "plu": variant.plu,
        "options": variant.options,
        "price_cents": variant.price_cents,
        "unit": variant.unit,
        "serial_tracked": variant.serial_tracked,
        "tags": product.tags,
    }


def resolve_point(w: InventoryWiring, q: str) -> tuple[float, float] | None:
    return resolve_near(q, w.catalog)
