"""The SKU pool's events: small immutable facts, one tagged union, msgpack on the journal.

Each event carries everything `evolve` needs to replay it (quantities, location ids, the
computed variance of a count ...), so replay never consults anything but the previous state
and the event itself. Events about one location name it in `location_id`; transfer events
name both ends. The tag (`type`) is the class name and is what the journal stores as the
event type: renaming a class is a wire/journal change.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from actors._codec import EventCodec

__all__ = [
    "Adjusted",
    "Allocated",
    "CommitmentFulfilled",
    "CommitmentReleased",
    "Counted",
    "Event",
    "HoldCommitted",
    "HoldExpired",
    "HoldExtended",
    "HoldPickedUp",
    "HoldPlaced",
    "HoldReleased",
    "Received",
    "Returned",
    "SafetyStockSet",
    "Sold",
    "StockConflict",
    "TransferCancelled",
    "TransferCreated",
    "TransferReceived",
    "TransferShipped",
    "decode_event",
    "encode_event",
    "event_locations",
]


class _Event(msgspec.Struct, frozen=True, tag=True, tag_field="type"):
    pass


# --- physical stock movements -----------------------------------------------------------


class Received(_Event, frozen=True):
    location_id: str
    qty: int
    reference: str = ""


class Adjusted(_Event, frozen=True):
    """`on_hand += delta` and `unsellable += unsellable_delta` (both decided up front)."""

    location_id: str
    delta: int
    reason: str
    unsellable_delta: int = 0
    note: str = ""


class Counted(_Event, frozen=True):
    """A physical count: `on_hand` becomes `counted`; `variance = counted - on_hand_before`."""

    location_id: str
    counted: int
    variance: int
    unsellable_delta: int = 0


class Sold(_Event, frozen=True):
    """Always accepted (physical facts win); may drive on_hand and available negative."""

    location_id: str
    qty: int
    register_id: str = ""
    offline_at: float | None = None


class Returned(_Event, frozen=True):
    location_id: str
    qty: int
    disposition: Literal["sellable", "unsellable"] = "sellable"
    reason: str = ""


class SafetyStockSet(_Event, frozen=True):
    location_id: str
    safety_stock: int
    previous: int = 0


# --- holds (pickup reservations) --------------------------------------------------------


class HoldPlaced(_Event, frozen=True):
    hold_id: str
    location_id: str
    qty: int
    expires_at: float
    placed_at: float
    ready_at: float
    customer_ref: str = ""


class HoldExtended(_Event, frozen=True):
    hold_id: str
    location_id: str
    expires_at: float


class HoldReleased(_Event, frozen=True):
    hold_id: str
    location_id: str
    qty: int


class HoldExpired(_Event, frozen=True):
    hold_id: str
    location_id: str
    qty: int
    customer_ref: str = ""  # whose hold it was (the hold itself is gone once this applies)


class HoldCommitted(_Event, frozen=True):
    """The hold became an order commitment: `reserved -= qty`, `committed += qty`."""

    hold_id: str
    location_id: str
    qty: int
    order_id: str


class Allocated(_Event, frozen=True):
    """Units committed to an order directly (`hold.place` with `commit_order_id`: a ship
    allocation): `committed += qty`. One fact instead of `HoldPlaced` + `HoldCommitted`, with
    no hold and no expiry in between; `hold_id` names the allocation (the same id a hold would
    have had, so a late `hold.*` on it answers "committed")."""

    hold_id: str
    location_id: str
    qty: int
    order_id: str
    placed_at: float


class HoldPickedUp(_Event, frozen=True):
    """The customer collected the hold at the counter: `reserved -= qty`, `on_hand -= qty`."""

    hold_id: str
    location_id: str
    qty: int


# --- order commitments ------------------------------------------------------------------


class CommitmentFulfilled(_Event, frozen=True):
    """Handed over to the customer: `committed -= qty` and `on_hand -= qty`."""

    order_id: str
    location_id: str
    qty: int


class CommitmentReleased(_Event, frozen=True):
    """The order gave the stock back (cancelled): `committed -= qty`."""

    order_id: str
    location_id: str
    qty: int


# --- transfers --------------------------------------------------------------------------


class TransferCreated(_Event, frozen=True):
    """Reserves `qty` at the source, counted in the source's `committed`."""

    transfer_id: str
    from_location: str
    to_location: str
    qty: int
    created_at: float


class TransferShipped(_Event, frozen=True):
    transfer_id: str
    from_location: str
    to_location: str
    qty: int


class TransferReceived(_Event, frozen=True):
    """`received <= shipped`; `shipped - received` is recorded as lost in transit."""

    transfer_id: str
    from_location: str
    to_location: str
    shipped: int
    received: int


class TransferCancelled(_Event, frozen=True):
    transfer_id: str
    from_location: str
    to_location: str
    qty: int


# --- exceptions for people --------------------------------------------------------------


class StockConflict(_Event, frozen=True):
    """A physical fact left promises at `location_id` uncovered by sellable stock.

    Changes no quantity: it tells the order layer and staff which promises to re-route.
    `shortfall = max(0, reserved + committed - max(0, on_hand - unsellable))` after the event.
    Sellable stock covers order commitments first, then holds (oldest first), then
    transfers; the lists name what is left (wholly or partly) without cover.
    """

    location_id: str
    shortfall: int
    cause: str
    uncovered_hold_ids: list[str] = []
    uncovered_order_ids: list[str] = []
    uncovered_transfer_ids: list[str] = []


Event = (
    Received
    | Adjusted
    | Counted
    | Sold
    | Returned
    | SafetyStockSet
    | HoldPlaced
    | HoldExtended
    | HoldReleased
    | HoldExpired
    | HoldCommitted
    | Allocated
    | HoldPickedUp
    | CommitmentFulfilled
    | CommitmentReleased
    | TransferCreated
    | TransferShipped
    | TransferReceived
    | TransferCancelled
    | StockConflict
)

_codec: EventCodec[Event] = EventCodec(Event)
encode_event = _codec.encode
decode_event = _codec.decode


def event_locations(event: Event) -> tuple[str, ...]:
    """The location ids whose balance (or pickup queue) this event touches."""
    loc: str | None = getattr(event, "location_id", None)  # every event but transfers'
    if loc is not None:
        return (loc,)
    if isinstance(event, TransferCreated | TransferCancelled):
        return (event.from_location,)
    if isinstance(event, TransferShipped):
        return (event.from_location, event.to_location)
    if isinstance(event, TransferReceived):
        return (event.to_location,)
    return (event.location_id,)
