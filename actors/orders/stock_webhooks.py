"""Stock webhooks: `stock.changed` (coalesced levels) and `stock.conflict`, for shops and ERPs.

Theory of operation
-------------------
A hot SKU pool commits thousands of times a second; a webhook per commit would flood every
receiver and the delivery queue. So levels are coalesced. The pool listener
(`on_pool_events`: synchronous, after the pool's commit and the read-model update) writes the
latest balance of every (sku, location) the batch touched into `pending`, over whatever was
there, with the pool's version. At most one `Flush` is outstanding for the `webhooks:stock`
actor: it waits `interval_s`, takes `pending` whole and emits one `stock.changed` delivery
per endpoint per `max_levels` levels, through the same signed, retried, logged path as
order webhooks (`webhooks.Webhooks.emit`). So a receiver gets at most one delivery per
interval whatever the write rate, and every level in it is the newest at the flush.

Ordering: a retried delivery can arrive after a newer one. `version` (the SKU's stream
version) only grows, so a receiver keeps, per (sku, location), the level with the highest
version. Levels are a feed, not a log: what is pending when the process stops is not sent;
`GET /api/v1/stock/{sku}` is the reconciliation read.

`stock.conflict` (a physical fact left promises without stock, `StockConflict`) is rare and
wants a person, so it goes out at once, one event per conflict.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import msgspec
import trio

from actors.inventory.events import Event as PoolEvent
from actors.inventory.events import StockConflict, event_locations
from engine.runtime import Actor, Envelope
from protocol.webhooks import StockChanged, StockConflictNotice, StockLevel

from .webhooks import Webhooks

if TYPE_CHECKING:
    from engine.server import Engine

__all__ = ["FEED_KEY", "Flush", "StockFeed", "StockFeedActor"]

log = logging.getLogger("omnitill.webhooks")

FEED_KEY = "webhooks:stock"


class Flush(msgspec.Struct, frozen=True):
    """Tells the feed actor that levels are pending."""


class StockFeed:
    """Collects the newest level per (sku, location) between flushes."""

    def __init__(
        self, hooks: Webhooks, engine: Engine, *, interval_s: float = 1.0, max_levels: int = 500
    ) -> None:
        self.hooks = hooks
        self.engine = engine
        self.interval_s = interval_s
        self.max_levels = max_levels
        self.pending: dict[tuple[str, str], StockLevel] = {}
        self.scheduled = False
        self.scheduled_at = 0.0
        self.flushes = 0

    def on_pool_events(self, sku: str, events: list[PoolEvent]) -> None:
        """`InventoryEnv.listeners` hook. Free when no endpoint wants stock events. Never
        raises: it runs in the SKU pool's task after its commit, and a webhook must not
        take a stock write down with it."""
        if not self.hooks.endpoints:
            return
        try:
            self._collect(sku, events)
        except Exception:
            log.exception("stock webhooks: events of %s not sent", sku)

    def _collect(self, sku: str, events: list[PoolEvent]) -> None:
        hooks = self.hooks
        if hooks.wants("stock.conflict"):
            for event in events:
                if isinstance(event, StockConflict):
                    # The notice is the event's fields plus the SKU (a test checks they agree).
                    notice = StockConflictNotice(sku=sku, **msgspec.structs.asdict(event))
                    hooks.emit("stock.conflict", notice, self.engine.registry)
        if not hooks.wants("stock.changed"):
            return
        views = self.engine.inventory.views  # type: ignore[attr-defined]
        balances = views.stock.get(sku, {})
        version = views.version(sku)
        touched = {loc for event in events for loc in event_locations(event)}
        for loc in touched:  # one level per location, however many events the batch had
            balance = balances.get(loc)
            if balance is not None:
                self.pending[(sku, loc)] = StockLevel(
                    sku=sku, location_id=loc, version=version, **balance
                )
        now = time.monotonic()
        # A Flush lost with a crashed feed actor must not stop the feed: tell it again.
        if self.pending and (not self.scheduled or now - self.scheduled_at > self._lost_after_s):
            try:
                self.scheduled = self.engine.registry.ref(FEED_KEY).try_tell(Flush())
            except Exception:  # shutting down: the next commit tries again
                self.scheduled = False
            self.scheduled_at = now

    @property
    def _lost_after_s(self) -> float:
        return 4 * self.interval_s + 5.0

    def flush(self) -> int:
        """Emit everything pending; the number of levels sent."""
        levels, self.pending = list(self.pending.values()), {}
        self.scheduled = False
        for i in range(0, len(levels), self.max_levels):
            chunk = StockChanged(levels=levels[i : i + self.max_levels])
            self.hooks.emit("stock.changed", chunk, self.engine.registry)
        if levels:
            self.flushes += 1
        return len(levels)


class StockFeedActor(Actor):
    """Waits out the interval after a `Flush`, then sends what piled up meanwhile."""

    def __init__(self, feed: StockFeed) -> None:
        self.feed = feed

    async def handle_batch(self, batch: list[Envelope]) -> None:
        for envelope in batch:
            envelope.respond(None)
        await trio.sleep(self.feed.interval_s)
        self.feed.flush()
