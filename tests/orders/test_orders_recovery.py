"""A crash between the journaled intent and the inventory steps: the order finishes its saga."""

from __future__ import annotations

import time

import msgspec
import trio

from actors.orders import domain as od
from actors.orders.events import encode_event
from actors.orders.shell import SAGA_TIMER
from engine.commands import payload_hash
from engine.journal.base import Batch, Timer
from engine.server import Engine
from protocol.orders import OrderCreateArgs
from tests.orders.test_orders_journeys import bal, stocked_at


async def _crash_after_intent(engine: Engine, op_id: str, body: dict[str, object]) -> str:
    """Journal what an order actor writes before its first inventory step, then 'die'."""
    w = engine.orders  # type: ignore[attr-defined]
    args = msgspec.convert(body, OrderCreateArgs)
    oid = od.order_id_for(op_id)
    decision = od.decide(
        od.initial(oid),
        "order.create",
        args,
        w.make_ctx(op_id, payload_hash("order.create", args), time.time()),
    )
    assert decision.rejection is None
    stream = f"order:{oid}"
    await engine.journal.append(
        Batch(
            stream=stream,
            expected_version=0,
            events=[encode_event(e) for e in decision.events],
            timers_set=[Timer(SAGA_TIMER, stream, time.time(), b"saga")],
        )
    )
    return oid


async def test_pending_saga_is_finished_by_its_timer(engine: Engine) -> None:
    store, (sku,) = stocked_at(engine, 1)
    before = bal(engine, sku, store)
    oid = await _crash_after_intent(
        engine, "crash-1", {"lines": [{"sku": sku, "qty": 1}], "pickup_location": store}
    )
    engine.timers.notify(time.time())
    w = engine.orders  # type: ignore[attr-defined]
    with trio.fail_after(5):
        while True:
            _version, state = await w.get(oid)
            if state.status == "placed":
                break
            await trio.sleep(0.05)
    assert bal(engine, sku, store)["reserved"] == before["reserved"] + 1


async def test_retried_create_resumes_pending_saga(engine: Engine) -> None:
    store, (sku,) = stocked_at(engine, 1)
    body = {"lines": [{"sku": sku, "qty": 1}], "pickup_location": store}
    oid = await _crash_after_intent(engine, "crash-2", body)
    from engine.auth import Claims

    claims = Claims(sub="t", role="admin", exp=time.time() + 60)
    result = await engine.dispatcher.execute(claims, "crash-2", "order.create", dict(body))
    assert result["order_id"] == oid and result["status"] == "placed"
    again = await engine.dispatcher.execute(claims, "crash-2", "order.create", dict(body))
    assert again == result
    assert bal(engine, sku, store)["reserved"] >= 1
