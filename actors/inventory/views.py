"""Projections of a SKU pool onto the bus topics (pure).

Topic values are absolute (see protocol.messages): a delta carries the new value of each
changed key, `None` deletes the key. Every function here reads the state AFTER the events
were evolved, so values are always the current truth even when a batch touched a key twice.

* `stock:{sku}`   -- key: location id, value: the balance dict (`balance_dict`).
* `location:{id}` -- written by the location actor, fed from here: key `sku:{sku}` (balance
  dict) and `hold:{hold_id}` (hold dict, or None once the hold is released, expired or
  committed, or picked up).
"""

from __future__ import annotations

from typing import Any

from .domain import Balance, Hold, SkuPool, balance_dict
from .events import (
    Event,
    HoldCommitted,
    HoldExpired,
    HoldExtended,
    HoldPickedUp,
    HoldPlaced,
    HoldReleased,
    event_locations,
)

__all__ = [
    "balance_dict",
    "hold_dict",
    "location_changes",
    "location_view",
    "stock_changes",
    "stock_view",
]

_HoldEvent = HoldPlaced | HoldExtended | HoldReleased | HoldExpired | HoldCommitted | HoldPickedUp


def hold_dict(sku: str, h: Hold) -> dict[str, Any]:
    return {
        "hold_id": h.hold_id,
        "sku": sku,
        "location_id": h.location_id,
        "qty": h.qty,
        "placed_at": h.placed_at,
        "ready_at": h.ready_at,
        "expires_at": h.expires_at,
        "customer_ref": h.customer_ref,
    }


def _balance_of(state: SkuPool, location_id: str) -> dict[str, int]:
    return balance_dict(state.balances.get(location_id) or Balance())


def _touched(events: list[Event]) -> list[str]:
    seen: dict[str, None] = {}
    for e in events:
        for loc in event_locations(e):
            seen[loc] = None
    return list(seen)


def stock_view(state: SkuPool) -> dict[str, Any]:
    """The whole `stock:{sku}` topic state."""
    return {loc: balance_dict(b) for loc, b in state.balances.items()}


def stock_changes(state: SkuPool, events: list[Event]) -> dict[str, Any]:
    """The `stock:{sku}` delta for `events` (already evolved into `state`)."""
    return {loc: _balance_of(state, loc) for loc in _touched(events)}


def location_changes(state: SkuPool, events: list[Event]) -> dict[str, dict[str, Any]]:
    """Per location, the `location:{id}` delta for `events` (already evolved into `state`)."""
    out: dict[str, dict[str, Any]] = {}
    sku_key = f"sku:{state.sku}"
    for loc in _touched(events):
        out[loc] = {sku_key: _balance_of(state, loc)}
    for e in events:
        if isinstance(e, _HoldEvent):
            h = state.holds.get(e.hold_id)
            out[e.location_id][f"hold:{e.hold_id}"] = None if h is None else hold_dict(state.sku, h)
    return out


def location_view(state: SkuPool, location_id: str) -> dict[str, Any]:
    """This pool's share of the `location:{id}` topic state (for a location actor's snapshot)."""
    view: dict[str, Any] = {}
    if location_id in state.balances:
        view[f"sku:{state.sku}"] = _balance_of(state, location_id)
    for h in state.holds.values():
        if h.location_id == location_id:
            view[f"hold:{h.hold_id}"] = hold_dict(state.sku, h)
    return view
