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
`initial(order_id)` rebuilds it.

Statuses: pending -> placed -> picking -> ready -> partially_picked_up -> picked_up (pickup) /
placed -> picking -> shipped -> delivered (ship); cancelled from any open status; rejected if
the create saga failed. `returned` once every unit handed over came back.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import msgspec

from protocol.errors import ErrorCode
from protocol.orders import (
    OrderArrivedArgs,
    OrderCancelArgs,
    OrderCreateArgs,
    OrderPayArgs,
    OrderPickupArgs,
    OrderRefArgs,
    OrderResolveArgs,
    OrderReturnArgs,
    OrderShipArgs,
)

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
    LineSpec,
    MarkedReady,
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderRejected,
    PaymentRecorded,
    PickingStarted,
    SagaFinished,
    SagaStarted,
    Shipped,
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

# --- steps ------------------------------------------------------------------------------


def _opk(op_id: str) -> str:
    """A short, fixed-length tag of a client op_id for derived inventory op_ids."""
    return hashlib.blake2b(op_id.encode(), digest_size=6).hexdigest()


def _release_steps(state: Order, allocs: list[Alloc], tag: str) -> list[Step]:
    steps: list[Step] = []
    for a in allocs:
        qty = a.outstanding
        if qty <= 0 or a.state == "planned":
            continue
        op = f"{state.order_id}:{tag}:a{a.alloc_no}:release"
        if a.state == "held":
            steps.append(Step(a.sku, op, "hold.release", {"hold_id": a.hold_id}, a.alloc_no, qty))
        else:
            steps.append(
                Step(
                    a.sku,
                    op,
                    "stock.uncommit",
                    {
                        "sku": a.sku,
                        "location_id": a.location_id,
                        "order_id": state.order_id,
                        "qty": qty,
                    },
                    a.alloc_no,
                    qty,
                )
            )
    return steps


def _place_steps(
    state: Order, plans: list[AllocPlan], tag: str, ttl_s: int, fulfilment: str
) -> list[Step]:
    """Pickup: a hold the customer collects. Ship: a ship allocation placed and committed to
    the order in one step (any location with stock; nothing to expire, no second round)."""
    extra: dict[str, Any] = (
        {"purpose": "ship", "commit_order_id": state.order_id} if fulfilment == "ship" else {}
    )
    return [
        Step(
            p.sku,
            f"{state.order_id}:{tag}:a{p.alloc_no}:place",
            "hold.place",
            {
                "sku": p.sku,
                "location_id": p.location_id,
                "qty": p.qty,
                "ttl_s": ttl_s,
                "customer_ref": f"order:{state.order_id}",
                **extra,
            },
            p.alloc_no,
            p.qty,
        )
        for p in plans
    ]


def _commit_steps(state: Order, allocs: list[tuple[int, str, str]], tag: str) -> list[Step]:
    """allocs: (alloc_no, sku, hold_id)."""
    return [
        Step(
            sku,
            f"{state.order_id}:{tag}:a{n}:commit",
            "hold.commit",
            {"hold_id": hold_id, "order_id": state.order_id},
            n,
        )
        for n, sku, hold_id in allocs
    ]


def _saga(
    ctx: Ctx,
    command: str,
    kind: str,
    steps: list[Step],
    *,
    allocs: list[AllocPlan] | None = None,
    data: dict[str, Any] | None = None,
) -> SagaStarted:
    return SagaStarted(
        op_id=ctx.op_id,
        payload_hash=ctx.payload_hash,
        command=command,
        kind=kind,
        steps=steps,
        allocs=allocs or [],
        data=data or {},
    )


def _next_saga(
    pending: Pending,
    kind: str,
    steps: list[Step],
    *,
    allocs: list[AllocPlan] | None = None,
    data: dict[str, Any] | None = None,
) -> SagaStarted:
    return SagaStarted(
        op_id=pending.op_id,
        payload_hash=pending.payload_hash,
        command=pending.command,
        kind=kind,
        steps=steps,
        allocs=allocs or [],
        data=data if data is not None else pending.data,
    )


# --- decide -----------------------------------------------------------------------------


