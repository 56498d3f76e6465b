"""Order command names and their argument Structs (the `order.*` part of the wire contract).

An order is created from a cart and a destination: a pickup store, or a ship-to address with
coordinates (for routing). Its id is derived from the create command's op_id, so a retried
create names the same order. Every later command names the order by `order_id`.

Line numbers (`line`) are 1-based positions in the created cart, after duplicate SKUs were
merged into one line.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from .commands import MAX_QTY

__all__ = [
    "CHANNELS",
    "ORDER_COMMAND_ARGS",
    "RETURN_REASONS",
    "CartLine",
    "OrderArrivedArgs",
    "OrderCancelArgs",
    "OrderCreateArgs",
    "OrderPackArgs",
    "OrderPayArgs",
    "OrderPickupArgs",
    "OrderRefArgs",
    "OrderResolveArgs",
    "OrderReturnArgs",
    "OrderShipArgs",
    "PickupLine",
    "ReturnLine",
    "ShipTo",
]

Qty = Annotated[int, msgspec.Meta(ge=1, le=MAX_QTY)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
Text = Annotated[str, msgspec.Meta(max_length=200)]
Ref = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Cents = Annotated[int, msgspec.Meta(ge=0, le=10**12)]
LineNo = Annotated[int, msgspec.Meta(ge=1, le=1000)]
Ttl = Annotated[int, msgspec.Meta(ge=10, le=14 * 24 * 3600)]
Lat = Annotated[float, msgspec.Meta(ge=-90, le=90)]
Lon = Annotated[float, msgspec.Meta(ge=-180, le=180)]

Channel = Literal["web", "register", "kiosk", "marketplace"]
CHANNELS: tuple[str, ...] = ("web", "register", "kiosk", "marketplace")
ReturnReason = Literal[
    "unwanted", "wrong_size", "wrong_item", "late", "damaged", "defective", "other"
]
RETURN_REASONS: tuple[str, ...] = (
    "unwanted",
    "wrong_size",
    "wrong_item",
    "late",
    "damaged",
    "defective",
    "other",
)


class _Args(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class CartLine(_Args, frozen=True):
    sku: Id
    qty: Qty
    price_cents: Cents | None = None  # None: the catalog price


class ShipTo(_Args, frozen=True):
    address: Ref
    lat: Lat
    lon: Lon
    name: Text = ""
    postal_code: Text = ""


class OrderCreateArgs(_Args, frozen=True):
    """A cart and where it goes. Exactly one of `pickup_location` / `ship_to`."""

    lines: Annotated[list[CartLine], msgspec.Meta(max_length=100)]
    channel: Channel = "web"
    pickup_location: Id | None = None
    ship_to: ShipTo | None = None
    sold_at: Id | None = None  # where the sale happened (attribution; endless aisle)
    customer_ref: Text = ""
    hold_ttl_s: Ttl = 3 * 24 * 3600  # how long a pickup waits on the shelf


class OrderRefArgs(_Args, frozen=True):
    order_id: Id


class OrderPayArgs(_Args, frozen=True):
    order_id: Id
    reference: Ref  # the payment provider's id; card data never enters omnitill
    amount_cents: Cents = 0


class OrderArrivedArgs(_Args, frozen=True):
    """Curbside: the customer says "I'm here" and where they parked."""

    order_id: Id
    bay: Annotated[str, msgspec.Meta(min_length=1, max_length=16)]


class PickupLine(_Args, frozen=True):
    line: LineNo
    qty: Qty


class OrderPickupArgs(_Args, frozen=True):
    """Handed over at the counter. `lines` None = everything still outstanding."""

    order_id: Id
    lines: list[PickupLine] | None = None
    pickup_code: Annotated[str, msgspec.Meta(max_length=6)] = ""  # checked when given


class OrderShipArgs(_Args, frozen=True):
    order_id: Id
    carrier: Ref
    tracking: Ref


class OrderPackArgs(_Args, frozen=True):
    """Ship-from-store: the order is packed and waits for the carrier (parcels, total weight)."""

    order_id: Id
    parcels: Annotated[int, msgspec.Meta(ge=1, le=99)] = 1
    weight_g: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None


class OrderCancelArgs(_Args, frozen=True):
    order_id: Id
    reason: Text = ""


class ReturnLine(_Args, frozen=True):
    line: LineNo
    qty: Qty
    reason: ReturnReason = "unwanted"
    # None: decided by the reason (damaged / defective -> unsellable, else sellable)
    disposition: Literal["sellable", "unsellable"] | None = None


class OrderReturnArgs(_Args, frozen=True):
    """Returned at `location_id` (any store), line by line. An exchange names the new order."""

    order_id: Id
    location_id: Id
    lines: Annotated[list[ReturnLine], msgspec.Meta(min_length=1, max_length=100)]
    exchange_order_id: Id | None = None


class OrderResolveArgs(_Args, frozen=True):
    """Staff resolve an exception: re-route the line elsewhere, cancel it, or dismiss it."""

    order_id: Id
    exception_id: Id
    action: Literal["reroute", "cancel_line", "dismiss"]


ORDER_COMMAND_ARGS: dict[str, type[msgspec.Struct]] = {
    "order.create": OrderCreateArgs,
    "order.pay": OrderPayArgs,
    "order.pick": OrderRefArgs,
    "order.ready": OrderRefArgs,
    "order.arrived": OrderArrivedArgs,
    "order.pickup": OrderPickupArgs,
    "order.pack": OrderPackArgs,
    "order.ship": OrderShipArgs,
    "order.deliver": OrderRefArgs,
    "order.cancel": OrderCancelArgs,
    "order.return": OrderReturnArgs,
    "order.resolve": OrderResolveArgs,
}
