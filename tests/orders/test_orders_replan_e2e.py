"""Re-planning a create end to end (real engine, WebSocket gateway, SKU pools, journal).

A racing order takes store A's last unit a moment before our order's hold lands there. The
order's routing saw A still stocked: that is the read model being a moment behind, which a
test cannot time on one trio thread, so the first context the order decides with is the
availability from just before the racer (`stale_once`); every later one is the real one.

* Ship order, B has the unit: accepted, that line at B, the other line kept at A.
* Ship order, no store has it: 409 `insufficient_stock`, the order holds nothing.
* Pickup order: never moved to another store; 409 with `suggest`, holds nothing.
* Two real concurrent creates for A's last unit, B has one more: both accepted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
import trio

from clients.python import CommandRejected, open_client
from engine.auth import Claims
from engine.server import Engine
from tests.conftest import ws_url
from tests.gateway.helpers import token
from tests.orders.test_orders_journeys import bal, inv

ADMIN = Claims(sub="t", role="admin", exp=time.time() + 3600)


async def run(engine: Engine, name: str, args: dict[str, Any], op_id: str) -> dict[str, Any]:
    return await engine.dispatcher.execute(ADMIN, op_id, name, args)


def two_stores(engine: Engine) -> tuple[Any, Any]:
    stores = sorted(
        (loc for loc in engine.catalog.locations() if loc.pickup_enabled), key=lambda s: s.id
    )
    return stores[0], stores[1]


def two_skus(engine: Engine) -> tuple[str, str]:
    skus = sorted(inv(engine).views.stock)
    return skus[0], skus[1]


async def set_available(engine: Engine, sku: str, want: dict[str, int]) -> None:
    """Make `available` exactly `want[loc]` at the given locations and 0 everywhere else
    (receiving what is missing, keeping the rest back as safety stock)."""
    locs = set(inv(engine).views.stock.get(sku, {})) | set(want)
    for loc in sorted(locs):
        target = want.get(loc, 0)
        b = inv(engine).views.stock.get(sku, {}).get(loc)
        if b is None or b["available"] + b["safety_stock"] < target:
            have = 0 if b is None else b["available"] + b["safety_stock"]
            await run(
                engine,
                "stock.receive",
                {"sku": sku, "location_id": loc, "qty": target - have},
                f"rcv-{sku}-{loc}",
            )
            b = inv(engine).views.stock[sku][loc]
        safety = b["available"] + b["safety_stock"] - target
        if safety != b["safety_stock"]:
            await run(
                engine,
                "stock.set_safety",
                {"sku": sku, "location_id": loc, "safety_stock": safety},
                f"safety-{sku}-{loc}",
            )
        assert bal(engine, sku, loc)["available"] == target


def snapshot(engine: Engine, skus: tuple[str, ...]) -> dict[str, dict[str, int]]:
    return {
        sku: {loc: b["available"] for loc, b in inv(engine).views.stock[sku].items()}
        for sku in skus
    }


@contextmanager
def stale_once(engine: Engine, seen: dict[str, dict[str, int]]) -> Iterator[list[str]]:
    """The next order context sees `seen` as availability (a read model a moment behind)."""
    env = engine.orders.env  # type: ignore[attr-defined]
    real = env.make_ctx
    used: list[str] = []

    def make_ctx(op_id: str, phash: str, now: float) -> Any:
        ctx = real(op_id, phash, now)
        if used:
            return ctx
        used.append(op_id)
        return msgspec.structs.replace(ctx, availability=seen)

    env.make_ctx = make_ctx
    try:
        yield used
    finally:
        env.make_ctx = real


async def order_state(engine: Engine, oid: str) -> Any:
    _v, state = await engine.orders.get(oid)  # type: ignore[attr-defined]
    return state


async def test_ship_line_that_lost_the_race_at_a_is_accepted_at_b(engine: Engine) -> None:
    a, b = two_stores(engine)
    s1, s2 = two_skus(engine)
    await set_available(engine, s1, {a.id: 1})
    await set_available(engine, s2, {a.id: 1, b.id: 1})
    seen = snapshot(engine, (s1, s2))
    ship_to = {"address": "next to A", "lat": a.lat, "lon": a.lon}
    async with open_client(ws_url(engine), token(engine, "manager")) as c:
        # The racer takes A's last s2.
        await c.command("order.create", {"lines": [{"sku": s2, "qty": 1}], "pickup_location": a.id})
        before_a1 = bal(engine, s1, a.id)
        with stale_once(engine, seen) as used:
            created = await c.command(
                "order.create",
                {"lines": [{"sku": s1, "qty": 1}, {"sku": s2, "qty": 1}], "ship_to": ship_to},
            )
        assert used, "the order did not decide on the stale availability"
        assert created["status"] == "placed"
        oid = created["order_id"]
        view = await c.subscribe(f"order:{oid}")
        line1, line2 = view.state["lines"]
    # Line 1 kept the allocation it got at A; line 2 went to B; A's failed try is closed.
    assert [(x["location_id"], x["state"]) for x in line1["allocations"]] == [(a.id, "committed")]
    assert [(x["location_id"], x["state"], x["qty"]) for x in line2["allocations"]] == [
        (a.id, "closed", 1),
        (b.id, "committed", 1),
    ]
    assert bal(engine, s1, a.id)["committed"] == before_a1["committed"] + 1
    assert bal(engine, s2, b.id)["committed"] == 1 and bal(engine, s2, b.id)["available"] == 0
    assert bal(engine, s2, a.id)["reserved"] == 1  # the racer's hold, untouched
    state = await order_state(engine, oid)
    assert {(al.sku, al.location_id): al.outstanding for al in state.allocs.values()} == {
        (s1, a.id): 1,
        (s2, a.id): 0,
        (s2, b.id): 1,
    }


async def test_when_no_store_has_it_the_order_is_rejected_holding_nothing(
    engine: Engine,
) -> None:
    a, _b = two_stores(engine)
    s1, s2 = two_skus(engine)
    await set_available(engine, s1, {a.id: 1})
    await set_available(engine, s2, {a.id: 1})
    seen = snapshot(engine, (s1, s2))
    ship_to = {"address": "next to A", "lat": a.lat, "lon": a.lon}
    async with open_client(ws_url(engine), token(engine, "manager")) as c:
        await c.command("order.create", {"lines": [{"sku": s2, "qty": 1}], "pickup_location": a.id})
        before = {s: bal(engine, s, a.id) for s in (s1, s2)}
        with stale_once(engine, seen) as used:
            try:
                await c.command(
                    "order.create",
                    {"lines": [{"sku": s1, "qty": 1}, {"sku": s2, "qty": 1}], "ship_to": ship_to},
                    op_id="no-route-1",
                )
                raise AssertionError("accepted without stock")
            except CommandRejected as exc:
                assert exc.code == "insufficient_stock"
                details = exc.details
        assert used
    assert details["replan"] == "no_route"
    assert [(f["sku"], f["location_id"]) for f in details["failed"]] == [(s2, a.id)]
    # The units it held a moment ago are counted as available again: they are.
    assert details["available"] == {s1: {a.id: 1}, s2: {}}
    for s in (s1, s2):
        assert bal(engine, s, a.id) == before[s]
    from actors.orders.domain import order_id_for

    state = await order_state(engine, order_id_for("no-route-1"))
    assert state.status == "rejected"
    assert all(al.outstanding == 0 for al in state.allocs.values())


async def test_pickup_order_is_not_moved_to_another_store(engine: Engine) -> None:
    a, b = two_stores(engine)
    s1, s2 = two_skus(engine)
    await set_available(engine, s1, {a.id: 1, b.id: 1})
    await set_available(engine, s2, {a.id: 1, b.id: 1})
    seen = snapshot(engine, (s1, s2))
    async with open_client(ws_url(engine), token(engine, "manager")) as c:
        await c.command("order.create", {"lines": [{"sku": s2, "qty": 1}], "pickup_location": a.id})
        with stale_once(engine, seen):
            try:
                await c.command(
                    "order.create",
                    {
                        "lines": [{"sku": s1, "qty": 1}, {"sku": s2, "qty": 1}],
                        "pickup_location": a.id,
                    },
                )
                raise AssertionError("a pickup order was placed without the stock")
            except CommandRejected as exc:
                assert exc.code == "insufficient_stock"
                assert exc.details["suggest"] == [b.id]
    assert bal(engine, s1, a.id)["available"] == 1 and bal(engine, s1, a.id)["reserved"] == 0
    assert bal(engine, s1, b.id)["available"] == 1 and bal(engine, s2, b.id)["available"] == 1


async def test_two_concurrent_ship_orders_for_the_last_unit_at_a_both_get_one(
    engine: Engine,
) -> None:
    a, b = two_stores(engine)
    _s1, s2 = two_skus(engine)
    await set_available(engine, s2, {a.id: 1, b.id: 1})
    ship_to = {"address": "next to A", "lat": a.lat, "lon": a.lon}
    results: list[dict[str, Any]] = []
    async with open_client(ws_url(engine), token(engine, "manager")) as c:

        async def buy(i: int) -> None:
            results.append(
                await c.command(
                    "order.create",
                    {"lines": [{"sku": s2, "qty": 1}], "ship_to": ship_to},
                    op_id=f"race-{i}",
                )
            )

        async with trio.open_nursery() as nursery:
            for i in range(2):
                nursery.start_soon(buy, i)
    assert sorted(r["status"] for r in results) == ["placed", "placed"]
    assert bal(engine, s2, a.id)["committed"] == 1 and bal(engine, s2, b.id)["committed"] == 1