def _availability_details(
    ctx: Ctx, skus: list[str], giving_back: list[tuple[str, str, int]] | None = None
) -> dict[str, dict[str, int]]:
    """sku -> location -> available (> 0 only), counting as free the units this order is
    about to give back (`giving_back`: sku, location, qty): they are, once it answers."""
    out: dict[str, dict[str, int]] = {}
    for sku in skus:
        row = dict(ctx.availability.get(sku, {}))
        for g_sku, loc, qty in giving_back or ():
            if g_sku == sku:
                row[loc] = row.get(loc, 0) + qty
        out[sku] = {loc: n for loc, n in sorted(row.items()) if n > 0}
    return out


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
    steps = _place_steps(state, allocs, "c", ttl, fulfilment)
    return Decision(events=[placed, _saga(ctx, "order.create", "create", steps, allocs=allocs)])


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
    if state.fulfilment != "pickup" and state.status != "new":
        return _reject(
            ErrorCode.CONFLICT,
            "only pickup orders become ready for pickup",
            fulfilment=state.fulfilment,
        )
    rej = _check_status(state, "mark ready", {"placed", "picking"})
    if rej:
        return rej
    open_exc = [e.exception_id for e in state.exceptions.values() if not e.resolution]
    if open_exc:
        return _reject(
            ErrorCode.CONFLICT,
            "resolve the order's exceptions before marking it ready",
            exceptions=open_exc,
        )
    return Decision(events=[MarkedReady(ctx.now)])


def _arrived(state: Order, a: OrderArrivedArgs, ctx: Ctx) -> Decision:
    if state.fulfilment != "pickup" and state.status != "new":
        return _reject(ErrorCode.CONFLICT, "curbside is for pickup orders")
    rej = _check_status(state, "check in for", OPEN_STATUSES)
    if rej:
        return rej
    if not state.curbside:
        return _reject(
            ErrorCode.CONFLICT,
            f"location {state.pickup_location!r} does not offer curbside pickup",
            location_id=state.pickup_location,
        )
    return Decision(events=[CustomerArrived(a.bay, ctx.now)])


def _live_allocs(state: Order, line_no: int | None = None) -> list[Alloc]:
    return [
        a
        for a in state.allocs.values()
        if a.outstanding > 0 and a.state != "planned" and (line_no is None or a.line_no == line_no)
    ]


def _pickup(state: Order, a: OrderPickupArgs, ctx: Ctx) -> Decision:
    if state.fulfilment != "pickup" and state.status != "new":
        return _reject(ErrorCode.CONFLICT, "a ship order is not picked up: ship it")
    rej = _check_status(state, "hand over", OPEN_STATUSES)
    if rej:
        return rej
    if a.pickup_code and a.pickup_code != state.pickup_code:
        return _reject(ErrorCode.CONFLICT, "wrong pickup code", order_id=state.order_id)
    wanted: dict[int, int] = {}
    if a.lines is None:
        for ln in state.lines:
            qty = sum(al.outstanding for al in _live_allocs(state, ln.line_no))
            if qty:
                wanted[ln.line_no] = qty
    else:
        for pl in a.lines:
            wanted[pl.line] = wanted.get(pl.line, 0) + pl.qty
    if not wanted:
        return _reject(ErrorCode.CONFLICT, "nothing left to hand over")
    tag = f"p{_opk(ctx.op_id)}"
    steps: list[Step] = []
    for line_no, qty in sorted(wanted.items()):
        if line_no > len(state.lines):
            return _reject(ErrorCode.INVALID_ARGS, f"the order has no line {line_no}", line=line_no)
        live = _live_allocs(state, line_no)
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
    return Decision(events=[_saga(ctx, "order.pickup", "pickup", steps)])


def _ship(state: Order, a: OrderShipArgs, ctx: Ctx) -> Decision:
    if state.fulfilment != "ship" and state.status != "new":
        return _reject(ErrorCode.CONFLICT, "a pickup order is handed over, not shipped")
    rej = _check_status(state, "ship", {"placed", "picking"})
    if rej:
        return rej
    tag = f"s{_opk(ctx.op_id)}"
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
        for al in _live_allocs(state)
    ]
    data = {"carrier": a.carrier, "tracking": a.tracking}
    return Decision(events=[_saga(ctx, "order.ship", "ship", steps, data=data)])


