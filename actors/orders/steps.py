"""The inventory commands an order's sagas send, and the helpers decide and advance share.

Every step's op_id is derived (`"{order_id}:{tag}:a{n}:{verb}"`, `opk` for a client op_id), so
a step re-sent after a crash is the same command to its SKU pool (exactly once).
"""

from __future__ import annotations

import hashlib
from typing import Any

from .events import (
    AllocPlan,
    SagaStarted,
    Step,
)
from .state import (
    Alloc,
    Ctx,
    Order,
    Pending,
)

__all__ = [
    "availability_details",
    "commit_steps",
    "live_allocs",
    "new_saga",
    "next_saga",
    "opk",
    "place_steps",
    "release_steps",
]


def opk(op_id: str) -> str:
    """A short, fixed-length tag of a client op_id for derived inventory op_ids."""
    return hashlib.blake2b(op_id.encode(), digest_size=6).hexdigest()


def release_steps(state: Order, allocs: list[Alloc], tag: str) -> list[Step]:
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


def place_steps(
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


def commit_steps(state: Order, allocs: list[tuple[int, str, str]], tag: str) -> list[Step]:
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


def new_saga(
    ctx: Ctx,
    command: str,
    kind: str,
    steps: list[Step],
    *,
    allocs: list[AllocPlan] | None = None,
    data: dict[str, Any] | None = None,
) -> SagaStarted:
    """The first saga of a command (its op_id and payload hash make the op record)."""
    return _started(ctx.op_id, ctx.payload_hash, command, kind, steps, allocs, data)


def next_saga(
    pending: Pending,
    kind: str,
    steps: list[Step],
    *,
    allocs: list[AllocPlan] | None = None,
    data: dict[str, Any] | None = None,
) -> SagaStarted:
    """The next phase of the pending saga: same command, same op record, its data kept
    unless new data is given."""
    kept = data if data is not None else pending.data
    return _started(pending.op_id, pending.payload_hash, pending.command, kind, steps, allocs, kept)


def _started(
    op_id: str, payload_hash: str, command: str, kind: str, steps: list[Step],
    allocs: list[AllocPlan] | None, data: dict[str, Any] | None,
) -> SagaStarted:
    return SagaStarted(
        op_id=op_id,
        payload_hash=payload_hash,
        command=command,
        kind=kind,
        steps=steps,
        allocs=allocs or [],
        data=data or {},
    )


def availability_details(
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


def live_allocs(state: Order, line_no: int | None = None) -> list[Alloc]:
    return [
        a
        for a in state.allocs.values()
        if a.outstanding > 0 and a.state != "planned" and (line_no is None or a.line_no == line_no)
    ]
