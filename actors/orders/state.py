"""The order aggregate's state and `evolve` (pure): lines, allocations, statuses, and how
each journaled fact changes them. `domain.py` decides; this module only applies facts.

`evolve` mutates and returns the state (as the SKU pool does); replaying the stream from
`initial(order_id)` rebuilds it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from actors.inventory.domain import derive_id
from protocol.errors import ErrorCode
from protocol.op_ids import op_id_millis

from .events import (
    AllocPlan,
    AllocsCommitted,
    AllocsReleased,
    CustomerArrived,
    Delivered,
    Event,
    ExceptionRaised,
    ExceptionResolved,
    Fulfilled,
    HoldsPlaced,
    LineCancelled,
    LineReturned,
    MarkedReady,
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderRejected,
    Packed,
    PaymentRecorded,
    PickingStarted,
    SagaFinished,
    SagaStarted,
    Shipped,
    Step,
)
from .routing import RoutingConfig, Site

__all__ = [
    "OPEN_STATUSES",
    "SHIP_HOLD_TTL_S",
    "UNSELLABLE_REASONS",
    "Alloc",
    "Ctx",
    "Decision",
    "FlagArgs",
    "Line",
    "Order",
    "OrderException",
    "OrderPolicy",
    "Pending",
    "Rejection",
    "Status",
    "StepResult",
    "decode_state",
    "encode_state",
    "evolve",
    "initial",
    "line_totals",
    "order_id_for",
    "pickup_code_for",
]

Status = Literal[
    "new",
    "pending",
    "rejected",
    "placed",
    "picking",
    "packed",
    "ready",
    "partially_picked_up",
    "picked_up",
    "shipped",
    "delivered",
    "cancelled",
    "returned",
]
OPEN_STATUSES: frozenset[str] = frozenset(
    {"placed", "picking", "packed", "ready", "partially_picked_up"}
)
UNSELLABLE_REASONS = frozenset({"damaged", "defective"})
SHIP_HOLD_TTL_S = 3600  # ship orders commit their holds at once; the TTL only covers that gap


# --- state ------------------------------------------------------------------------------


class Alloc(msgspec.Struct):
    alloc_no: int
    line_no: int
    sku: str
    location_id: str
    qty: int
    hold_id: str = ""
    state: Literal["planned", "held", "committed"] = "planned"
    fulfilled: int = 0
    released: int = 0

    @property
    def outstanding(self) -> int:
        return self.qty - self.fulfilled - self.released


class Line(msgspec.Struct):
    line_no: int
    sku: str
    qty: int
    price_cents: int = 0
    cancelled: int = 0
    returned: int = 0


class OrderException(msgspec.Struct):
    exception_id: str
    kind: str
    alloc_no: int
    location_id: str
    message: str
    at: float
    resolution: str = ""


class Pending(msgspec.Struct):
    op_id: str
    payload_hash: str
    command: str
    kind: str
    steps: list[Step]
    allocs: list[AllocPlan] = []
    data: dict[str, Any] = {}


class Order(msgspec.Struct):
    order_id: str
    version: int = 0
    status: Status = "new"
    channel: str = ""
    fulfilment: Literal["pickup", "ship"] = "pickup"
    create_op: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    pickup_code: str = ""
    pickup_location: str = ""
    ship_to: dict[str, Any] = {}
    sold_at: str = ""
    customer_ref: str = ""
    curbside: bool = False
    hold_ttl_s: int = 0
    lines: list[Line] = []
    allocs: dict[int, Alloc] = {}
    payment_ref: str = ""
    paid_cents: int = 0
    bay: str = ""
    arrived_at: float = 0.0
    parcels: int = 0  # packed (ship-from-store): parcels and total weight; 0: not packed
    weight_g: int = 0
    carrier: str = ""
    tracking: str = ""
    exceptions: dict[str, OrderException] = {}
    returns: list[LineReturned] = []
    refund_due_cents: int = 0
    pending: Pending | None = None
    rejection: dict[str, Any] = {}
    times: dict[str, float] = {}  # status -> when it was reached


def initial(order_id: str) -> Order:
    return Order(order_id=order_id)


def order_id_for(create_op_id: str) -> str:
    """The order id of a create command: retries of the same op_id name the same order.

    A time-ordered (UUIDv7) op_id, which our clients send, gives a time-ordered id: its
    millisecond clock, then 64 bits of the op_id's hash. Orders created together then share
    the journal's index pages (their streams, events and derived inventory op_ids all start
    with the order id) instead of each dirtying a random page per commit. Any other op_id
    keeps the plain hash, as before (so a retried create keeps naming the same order)."""
    millis = op_id_millis(create_op_id)
    if millis is None:
        return derive_id("O", create_op_id)
    return "O" + millis.upper() + hashlib.sha256(create_op_id.encode()).hexdigest()[:16].upper()


def pickup_code_for(create_op_id: str) -> str:
    """Six digits from the (private) create op_id: deterministic, not derivable from the id."""
    digest = hashlib.sha256(b"pickup-code:" + create_op_id.encode()).digest()
    return f"{int.from_bytes(digest[:8], 'big') % 1_000_000:06d}"


_state_enc = msgspec.msgpack.Encoder()
_state_dec = msgspec.msgpack.Decoder(Order)


def encode_state(state: Order) -> bytes:
    return _state_enc.encode(state)


def decode_state(data: bytes) -> Order:
    return _state_dec.decode(data)


# --- context and results ----------------------------------------------------------------


class OrderPolicy(msgspec.Struct, frozen=True):
    routing: RoutingConfig = RoutingConfig()
    on_hold_expiry: Literal["cancel", "reroute"] = "cancel"
    auto_reroute: bool = True  # on a stock conflict, try another location before flagging


class Ctx(msgspec.Struct, frozen=True):
    now: float
    op_id: str
    payload_hash: str = ""
    sites: Mapping[str, Site] = {}
    curbside: frozenset[str] = frozenset()  # locations offering curbside
    availability: Mapping[str, Mapping[str, int]] = {}  # sku -> location -> available
    prices: Mapping[str, int] = {}  # sku -> catalog price (also: the known SKUs)
    policy: OrderPolicy = OrderPolicy()


class Rejection(msgspec.Struct, frozen=True):
    code: ErrorCode
    message: str
    details: dict[str, Any] = {}


class Decision(msgspec.Struct):
    events: list[Event] = []
    result: dict[str, Any] = {}
    rejection: Rejection | None = None


class StepResult(msgspec.Struct, frozen=True):
    ok: bool
    result: dict[str, Any] = {}
    code: str = ""
    message: str = ""
    details: dict[str, Any] = {}


class FlagArgs(msgspec.Struct, frozen=True):
    """Internal `order.flag`: inventory reports a promise of this order went bad."""

    kind: Literal["stock_conflict", "hold_expired"]
    sku: str
    location_id: str
    hold_id: str = ""


def _reject(code: ErrorCode, message: str, **details: Any) -> Decision:
    return Decision(rejection=Rejection(code, message, details))


# --- evolve -----------------------------------------------------------------------------


def _set_status(state: Order, status: Status, at: float) -> None:
    state.status = status
    state.times.setdefault(status, at)


def line_totals(state: Order, line_no: int) -> tuple[int, int, int]:
    """(fulfilled, live outstanding in allocations, returnable) of one line."""
    fulfilled = outstanding = 0
    for a in state.allocs.values():
        if a.line_no == line_no:
            fulfilled += a.fulfilled
            outstanding += a.outstanding
    line = state.lines[line_no - 1]
    return fulfilled, outstanding, fulfilled - line.returned


def _settle(state: Order, at: float) -> None:
    """Status after units were handed over, shipped or cancelled."""
    if state.fulfilment == "ship" and state.status in ("shipped", "delivered"):
        return
    fulfilled = sum(a.fulfilled for a in state.allocs.values())
    outstanding = sum(a.outstanding for a in state.allocs.values())
    if outstanding == 0:
        if fulfilled == 0:
            _set_status(state, "cancelled", at)
        elif state.fulfilment == "pickup":
            _set_status(state, "picked_up", at)
        else:
            _set_status(state, "shipped", at)
    elif fulfilled > 0 and state.fulfilment == "pickup":
        _set_status(state, "partially_picked_up", at)


def evolve(state: Order, event: Event) -> Order:
    state.version += 1
    match event:
        case OrderPlaced():
            state.status = "pending"
            state.channel = event.channel
            state.fulfilment = event.fulfilment
            state.create_op = event.create_op
            state.created_at = event.created_at
            state.pickup_code = event.pickup_code
            state.pickup_location = event.pickup_location
            state.ship_to = dict(event.ship_to)
            state.sold_at = event.sold_at
            state.customer_ref = event.customer_ref
            state.curbside = event.curbside
            state.hold_ttl_s = event.hold_ttl_s
            state.lines = [Line(ln.line_no, ln.sku, ln.qty, ln.price_cents) for ln in event.lines]
            state.times = {"pending": event.created_at}
        case SagaStarted():
            state.pending = Pending(
                op_id=event.op_id,
                payload_hash=event.payload_hash,
                command=event.command,
                kind=event.kind,
                steps=list(event.steps),
                allocs=list(event.allocs),
                data=dict(event.data),
            )
            for plan in event.allocs:
                state.allocs[plan.alloc_no] = Alloc(
                    plan.alloc_no, plan.line_no, plan.sku, plan.location_id, plan.qty
                )
        case SagaFinished():
            state.pending = None
        case HoldsPlaced():
            for key, hold_id in event.holds.items():
                a = state.allocs[int(key)]
                a.hold_id = hold_id
                a.state = "held"
        case AllocsCommitted():
            for n in event.alloc_nos:
                state.allocs[n].state = "committed"
        case AllocsReleased():
            for key, qty in event.released.items():
                state.allocs[int(key)].released += qty
        case OrderConfirmed():
            _set_status(state, "placed", event.at)
        case OrderRejected():
            _set_status(state, "rejected", event.at)
            state.rejection = {"code": event.code, "message": event.message, **event.details}
        case PaymentRecorded():
            state.payment_ref = event.reference
            state.paid_cents = event.amount_cents
            state.times.setdefault("paid", event.at)
        case PickingStarted():
            _set_status(state, "picking", event.at)
        case MarkedReady():
            _set_status(state, "ready", event.at)
        case Packed():
            _set_status(state, "packed", event.at)
            state.parcels = event.parcels
            state.weight_g = event.weight_g
        case CustomerArrived():
            state.bay = event.bay
            state.arrived_at = event.at
        case Fulfilled():
            for key, qty in event.units.items():
                state.allocs[int(key)].fulfilled += qty
            _settle(state, event.at)
        case Shipped():
            state.carrier = event.carrier
            state.tracking = event.tracking
            _set_status(state, "shipped", event.at)
        case Delivered():
            _set_status(state, "delivered", event.at)
        case LineCancelled():
            state.lines[event.line_no - 1].cancelled += event.qty
            _settle(state, event.at)
        case OrderCancelled():
            _settle(state, event.at)
        case LineReturned():
            state.lines[event.line_no - 1].returned += event.qty
            state.returns.append(event)
            state.refund_due_cents += event.refund_cents
            # "returned" only once nothing is left to hand over: a partly picked-up order whose
            # collected line comes back stays open for the line still waiting at the counter.
            if all(
                ln.returned == line_totals(state, ln.line_no)[0] for ln in state.lines
            ) and not any(a.outstanding > 0 and a.state != "planned" for a in state.allocs.values()):
                _set_status(state, "returned", event.at)
        case ExceptionRaised():
            state.exceptions[event.exception_id] = OrderException(
                event.exception_id,
                event.kind,
                event.alloc_no,
                event.location_id,
                event.message,
                event.at,
            )
        case ExceptionResolved():
            exc = state.exceptions.get(event.exception_id)
            if exc is not None:
                exc.resolution = event.resolution
    state.updated_at = max(state.updated_at, _event_time(event))
    return state


_NUMBER = (float, int)  # a tuple: `float | int` would build a union object on every call


def _event_time(event: Event) -> float:
    at = getattr(event, "at", None)
    if isinstance(at, _NUMBER):
        return float(at)
    created = getattr(event, "created_at", None)
    return float(created) if isinstance(created, _NUMBER) else 0.0
