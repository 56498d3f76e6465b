"""A SKU pool's state and `evolve` (pure): balances, holds, transfers, commitments, the
durable timers they need, and how each journaled event changes them. `domain.py` decides.

`evolve(state, event)` MUTATES `state` in place and returns it (an actor holds one live
state; copying a pool with thousands of holds per event would be waste). Replaying every
event from `initial(sku)` rebuilds an identical state.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import msgspec

from .events import (
    Adjusted,
    Allocated,
    CommitmentFulfilled,
    CommitmentReleased,
    Counted,
    Event,
    HoldCommitted,
    HoldExpired,
    HoldExtended,
    HoldPickedUp,
    HoldPlaced,
    HoldReleased,
    Received,
    Returned,
    SafetyStockSet,
    Sold,
    StockConflict,
    TransferCancelled,
    TransferCreated,
    TransferReceived,
    TransferShipped,
)

__all__ = [
    "CLOSED_KEEP",
    "Balance",
    "Commitment",
    "Hold",
    "SkuPool",
    "Transfer",
    "active_timers",
    "commitment_key",
    "decode_state",
    "derive_id",
    "encode_state",
    "evolve",
    "expire_due",
    "hold_id_from_timer",
    "initial",
    "timer_changes",
]

CLOSED_KEEP = 1000
"""How many finished holds/transfers a pool remembers, to answer `details.state`."""


# --- state ------------------------------------------------------------------------------


class Balance(msgspec.Struct, gc=False):
    on_hand: int = 0  # physically here, sellable or not (negative after an uncovered sale)
    reserved: int = 0  # pickup holds
    committed: int = 0  # allocated to orders not handed over + transfers not yet shipped
    incoming: int = 0  # shipped transfers on their way here (not in on_hand yet)
    unsellable: int = 0  # damaged / quality check; part of on_hand
    safety_stock: int = 0  # kept back from promises

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved - self.committed - self.unsellable - self.safety_stock

    @property
    def shortfall(self) -> int:
        """Promised units without sellable stock behind them (0 unless a fact overtook us)."""
        sellable = max(0, self.on_hand - self.unsellable)
        return max(0, self.reserved + self.committed - sellable)


class Hold(msgspec.Struct, gc=False):
    hold_id: str
    location_id: str
    qty: int
    placed_at: float
    expires_at: float
    ready_at: float
    customer_ref: str = ""


class Transfer(msgspec.Struct, gc=False):
    transfer_id: str
    from_location: str
    to_location: str
    qty: int
    created_at: float
    status: Literal["created", "shipped"] = "created"


class Commitment(msgspec.Struct, gc=False):
    order_id: str
    location_id: str
    qty: int


class SkuPool(msgspec.Struct):
    sku: str
    balances: dict[str, Balance] = {}
    holds: dict[str, Hold] = {}  # active holds only, in placement order
    transfers: dict[str, Transfer] = {}  # open transfers (created or shipped)
    commitments: dict[str, Commitment] = {}  # key: commitment_key(order_id, location_id)
    # Finished ids -> final state ("released", "expired", "committed", "picked_up" /
    # "received", "cancelled"), the newest CLOSED_KEEP of each, so that a late command
    # gets a precise answer.
    closed_holds: dict[str, str] = {}
    closed_transfers: dict[str, str] = {}
    version: int = 0  # number of events applied (the journal stream version)


def initial(sku: str) -> SkuPool:
    return SkuPool(sku=sku)


def commitment_key(order_id: str, location_id: str) -> str:
    return f"{order_id}@{location_id}"


def derive_id(prefix: str, op_id: str) -> str:
    """A deterministic id from an op_id: prefix + 20 hex digits (80 bits) of its sha256.

    Hex, not base32: `base64.b32encode` is pure Python and showed up on the hot-SKU profile."""
    return prefix + hashlib.sha256(op_id.encode()).hexdigest()[:20].upper()


_state_encoder = msgspec.msgpack.Encoder()
_state_decoder = msgspec.msgpack.Decoder(SkuPool)


def encode_state(state: SkuPool) -> bytes:
    """Snapshot bytes for the journal (`Snapshot.state`)."""
    return _state_encoder.encode(state)


def decode_state(data: bytes) -> SkuPool:
    return _state_decoder.decode(data)


# --- evolve -----------------------------------------------------------------------------


def _apply_balances(balances: dict[str, Balance], event: Event) -> None:
    """Apply the quantity effects of one event. Shared by `evolve` and decide's previews."""
    if type(event) is HoldPlaced:  # the hot event (a hold per command): skip the match
        bal = balances.get(event.location_id)
        if bal is None:
            bal = balances[event.location_id] = Balance()
        bal.reserved += event.qty
        return

    def b(location_id: str) -> Balance:
        bal = balances.get(location_id)
        if bal is None:
            bal = balances[location_id] = Balance()
        return bal

    match event:
        case Received(location_id=loc, qty=qty):
            b(loc).on_hand += qty
        case Adjusted() | Counted():
            bal = b(event.location_id)
            bal.on_hand += event.delta if isinstance(event, Adjusted) else event.variance
            bal.unsellable += event.unsellable_delta
        case Sold(location_id=loc, qty=qty):
            b(loc).on_hand -= qty
        case Returned(location_id=loc, qty=qty, disposition=disposition):
            bal = b(loc)
            bal.on_hand += qty
            if disposition == "unsellable":
                bal.unsellable += qty
        case SafetyStockSet(location_id=loc, safety_stock=safety):
            b(loc).safety_stock = safety
        case HoldPlaced(location_id=loc, qty=qty):
            b(loc).reserved += qty
        case HoldReleased(location_id=loc, qty=qty) | HoldExpired(location_id=loc, qty=qty):
            b(loc).reserved -= qty
        case HoldCommitted(location_id=loc, qty=qty):
            bal = b(loc)
            bal.reserved -= qty
            bal.committed += qty
        case Allocated(location_id=loc, qty=qty):
            b(loc).committed += qty
        case HoldPickedUp(location_id=loc, qty=qty):
            bal = b(loc)
            bal.reserved -= qty
            bal.on_hand -= qty
        case CommitmentFulfilled(location_id=loc, qty=qty):
            bal = b(loc)
            bal.committed -= qty
            bal.on_hand -= qty
        case CommitmentReleased(location_id=loc, qty=qty):
            b(loc).committed -= qty
        case TransferCreated(from_location=src, qty=qty):
            b(src).committed += qty
        case TransferShipped(from_location=src, to_location=dst, qty=qty):
            bal = b(src)
            bal.committed -= qty
            bal.on_hand -= qty
            b(dst).incoming += qty
        case TransferReceived(to_location=dst, shipped=shipped, received=received):
            bal = b(dst)
            bal.incoming -= shipped
            bal.on_hand += received
        case TransferCancelled(from_location=src, qty=qty):
            b(src).committed -= qty
        case HoldExtended() | StockConflict():
            pass


