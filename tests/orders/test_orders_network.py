"""Fulfilment across the whole network, and an order repairing pool notices it missed.

* Ship orders may be allocated anywhere with stock: the distribution centre and stores
  without pickup included (a ship allocation, placed and committed in one step); pickup
  orders still only at pickup stores.
* The `prefer_stores` routing rule, end to end: a store ships before the DC even when the DC
  is closer; with `closest` alone the DC wins.
* Catch-up: with the inventory listener detached (a lost notice), an order actor that starts
  again reconciles its allocations with the pools.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
import trio

from actors.orders import RoutingConfig
from engine.auth import Claims
from engine.server import Engine
from protocol import ProtocolError
from tests.orders.test_orders_journeys import bal, inv, stocked_at

ADMIN = Claims(sub="t", role="admin", exp=time.time() + 3600)


def dc_of(engine: Engine) -> Any:
    return next(loc for loc in engine.catalog.locations() if loc.kind == "warehouse")


async def run(engine: Engine, name: str, args: dict[str, Any], op_id: str) -> dict[str, Any]:
    return await engine.dispatcher.execute(ADMIN, op_id, name, args)


async def only_at(engine: Engine, sku: str, loc: str, qty: int) -> None:
    """Receive `qty` at `loc`; safety stock keeps every other location's units back."""
    await run(engine, "stock.receive", {"sku": sku, "location_id": loc, "qty": qty}, f"rcv-{sku}")
    for other, b in list(inv(engine).views.stock[sku].items()):
        if other != loc and b["available"] > 0:
            await run(
                engine,
                "stock.set_safety",
                {"sku": sku, "location_id": other, "safety_stock": b["on_hand"]},
                f"safety-{sku}-{other}",
            )


async def test_ship_order_is_served_by_the_dc_when_only_it_has_stock(engine: Engine) -> None:
    dc = dc_of(engine)
    assert not dc.pickup_enabled
    store, (sku,) = stocked_at(engine, 1)
    await only_at(engine, sku, dc.id, 5)
    before = bal(engine, sku, dc.id)
    created = await run(
        engine,
        "order.create",
        {
            "lines": [{"sku": sku, "qty": 2}],
            "ship_to": {"address": "1 Main St", "lat": 45.52, "lon": -122.68},
        },
        "ship-dc-1",
    )
    oid = created["order_id"]
    assert created["status"] == "placed"
    _v, state = await engine.orders.get(oid)  # type: ignore[attr-defined]
    (alloc,) = state.allocs.values()
    assert (alloc.location_id, alloc.state, alloc.qty) == (dc.id, "committed", 2)
    mid = bal(engine, sku, dc.id)
    # Committed at once (no hold left behind, nothing to expire).
    assert (mid["committed"], mid["reserved"]) == (before["committed"] + 2, before["reserved"])
    # The DC's ship-from-store picking list shows it until it ships.
    entry = inv(engine).views.locations[dc.id][f"ship:{oid}"]
    assert entry["items"] == [{"line": 1, "sku": sku, "qty": 2}] and entry["status"] == "placed"
    shipped = await run(
        engine, "order.ship", {"order_id": oid, "carrier": "ups", "tracking": "1Z"}, "ship-dc-2"
    )
    assert f"ship:{oid}" not in inv(engine).views.locations[dc.id]
    assert shipped["status"] == "shipped"
    after = bal(engine, sku, dc.id)
    assert (after["on_hand"], after["committed"]) == (mid["on_hand"] - 2, before["committed"])
    # A pickup order cannot be served by the DC: no pickup there, no store has it.
    try:
        await run(
            engine,
            "order.create",
            {"lines": [{"sku": sku, "qty": 1}], "pickup_location": store},
            "pickup-dc-1",
        )
        raise AssertionError("a pickup was allocated without stock at a pickup store")
    except ProtocolError as exc:
        assert exc.code.value == "insufficient_stock"
        assert exc.details["suggest"] == []


