"""Read models of inventory on this node: per-SKU stock, per-location views, near-me views.

The SKU-pool actors are the only writers. After each commit an actor calls `apply()`
synchronously (no checkpoint between the update and the bus publish), so a snapshot taken from
these views always matches the position the bus has published up to. At start-up the engine
rebuilds the views by replaying each SKU stream through the pure domain (snapshots first).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from actors.catalog import Catalog
from actors.catalog.geo import haversine_km, pickup_ready_at

__all__ = ["InventoryViews", "NearViews"]

NEAR_LIMIT = 5
MAX_CLOSED_REFS = 100_000


class InventoryViews:
    def __init__(self) -> None:
        self.stock: dict[str, dict[str, dict[str, Any]]] = {}  # sku -> location -> balance
        # sku -> location -> available, kept beside `stock` for routing (read on every order:
        # building it per read cost ~3 % of an order's CPU). Read-only for everyone else.
        self.available: dict[str, dict[str, int]] = {}
        self.versions: dict[str, int] = {}  # sku -> stream version
        self.locations: dict[str, dict[str, Any]] = {}  # location -> "sku:X"/"hold:H" -> value
        # Open hold/transfer id -> sku (for routing id-only commands), and -> (location,) /
        # (from, to) for location-scoped tokens.
        self.refs: dict[str, str] = {}
        self.ref_locations: dict[str, tuple[str, ...]] = {}
        # Finished ones, newest last, at most MAX_CLOSED_REFS: a late release or extend still
        # reaches its pool for a precise answer ("expired", "committed"), and the map does not
        # grow with every hold ever placed (an order places about three).
        self.closed_refs: OrderedDict[str, tuple[str, tuple[str, ...]]] = OrderedDict()

    def version(self, sku: str) -> int:
        return self.versions.get(sku, 0)

    def apply(
        self,
        sku: str,
        version: int,
        stock_changes: dict[str, Any],
        location_changes: dict[str, dict[str, Any]],
    ) -> None:
        self.versions[sku] = version
        balances = self.stock.setdefault(sku, {})
        available = self.available.setdefault(sku, {})
        for loc, value in stock_changes.items():
            if value is None:
                balances.pop(loc, None)
                available.pop(loc, None)
            else:
                balances[loc] = value
                available[loc] = int(value.get("available", 0))
        self.apply_locations(sku, location_changes)

    def apply_locations(self, sku: str, location_changes: dict[str, dict[str, Any]]) -> None:
        """Only the `location:*` part of `apply` (a follower of another node's writes)."""
        for loc, changes in location_changes.items():
            view = self.locations.setdefault(loc, {})
            for key, value in changes.items():
                if value is None:
                    view.pop(key, None)
                else:
                    view[key] = value
                    if key.startswith("hold:"):
                        self.refs[key[5:]] = sku

    def pool_location_keys(self, sku: str) -> dict[str, list[str]]:
        """Per location, the keys of `location:{id}` that belong to `sku`'s pool."""
        sku_key = f"sku:{sku}"
        out: dict[str, list[str]] = {}
        for loc, view in self.locations.items():
            keys = [k for k, v in view.items()
                    if k == sku_key or (k.startswith("hold:") and isinstance(v, dict)
                                        and v.get("sku") == sku)]
            if keys:
                out[loc] = keys
        return out

    def remember_ref(self, ref_id: str, sku: str, locations: tuple[str, ...] = ()) -> None:
        self.refs[ref_id] = sku
        if locations:
            self.ref_locations[ref_id] = locations

    def remember_closed_ref(
        self, ref_id: str, sku: str, locations: tuple[str, ...] = ()
    ) -> None:
        """A hold/transfer id that is finished already (replayed, or an `Allocated` id that was
        never open): straight to the closed refs."""
        if ref_id not in self.refs:
            self.remember_ref(ref_id, sku, locations)
            self.close_ref(ref_id)

    def close_ref(self, ref_id: str) -> None:
        """The hold or transfer is finished: keep its route among the newest closed ones."""
        sku = self.refs.pop(ref_id, None)
        if sku is None:
            return
        self.closed_refs[ref_id] = (sku, self.ref_locations.pop(ref_id, ()))
        self.closed_refs.move_to_end(ref_id)
        while len(self.closed_refs) > MAX_CLOSED_REFS:
            self.closed_refs.popitem(last=False)

    def sku_of(self, ref_id: str) -> str | None:
        """The SKU pool a hold/transfer id belongs to (open or recently finished)."""
        sku = self.refs.get(ref_id)
        if sku is None:
            closed = self.closed_refs.get(ref_id)
            sku = closed[0] if closed else None
        return sku

    def locations_of(self, ref_id: str) -> tuple[str, ...] | None:
        found = self.ref_locations.get(ref_id)
        if found is None:
            closed = self.closed_refs.get(ref_id)
            found = closed[1] if closed and closed[1] else None
        return found


class NearViews:
    """Derived `near:{sku}:{lat},{lon}` topics: the nearest pickup stores with stock.

    A near topic shares the position of `stock:{sku}`: each stock delta produces exactly one
    near delta (possibly with no changes) with the same (epoch, from_seq, seq), so resume and
    gap detection work exactly as for the stock topic.
    """

    def __init__(self, catalog: Catalog, views: InventoryViews, clock: Callable[[], float] = time.time) -> None:
        self._catalog = catalog
        self._views = views
        self._clock = clock
        self.by_sku: dict[str, dict[str, tuple[float, float]]] = {}  # sku -> topic -> (lat, lon)
        self.last: dict[str, dict[str, Any]] = {}  # topic -> last published state

    def track(self, sku: str, name: str, lat: float, lon: float) -> None:
        self.by_sku.setdefault(sku, {})[name] = (lat, lon)

    def release(self, name: str) -> None:
        self.last.pop(name, None)
        for topics in self.by_sku.values():
            topics.pop(name, None)

    def compute(self, sku: str, lat: float, lon: float) -> dict[str, Any]:
        balances = self._views.stock.get(sku, {})
        now = self._clock()
        found: list[tuple[float, str, dict[str, Any]]] = []
        for loc_id, balance in balances.items():
            available = balance.get("available", 0)
            if available <= 0:
                continue
            loc = self._catalog.location(loc_id)
            if loc is None or not loc.pickup_enabled:
                continue
            found.append((haversine_km(lat, lon, loc.lat, loc.lon), loc_id, balance))
        found.sort()
        state: dict[str, Any] = {}
        for distance, loc_id, balance in found[:NEAR_LIMIT]:
            loc = self._catalog.location(loc_id)
            assert loc is not None
            state[loc_id] = {
                "name": loc.name,
                "address": loc.address,
                "distance_km": round(distance, 2),
                "available": balance["available"],
                "ready_at": pickup_ready_at(loc, now, loc.pickup_lead_s),
            }
        return state

    def snapshot(self, sku: str, name: str, lat: float, lon: float) -> dict[str, Any]:
        state = self.compute(sku, lat, lon)
        self.last[name] = state
        return state

    def changes_for(self, sku: str) -> list[tuple[str, dict[str, Any]]]:
        """After a stock change of `sku`: (topic, changes) for each tracked near topic."""
        out: list[tuple[str, dict[str, Any]]] = []
        for name, (lat, lon) in self.by_sku.get(sku, {}).items():
            new = self.compute(sku, lat, lon)
            old = self.last.get(name, {})
            changes: dict[str, Any] = {k: v for k, v in new.items() if old.get(k) != v}
            changes.update({k: None for k in old if k not in new})
            self.last[name] = new
            out.append((name, changes))
        return out