def _close(closed: dict[str, str], key: str, final: str) -> None:
    closed[key] = final
    if len(closed) > CLOSED_KEEP:
        del closed[next(iter(closed))]


def evolve(state: SkuPool, event: Event) -> SkuPool:
    """Apply one event: mutates `state` in place and returns it (see the module docstring)."""
    _apply_balances(state.balances, event)
    if type(event) is HoldPlaced:  # the hot event: skip the match below
        state.holds[event.hold_id] = Hold(
            hold_id=event.hold_id,
            location_id=event.location_id,
            qty=event.qty,
            placed_at=event.placed_at,
            expires_at=event.expires_at,
            ready_at=event.ready_at,
            customer_ref=event.customer_ref,
        )
        state.version += 1
        return state
    match event:  # (HoldPlaced is handled above)
        case HoldExtended():
            state.holds[event.hold_id].expires_at = event.expires_at
        case HoldReleased() | HoldExpired():
            state.holds.pop(event.hold_id, None)
            final = "released" if isinstance(event, HoldReleased) else "expired"
            _close(state.closed_holds, event.hold_id, final)
        case HoldPickedUp():
            state.holds.pop(event.hold_id, None)
            _close(state.closed_holds, event.hold_id, "picked_up")
        case HoldCommitted() | Allocated():
            if type(event) is HoldCommitted:
                state.holds.pop(event.hold_id, None)
            _close(state.closed_holds, event.hold_id, "committed")
            key = commitment_key(event.order_id, event.location_id)
            c = state.commitments.get(key)
            if c is None:
                state.commitments[key] = Commitment(event.order_id, event.location_id, event.qty)
            else:
                c.qty += event.qty
        case CommitmentFulfilled() | CommitmentReleased():
            key = commitment_key(event.order_id, event.location_id)
            c = state.commitments[key]
            c.qty -= event.qty
            if c.qty <= 0:
                del state.commitments[key]
        case TransferCreated():
            state.transfers[event.transfer_id] = Transfer(
                transfer_id=event.transfer_id,
                from_location=event.from_location,
                to_location=event.to_location,
                qty=event.qty,
                created_at=event.created_at,
            )
        case TransferShipped():
            state.transfers[event.transfer_id].status = "shipped"
        case TransferReceived() | TransferCancelled():
            state.transfers.pop(event.transfer_id, None)
            final = "received" if isinstance(event, TransferReceived) else "cancelled"
            _close(state.closed_transfers, event.transfer_id, final)
        case _:
            pass
    state.version += 1
    return state


# --- timers -----------------------------------------------------------------------------

_HOLD_TIMER = "hold:"


def timer_changes(event: Event) -> tuple[list[tuple[str, float]], list[str]]:
    """Durable timer changes an event implies: `([(timer_id, due_at)], [timer_id to clear])`."""
    if isinstance(event, HoldPlaced | HoldExtended):
        return [(_HOLD_TIMER + event.hold_id, event.expires_at)], []
    if isinstance(event, HoldReleased | HoldExpired | HoldCommitted | HoldPickedUp):
        return [], [_HOLD_TIMER + event.hold_id]
    return [], []


def hold_id_from_timer(timer_id: str) -> str | None:
    """The hold a `hold:{id}` timer is about, or None for any other timer."""
    return timer_id[len(_HOLD_TIMER) :] if timer_id.startswith(_HOLD_TIMER) else None


def active_timers(state: SkuPool) -> list[tuple[str, float]]:
    """Every timer the state needs (to rebuild timers from a snapshot)."""
    return [(_HOLD_TIMER + h.hold_id, h.expires_at) for h in state.holds.values()]


def expire_due(state: SkuPool, hold_id: str, now: float) -> list[Event]:
    """The hold's timer fired: expire it if it is still active and due, else `[]`.

    Idempotent: once the HoldExpired is evolved the hold is no longer active, so a second
    firing (a retried timer, a duplicate delivery) yields nothing.
    """
    hold = state.holds.get(hold_id)
    if hold is None or now < hold.expires_at:
        return []
    return [
        HoldExpired(
            hold_id=hold_id,
            location_id=hold.location_id,
            qty=hold.qty,
            customer_ref=hold.customer_ref,
        )
    ]