def _deliver(state: Order, a: OrderRefArgs, ctx: Ctx) -> Decision:
    rej = _check_status(state, "deliver", {"shipped"})
    return rej or Decision(events=[Delivered(ctx.now)])


def _cancel(state: Order, a: OrderCancelArgs, ctx: Ctx) -> Decision:
    rej = _check_status(state, "cancel", OPEN_STATUSES)
    if rej:
        return rej
    steps = _release_steps(state, _live_allocs(state), f"x{_opk(ctx.op_id)}")
    return Decision(events=[_saga(ctx, "order.cancel", "cancel", steps, data={"reason": a.reason})])


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
    tag = f"r{_opk(ctx.op_id)}"
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
    return Decision(events=[_saga(ctx, "order.return", "return", steps, data=data)])


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
    steps = _place_steps(state, plans, f"rr{_opk(ctx.op_id)}", max(ttl, 10), state.fulfilment)
    return _saga(
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
    for al in _live_allocs(state):
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
                steps = _place_steps(
                    state, plans, f"rr{_opk(ctx.op_id)}", max(state.hold_ttl_s, 10), "pickup"
                )
                events.append(
                    _saga(
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
        if sum(al.outstanding for al in _live_allocs(state)) == target.outstanding:
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
                available=_availability_details(ctx, [al.sku]),
            )
        return Decision(events=[saga])
    steps = _release_steps(state, [al], f"k{_opk(ctx.op_id)}")
    return Decision(
        events=[
            _saga(ctx, "order.resolve", "cancel_line", steps, data={"exception_id": a.exception_id})
        ]
    )


_HANDLERS: dict[str, Any] = {
    "order.create": _create,
    "order.pay": _pay,
    "order.pick": _pick,
    "order.ready": _ready,
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


# --- advance ----------------------------------------------------------------------------


def _by_alloc(
    steps: list[Step], results: list[StepResult]
) -> dict[int, list[tuple[Step, StepResult]]]:
    out: dict[int, list[tuple[Step, StepResult]]] = {}
    for step, res in zip(steps, results, strict=True):
        out.setdefault(step.alloc_no, []).append((step, res))
    return out


def _finish(
    pending: Pending,
    events: list[Event],
    result: dict[str, Any] | None = None,
    rejection: Rejection | None = None,
) -> Decision:
    events.append(SagaFinished(pending.op_id))
    return Decision(events=events, result=result or {}, rejection=rejection)


def _gone(res: StepResult) -> bool:
    """A release that found nothing to release: the units are free already (expired)."""
    return not res.ok and res.code == ErrorCode.NOT_FOUND.value


def _may_replan(
    state: Order, p: Pending, pairs: list[tuple[Step, StepResult]], committed_now: list[int]
) -> bool:
    """Whether a failed create may re-plan its failed lines (once) instead of compensating.

    Only ship orders: a pickup order names its store, and moving it to another store without
    asking would send the customer to the wrong counter (the 409 suggests stores instead).
    Only when every failure is `insufficient_stock` (stock moved under a stale read model;
    anything else is not fixed by routing again) and every kept allocation is already
    committed (place-and-commit; a saga journaled before that existed compensates as then).
    """
    if p.kind != "create" or state.fulfilment != "ship":
        return False
    for s, r in pairs:
        if r.ok:
            if s.alloc_no not in committed_now:
                return False
        elif r.code != ErrorCode.INSUFFICIENT_STOCK.value:
            return False
    return True


def _replan_saga(
    state: Order, p: Pending, failed: list[tuple[Step, StepResult]], ctx: Ctx
) -> SagaStarted | None:
    """New allocations for the failed units only, routed on fresh availability (which already
    counts the allocations this order keeps); None if the network cannot serve them now.

    Nothing is excluded: a location that refused the whole quantity may still have part of
    it, and `ctx.availability` says how much. The failed allocations are closed by the
    caller (`AllocsReleased`, cause "replan": they never held anything)."""
    need: dict[int, tuple[str, int]] = {}
    for s, _r in failed:
        line_no = state.allocs[s.alloc_no].line_no
        sku, qty = need.get(line_no, (s.sku, 0))
        need[line_no] = (sku, qty + s.qty)
    dest = Destination(
        "ship", "", float(state.ship_to.get("lat", 0.0)), float(state.ship_to.get("lon", 0.0))
    )
    plan = route(
        [(n, sku, qty) for n, (sku, qty) in sorted(need.items())],
        dest,
        ctx.availability,
        ctx.sites,
        ctx.policy.routing,
    )
    if not isinstance(plan, RoutePlan):
        return None
    first = max(state.allocs) + 1
    plans = [
        AllocPlan(first + i, asg.line_no, asg.sku, asg.location_id, asg.qty)
        for i, asg in enumerate(plan.assignments)
    ]
    steps = _place_steps(state, plans, "c", SHIP_HOLD_TTL_S, "ship")
    return _next_saga(p, "replan", steps, allocs=plans)


def _pickup_suggest(state: Order, ctx: Ctx) -> list[str]:
    """Pickup stores that could serve the whole cart now, nearest first (as a routing
    shortfall at create time says): the register offers them, it never moves the order."""
    here = ctx.sites.get(state.pickup_location)
    if here is None:
        return []
    plan = route(
        [(ln.line_no, ln.sku, ln.qty) for ln in state.lines],
        Destination("pickup", here.id, here.lat, here.lon),
        ctx.availability,
        {k: s for k, s in ctx.sites.items() if s.pickup_enabled},
        ctx.policy.routing,
    )
    return plan.suggest if isinstance(plan, Shortfall) else []


def advance(state: Order, results: list[StepResult], ctx: Ctx) -> Decision:
    """Turn the answers to the pending saga's steps into facts; finish or start the next phase.

    `results[i]` answers `state.pending.steps[i]`.
    """
    p = state.pending
    assert p is not None, "advance() without a pending saga"
    pairs = list(zip(p.steps, results, strict=True))
    now = ctx.now
    events: list[Event] = []
    if p.kind in ("create", "reroute", "replan"):
        holds = {str(s.alloc_no): r.result["hold_id"] for s, r in pairs if r.ok}
        if holds:
            events.append(HoldsPlaced(holds))
        # Ship allocations come back committed already (place-and-commit in one step).
        committed_now = [s.alloc_no for s, r in pairs if r.ok and r.result.get("state") == "committed"]
        if committed_now:
            events.append(AllocsCommitted(committed_now))
        failed = [(s, r) for s, r in pairs if not r.ok]
        if failed:
            replan: dict[str, Any] = {}
            if _may_replan(state, p, pairs, committed_now):
                saga = _replan_saga(state, p, failed, ctx)
                if saga is not None:
                    events.append(
                        AllocsReleased({str(s.alloc_no): s.qty for s, _r in failed}, "replan")
                    )
                    events.append(saga)
                    return Decision(events=events)
                replan = {"replan": "no_route"}
            elif p.kind == "replan":
                replan = {"replan": "failed"}
            steps = []
            for s, r in pairs:
                if not r.ok:
                    continue
                op = f"{state.order_id}:{p.kind}{_opk(p.op_id)}:a{s.alloc_no}:release"
                if s.alloc_no in committed_now:
                    args = {
                        "sku": s.sku,
                        "location_id": s.args["location_id"],
                        "order_id": state.order_id,
                        "qty": s.qty,
                    }
                    steps.append(Step(s.sku, op, "stock.uncommit", args, s.alloc_no, s.qty))
                else:
                    h = holds[str(s.alloc_no)]
                    steps.append(Step(s.sku, op, "hold.release", {"hold_id": h}, s.alloc_no))
            if p.kind == "replan":
                # The first round's holds, kept for the re-plan: all or nothing, so they go too.
                steps.extend(_release_steps(state, _live_allocs(state), f"{p.kind}{_opk(p.op_id)}"))
            # What this order is about to give back is free again once it answers.
            give = [(s.sku, str(s.args.get("location_id", "")), s.qty) for s, r in pairs if r.ok]
            if p.kind == "replan":
                give += [(a.sku, a.location_id, a.outstanding) for a in _live_allocs(state)]
            first = failed[0][1]
            # A re-plan's steps cover only the failed lines: report the whole cart.
            on = state.lines if p.kind == "replan" else []
            skus = sorted({ln.sku for ln in on} | {s.sku for s, _r in pairs})
            details: dict[str, Any] = {
                "failed": [
                    {
                        "sku": s.sku,
                        "location_id": s.args.get("location_id"),
                        "code": r.code,
                        "message": r.message,
                    }
                    for s, r in failed
                ],
                "available": _availability_details(ctx, skus, give),
                **replan,
            }
            if state.fulfilment == "pickup" and p.kind == "create":
                details["suggest"] = _pickup_suggest(state, ctx)
            reject = {
                "code": first.code or ErrorCode.INSUFFICIENT_STOCK.value,
                "message": f"could not hold every line: {first.message}",
                "details": details,
            }
            data = {**p.data, "reject": reject}
            if steps:
                events.append(_next_saga(p, "compensate", steps, data=data))
                return Decision(events=events)
            return _compensated(state, p, events, data, now)
        to_commit = [
            (s.alloc_no, s.sku, holds[str(s.alloc_no)])
            for s, _r in pairs
            if s.alloc_no not in committed_now
        ]
        if state.fulfilment == "ship" and to_commit:
            # Holds placed without commit_order_id (a saga journaled before place-and-commit
            # existed): commit them in a second round, as then.
            commits = _commit_steps(state, to_commit, f"{p.kind}{_opk(p.op_id)}")
            events.append(_next_saga(p, "commit", commits))
            return Decision(events=events)
        return _placed(state, p, events, now)
    if p.kind == "commit":
        ok = [s.alloc_no for s, r in pairs if r.ok]
        if ok:
            events.append(AllocsCommitted(ok))
        if len(ok) == len(pairs):
            return _placed(state, p, events, now)
        # A hold vanished before it could be committed: give everything back and refuse.
        undo = []
        for s, r in pairs:
            al = state.allocs[s.alloc_no]
            shadow = msgspec.structs.replace(al, state="committed" if r.ok else "held")
            undo.extend(_release_steps(state, [shadow], f"u{_opk(p.op_id)}"))
        reject = {
            "code": ErrorCode.CONFLICT.value,
            "message": "a hold expired before the order could commit it",
            "details": {},
        }
        events.append(_next_saga(p, "compensate", undo, data={**p.data, "reject": reject}))
        return Decision(events=events)
    if p.kind == "compensate":
        if any(not r.ok and not _gone(r) for _s, r in pairs):
            return Decision()  # leave pending: the saga timer retries the releases
        return _compensated(state, p, events, p.data, now)
    if p.kind in ("cancel", "cancel_line"):
        if any(not r.ok and not _gone(r) for _s, r in pairs):
            return Decision()
        released = {str(s.alloc_no): s.qty for s, _r in pairs}
        per_line: dict[int, int] = {}
        for s, _r in pairs:
            line_no = state.allocs[s.alloc_no].line_no
            per_line[line_no] = per_line.get(line_no, 0) + s.qty
        if released:
            events.append(AllocsReleased(released, "cancel"))
        for line_no, qty in sorted(per_line.items()):
            events.append(LineCancelled(line_no, qty, now))
        if p.kind == "cancel":
            events.append(OrderCancelled(str(p.data.get("reason", "")), now))
        else:
            events.append(ExceptionResolved(str(p.data["exception_id"]), "line_cancelled", now))
        return _finish(p, events, {"order_id": state.order_id, "released": released})
    if p.kind == "reroute_release":
        if any(not r.ok and not _gone(r) for _s, r in pairs):
            return Decision()
        released = {str(s.alloc_no): s.qty for s, _r in pairs}
        if released:
            events.append(AllocsReleased(released, "reroute"))
        events.append(ExceptionResolved(str(p.data["exception_id"]), "rerouted", now))
        return _finish(p, events, {"order_id": state.order_id, "rerouted": True})
    if p.kind in ("pickup", "ship"):
        units: dict[str, int] = {}
        committed: list[int] = []
        failures: list[dict[str, Any]] = []
        for n, chain in _by_alloc(p.steps, results).items():
            for step, res in chain:
                if not res.ok:
                    failures.append(
                        {"alloc_no": n, "sku": step.sku, "code": res.code, "message": res.message}
                    )
                    break
                if step.name == "hold.commit":
                    committed.append(n)
                elif step.qty:
                    units[str(n)] = units.get(str(n), 0) + step.qty
        if committed:
            events.append(AllocsCommitted(committed))
        if units:
            events.append(Fulfilled(units, "pickup" if p.kind == "pickup" else "ship", now))
        if p.kind == "ship" and units:
            events.append(Shipped(str(p.data["carrier"]), str(p.data["tracking"]), now))
        for f in failures:
            al = state.allocs[f["alloc_no"]]
            events.append(
                ExceptionRaised(
                    f"E{len(state.exceptions) + 1 + failures.index(f)}",
                    f"{p.kind}_failed",
                    al.alloc_no,
                    al.location_id,
                    f["message"],
                    now,
                )
            )
        if failures:
            return _finish(
                p,
                events,
                rejection=Rejection(
                    ErrorCode.CONFLICT,
                    f"{p.kind}: {len(failures)} allocation(s) failed",
                    {"failed": failures, "done": units},
                ),
            )
        return _finish(p, events, {"order_id": state.order_id, "units": units})
    if p.kind == "return":
        if any(not r.ok for _s, r in pairs):
            bad = next(r for _s, r in pairs if not r.ok)
            # Returns are physical facts; a refusal here is a bug or unknown location.
            return _finish(
                p,
                events,
                rejection=Rejection(ErrorCode(bad.code or "internal"), bad.message, bad.details),
            )
        refund = 0
        for ret in p.data["returns"]:
            refund += int(ret["refund_cents"])
            events.append(
                LineReturned(
                    return_id=str(ret["return_id"]),
                    line_no=int(ret["line_no"]),
                    qty=int(ret["qty"]),
                    location_id=str(p.data["location_id"]),
                    disposition=ret["disposition"],
                    reason=str(ret["reason"]),
                    refund_cents=int(ret["refund_cents"]),
                    at=now,
                    exchange_order_id=str(p.data.get("exchange_order_id", "")),
                )
            )
        return _finish(
            p,
            events,
            {"order_id": state.order_id, "refund_due_cents": refund, "returns": p.data["returns"]},
        )
    raise AssertionError(f"unknown saga kind {p.kind!r}")


def _placed(state: Order, p: Pending, events: list[Event], now: float) -> Decision:
    if p.kind in ("create", "commit", "replan") and state.status == "pending":
        events.append(OrderConfirmed(now))
        return _finish(p, events, {"order_id": state.order_id, "created": True})
    # A re-route: the new allocation is held (and committed); now free the old one.
    old = state.allocs.get(int(p.data.get("old_alloc", 0)))
    steps = _release_steps(state, [old], f"rr{_opk(p.op_id)}") if old is not None else []
    if steps:
        events.append(_next_saga(p, "reroute_release", steps))
        return Decision(events=events)
    events.append(ExceptionResolved(str(p.data["exception_id"]), "rerouted", now))
    return _finish(p, events, {"order_id": state.order_id, "rerouted": True})


def _compensated(
    state: Order, p: Pending, events: list[Event], data: dict[str, Any], now: float
) -> Decision:
    released = (
        {str(s.alloc_no): state.allocs[s.alloc_no].outstanding for s in p.steps}
        if p.kind == "compensate"
        else {}
    )
    # Allocations that never got a hold held nothing: close them in the books only.
    for al in state.allocs.values():
        if al.state == "planned" and al.outstanding > 0:
            released[str(al.alloc_no)] = al.outstanding
    if released:
        events.append(AllocsReleased(released, "compensate"))
    reject = data["reject"]
    if state.status == "pending":
        events.append(OrderRejected(reject["code"], reject["message"], reject["details"], now))
    elif "exception_id" in data:
        exc = state.exceptions[str(data["exception_id"])]
        events.append(
            ExceptionRaised(
                f"E{len(state.exceptions) + 1}",
                "reroute_failed",
                exc.alloc_no,
                exc.location_id,
                f"re-route failed: {reject['message']}",
                now,
            )
        )
    return _finish(
        p,
        events,
        rejection=Rejection(ErrorCode(reject["code"]), reject["message"], reject["details"]),
    )
