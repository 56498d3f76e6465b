"""Projections of an order onto topics (pure).

* `order:{id}` -- the customer- and staff-facing live status; keys are fixed (see
  `order_view`), values are absolute, a delta carries the keys that changed.
* `location:{id}` -- key `order:{order_id}`: one entry per open pickup order in that store's
  pickup queue (`queue_entry`), `None` once the order left the queue.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .domain import OPEN_STATUSES, Order, line_totals

__all__ = [
    "order_view",
    "queue_entries",
    "queue_entry",
    "ship_entries",
    "ship_entry",
    "view_changes",
]


def _lines(state: Order) -> list[dict[str, Any]]:
    out = []
    for ln in state.lines:
        fulfilled, outstanding, _ret = line_totals(state, ln.line_no)
        out.append(
            {
                "line": ln.line_no,
                "sku": ln.sku,
                "qty": ln.qty,
                "price_cents": ln.price_cents,
                "fulfilled": fulfilled,
                "outstanding": outstanding,
                "cancelled": ln.cancelled,
                "returned": ln.returned,
                "allocations": [
                    {
                        "location_id": a.location_id,
                        "qty": a.qty,
                        "hold_id": a.hold_id,
                        "state": a.state if a.outstanding else "closed",
                        "fulfilled": a.fulfilled,
                        "released": a.released,
                    }
                    for a in state.allocs.values()
                    if a.line_no == ln.line_no
                ],
            }
        )
    return out


def order_view(state: Order) -> dict[str, Any]:
    """The whole `order:{id}` topic state."""
    show_code = state.status in ("ready", "partially_picked_up")
    return {
        "order_id": state.order_id,
        "status": state.status,
        "fulfilment": state.fulfilment,
        "channel": state.channel,
        "sold_at": state.sold_at,
        "pickup_location": state.pickup_location,
        "ship_to": state.ship_to or None,
        "customer_ref": state.customer_ref,
        "curbside": state.curbside,
        "lines": _lines(state),
        "pickup_code": state.pickup_code if show_code else "",
        "bay": state.bay,
        "arrived_at": state.arrived_at or None,
        "payment": {"reference": state.payment_ref, "amount_cents": state.paid_cents}
        if state.payment_ref
        else None,
        "package": {"parcels": state.parcels, "weight_g": state.weight_g or None}
        if state.parcels
        else None,
        "shipment": {"carrier": state.carrier, "tracking": state.tracking}
        if state.tracking
        else None,
        "exceptions": [msgspec.to_builtins(e) for e in state.exceptions.values()],
        "returns": [
            {k: v for k, v in msgspec.to_builtins(r).items() if k != "type"} for r in state.returns
        ],
        "refund_due_cents": state.refund_due_cents,
        "rejection": state.rejection or None,
        "times": dict(state.times),
        "created_at": state.created_at,
        "updated_at": state.updated_at,
        "version": state.version,
    }


def view_changes(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    if old is None:
        return dict(new)
    return {k: v for k, v in new.items() if old.get(k) != v}


def queue_entry(state: Order, location_id: str) -> dict[str, Any] | None:
    """The order's line in `location_id`'s pickup queue, or None if it has no business there."""
    if state.fulfilment != "pickup" or state.status not in OPEN_STATUSES:
        return None
    items = [
        {"line": a.line_no, "sku": a.sku, "qty": a.outstanding, "hold_id": a.hold_id}
        for a in state.allocs.values()
        if a.location_id == location_id and a.outstanding > 0
    ]
    if not items:
        return None
    return {
        "order_id": state.order_id,
        "status": state.status,
        "customer_ref": state.customer_ref,
        "channel": state.channel,
        "items": items,
        "curbside": state.curbside,
        "bay": state.bay,
        "arrived_at": state.arrived_at or None,
        "open_exceptions": sum(1 for e in state.exceptions.values() if not e.resolution),
        "created_at": state.created_at,
    }


def queue_entries(state: Order) -> dict[str, dict[str, Any] | None]:
    """location_id -> queue entry (None: remove) for every location the order ever touched."""
    locations = {a.location_id for a in state.allocs.values()}
    if state.pickup_location:
        locations.add(state.pickup_location)
    return {loc: queue_entry(state, loc) for loc in sorted(locations)}


SHIP_OPEN = frozenset({"placed", "picking", "packed"})


def ship_entry(state: Order, location_id: str) -> dict[str, Any] | None:
    """The order's line on `location_id`'s ship-from-store picking list (key `ship:{id}`), or
    None: open ship orders with units committed at that location."""
    if state.fulfilment != "ship" or state.status not in SHIP_OPEN:
        return None
    items = [
        {"line": a.line_no, "sku": a.sku, "qty": a.outstanding}
        for a in state.allocs.values()
        if a.location_id == location_id and a.outstanding > 0 and a.state == "committed"
    ]
    if not items:
        return None
    return {
        "order_id": state.order_id,
        "status": state.status,
        "customer_ref": state.customer_ref,
        "channel": state.channel,
        "items": items,
        "ship_to": state.ship_to or None,
        "parcels": state.parcels,
        "shipments": len({a.location_id for a in state.allocs.values() if a.outstanding > 0}),
        "created_at": state.created_at,
    }


def ship_entries(state: Order) -> dict[str, dict[str, Any] | None]:
    """location_id -> picking-list entry (None: remove) for every location the order touched."""
    return {loc: ship_entry(state, loc) for loc in sorted({a.location_id for a in state.allocs.values()})}

