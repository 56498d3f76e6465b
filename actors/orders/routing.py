"""Fulfilment routing: which locations serve which cart lines (pure, no I/O).

Theory of operation
-------------------
Input: the cart (distinct SKUs with quantities), a destination (a pickup store, or a
ship-to point with coordinates), a snapshot of `available` units per (SKU, location) and the
sites that may fulfil. `available` already excludes safety stock, holds and commitments, so
**protecting safety stock is a hard constraint, not a preference**: no plan ever takes a unit
a store keeps back, and no plan assigns more than `available` anywhere.

Pickup: the chosen store serves the whole cart or the plan fails with a `Shortfall` that
says what is available where and which other pickup stores could serve the whole cart
(nearest first), so the client can offer another store or delivery.

Ship: a greedy cover, one location at a time. Every remaining candidate gets a sort key
built from `RoutingConfig.rules` in order, the smallest key wins, it takes as much of every
remaining line as it has, and the loop repeats until the cart is covered:

* `fewest_shipments` -- minus the units the location can still cover (a location that has
  everything wins outright, so an unsplit cart is always preferred);
* `closest` -- great-circle km from the location to the destination;
* `prefer_stores` -- 0 for stores, 1 for warehouses (ship-from-store first).

The rule order is configuration (`RoutingConfig.rules`); ties fall through to the next rule
and finally to the location id, so the plan is deterministic. Greedy set cover is not always
the global minimum of shipments, but it is within a log factor and runs in O(L*S) per step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec

from actors.catalog.geo import haversine_km

__all__ = [
    "DEFAULT_RULES",
    "Assignment",
    "Destination",
    "RoutePlan",
    "RoutingConfig",
    "Rule",
    "Shortfall",
    "Site",
    "route",
]

Rule = Literal["fewest_shipments", "closest", "prefer_stores"]
DEFAULT_RULES: tuple[Rule, ...] = ("fewest_shipments", "prefer_stores", "closest")


class Site(msgspec.Struct, frozen=True):
    """A location that may fulfil orders."""

    id: str
    lat: float
    lon: float
    kind: Literal["store", "warehouse"] = "store"
    pickup_enabled: bool = True
    can_ship: bool = True  # may ship to customers (ship-from-store / from the DC)


class RoutingConfig(msgspec.Struct, frozen=True):
    rules: tuple[Rule, ...] = DEFAULT_RULES
    ship_from_store: bool = True
    ship_from_warehouse: bool = True
    suggest_limit: int = 3


class Destination(msgspec.Struct, frozen=True):
    kind: Literal["pickup", "ship"]
    location_id: str = ""  # pickup store
    lat: float = 0.0
    lon: float = 0.0


class Assignment(msgspec.Struct, frozen=True):
    line_no: int
    sku: str
    location_id: str
    qty: int


class RoutePlan(msgspec.Struct, frozen=True):
    assignments: list[Assignment]

    @property
    def shipments(self) -> int:
        return len({a.location_id for a in self.assignments})


class Shortfall(msgspec.Struct, frozen=True):
    reason: str
    missing: dict[str, int]  # sku -> units that could not be placed
    available: dict[str, dict[str, int]]  # sku -> location -> available (> 0 only)
    suggest: list[str] = []  # pickup stores that could serve the whole cart, nearest first


Line = tuple[int, str, int]  # (line_no, sku, qty); SKUs distinct


def _positive(
    availability: Mapping[str, Mapping[str, int]], skus: Sequence[str]
) -> dict[str, dict[str, int]]:
    return {
        sku: {loc: n for loc, n in sorted(availability.get(sku, {}).items()) if n > 0}
        for sku in skus
    }


def _covers(avail: Mapping[str, Mapping[str, int]], lines: Sequence[Line], loc: str) -> bool:
    return all(avail.get(sku, {}).get(loc, 0) >= qty for _n, sku, qty in lines)


def route(
    lines: Sequence[Line],
    destination: Destination,
    availability: Mapping[str, Mapping[str, int]],
    sites: Mapping[str, Site],
    config: RoutingConfig | None = None,
) -> RoutePlan | Shortfall:
    config = config or RoutingConfig()
    skus = [sku for _n, sku, _q in lines]
    if destination.kind == "pickup":
        return _route_pickup(lines, destination, availability, sites, config, skus)
    return _route_ship(lines, destination, availability, sites, config, skus)


def _route_pickup(
    lines: Sequence[Line],
    dest: Destination,
    availability: Mapping[str, Mapping[str, int]],
    sites: Mapping[str, Site],
    config: RoutingConfig,
    skus: list[str],
) -> RoutePlan | Shortfall:
    store = dest.location_id
    if _covers(availability, lines, store):
        return RoutePlan([Assignment(n, sku, store, qty) for n, sku, qty in lines])
    here = sites.get(store)
    others = [
        s
        for s in sites.values()
        if s.pickup_enabled and s.id != store and _covers(availability, lines, s.id)
    ]
    if here is not None:
        others.sort(key=lambda s: (haversine_km(here.lat, here.lon, s.lat, s.lon), s.id))
    missing = {
        sku: qty - max(availability.get(sku, {}).get(store, 0), 0)
        for _n, sku, qty in lines
        if availability.get(sku, {}).get(store, 0) < qty
    }
    return Shortfall(
        reason=f"pickup store {store!r} does not have the whole cart",
        missing=missing,
        available=_positive(availability, skus),
        suggest=[s.id for s in others[: config.suggest_limit]],
    )


def _route_ship(
    lines: Sequence[Line],
    dest: Destination,
    availability: Mapping[str, Mapping[str, int]],
    sites: Mapping[str, Site],
    config: RoutingConfig,
    skus: list[str],
) -> RoutePlan | Shortfall:
    candidates = [
        s
        for s in sites.values()
        if s.can_ship
        and (config.ship_from_store if s.kind == "store" else config.ship_from_warehouse)
    ]
    # Work on a private copy: every assignment is subtracted, so nothing is used twice.
    # (One availability lookup per SKU: it may be a lazy view of the read model.)
    left: dict[str, dict[str, int]] = {}
    missing: dict[str, int] = {}
    need = {sku: qty for _n, sku, qty in lines}
    for sku, qty in need.items():
        avail = availability.get(sku) or {}
        row = left[sku] = {s.id: n if (n := avail.get(s.id, 0)) > 0 else 0 for s in candidates}
        short = qty - sum(row.values())
        if short > 0:
            missing[sku] = short
    if missing:
        return Shortfall(
            reason="not enough stock in the network",
            missing=missing,
            available=_positive(availability, skus),
        )
    # Sort key of a candidate: its rule parts in `rules` order, then its id. Only
    # fewest_shipments changes from one step to the next; the parts before and after its first
    # occurrence are fixed (a repeated fewest_shipments part always ties with the first).
    rules = config.rules
    fewest = "fewest_shipments" in rules  # only then does coverage rank the candidates
    first = rules.index("fewest_shipments") if fewest else len(rules)
    before: dict[str, tuple[float, ...]] = {}
    after: dict[str, tuple[float, ...]] = {}
    for s in candidates:
        d = haversine_km(dest.lat, dest.lon, s.lat, s.lon)
        kind = 0.0 if s.kind == "store" else 1.0
        parts = [d if r == "closest" else kind for r in rules if r != "fewest_shipments"]
        before[s.id] = tuple(parts[:first])
        after[s.id] = tuple(parts[first:])
    line_no = {sku: n for n, sku, _q in lines}

    assignments: list[Assignment] = []
    pool = sorted(before)
    while any(need.values()):
        best = ""
        best_key: tuple[Any, ...] | None = None
        for loc in pool:
            # Units of the remaining cart this location can cover; 0 = of no use now.
            cover = 0
            for sku, n in need.items():
                if n:
                    have = left[sku][loc]
                    if have:
                        cover += n if n < have else have
            if not cover:
                continue
            key = (before[loc], -cover if fewest else 0, after[loc], loc)
            if best_key is None or key < best_key:
                best, best_key = loc, key
        for sku in skus:
            take = min(need[sku], left[sku][best])
            if take > 0:
                need[sku] -= take
                left[sku][best] -= take
                assignments.append(Assignment(line_no[sku], sku, best, take))
        pool.remove(best)
    assignments.sort(key=lambda a: (a.line_no, a.location_id))
    return RoutePlan(assignments)
