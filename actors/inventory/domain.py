"""The SKU-pool aggregate: one SKU's stock at every location, its pickup holds and transfers.

Theory of operation
-------------------
One `SkuPool` per SKU is the single writer of every quantity of that SKU, at every location.
A transfer moves one SKU between two locations, so it is atomic inside one pool; no
cross-aggregate coordination is ever needed for stock.

Per location a `Balance` holds six counters and one derived number::

    available = on_hand - reserved - committed - unsellable - safety_stock

`decide(state, name, args, ctx)` is pure and deterministic: it validates one command against
the state and returns the events to append plus the ack result, or a `Rejection`. Nothing
comes from outside but `ctx` (the time, the op_id, the known locations). Ids of new holds and
transfers are hashes of `ctx.op_id`, so a retried command yields the same id.

`evolve(state, event)` applies one event. It MUTATES `state` in place and returns it (an
actor holds one live state, and copying a pool with thousands of holds per event would be
waste); callers who need the old state must copy it first (`msgspec.structs.replace` is
shallow, use `decode_state(encode_state(s))` for a deep copy). Replaying a stream from
`initial(sku)` rebuilds an identical state.

Two kinds of commands, two rules:

* Promises (`hold.place`, `transfer.create`) never exceed `available`: each is rejected
  with `insufficient_stock` unless `qty <= available` at that moment. So no promise ever
  drives `available` below zero, and when `available` is already below zero (see below)
  every promise is rejected until stock comes back.
* Physical facts (`stock.sale`, `stock.adjust`, `stock.count`, `transfer.ship`,
  `stock.fulfil` ...) record what already happened in the shop. A sale is always accepted,
  even when it drives `on_hand` or `available` negative (an offline register sold it). When a
  fact leaves promises without sellable stock behind them -- when the location's
  `shortfall = max(0, reserved + committed - max(0, on_hand - unsellable))` grows -- it also
  emits a `StockConflict` naming the uncovered holds, orders and transfers, so the order
  layer can re-route and staff can be told. A sale is never dropped.

The only state-dependent rejections of physical facts are bookkeeping ones: an adjustment
may not take `on_hand` below zero (count instead), a transfer may not be received in larger
quantity than it was shipped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import msgspec

from protocol.commands import (
    COMMAND_ARGS,
    AdjustArgs,
    CountArgs,
    HoldCommitArgs,
    HoldExtendArgs,
    HoldPlaceArgs,
    HoldRefArgs,
    Id,
    Qty,
    ReceiveArgs,
    ReturnArgs,
    SafetyStockArgs,
    SaleArgs,
    TransferCreateArgs,
    TransferRefArgs,
)
from protocol.errors import ErrorCode

from .events import (
    Adjusted,
    Allocated,
    CommitmentFulfilled,
    CommitmentReleased,
    Counted,
    Event,
    HoldCommitted,
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
    event_locations,
)
from .state import (  # noqa: F401 - re-exported: callers use domain.X
    _HOLD_TIMER,
    CLOSED_KEEP,
    Balance,
    Commitment,
    Hold,
    SkuPool,
    Transfer,
    _apply_balances,
    _close,
    _state_decoder,
    _state_encoder,
    active_timers,
    commitment_key,
    decode_state,
    derive_id,
    encode_state,
    evolve,
    expire_due,
    hold_id_from_timer,
    initial,
    timer_changes,
)

__all__ = [
    "CLOSED_KEEP",
    "INVENTORY_COMMAND_ARGS",
    "Balance",
    "Commitment",
    "Ctx",
    "Decision",
    "FulfilArgs",
    "Hold",
    "LocationInfo",
    "Rejection",
    "SkuPool",
    "Transfer",
    "UncommitArgs",
    "active_timers",
    "balance_dict",
    "commitment_key",
    "decide",
    "decode_state",
    "derive_id",
    "encode_state",
    "evolve",
    "expire_due",
    "hold_id_from_timer",
    "initial",
    "timer_changes",
    "uncovered",
]
# --- context and results ----------------------------------------------------------------


class LocationInfo(msgspec.Struct, frozen=True):
    id: str
    name: str = ""
    pickup_enabled: bool = True
    pickup_lead_s: int = 0  # a hold is ready for pickup this long after it was placed
    kind: Literal["store", "warehouse"] = "store"


class Ctx(msgspec.Struct, frozen=True):
    """Everything `decide` needs from outside the aggregate."""

    now: float  # unix seconds
    op_id: str
    locations: Mapping[str, LocationInfo]


class Rejection(msgspec.Struct, frozen=True):
    code: ErrorCode
    message: str
    details: dict[str, Any] = {}


Decision = tuple[list[Event], dict[str, Any]] | Rejection


# --- commands this domain adds (belong in protocol/commands.py) -------------------------


class FulfilArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`stock.fulfil`: committed stock of an order was handed over (or shipped) to the customer."""

    sku: Id
    location_id: Id
    order_id: Id
    qty: Qty


class UncommitArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`stock.uncommit`: an order gives committed stock back (cancelled); qty None = all."""

    sku: Id
    location_id: Id
    order_id: Id
    qty: Qty | None = None


INVENTORY_COMMAND_ARGS: dict[str, type[msgspec.Struct]] = {
    **{n: t for n, t in COMMAND_ARGS.items() if n.split(".")[0] in ("stock", "hold", "transfer")},
    "stock.fulfil": FulfilArgs,
    "stock.uncommit": UncommitArgs,
}


# --- decide helpers ---------------------------------------------------------------------


def _reject(code: ErrorCode, message: str, **details: Any) -> Rejection:
    return Rejection(code=code, message=message, details=details)


def balance_dict(b: Balance) -> dict[str, int]:
    """The topic value of one balance; `available` is raw (negative after an uncovered sale)."""
    return {
        "on_hand": b.on_hand,
        "reserved": b.reserved,
        "committed": b.committed,
        "incoming": b.incoming,
        "unsellable": b.unsellable,
        "safety_stock": b.safety_stock,
        "available": b.available,
    }


def _balance(state: SkuPool, location_id: str) -> Balance:
    """The location's balance, or a fresh zero one (not stored) if never touched."""
    return state.balances.get(location_id) or Balance()


def _preview(state: SkuPool, events: list[Event]) -> dict[str, Balance]:
    """Balances of the touched locations after `events`, without touching `state`."""
    scratch: dict[str, Balance] = {}
    for e in events:
        for loc in event_locations(e):
            if loc not in scratch:
                scratch[loc] = msgspec.structs.replace(_balance(state, loc))
    for e in events:
        _apply_balances(scratch, e)
    return scratch


def _check_sku(state: SkuPool, sku: str) -> Rejection | None:
    if sku != state.sku:
        return _reject(
            ErrorCode.INVALID_ARGS, f"command for sku {sku!r} reached pool {state.sku!r}"
        )
    return None


def _check_location(
    state: SkuPool, ctx: Ctx, location_id: str, *, physical: bool = False
) -> Rejection | None:
    # Physical facts are also accepted at a location the pool already has stock records for,
    # even if it has since left ctx.locations: the units are there, whatever the directory says.
    if location_id in ctx.locations or (physical and location_id in state.balances):
        return None
    return _reject(
        ErrorCode.NOT_FOUND, f"unknown location {location_id!r}", location_id=location_id
    )


