"""The order's events: its whole life is its journal stream `order:{id}`.

Small immutable facts in one tagged union (the tag, the class name, is the journal's event
type: renaming a class is a journal change). Each event carries what `evolve` needs, so a
replay never consults anything outside the stream.

Stock effects are sagas: `SagaStarted` journals the intent (the exact inventory commands
with their deterministic op_ids) BEFORE any of them is sent, so an order actor restarted
half-way re-sends the same commands (answered from the SKU pools' op records) and then
finishes or compensates. `SagaFinished` closes it together with the outcome events.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from actors._codec import EventCodec

__all__ = [
    "AllocPlan",
    "AllocsCommitted",
    "AllocsReleased",
    "CustomerArrived",
    "Delivered",
    "Event",
    "ExceptionRaised",
    "ExceptionResolved",
    "Fulfilled",
    "HoldsPlaced",
    "LineCancelled",
    "LineReturned",
    "LineSpec",
    "MarkedReady",
    "OrderCancelled",
    "OrderConfirmed",
    "OrderPlaced",
    "OrderRejected",
    "Packed",
    "PaymentRecorded",
    "PickingStarted",
    "SagaFinished",
    "SagaStarted",
    "Shipped",
    "Step",
    "decode_event",
    "encode_event",
]


class LineSpec(msgspec.Struct, frozen=True):
    line_no: int
    sku: str
    qty: int
    price_cents: int = 0


class AllocPlan(msgspec.Struct, frozen=True):
    """Part of a line served from one location (a hold there, later maybe a commitment)."""

    alloc_no: int
    line_no: int
    sku: str
    location_id: str
    qty: int


class Step(msgspec.Struct, frozen=True):
    """One inventory command the saga sends to `sku:{sku}` (args as plain data)."""

    sku: str
    op_id: str
    name: str
    args: dict[str, Any]
    alloc_no: int = 0
    qty: int = 0  # units this step moves (fulfil/release/return bookkeeping)


class _Event(msgspec.Struct, frozen=True, tag=True, tag_field="type"):
    pass


class OrderPlaced(_Event, frozen=True):
    order_id: str
    create_op: str
    channel: str
    fulfilment: Literal["pickup", "ship"]
    lines: list[LineSpec]
    created_at: float
    pickup_code: str
    pickup_location: str = ""
    ship_to: dict[str, Any] = {}
    sold_at: str = ""
    customer_ref: str = ""
    curbside: bool = False  # the pickup store offers curbside
    hold_ttl_s: int = 0


class SagaStarted(_Event, frozen=True):
    op_id: str
    payload_hash: str
    command: str
    # create | replan | compensate | commit | pickup | ship | cancel | return | reroute | ...
    kind: str
    steps: list[Step]
    allocs: list[AllocPlan] = []  # new allocations this saga places (create / reroute)
    data: dict[str, Any] = {}  # what the finishing step needs (pickup lines, carrier ...)


class SagaFinished(_Event, frozen=True):
    op_id: str


class HoldsPlaced(_Event, frozen=True):
    holds: dict[str, str]  # str(alloc_no) -> hold_id


class AllocsCommitted(_Event, frozen=True):
    alloc_nos: list[int]


class AllocsReleased(_Event, frozen=True):
    """Units given back to the pool (cancel, compensation, re-route) or lost (expired); cause
    "replan": a create's allocation that never got its hold, its units routed again."""

    released: dict[str, int]  # str(alloc_no) -> qty
    cause: str


class OrderConfirmed(_Event, frozen=True):
    at: float


class OrderRejected(_Event, frozen=True):
    code: str
    message: str
    details: dict[str, Any]
    at: float


class PaymentRecorded(_Event, frozen=True):
    reference: str
    amount_cents: int
    at: float


class PickingStarted(_Event, frozen=True):
    at: float


class MarkedReady(_Event, frozen=True):
    at: float


class Packed(_Event, frozen=True):
    """Ship-from-store: packed, waiting for the carrier (a re-pack replaces the figures)."""

    parcels: int
    weight_g: int  # 0: not weighed
    at: float


class CustomerArrived(_Event, frozen=True):
    bay: str
    at: float


class Fulfilled(_Event, frozen=True):
    """Units handed over (pickup) or sent (ship): str(alloc_no) -> qty."""

    units: dict[str, int]
    how: Literal["pickup", "ship"]
    at: float


class Shipped(_Event, frozen=True):
    carrier: str
    tracking: str
    at: float


class Delivered(_Event, frozen=True):
    at: float


class OrderCancelled(_Event, frozen=True):
    reason: str
    at: float


class LineCancelled(_Event, frozen=True):
    line_no: int
    qty: int
    at: float


class LineReturned(_Event, frozen=True):
    return_id: str
    line_no: int
    qty: int
    location_id: str
    disposition: Literal["sellable", "unsellable"]
    reason: str
    refund_cents: int
    at: float
    exchange_order_id: str = ""


class ExceptionRaised(_Event, frozen=True):
    exception_id: str
    kind: str  # stock_conflict | hold_expired | reroute_failed
    alloc_no: int
    location_id: str
    message: str
    at: float


class ExceptionResolved(_Event, frozen=True):
    exception_id: str
    resolution: str  # rerouted | line_cancelled | dismissed | expired_cancelled
    at: float


Event = (
    OrderPlaced
    | SagaStarted
    | SagaFinished
    | HoldsPlaced
    | AllocsCommitted
    | AllocsReleased
    | OrderConfirmed
    | OrderRejected
    | PaymentRecorded
    | PickingStarted
    | MarkedReady
    | Packed
    | CustomerArrived
    | Fulfilled
    | Shipped
    | Delivered
    | OrderCancelled
    | LineCancelled
    | LineReturned
    | ExceptionRaised
    | ExceptionResolved
)

_codec: EventCodec[Event] = EventCodec(Event)
encode_event = _codec.encode
decode_event = _codec.decode
