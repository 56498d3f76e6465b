"""Command names and their argument Structs: the contract for `command` frames and REST bodies.

Quantities are whole units of the SKU's selling unit (each, or grams for weighed goods), from
1 to MAX_QTY. Validation here is the first line; the domain re-checks what depends on state.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

__all__ = [
    "COMMAND_ARGS",
    "MAX_QTY",
    "AdjustArgs",
    "CountArgs",
    "HoldCommitArgs",
    "HoldExtendArgs",
    "HoldPlaceArgs",
    "HoldRefArgs",
    "ReceiveArgs",
    "ReturnArgs",
    "SafetyStockArgs",
    "SaleArgs",
    "TransferCreateArgs",
    "TransferRefArgs",
]

MAX_QTY = 1_000_000
Qty = Annotated[int, msgspec.Meta(ge=1, le=MAX_QTY)]
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_QTY)]
Delta = Annotated[int, msgspec.Meta(ge=-MAX_QTY, le=MAX_QTY)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
Ttl = Annotated[int, msgspec.Meta(ge=10, le=14 * 24 * 3600)]
Text = Annotated[str, msgspec.Meta(max_length=200)]

AdjustReason = Literal["count", "damage", "shrink", "found", "correction"]
ReturnDisposition = Literal["sellable", "unsellable"]


class _Args(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class ReceiveArgs(_Args, frozen=True):
    sku: Id
    location_id: Id
    qty: Qty
    reference: Text = ""


class AdjustArgs(_Args, frozen=True):
    sku: Id
    location_id: Id
    delta: Delta
    reason: AdjustReason
    note: Text = ""


class CountArgs(_Args, frozen=True):
    sku: Id
    location_id: Id
    counted: Count


class SaleArgs(_Args, frozen=True):
    sku: Id
    location_id: Id
    qty: Qty
    register_id: Text = ""
    # A sale rung up offline carries the time it happened; physical facts win (invariant 6).
    offline_at: float | None = None


class ReturnArgs(_Args, frozen=True):
    sku: Id
    location_id: Id
    qty: Qty
    disposition: ReturnDisposition = "sellable"
    reason: Text = ""


class SafetyStockArgs(_Args, frozen=True):
    sku: Id
    location_id: Id
    safety_stock: Count


class HoldPlaceArgs(_Args, frozen=True):
    sku: Id
    location_id: Id
    qty: Qty
    ttl_s: Ttl = 2 * 3600
    customer_ref: Text = ""
    # "pickup": the customer collects it here, so the location must offer pickup.
    # "ship": an allocation for an order shipped from here (any location with stock, the DC
    # included); it is never collected, so it is ready at once.
    purpose: Literal["pickup", "ship"] = "pickup"
    # Commit the new hold to this order in the same step (no expiry, no second round trip):
    # the hold is placed and committed atomically, or nothing happens.
    commit_order_id: Id | None = None


class HoldRefArgs(_Args, frozen=True):
    hold_id: Id


class HoldExtendArgs(_Args, frozen=True):
    hold_id: Id
    ttl_s: Ttl


class HoldCommitArgs(_Args, frozen=True):
    hold_id: Id
    order_id: Id


class TransferCreateArgs(_Args, frozen=True):
    sku: Id
    from_location: Id
    to_location: Id
    qty: Qty


class TransferRefArgs(_Args, frozen=True):
    transfer_id: Id
    # Receive may record fewer than shipped (the rest is lost in transit); never more.
    qty: Qty | None = None


COMMAND_ARGS: dict[str, type[msgspec.Struct]] = {
    "stock.receive": ReceiveArgs,
    "stock.adjust": AdjustArgs,
    "stock.count": CountArgs,
    "stock.sale": SaleArgs,
    "stock.return": ReturnArgs,
    "stock.set_safety": SafetyStockArgs,
    "hold.place": HoldPlaceArgs,
    "hold.extend": HoldExtendArgs,
    "hold.release": HoldRefArgs,
    "hold.commit": HoldCommitArgs,
    "hold.pickup": HoldRefArgs,  # customer collected it: reserved and on_hand both decrease
    "transfer.create": TransferCreateArgs,
    "transfer.ship": TransferRefArgs,
    "transfer.receive": TransferRefArgs,
    "transfer.cancel": TransferRefArgs,
}