async def test_ship_routing_prefers_stores_over_a_closer_dc(engine: Engine) -> None:
    dc = dc_of(engine)
    _store, (sku,) = stocked_at(engine, 1)
    await run(engine, "stock.receive", {"sku": sku, "location_id": dc.id, "qty": 5}, "rcv-dc")
    kinds = {loc.id: loc.kind for loc in engine.catalog.locations()}
    to_dc = {"address": "next to the DC", "lat": dc.lat, "lon": dc.lon}

    async def ship_from(op_id: str) -> str:
        created = await run(
            engine, "order.create", {"lines": [{"sku": sku, "qty": 1}], "ship_to": to_dc}, op_id
        )
        _v, state = await engine.orders.get(created["order_id"])  # type: ignore[attr-defined]
        (alloc,) = state.allocs.values()
        assert alloc.state == "committed"
        return str(alloc.location_id)

    # Default rules: fewest_shipments, prefer_stores, closest -> a store, though the DC is
    # right next to the customer.
    assert kinds[await ship_from("prefer-1")] == "store"
    w = engine.orders  # type: ignore[attr-defined]
    w.policy = msgspec.structs.replace(w.policy, routing=RoutingConfig(rules=("closest",)))
    assert await ship_from("prefer-2") == dc.id
    w.policy = msgspec.structs.replace(
        w.policy, routing=RoutingConfig(rules=("closest",), ship_from_warehouse=False)
    )
    assert kinds[await ship_from("prefer-3")] == "store"


async def _passivated(engine: Engine, key: str) -> None:
    with trio.fail_after(10):
        while key in engine.registry.active_keys():
            await trio.sleep(0.05)


async def test_missed_stock_conflict_is_caught_up_when_the_order_starts(engine: Engine) -> None:
    engine.registry.idle_timeouts["order"] = 0.2  # order actors passivate quickly in this test
    pickup = {loc.id for loc in engine.catalog.locations() if loc.pickup_enabled}
    found = None
    for sku, balances in sorted(inv(engine).views.stock.items()):
        have = sorted((b["available"], loc) for loc, b in balances.items() if loc in pickup)
        if len(have) >= 2 and have[-2][0] >= 1:
            found = (sku, have[-2][1], have[-2][0])
            break
    assert found is not None
    sku, store, qty = found
    w = engine.orders  # type: ignore[attr-defined]
    created = await run(
        engine,
        "order.create",
        {"lines": [{"sku": sku, "qty": qty}], "pickup_location": store},
        "catchup-1",
    )
    oid = created["order_id"]
    inv(engine).env.listeners.remove(w.on_pool_events)  # the notice is lost
    on_hand = bal(engine, sku, store)["on_hand"]
    sale = {"sku": sku, "location_id": store, "qty": on_hand, "offline_at": 1.0}
    result = await run(engine, "stock.sale", sale, "catchup-sale")
    assert result["conflict"]["uncovered_hold_ids"]
    await _passivated(engine, f"order:{oid}")
    assert w.flags_sent == 0
    _v, state = await w.get(oid)  # activates the order: it reconciles with the pool
    (exc,) = state.exceptions.values()
    assert exc.kind == "stock_conflict" and exc.resolution == "rerouted"
    live = [a for a in state.allocs.values() if a.outstanding > 0]
    assert live and all(a.location_id != store for a in live)
    assert sum(a.outstanding for a in live) == qty
    assert bal(engine, sku, store)["reserved"] == 0
    # Starting again finds nothing more to repair.
    await _passivated(engine, f"order:{oid}")
    _v, again = await w.get(oid)
    assert len(again.exceptions) == 1 and again.version == state.version


async def test_hold_gone_behind_the_orders_back_is_caught_up(engine: Engine) -> None:
    engine.registry.idle_timeouts["order"] = 0.2
    store, (s1, s2) = stocked_at(engine, 2)
    w = engine.orders  # type: ignore[attr-defined]
    created = await run(
        engine,
        "order.create",
        {"lines": [{"sku": s1, "qty": 1}, {"sku": s2, "qty": 1}], "pickup_location": store},
        "catchup-2",
    )
    oid = created["order_id"]
    _v, state = await w.get(oid)
    first = next(a for a in state.allocs.values() if a.sku == s1)
    inv(engine).env.listeners.remove(w.on_pool_events)
    await run(engine, "hold.release", {"hold_id": first.hold_id}, "catchup-release")
    await _passivated(engine, f"order:{oid}")
    _v, state = await w.get(oid)
    (exc,) = state.exceptions.values()
    assert exc.kind == "hold_expired" and exc.resolution == "expired_cancelled"
    assert state.lines[0].cancelled == 1 and state.status == "placed"
    # The released units went back once: the pool's reserved count is not touched again.
    assert state.allocs[first.alloc_no].released == 1