def _conflict(state: SkuPool, location_id: str, after: Balance, cause: str) -> StockConflict:
    """Describe which promises at `location_id` sellable stock no longer covers.

    Coverage goes to order commitments first, then holds (oldest first), then transfers;
    a promise that is only partly covered is listed and takes what is left.
    """
    left = after.on_hand - after.unsellable
    orders: list[str] = []
    holds: list[str] = []
    transfers: list[str] = []

    def take(qty: int, bucket: list[str], ident: str) -> None:
        nonlocal left
        if left >= qty:
            left -= qty
        else:
            left = 0
            bucket.append(ident)

    for c in state.commitments.values():
        if c.location_id == location_id:
            take(c.qty, orders, c.order_id)
    for h in state.holds.values():
        if h.location_id == location_id:
            take(h.qty, holds, h.hold_id)
    for t in state.transfers.values():
        if t.from_location == location_id and t.status == "created":
            take(t.qty, transfers, t.transfer_id)
    return StockConflict(
        location_id=location_id,
        shortfall=after.shortfall,
        cause=cause,
        uncovered_hold_ids=holds,
        uncovered_order_ids=orders,
        uncovered_transfer_ids=transfers,
    )


def uncovered(state: SkuPool, location_id: str) -> tuple[list[str], list[str]]:
    """(hold ids, order ids) at `location_id` that sellable stock no longer covers, now.

    The same answer a StockConflict gave when the shortfall appeared (for a reader that may
    have missed that event)."""
    bal = _balance(state, location_id)
    if bal.shortfall == 0:
        return [], []
    c = _conflict(state, location_id, bal, "")
    return list(c.uncovered_hold_ids), list(c.uncovered_order_ids)


def _fact(
    state: SkuPool, location_id: str, event: Event, cause: str
) -> tuple[list[Event], dict[str, Any]]:
    """Accept a physical fact; add a StockConflict if it uncovered promises."""
    before = _balance(state, location_id)
    after = _preview(state, [event])[location_id]
    events: list[Event] = [event]
    result: dict[str, Any] = {
        "sku": state.sku,
        "location_id": location_id,
        "balance": balance_dict(after),
    }
    if after.shortfall > before.shortfall:
        conflict = _conflict(state, location_id, after, cause)
        events.append(conflict)
        result["conflict"] = msgspec.to_builtins(conflict)
    return events, result


# --- stock.* ----------------------------------------------------------------------------


def _receive(state: SkuPool, a: ReceiveArgs, ctx: Ctx) -> Decision:
    rej = _check_sku(state, a.sku) or _check_location(state, ctx, a.location_id, physical=True)
    if rej:
        return rej
    ev = Received(location_id=a.location_id, qty=a.qty, reference=a.reference)
    return _fact(state, a.location_id, ev, "stock.receive")


def _adjust(state: SkuPool, a: AdjustArgs, ctx: Ctx) -> Decision:
    rej = _check_sku(state, a.sku) or _check_location(state, ctx, a.location_id, physical=True)
    if rej:
        return rej
    bal = _balance(state, a.location_id)
    if a.delta == 0:
        return _reject(ErrorCode.INVALID_ARGS, "an adjustment needs a non-zero delta")
    if a.reason == "damage":
        # "damage" moves units into / out of the unsellable bucket: +n marks n sellable units
        # damaged (still on hand), -n disposes of n damaged units (they leave on_hand).
        if a.delta > 0:
            sellable = bal.on_hand - bal.unsellable
            if a.delta > sellable:
                return _reject(
                    ErrorCode.INVALID_ARGS,
                    f"cannot mark {a.delta} damaged: only {max(sellable, 0)} sellable on hand",
                    sellable=max(sellable, 0),
                    location_id=a.location_id,
                )
            ev = Adjusted(a.location_id, 0, a.reason, unsellable_delta=a.delta, note=a.note)
        else:
            if -a.delta > bal.unsellable:
                return _reject(
                    ErrorCode.INVALID_ARGS,
                    f"cannot dispose of {-a.delta} damaged: only {bal.unsellable} unsellable",
                    unsellable=bal.unsellable,
                    location_id=a.location_id,
                )
            ev = Adjusted(a.location_id, a.delta, a.reason, unsellable_delta=a.delta, note=a.note)
    else:
        new_on_hand = bal.on_hand + a.delta
        if a.delta < 0 and new_on_hand < 0:
            return _reject(
                ErrorCode.INVALID_ARGS,
                f"adjustment would make on_hand negative ({new_on_hand}); count instead",
                on_hand=bal.on_hand,
                location_id=a.location_id,
            )
        # Losing units takes damaged ones along only when nothing sellable is left.
        unsellable_delta = min(bal.unsellable, max(new_on_hand, 0)) - bal.unsellable
        ev = Adjusted(a.location_id, a.delta, a.reason, unsellable_delta, a.note)
    return _fact(state, a.location_id, ev, "stock.adjust")


