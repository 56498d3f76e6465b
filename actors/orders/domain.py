"""The order aggregate: one order's life, from cart to returns (pure, no trio, no I/O).

Theory of operation
-------------------
An `Order` is lines (what was bought) and allocations (where each line is served from: a
location, a quantity, and the inventory hold behind it). Stock lives in the SKU pools; an
order only *asks* them, through sagas:

    decide(order, command, ctx) -> Decision(events[, SagaStarted], result | rejection)
    ... the shell sends every Step of the saga to its SKU pool (deterministic op_ids) ...
    advance(order, step results, ctx) -> Decision(events[, next SagaStarted | SagaFinished])

`decide` never talks to inventory: when a command needs stock moved it journals a
`SagaStarted` naming the exact inventory commands; `advance` turns their answers into facts
(`HoldsPlaced`, `Fulfilled`, `AllocsReleased` ...) and either finishes the saga or starts the
next phase (ship orders commit their holds; a failed create compensates by releasing what it
did place; a re-route releases the old allocation once the new one is held). Steps of one
allocation run in order; different allocations run concurrently.

Re-plan (ship creates only, once): routing reads availability that may be a moment behind,
so a hold can lose a race (`insufficient_stock`). Then `advance` keeps the allocations that
succeeded, closes the failed ones (`AllocsReleased`, cause "replan": they never held
anything), routes only their units again on fresh availability (which already counts what
the order kept) and starts a `replan` saga. If that finds no route, or one of its holds
fails too, everything the order got in either round is released (`compensate`) and the
create is refused as before. Pickup orders are never moved: the customer chose that counter;
the refusal lists `suggest` (pickup stores that could serve the whole cart now) instead.

Every allocation's units end in exactly one bucket -- `fulfilled` (handed over / shipped) or
`released` (cancelled, compensated, re-routed, expired) -- and a unit is never moved twice,
because steps are only planned for `outstanding = qty - fulfilled - released` units and
`evolve` applies each fact once. Per line, `fulfilled + cancelled <= qty` and
`returned <= fulfilled` ("picked up + returned + cancelled never exceed ordered", where the
returned units are a part of those picked up).

`evolve` mutates and returns the state (as the SKU pool does); replaying the stream from
`initial(order_id)` rebuilds it. `decide` is here; `advance` is in advance.py, the saga step
builders both use in steps.py, the state and `evolve` in state.py (all re-exported here).

Statuses: pending -> placed -> picking -> ready -> partially_picked_up -> picked_up (pickup) /
placed -> picking -> shipped -> delivered (ship); cancelled from any open status; rejected if
the create saga failed. `returned` once every unit handed over came back.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from protocol.errors import ErrorCode
from protocol.orders import (
    OrderArrivedArgs,
    OrderCancelArgs,
    OrderCreateArgs,
    OrderPackArgs,
    OrderPayArgs,
    OrderPickupArgs,
    OrderRefArgs,
    OrderResolveArgs,
    OrderReturnArgs,
    OrderShipArgs,
)

from .advance import advance
from .events import (
    AllocPlan,
    AllocsReleased,
    CustomerArrived,
    Delivered,
    Event,
    ExceptionRaised,
    ExceptionResolved,
    LineCancelled,
    LineSpec,
    MarkedReady,
    OrderCancelled,
    OrderPlaced,
    OrderRejected,
    Packed,
    PaymentRecorded,
    PickingStarted,
    SagaStarted,
    Step,
)
from .routing import Destination, RoutePlan, Shortfall, route
from .state import (  # noqa: F401 - re-exported: callers use domain.X
    OPEN_STATUSES,
    SHIP_HOLD_TTL_S,
    UNSELLABLE_REASONS,
    Alloc,
    Ctx,
    Decision,
    FlagArgs,
    Line,
    Order,
    OrderException,
    OrderPolicy,
    Pending,
    Rejection,
    Status,
    StepResult,
    _event_time,
    _reject,
    _set_status,
    _settle,
    _state_dec,
    _state_enc,
    decode_state,
    encode_state,
    evolve,
    initial,
    line_totals,
    order_id_for,
    pickup_code_for,
)
from .steps import (
    availability_details,
    live_allocs,
    new_saga,
    opk,
    place_steps,
    release_steps,
)

__all__ = [
    "OPEN_STATUSES",
    "Alloc",
    "Ctx",
    "Decision",
    "FlagArgs",
    "Line",
    "Order",
    "OrderException",
    "OrderPolicy",
    "Rejection",
    "StepResult",
    "advance",
    "decide",
    "decode_state",
    "encode_state",
    "evolve",
    "initial",
    "line_totals",
    "order_id_for",
    "pickup_code_for",
]

# --- decide -----------------------------------------------------------------------------




def _create(state: Order, a: OrderCreateArgs, ctx: Ctx) -> Decision:
    if state.status != "new":
        return _reject(
            ErrorCode.CONFLICT,
            f"order {state.order_id} already exists",
            order_id=state.order_id,
            status=state.status,
        )
    if not a.lines:
        return _reject(
            ErrorCode.INVALID_ARGS, "the cart is empty: an order needs at least one line"
        )
    merged: dict[str, list[int]] = {}
    for cl in a.lines:
        if cl.sku not in ctx.prices:
            return _reject(ErrorCode.NOT_FOUND, f"unknown SKU {cl.sku!r}", sku=cl.sku)
        price = ctx.prices[cl.sku] if cl.price_cents is None else cl.price_cents
        entry = merged.setdefault(cl.sku, [0, price])
        entry[0] += cl.qty
    if (a.pickup_location is None) == (a.ship_to is None):
        return _reject(ErrorCode.INVALID_ARGS, "give exactly one of pickup_location or ship_to")
    if a.sold_at is not None and a.sold_at not in ctx.sites:
        return _reject(
            ErrorCode.NOT_FOUND, f"unknown location {a.sold_at!r}", location_id=a.sold_at
        )
    lines = [
        LineSpec(i, sku, qty, price) for i, (sku, (qty, price)) in enumerate(merged.items(), 1)
    ]
    if a.pickup_location is not None:
        site = ctx.sites.get(a.pickup_location)
        if site is None:
            return _reject(
                ErrorCode.NOT_FOUND,
                f"unknown location {a.pickup_location!r}",
                location_id=a.pickup_location,
            )
        if not site.pickup_enabled:
            return _reject(
                ErrorCode.CONFLICT,
                f"location {a.pickup_location!r} does not offer pickup",
                location_id=a.pickup_location,
            )
        dest = Destination("pickup", a.pickup_location, site.lat, site.lon)
        fulfilment: Literal["pickup", "ship"] = "pickup"
        sites = {k: s for k, s in ctx.sites.items() if s.pickup_enabled}
    else:
        assert a.ship_to is not None
        dest = Destination("ship", "", a.ship_to.lat, a.ship_to.lon)
        fulfilment = "ship"
        sites = dict(ctx.sites)
    plan = route(
        [(ln.line_no, ln.sku, ln.qty) for ln in lines],
        dest,
        ctx.availability,
        sites,
        ctx.policy.routing,
    )
    if isinstance(plan, Shortfall):
        return _reject(
            ErrorCode.INSUFFICIENT_STOCK,
            f"cannot serve the cart: {plan.reason}",
            missing=plan.missing,
            available=plan.available,
            suggest=plan.suggest,
        )
    allocs = [
        AllocPlan(i, asg.line_no, asg.sku, asg.location_id, asg.qty)
        for i, asg in enumerate(plan.assignments, 1)
    ]
    placed = OrderPlaced(
        order_id=state.order_id,
        create_op=ctx.op_id,
        channel=a.channel,
        fulfilment=fulfilment,
        lines=lines,
        created_at=ctx.now,
        pickup_code=pickup_code_for(ctx.op_id),
        pickup_location=a.pickup_location or "",
        ship_to=msgspec.to_builtins(a.ship_to) if a.ship_to is not None else {},
        sold_at=a.sold_at or "",
        customer_ref=a.customer_ref,
        curbside=(a.pickup_location or "") in ctx.curbside,
        hold_ttl_s=a.hold_ttl_s,
    )
    ttl = a.hold_ttl_s if fulfilment == "pickup" else SHIP_HOLD_TTL_S
    steps = place_steps(state, allocs, "c", ttl, fulfilment)
    return Decision(events=[placed, new_saga(ctx, "order.create", "create", steps, allocs=allocs)])


def _check_status(state: Order, action: str, allowed: set[str] | frozenset[str]) -> Decision | None:
    if state.status == "new":
        return _reject(
            ErrorCode.NOT_FOUND, f"unknown order {state.order_id!r}", order_id=state.order_id
        )
    if state.status not in allowed:
        return _reject(
            ErrorCode.CONFLICT,
            f"cannot {action} an order that is {state.status.replace('_', ' ')}",
            order_id=state.order_id,
            status=state.status,
            allowed_from=sorted(allowed),
        )
    return None


def _pay(state: Order, a: OrderPayArgs, ctx: Ctx) -> Decision:
    rej = _check_status(state, "record payment for", OPEN_STATUSES | {"shipped", "delivered"})
    if rej:
        return rej
    if state.payment_ref and state.payment_ref != a.reference:
        return _reject(
            ErrorCode.CONFLICT,
            "the order is already paid with another reference",
            payment_ref=state.payment_ref,
        )
    if state.payment_ref:
        return Decision(result={})
    return Decision(events=[PaymentRecorded(a.reference, a.amount_cents, ctx.now)])


def _pick(state: Order, a: OrderRefArgs, ctx: Ctx) -> Decision:
    rej = _check_status(state, "start picking", {"placed"})
    return rej or Decision(events=[PickingStarted(ctx.now)])


def _ready(state: Order, a: OrderRefArgs, ctx: Ctx) -> Decision:
    rej = (
        _only_for(state, "pickup", "only pickup orders become ready for pickup")
        or _check_status(state, "mark ready", {"placed", "picking"})
        or _no_open_exception(state, "marking it ready")
    )
    return rej or Decision(events=[MarkedReady(ctx.now)])


def _pack(state: Order, a: OrderPackArgs, ctx: Ctx) -> Decision:
    # From packed too: a re-pack (another box, a corrected weight) replaces the figures.
    rej = (
        _only_for(state, "ship", "only ship orders are packed (a pickup order is made ready)")
        or _check_status(state, "pack", {"placed", "picking", "packed"})
        or _no_open_exception(state, "packing it")
    )
    return rej or Decision(events=[Packed(a.parcels, a.weight_g or 0, ctx.now)])


def _only_for(state: Order, fulfilment: str, message: str) -> Decision | None:
    """A command for one kind of order (an unknown order is `_check_status`'s not_found)."""
    if state.fulfilment != fulfilment and state.status != "new":
        return _reject(ErrorCode.CONFLICT, message, fulfilment=state.fulfilment)
    return None


def _no_open_exception(state: Order, doing: str) -> Decision | None:
    open_exc = [e.exception_id for e in state.exceptions.values() if not e.resolution]
    if open_exc:
        return _reject(
            ErrorCode.CONFLICT,
            f"resolve the order's exceptions before {doing}",
            exceptions=open_exc,
        )
    return None


def _arrived(state: Order, a: OrderArrivedArgs, ctx: Ctx) -> Decision:
    rej = _only_for(state, "pickup", "curbside is for pickup orders") or _check_status(
        state, "check in for", OPEN_STATUSES
    )
    if rej:
        return rej
    if not state.curbside:
        return _reject(
            ErrorCode.CONFLICT,
            f"location {state.pickup_location!r} does not offer curbside pickup",
            location_id=state.pickup_location,
        )
    return Decision(events=[CustomerArrived(a.bay, ctx.now)])


def _pickup(state: Order, a: OrderPickupArgs, ctx: Ctx) -> Decision:
    rej = _only_for(state, "pickup", "a ship order is not picked up: ship it") or _check_status(
        state, "hand over", OPEN_STATUSES
    )
    if rej:
        return rej
    if a.pickup_code and a.pickup_code != state.pickup_code:
        return _reject(ErrorCode.CONFLICT, "wrong pickup code", order_id=state.order_id)
    wanted: dict[int, int] = {}
    if a.lines is None:
        for ln in state.lines:
            qty = sum(al.outstanding for al in live_allocs(state, ln.line_no))
            if qty:
                wanted[ln.line_no] = qty
    else:
        for pl in a.lines:
            wanted[pl.line] = wanted.get(pl.line, 0) + pl.qty
    if not wanted:
        return _reject(ErrorCode.CONFLICT, "nothing left to hand over")
    tag = f"p{opk(ctx.op_id)}"
    steps: list[Step] = []
    for line_no, qty in sorted(wanted.items()):
        if line_no > len(state.lines):
            return _reject(ErrorCode.INVALID_ARGS, f"the order has no line {line_no}", line=line_no)
        live = live_allocs(state, line_no)
        outstanding = sum(al.outstanding for al in live)
        if qty > outstanding:
            return _reject(
                ErrorCode.CONFLICT,
                f"line {line_no}: only {outstanding} left to hand over, not {qty}",
                line=line_no,
                outstanding=outstanding,
            )
        for al in live:
            take = min(qty, al.outstanding)
            if take <= 0:
                break
            qty -= take
            base = f"{state.order_id}:{tag}:a{al.alloc_no}"
            if al.state == "held" and take == al.outstanding:
                steps.append(
                    Step(
                        al.sku,
                        base + ":pickup",
                        "hold.pickup",
                        {"hold_id": al.hold_id},
                        al.alloc_no,
                        take,
                    )
                )
                continue
            if al.state == "held":  # partial: the hold becomes a commitment, then part of it goes
                steps.append(
                    Step(
                        al.sku,
                        base + ":commit",
                        "hold.commit",
                        {"hold_id": al.hold_id, "order_id": state.order_id},
                        al.alloc_no,
                    )
                )
            steps.append(
                Step(
                    al.sku,
                    base + ":fulfil",
                    "stock.fulfil",
                    {
                        "sku": al.sku,
                        "location_id": al.location_id,
                        "order_id": state.order_id,
                        "qty": take,
                    },
                    al.alloc_no,
                    take,
                )
            )
    return Decision(events=[new_saga(ctx, "order.pickup", "pickup", steps)])


def _ship(state: Order, a: OrderShipArgs, ctx: Ctx) -> Decision:
    rej = _only_for(state, "ship", "a pickup order is handed over, not shipped") or _check_status(
        state, "ship", {"placed", "picking", "packed"}
    )
    if rej:
        return rej
    tag = f"s{opk(ctx.op_id)}"
    steps = [
        Step(
            al.sku,
            f"{state.order_id}:{tag}:a{al.alloc_no}:fulfil",
            "stock.fulfil",
            {
                "sku": al.sku,
                "location_id": al.location_id,
                "order_id": state.order_id,
                "qty": al.outstanding,
            },
            al.alloc_no,
            al.outstanding,
        )
        for al in live_allocs(state)
    ]
    data = {"carrier": a.carrier, "tracking": a.tracking}
    return Decision(events=[new_saga(ctx, "order.ship", "ship", steps, data=data)])


def _deliver(state: Order, a: OrderRefArgs, ctx: Ctx) -> Decision:
    rej = _check_status(state, "deliver", {"shipped"})
    return rej or Decision(events=[Delivered(ctx.now)])


def _cancel(state: Order, a: OrderCancelArgs, ctx: Ctx) -> Decision:
    rej = _check_status(state, "cancel", OPEN_STATUSES)
    if rej:
        return rej
    steps = release_steps(state, live_allocs(state), f"x{opk(ctx.op_id)}")
    return Decision(events=[new_saga(ctx, "order.cancel", "cancel", steps, data={"reason": a.reason})])


def _return(state: Order, a: OrderReturnArgs, ctx: Ctx) -> Decision:
    rej = _check_status(
        state,
        "take back items of",
        {"partially_picked_up", "picked_up", "shipped", "delivered", "returned", "cancelled"},
    )
    if rej:
        return rej
    if a.location_id not in ctx.sites:
        return _reject(
            ErrorCode.NOT_FOUND, f"unknown location {a.location_id!r}", location_id=a.location_id
        )
    per_line: dict[int, int] = {}
    for rl in a.lines:
        per_line[rl.line] = per_line.get(rl.line, 0) + rl.qty
    for line_no, qty in per_line.items():
        if line_no > len(state.lines):
            return _reject(ErrorCode.INVALID_ARGS, f"the order has no line {line_no}", line=line_no)
        fulfilled, _out, returnable = line_totals(state, line_no)
        if qty > returnable:
            return _reject(
                ErrorCode.CONFLICT,
                f"line {line_no}: only {returnable} can be returned "
                f"({fulfilled} handed over, {fulfilled - returnable} already returned)",
                line=line_no,
                returnable=returnable,
            )
    tag = f"r{opk(ctx.op_id)}"
    steps: list[Step] = []
    returns: list[dict[str, Any]] = []
    for i, rl in enumerate(a.lines):
        line = state.lines[rl.line - 1]
        disposition = rl.disposition or (
            "unsellable" if rl.reason in UNSELLABLE_REASONS else "sellable"
        )
        steps.append(
            Step(
                line.sku,
                f"{state.order_id}:{tag}:{i}",
                "stock.return",
                {
                    "sku": line.sku,
                    "location_id": a.location_id,
                    "qty": rl.qty,
                    "disposition": disposition,
                    "reason": rl.reason,
                },
                0,
                rl.qty,
            )
        )
        returns.append(
            {
                "return_id": f"{tag}-{i}",
                "line_no": rl.line,
                "qty": rl.qty,
                "disposition": disposition,
                "reason": rl.reason,
                "refund_cents": rl.qty * line.price_cents,
            }
        )
    data = {
        "location_id": a.location_id,
        "returns": returns,
        "exchange_order_id": a.exchange_order_id or "",
    }
    return Decision(events=[new_saga(ctx, "order.return", "return", steps, data=data)])


def _reroute_plan(
    state: Order, al: Alloc, ctx: Ctx, *, exclude_current: bool = True
) -> list[AllocPlan] | None:
    """New allocations for `al`'s outstanding units (elsewhere, unless told otherwise)."""
    skip = al.location_id if exclude_current else ""
    if state.fulfilment == "pickup":
        origin = ctx.sites.get(state.pickup_location)
        sites = {k: s for k, s in ctx.sites.items() if s.pickup_enabled and k != skip}
    else:
        origin = None
        sites = {k: s for k, s in ctx.sites.items() if k != skip}
    lat = origin.lat if origin else float(state.ship_to.get("lat", 0.0))
    lon = origin.lon if origin else float(state.ship_to.get("lon", 0.0))
    plan = route(
        [(al.line_no, al.sku, al.outstanding)],
        Destination("ship", "", lat, lon),
        ctx.availability,
        sites,
        ctx.policy.routing,
    )
    if not isinstance(plan, RoutePlan):
        return None
    first = max(state.allocs) + 1
    return [
        AllocPlan(first + i, al.line_no, al.sku, asg.location_id, asg.qty)
        for i, asg in enumerate(plan.assignments)
    ]


def _start_reroute(
    state: Order, al: Alloc, exception_id: str, ctx: Ctx, command: str
) -> SagaStarted | None:
    plans = _reroute_plan(state, al, ctx)
    if plans is None:
        return None
    ttl = state.hold_ttl_s if state.fulfilment == "pickup" else SHIP_HOLD_TTL_S
    steps = place_steps(state, plans, f"rr{opk(ctx.op_id)}", max(ttl, 10), state.fulfilment)
    return new_saga(
        ctx,
        command,
        "reroute",
        steps,
        allocs=plans,
        data={"exception_id": exception_id, "old_alloc": al.alloc_no},
    )


def _flag(state: Order, a: FlagArgs, ctx: Ctx) -> Decision:
    if state.status not in OPEN_STATUSES:
        return Decision(result={"ignored": state.status})
    target: Alloc | None = None
    for al in live_allocs(state):
        if (
            al.sku == a.sku
            and al.location_id == a.location_id
            and (not a.hold_id or al.hold_id == a.hold_id)
        ):
            target = al
            break
    if target is None:
        return Decision(result={"ignored": "no such allocation"})
    exc_id = f"E{len(state.exceptions) + 1}"
    events: list[Event] = []
    if a.kind == "hold_expired":
        if target.state != "held":
            return Decision(result={"ignored": "not held"})
        # The pool already gave the units back: record it, never release them again.
        events.append(AllocsReleased({str(target.alloc_no): target.outstanding}, "expired"))
        events.append(
            ExceptionRaised(
                exc_id,
                "hold_expired",
                target.alloc_no,
                a.location_id,
                f"the hold for line {target.line_no} expired",
                ctx.now,
            )
        )
        if ctx.policy.on_hold_expiry == "reroute":
            # A fresh hold for the same units; the expired one needs no release (old_alloc 0).
            plans = _reroute_plan(state, target, ctx, exclude_current=False)
            if plans is not None:
                steps = place_steps(
                    state, plans, f"rr{opk(ctx.op_id)}", max(state.hold_ttl_s, 10), "pickup"
                )
                events.append(
                    new_saga(
                        ctx,
                        "order.flag",
                        "reroute",
                        steps,
                        allocs=plans,
                        data={"exception_id": exc_id, "old_alloc": 0},
                    )
                )
                return Decision(events=events)
        events.append(LineCancelled(target.line_no, target.outstanding, ctx.now))
        events.append(ExceptionResolved(exc_id, "expired_cancelled", ctx.now))
        if sum(al.outstanding for al in live_allocs(state)) == target.outstanding:
            events.append(OrderCancelled("not collected in time", ctx.now))
        return Decision(events=events)
    if any(e.alloc_no == target.alloc_no and not e.resolution for e in state.exceptions.values()):
        return Decision(result={"ignored": "already flagged"})
    events.append(
        ExceptionRaised(
            exc_id,
            "stock_conflict",
            target.alloc_no,
            a.location_id,
            f"line {target.line_no}: {target.outstanding} x {a.sku} at {a.location_id} "
            "are no longer covered by stock (a sale synced late)",
            ctx.now,
        )
    )
    if ctx.policy.auto_reroute and state.pending is None:
        saga = _start_reroute(state, target, exc_id, ctx, "order.flag")
        if saga is not None:
            events.append(saga)
    return Decision(events=events)


def _resolve(state: Order, a: OrderResolveArgs, ctx: Ctx) -> Decision:
    rej = _check_status(state, "resolve an exception of", OPEN_STATUSES)
    if rej:
        return rej
    exc = state.exceptions.get(a.exception_id)
    if exc is None:
        return _reject(ErrorCode.NOT_FOUND, f"unknown exception {a.exception_id!r}")
    if exc.resolution:
        return _reject(
            ErrorCode.CONFLICT, f"exception {a.exception_id} is already {exc.resolution}"
        )
    al = state.allocs.get(exc.alloc_no)
    if a.action == "dismiss" or al is None or al.outstanding == 0:
        return Decision(events=[ExceptionResolved(a.exception_id, "dismissed", ctx.now)])
    if a.action == "reroute":
        saga = _start_reroute(state, al, a.exception_id, ctx, "order.resolve")
        if saga is None:
            return _reject(
                ErrorCode.INSUFFICIENT_STOCK,
                f"no other location has {al.outstanding} x {al.sku}",
                available=availability_details(ctx, [al.sku]),
            )
        return Decision(events=[saga])
    steps = release_steps(state, [al], f"k{opk(ctx.op_id)}")
    return Decision(
        events=[
            new_saga(ctx, "order.resolve", "cancel_line", steps, data={"exception_id": a.exception_id})
        ]
    )


_HANDLERS: dict[str, Any] = {
    "order.create": _create,
    "order.pay": _pay,
    "order.pick": _pick,
    "order.ready": _ready,
    "order.pack": _pack,
    "order.arrived": _arrived,
    "order.pickup": _pickup,
    "order.ship": _ship,
    "order.deliver": _deliver,
    "order.cancel": _cancel,
    "order.return": _return,
    "order.resolve": _resolve,
    "order.flag": _flag,
}


def decide(state: Order, name: str, args: msgspec.Struct, ctx: Ctx) -> Decision:
    """Validate one command; the events to append (maybe a saga) and the result or rejection.

    A refused create is journaled too (`OrderRejected` on the order's stream), so an order
    stream at version 0 proves that no create was ever answered for it: the shell then
    skips the op-table lookup for a brand-new order.
    """
    handler = _HANDLERS.get(name)
    if handler is None:
        return _reject(ErrorCode.UNKNOWN_TYPE, f"unknown command {name!r}")
    if state.pending is not None:
        # One saga at a time: the shell finishes it before deciding anything new.
        return _reject(ErrorCode.UNAVAILABLE, "the order is busy: retry with the same op_id")
    decision: Decision = handler(state, args, ctx)
    r = decision.rejection
    if name == "order.create" and r is not None and state.status == "new":
        decision.events = [OrderRejected(r.code.value, r.message, dict(r.details), ctx.now)]
    if decision.rejection is None and not any(isinstance(e, SagaStarted) for e in decision.events):
        decision.result = decision.result or {"order_id": state.order_id}
    return decision
