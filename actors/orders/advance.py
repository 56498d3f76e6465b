"""`advance`: turn the answers to an order's pending saga steps into facts, and finish the
saga or start its next phase (see the theory of operation in actors/orders/domain.py)."""

from __future__ import annotations

from typing import Any

import msgspec

from protocol.errors import ErrorCode

from .events import (
    AllocPlan,
    AllocsCommitted,
    AllocsReleased,
    Event,
    ExceptionRaised,
    ExceptionResolved,
    Fulfilled,
    HoldsPlaced,
    LineCancelled,
    LineReturned,
    OrderCancelled,
    OrderConfirmed,
    OrderRejected,
    SagaFinished,
    SagaStarted,
    Shipped,
    Step,
)
from .routing import Destination, RoutePlan, Shortfall, route
from .state import (
    SHIP_HOLD_TTL_S,
    Ctx,
    Decision,
    Order,
    Pending,
    Rejection,
    StepResult,
)
from .steps import (
    availability_details,
    commit_steps,
    live_allocs,
    next_saga,
    opk,
    place_steps,
    release_steps,
)

__all__ = ["advance"]


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
    steps = place_steps(state, plans, "c", SHIP_HOLD_TTL_S, "ship")
    return next_saga(p, "replan", steps, allocs=plans)


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
                op = f"{state.order_id}:{p.kind}{opk(p.op_id)}:a{s.alloc_no}:release"
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
                steps.extend(release_steps(state, live_allocs(state), f"{p.kind}{opk(p.op_id)}"))
            # What this order is about to give back is free again once it answers.
            give = [(s.sku, str(s.args.get("location_id", "")), s.qty) for s, r in pairs if r.ok]
            if p.kind == "replan":
                give += [(a.sku, a.location_id, a.outstanding) for a in live_allocs(state)]
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
                "available": availability_details(ctx, skus, give),
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
                events.append(next_saga(p, "compensate", steps, data=data))
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
            commits = commit_steps(state, to_commit, f"{p.kind}{opk(p.op_id)}")
            events.append(next_saga(p, "commit", commits))
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
            undo.extend(release_steps(state, [shadow], f"u{opk(p.op_id)}"))
        reject = {
            "code": ErrorCode.CONFLICT.value,
            "message": "a hold expired before the order could commit it",
            "details": {},
        }
        events.append(next_saga(p, "compensate", undo, data={**p.data, "reject": reject}))
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
    steps = release_steps(state, [old], f"rr{opk(p.op_id)}") if old is not None else []
    if steps:
        events.append(next_saga(p, "reroute_release", steps))
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