def _count(state: SkuPool, a: CountArgs, ctx: Ctx) -> Decision:
    rej = _check_sku(state, a.sku) or _check_location(state, ctx, a.location_id, physical=True)
    if rej:
        return rej
    bal = _balance(state, a.location_id)
    ev = Counted(
        location_id=a.location_id,
        counted=a.counted,
        variance=a.counted - bal.on_hand,
        unsellable_delta=min(bal.unsellable, a.counted) - bal.unsellable,
    )
    return _fact(state, a.location_id, ev, "stock.count")


def _sale(state: SkuPool, a: SaleArgs, ctx: Ctx) -> Decision:
    rej = _check_sku(state, a.sku) or _check_location(state, ctx, a.location_id, physical=True)
    if rej:
        return rej
    ev = Sold(
        location_id=a.location_id, qty=a.qty, register_id=a.register_id, offline_at=a.offline_at
    )
    return _fact(state, a.location_id, ev, "stock.sale")


def _return(state: SkuPool, a: ReturnArgs, ctx: Ctx) -> Decision:
    rej = _check_sku(state, a.sku) or _check_location(state, ctx, a.location_id, physical=True)
    if rej:
        return rej
    ev = Returned(location_id=a.location_id, qty=a.qty, disposition=a.disposition, reason=a.reason)
    return _fact(state, a.location_id, ev, "stock.return")


def _set_safety(state: SkuPool, a: SafetyStockArgs, ctx: Ctx) -> Decision:
    rej = _check_sku(state, a.sku) or _check_location(state, ctx, a.location_id)
    if rej:
        return rej
    bal = _balance(state, a.location_id)
    # Safety stock is a buffer, not a promise: raising it above what is free only stops new
    # promises; it never uncovers existing ones, so no conflict is possible here.
    ev = SafetyStockSet(a.location_id, a.safety_stock, previous=bal.safety_stock)
    return _fact(state, a.location_id, ev, "stock.set_safety")


def _commitment_of(
    state: SkuPool, order_id: str, location_id: str, qty: int | None
) -> Commitment | Rejection:
    c = state.commitments.get(commitment_key(order_id, location_id))
    if c is None:
        return _reject(
            ErrorCode.NOT_FOUND,
            f"order {order_id!r} has no committed stock of {state.sku!r} at {location_id!r}",
            order_id=order_id,
            location_id=location_id,
        )
    if qty is not None and qty > c.qty:
        return _reject(
            ErrorCode.INVALID_ARGS,
            f"order {order_id!r} has only {c.qty} committed at {location_id!r}",
            committed=c.qty,
            order_id=order_id,
            location_id=location_id,
        )
    return c


def _fulfil(state: SkuPool, a: FulfilArgs, ctx: Ctx) -> Decision:
    rej = _check_sku(state, a.sku)
    if rej:
        return rej
    c = _commitment_of(state, a.order_id, a.location_id, a.qty)
    if isinstance(c, Rejection):
        return c
    # Handing over removes the same units from committed and on_hand: available and the
    # shortfall are unchanged, so this never needs a conflict.
    events, result = _fact(
        state, a.location_id, CommitmentFulfilled(a.order_id, a.location_id, a.qty), "fulfil"
    )
    result["order_id"] = a.order_id
    return events, result


def _uncommit(state: SkuPool, a: UncommitArgs, ctx: Ctx) -> Decision:
    rej = _check_sku(state, a.sku)
    if rej:
        return rej
    c = _commitment_of(state, a.order_id, a.location_id, a.qty)
    if isinstance(c, Rejection):
        return c
    qty = c.qty if a.qty is None else a.qty
    events, result = _fact(
        state, a.location_id, CommitmentReleased(a.order_id, a.location_id, qty), "uncommit"
    )
    result["order_id"] = a.order_id
    return events, result


