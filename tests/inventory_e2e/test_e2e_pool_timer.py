"""Hold expiry keeps ONE durable timer per SKU pool (actors/inventory/expiry.py), not a row
per hold: the timer is due at the earliest active hold, moved earlier at once, re-armed after
it fires, and cleared when the pool has no holds left. Real engine, real SQLite journal."""

from __future__ import annotations

import math

import trio

from engine.runtime import TimerFired
from engine.server import Engine
from tests.gateway.helpers import stocked
from tests.inventory_e2e.e2e_helpers import balance


async def pool_timers(engine: Engine, sku: str) -> list[tuple[str, float]]:
    timers = await engine.journal.due_timers(math.inf)
    return [(t.timer_id, t.due_at) for t in timers if t.actor_key == f"sku:{sku}"]


async def test_one_timer_per_pool_at_the_earliest_hold(engine: Engine) -> None:
    sku, loc, _ = stocked(engine, min_available=3)
    start = balance(engine, sku, loc)
    d = engine.dispatcher
    claims = engine.signer.verify(engine.signer.mint("admin", sub="t"))

    async def place(op: str, ttl: int) -> dict[str, object]:
        args = {"sku": sku, "location_id": loc, "qty": 1, "ttl_s": ttl}
        return await d.execute(claims, op, "hold.place", args)

    late = await place("late", 900)
    assert await pool_timers(engine, sku) == [("expiry", late["expires_at"])]
    soon = await place("soon", 600)  # expires sooner: the timer moves earlier at once
    mid = await place("mid", 700)  # later than the timer: no timer write
    assert await pool_timers(engine, sku) == [("expiry", soon["expires_at"])]

    # Released: the timer stays where it was (it will fire early and re-arm) ...
    await d.execute(claims, "rel", "hold.release", {"hold_id": soon["hold_id"]})
    assert await pool_timers(engine, sku) == [("expiry", soon["expires_at"])]
    # ... and when it fires with nothing due, it re-arms at the real earliest expiry.
    await engine.registry.tell(f"sku:{sku}", TimerFired("expiry", b"", soon["expires_at"]))
    with trio.fail_after(5):
        while await pool_timers(engine, sku) != [("expiry", mid["expires_at"])]:
            await trio.sleep(0.02)
    now = balance(engine, sku, loc)
    assert now["reserved"] == start["reserved"] + 2  # nothing expired early

    # No holds left: the pool timer is cleared.
    for op, h in (("r1", mid), ("r2", late)):
        await d.execute(claims, op, "hold.release", {"hold_id": h["hold_id"]})
    assert await pool_timers(engine, sku) == []
    assert balance(engine, sku, loc)["reserved"] == start["reserved"]
