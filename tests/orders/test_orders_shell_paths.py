"""The order actor's fast paths keep every guarantee: a create skips the journal read on a
fresh activation (retries after a passivation are still answered from the journal), and saga
steps queued with reply callbacks fall back to the retrying path when a pool cannot take them."""

from __future__ import annotations

import time
from typing import Any

import pytest
import trio

from engine.auth import Claims
from engine.runtime import Overloaded
from engine.server import Engine
from protocol import ProtocolError
from tests.orders.test_orders_journeys import bal, stocked_at

CLAIMS = Claims(sub="t", role="admin", exp=time.time() + 3600)


async def _create(engine: Engine, op_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return await engine.dispatcher.execute(CLAIMS, op_id, "order.create", dict(body))


async def _passivated(engine: Engine, key: str) -> None:
    with trio.fail_after(10):
        while key in engine.registry.active_keys():
            await trio.sleep(0.05)


async def test_create_retried_after_passivation_is_answered_from_the_journal(
    engine: Engine,
) -> None:
    engine.registry.idle_timeouts["order"] = 0.2
    store, (sku,) = stocked_at(engine, 1, 2)
    body = {"lines": [{"sku": sku, "qty": 1}], "pickup_location": store}
    first = await _create(engine, "fresh-1", body)
    assert first["status"] == "placed"
    held = bal(engine, sku, store)
    await _passivated(engine, f"order:{first['order_id']}")
    again = await _create(engine, "fresh-1", body)  # a fresh actor: the unread create conflicts
    assert again == first
    assert bal(engine, sku, store) == held  # nothing held twice
    with pytest.raises(ProtocolError) as err:
        await _create(engine, "fresh-1", {**body, "lines": [{"sku": sku, "qty": 2}]})
    assert err.value.code.value == "idempotency_conflict"
    _version, state = await engine.orders.get(first["order_id"])  # type: ignore[attr-defined]
    assert state.version == first["version"] and state.status == "placed"


async def test_rejected_create_retried_after_passivation_stays_rejected(engine: Engine) -> None:
    engine.registry.idle_timeouts["order"] = 0.2
    store, (sku,) = stocked_at(engine, 1)
    before = bal(engine, sku, store)
    body = {"lines": [{"sku": sku, "qty": 10_000}], "pickup_location": store}
    with pytest.raises(ProtocolError) as first:
        await _create(engine, "fresh-rej", body)
    assert first.value.code.value == "insufficient_stock"
    from actors.orders.domain import order_id_for

    await _passivated(engine, f"order:{order_id_for('fresh-rej')}")
    with pytest.raises(ProtocolError) as again:
        await _create(engine, "fresh-rej", body)
    assert again.value.code == first.value.code and again.value.message == first.value.message
    assert bal(engine, sku, store) == before


@pytest.mark.parametrize("refusal", ["not_queued", "failed"])
async def test_steps_fall_back_when_a_callback_ask_fails(engine: Engine, refusal: str) -> None:
    w = engine.orders  # type: ignore[attr-defined]
    real = w.env.try_ask
    refused: list[str] = []

    def flaky(key: str, msg: Any, callback: Any) -> bool:
        if key.startswith("sku:") and msg.op_id not in refused:
            refused.append(msg.op_id)  # refuse each step's first try only
            if refusal == "not_queued":
                return False
            callback(None, Overloaded("full"))
            return True
        return bool(real(key, msg, callback))

    w.env.try_ask = flaky
    store, skus = stocked_at(engine, 2, 2)
    before = {sku: bal(engine, sku, store)["reserved"] for sku in skus}
    body = {"lines": [{"sku": s, "qty": 1} for s in skus], "pickup_location": store}
    result = await _create(engine, f"flaky-{refusal}", body)
    assert result["status"] == "placed"
    assert len(refused) == 2  # both holds went through the fallback
    for sku in skus:
        assert bal(engine, sku, store)["reserved"] == before[sku] + 1


async def test_pickup_queues_and_picking_lists_are_rebuilt_after_a_restart(
    data_dir: Any,
) -> None:
    """Start-up replays every order stream (paged across streams, `streams_with_prefix`) and
    puts the open ones back: a pickup order in its store's queue, a ship order on the picking
    list of the location it ships from; a cancelled one nowhere."""
    from tests.inventory_e2e.test_e2e_durability import running_engine

    async with running_engine(data_dir) as engine:
        store, (s1, s2) = stocked_at(engine, 2, 2)
        pickup = await _create(engine, "rq-pickup", {"lines": [{"sku": s1, "qty": 1}], "pickup_location": store})
        gone = await _create(engine, "rq-gone", {"lines": [{"sku": s2, "qty": 1}], "pickup_location": store})
        await engine.dispatcher.execute(CLAIMS, "rq-cancel", "order.cancel", {"order_id": gone["order_id"]})
        ship = await _create(
            engine, "rq-ship",
            {"lines": [{"sku": s2, "qty": 1}], "ship_to": {"address": "1 Main", "lat": 45.52, "lon": -122.68}},
        )
        before = {loc: dict(v) for loc, v in engine.inventory.views.locations.items()}  # type: ignore[attr-defined]
    async with running_engine(data_dir) as engine:
        after = engine.inventory.views.locations  # type: ignore[attr-defined]
        assert f"order:{pickup['order_id']}" in after[store]
        assert all(f"order:{gone['order_id']}" not in v for v in after.values())
        ship_locs = [loc for loc, v in after.items() if f"ship:{ship['order_id']}" in v]
        assert len(ship_locs) == 1
        for loc, view in before.items():  # the same entries as before the restart
            keys = {k for k in view if k.startswith(("order:", "ship:"))}
            assert keys == {k for k in after.get(loc, {}) if k.startswith(("order:", "ship:"))}


async def test_unwatched_order_topic_is_created_by_its_first_subscriber(engine: Engine) -> None:
    """An order nobody watches publishes nothing (no topic, no history kept); a subscriber
    that comes later gets the cached view at the order's version, then live deltas."""
    from clients.python import open_client
    from tests.conftest import ws_url
    from tests.gateway.helpers import token

    store, (sku,) = stocked_at(engine, 1, 2)
    created = await _create(engine, "watch-1", {"lines": [{"sku": sku, "qty": 1}], "pickup_location": store})
    oid = created["order_id"]
    await engine.dispatcher.execute(CLAIMS, "watch-2", "order.pick", {"order_id": oid})
    assert not engine.bus.has_topic(f"order:{oid}")
    async with open_client(ws_url(engine), token(engine, "admin")) as c:
        view = await c.subscribe(f"order:{oid}")
        version = engine.orders.cache[oid][0]  # type: ignore[attr-defined]
        assert view.seq == version and view.state["status"] == "picking"
        assert engine.bus.has_topic(f"order:{oid}")
        await engine.dispatcher.execute(CLAIMS, "watch-3", "order.ready", {"order_id": oid})
        await view.wait_for(lambda s: s["status"] == "ready")
        assert view.seq == engine.orders.cache[oid][0] > version  # type: ignore[attr-defined]


async def test_a_late_hold_command_on_a_ship_allocation_reaches_its_pool(engine: Engine) -> None:
    """A ship allocation is one `Allocated` fact, never an open hold: its id still routes to
    its SKU pool (the finished refs), which answers `conflict` with state `committed`."""
    _store, (sku,) = stocked_at(engine, 1, 2)
    created = await _create(
        engine, "alloc-1",
        {"lines": [{"sku": sku, "qty": 1}], "ship_to": {"address": "1 Main", "lat": 45.52, "lon": -122.68}},
    )
    view = engine.orders.cache[created["order_id"]][1]  # type: ignore[attr-defined]
    (alloc,) = view["lines"][0]["allocations"]
    assert alloc["state"] == "committed" and alloc["hold_id"]
    with pytest.raises(ProtocolError) as exc:
        await engine.dispatcher.execute(CLAIMS, "alloc-2", "hold.release", {"hold_id": alloc["hold_id"]})
    assert exc.value.code == "conflict" and exc.value.details["state"] == "committed"