# --- hold.* -----------------------------------------------------------------------------


def _place_hold(state: SkuPool, a: HoldPlaceArgs, ctx: Ctx) -> Decision:
    rej = _check_sku(state, a.sku) or _check_location(state, ctx, a.location_id)
    if rej:
        return rej
    info = ctx.locations[a.location_id]
    if a.purpose == "pickup" and not info.pickup_enabled:
        return _reject(
            ErrorCode.CONFLICT,
            f"location {a.location_id!r} does not offer pickup",
            location_id=a.location_id,
            purpose=a.purpose,
        )
    available = _balance(state, a.location_id).available
    if a.qty > available:
        return _reject(
            ErrorCode.INSUFFICIENT_STOCK,
            f"only {max(available, 0)} of {state.sku!r} available at {a.location_id!r}",
            available=max(available, 0),
            location_id=a.location_id,
            requested=a.qty,
        )
    hold_id = derive_id("H", ctx.op_id)
    if hold_id in state.holds or hold_id in state.closed_holds:
        return _reject(ErrorCode.CONFLICT, "hold id already used; retry with a new op_id")
    ready_at = ctx.now + (info.pickup_lead_s if a.purpose == "pickup" else 0)
    result: dict[str, Any] = {
        "hold_id": hold_id,
        "sku": state.sku,
        "location_id": a.location_id,
        "qty": a.qty,
        "expires_at": ctx.now + a.ttl_s,
        "ready_at": ready_at,
        "available": available - a.qty,
    }
    if a.commit_order_id is not None:
        # Place-and-commit: the units go to the order at once (one fact, no hold in between).
        allocated = Allocated(
            hold_id=hold_id,
            location_id=a.location_id,
            qty=a.qty,
            order_id=a.commit_order_id,
            placed_at=ctx.now,
        )
        result.update(order_id=a.commit_order_id, state="committed")
        return [allocated], result
    ev = HoldPlaced(
        hold_id=hold_id,
        location_id=a.location_id,
        qty=a.qty,
        expires_at=result["expires_at"],
        placed_at=ctx.now,
        ready_at=ready_at,
        customer_ref=a.customer_ref,
    )
    return [ev], result


def _live_hold(state: SkuPool, hold_id: str, now: float, *, overdue_ok: bool) -> Hold | Rejection:
    """The active hold, or why not: released/expired → not_found; committed or picked up →
    conflict (the hold went on to a later state, not away)."""
    hold = state.holds.get(hold_id)
    if hold is None:
        final = state.closed_holds.get(hold_id)
        if final is None:
            return _reject(ErrorCode.NOT_FOUND, f"unknown hold {hold_id!r}", hold_id=hold_id)
        code = ErrorCode.CONFLICT if final in ("committed", "picked_up") else ErrorCode.NOT_FOUND
        return _reject(code, f"hold {hold_id!r} is {final}", hold_id=hold_id, state=final)
    if not overdue_ok and now >= hold.expires_at:
        # Due but the timer has not fired yet: it is expired for every purpose but release.
        return _reject(
            ErrorCode.NOT_FOUND, f"hold {hold_id!r} is expired", hold_id=hold_id, state="expired"
        )
    return hold


def _extend_hold(state: SkuPool, a: HoldExtendArgs, ctx: Ctx) -> Decision:
    hold = _live_hold(state, a.hold_id, ctx.now, overdue_ok=False)
    if isinstance(hold, Rejection):
        return hold
    # Extending never shortens: the new expiry is the later of the old one and now + ttl.
    expires_at = max(hold.expires_at, ctx.now + a.ttl_s)
    ev = HoldExtended(hold_id=hold.hold_id, location_id=hold.location_id, expires_at=expires_at)
    return [ev], {"hold_id": hold.hold_id, "sku": state.sku, "expires_at": expires_at}


