"""Outgoing webhook bodies: what a shop or ERP receives (the `webhooks` of /openapi.json).

Every delivery is one JSON object `{"id", "type", "created_at", "data"}`, signed in
`Omnitill-Signature` (see docs/orders.md). `data` depends on `type` (`WEBHOOK_DATA`):

* `order.updated`  -> `OrderUpdated`: an order's status changed or it got an exception;
* `stock.changed`  -> `StockChanged`: the newest level of every (sku, location) that changed
  since the previous delivery (coalesced; keep the highest `version` per pair);
* `stock.conflict` -> `StockConflictNotice`: a physical fact left promises without stock.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "WEBHOOK_DATA",
    "OrderUpdated",
    "StockChanged",
    "StockConflictNotice",
    "StockLevel",
]


class OrderUpdated(msgspec.Struct, frozen=True):
    order_id: str
    status: str
    version: int
    fulfilment: Literal["pickup", "ship", ""]
    exceptions: list[dict[str, Any]]
    shipment: dict[str, Any] | None  # {carrier, tracking} once shipped
    package: dict[str, Any] | None = None  # {parcels, weight_g} once packed (ship-from-store)


class StockLevel(msgspec.Struct, frozen=True):
    """One location's balance of one SKU, as `stock:{sku}` shows it, at the SKU's `version`."""

    sku: str
    location_id: str
    version: int
    on_hand: int
    reserved: int
    committed: int
    incoming: int
    unsellable: int
    safety_stock: int
    available: int


class StockChanged(msgspec.Struct, frozen=True):
    levels: list[StockLevel]


class StockConflictNotice(msgspec.Struct, frozen=True):
    sku: str
    location_id: str
    shortfall: int
    cause: str
    uncovered_hold_ids: list[str]
    uncovered_order_ids: list[str]
    uncovered_transfer_ids: list[str]


WEBHOOK_DATA: dict[str, type[msgspec.Struct]] = {
    "order.updated": OrderUpdated,
    "stock.changed": StockChanged,
    "stock.conflict": StockConflictNotice,
}