def _release_hold(state: SkuPool, a: HoldRefArgs, ctx: Ctx) -> Decision:
    hold = _live_hold(state, a.hold_id, ctx.now, overdue_ok=True)
    if isinstance(hold, Rejection):
        return hold
    ev = HoldReleased(hold_id=hold.hold_id, location_id=hold.location_id, qty=hold.qty)
    return [ev], {
        "hold_id": hold.hold_id,
        "sku": state.sku,
        "location_id": hold.location_id,
        "qty": hold.qty,
        "state": "released",
    }


def _commit_hold(state: SkuPool, a: HoldCommitArgs, ctx: Ctx) -> Decision:
    hold = _live_hold(state, a.hold_id, ctx.now, overdue_ok=False)
    if isinstance(hold, Rejection):
        return hold
    ev = HoldCommitted(
        hold_id=hold.hold_id, location_id=hold.location_id, qty=hold.qty, order_id=a.order_id
    )
    return [ev], {
        "hold_id": hold.hold_id,
        "sku": state.sku,
        "location_id": hold.location_id,
        "qty": hold.qty,
        "order_id": a.order_id,
        "state": "committed",
    }


def _pickup_hold(state: SkuPool, a: HoldRefArgs, ctx: Ctx) -> Decision:
    # The customer is at the counter with the goods: a physical fact, so an overdue hold whose
    # timer has not fired yet is still honoured. An expired one is gone: ring up a sale.
    hold = _live_hold(state, a.hold_id, ctx.now, overdue_ok=True)
    if isinstance(hold, Rejection):
        return hold
    ev = HoldPickedUp(hold_id=hold.hold_id, location_id=hold.location_id, qty=hold.qty)
    # reserved and on_hand drop together: available and the shortfall are unchanged.
    events, result = _fact(state, hold.location_id, ev, "hold.pickup")
    result.update(hold_id=hold.hold_id, qty=hold.qty, state="picked_up")
    return events, result


# --- transfer.* -------------------------------------------------------------------------


def _create_transfer(state: SkuPool, a: TransferCreateArgs, ctx: Ctx) -> Decision:
    rej = _check_sku(state, a.sku)
    if rej:
        return rej
    if a.from_location == a.to_location:
        return _reject(
            ErrorCode.INVALID_ARGS,
            "a transfer needs two different locations",
            location_id=a.from_location,
        )
    rej = _check_location(state, ctx, a.from_location) or _check_location(state, ctx, a.to_location)
    if rej:
        return rej
    available = _balance(state, a.from_location).available
    if a.qty > available:
        return _reject(
            ErrorCode.INSUFFICIENT_STOCK,
            f"only {max(available, 0)} of {state.sku!r} available at {a.from_location!r}",
            available=max(available, 0),
            location_id=a.from_location,
            requested=a.qty,
        )
    transfer_id = derive_id("T", ctx.op_id)
    if transfer_id in state.transfers or transfer_id in state.closed_transfers:
        return _reject(ErrorCode.CONFLICT, "transfer id already used; retry with a new op_id")
    ev = TransferCreated(transfer_id, a.from_location, a.to_location, a.qty, created_at=ctx.now)
    return [ev], {
        "transfer_id": transfer_id,
        "sku": state.sku,
        "from_location": a.from_location,
        "to_location": a.to_location,
        "qty": a.qty,
        "state": "created",
        "available": available - a.qty,
    }


def _open_transfer(state: SkuPool, transfer_id: str) -> Transfer | Rejection:
    t = state.transfers.get(transfer_id)
    if t is not None:
        return t
    final = state.closed_transfers.get(transfer_id)
    if final is None:
        return _reject(
            ErrorCode.NOT_FOUND, f"unknown transfer {transfer_id!r}", transfer_id=transfer_id
        )
    return _reject(
        ErrorCode.CONFLICT,
        f"transfer {transfer_id!r} is already {final}",
        transfer_id=transfer_id,
        state=final,
    )


def _transfer_result(state: SkuPool, t: Transfer, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "transfer_id": t.transfer_id,
        "sku": state.sku,
        "from_location": t.from_location,
        "to_location": t.to_location,
        "qty": t.qty,
        "state": status,
        **extra,
    }


def _wrong_state(t: Transfer, action: str) -> Rejection:
    return _reject(
        ErrorCode.CONFLICT,
        f"cannot {action} transfer {t.transfer_id!r}: it is {t.status}",
        transfer_id=t.transfer_id,
        state=t.status,
    )


def _ship_transfer(state: SkuPool, a: TransferRefArgs, ctx: Ctx) -> Decision:
    t = _open_transfer(state, a.transfer_id)
    if isinstance(t, Rejection):
        return t
    if t.status != "created":
        return _wrong_state(t, "ship")
    if a.qty is not None and a.qty != t.qty:
        return _reject(
            ErrorCode.INVALID_ARGS,
            f"transfer {t.transfer_id!r} ships whole ({t.qty}); cancel and re-create to change",
            transfer_id=t.transfer_id,
            qty=t.qty,
        )
    ev = TransferShipped(t.transfer_id, t.from_location, t.to_location, t.qty)
    return [ev], _transfer_result(state, t, "shipped")


def _receive_transfer(state: SkuPool, a: TransferRefArgs, ctx: Ctx) -> Decision:
    t = _open_transfer(state, a.transfer_id)
    if isinstance(t, Rejection):
        return t
    if t.status != "shipped":
        return _wrong_state(t, "receive")
    received = t.qty if a.qty is None else a.qty
    if received > t.qty:
        return _reject(
            ErrorCode.INVALID_ARGS,
            f"cannot receive {received}: transfer {t.transfer_id!r} shipped {t.qty}",
            transfer_id=t.transfer_id,
            shipped=t.qty,
        )
    ev = TransferReceived(t.transfer_id, t.from_location, t.to_location, t.qty, received)
    return [ev], _transfer_result(state, t, "received", received=received, lost=t.qty - received)


def _cancel_transfer(state: SkuPool, a: TransferRefArgs, ctx: Ctx) -> Decision:
    t = _open_transfer(state, a.transfer_id)
    if isinstance(t, Rejection):
        return t
    if t.status != "created":
        return _wrong_state(t, "cancel")
    ev = TransferCancelled(t.transfer_id, t.from_location, t.to_location, t.qty)
    return [ev], _transfer_result(state, t, "cancelled")


# --- dispatch ---------------------------------------------------------------------------

_Handler = Callable[[SkuPool, Any, Ctx], Decision]

_HANDLERS: dict[str, _Handler] = {
    "stock.receive": _receive,
    "stock.adjust": _adjust,
    "stock.count": _count,
    "stock.sale": _sale,
    "stock.return": _return,
    "stock.set_safety": _set_safety,
    "stock.fulfil": _fulfil,
    "stock.uncommit": _uncommit,
    "hold.place": _place_hold,
    "hold.extend": _extend_hold,
    "hold.release": _release_hold,
    "hold.commit": _commit_hold,
    "hold.pickup": _pickup_hold,
    "transfer.create": _create_transfer,
    "transfer.ship": _ship_transfer,
    "transfer.receive": _receive_transfer,
    "transfer.cancel": _cancel_transfer,
}
assert _HANDLERS.keys() == INVENTORY_COMMAND_ARGS.keys()


def decide(state: SkuPool, name: str, args: msgspec.Struct, ctx: Ctx) -> Decision:
    """Decide one command: `(events, ack result)` or a `Rejection`. Pure; never mutates."""
    handler = _HANDLERS.get(name)
    if handler is None:
        return _reject(ErrorCode.INVALID_ARGS, f"the SKU pool does not handle {name!r}")
    expected = INVENTORY_COMMAND_ARGS[name]
    if not isinstance(args, expected):
        return _reject(
            ErrorCode.INVALID_ARGS, f"{name} takes {expected.__name__}, not {type(args).__name__}"
        )
    return handler(state, args, ctx)
