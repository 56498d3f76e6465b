"""Finished orders do not pile up in memory: order actors passivate after their own short
idle time (SKU pools keep the engine-wide one) and come back from their stream; `order:{id}`
topics nobody watches are forgotten after a while, and a client resuming one then gets a
snapshot instead of deltas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from clients.python import open_client
from engine.config import Config
from engine.server import Engine
from protocol import Position
from tests.conftest import _config, ws_url
from tests.gateway.helpers import token
from tests.orders.test_orders_journeys import stocked_at

ORDER_IDLE_S = 0.3


@pytest.fixture
async def engine(data_dir: Path, nursery: trio.Nursery) -> AsyncIterator[Engine]:
    eng = Engine(_config(data_dir, idle_order_actor_s=ORDER_IDLE_S))
    await nursery.start(eng.run)
    yield eng
    eng.stop()


async def _until_passivated(engine: Engine, key: str) -> None:
    with trio.fail_after(10):
        while key in engine.registry.active_keys():
            await trio.sleep(0.05)


async def _until_unwatched(engine: Engine, topic: str) -> None:
    with trio.fail_after(10):  # the server sees the client's close a moment later
        while engine.bus.subscriber_count(topic):
            await trio.sleep(0.02)


async def _create(client: Any, store: str, skus: list[str], op_id: str) -> dict[str, Any]:
    lines = [{"sku": s, "qty": 1} for s in skus]
    return dict(
        await client.command(
            "order.create", {"lines": lines, "pickup_location": store}, op_id=op_id
        )
    )


async def test_order_actor_passivates_soon_while_the_sku_pool_stays(engine: Engine) -> None:
    assert engine.registry.idle_timeouts["order"] == ORDER_IDLE_S
    assert "sku" not in engine.registry.idle_timeouts  # pools keep config.idle_actor_s
    store, (sku,) = stocked_at(engine, 1, 2)
    async with open_client(ws_url(engine), token(engine, "cashier", store)) as register:
        created = await _create(register, store, [sku], "idle-order-1")
        oid = created["order_id"]
        key = f"order:{oid}"
        assert f"sku:{sku}" in engine.registry.active_keys()
        activations = engine.registry.stats()["activations"]
        await _until_passivated(engine, key)
        assert f"sku:{sku}" in engine.registry.active_keys()
        # The passivated order answers from its stream: a read, then a command that needs
        # its state (the pickup code it was created with).
        version, state = await engine.orders.get(oid)  # type: ignore[attr-defined]
        assert (version, state.status) == (created["version"], "placed")
        assert engine.registry.stats()["activations"] == activations + 1
        await _until_passivated(engine, key)
        await register.command("order.pick", {"order_id": oid})
        await register.command("order.ready", {"order_id": oid})
        await _until_passivated(engine, key)
        done = await register.command(
            "order.pickup", {"order_id": oid, "pickup_code": created["pickup_code"]}
        )
        assert done["status"] == "picked_up"
        status = await register.subscribe(key)
        assert status.state["status"] == "picked_up"
    assert f"sku:{sku}" in engine.registry.active_keys()


async def test_resuming_a_forgotten_order_topic_gets_a_snapshot(engine: Engine) -> None:
    store, (sku,) = stocked_at(engine, 1, 2)
    async with open_client(ws_url(engine), token(engine, "cashier", store)) as register:
        oid = (await _create(register, store, [sku], "idle-topic-1"))["order_id"]
        topic = f"order:{oid}"
        async with open_client(ws_url(engine), token(engine, "cashier", store)) as watcher:
            view = await watcher.subscribe(topic)
            seen = (view.epoch, view.seq, dict(view.state))
        await _until_unwatched(engine, topic)
        await register.command("order.pick", {"order_id": oid})
        # Within the idle time the history answers a resume: only the missed delta.
        async with open_client(ws_url(engine), token(engine, "cashier", store)) as watcher:
            view = watcher.view(topic)
            view.epoch, view.seq, view.state = seen[0], seen[1], dict(seen[2])
            await watcher.subscribe(topic)
            await view.wait_for(lambda s: s["status"] == "picking")
            assert (view.resumes, view.snapshots) == (1, 0)
            seen = (view.epoch, view.seq, dict(view.state))
        await _until_unwatched(engine, topic)
        await register.command("order.ready", {"order_id": oid})
        # Nobody watched it for longer than idle_topic_s: the next sweep forgets it.
        engine.bus.idle_topic_s = 0.0
        assert engine.bus.forget_idle() >= 1
        assert topic not in engine.bus.topics()
        assert engine.bus.catch_up(topic, view_position(seen)) is None
        async with open_client(ws_url(engine), token(engine, "cashier", store)) as watcher:
            view = watcher.view(topic)
            view.epoch, view.seq, view.state = seen[0], seen[1], dict(seen[2])
            await watcher.subscribe(topic)
            await view.wait_for(lambda s: s["status"] == "ready")
            assert (view.resumes, view.snapshots) == (0, 1)
            # Re-created at the store's position: later deltas continue from it.
            await register.command("order.cancel", {"order_id": oid, "reason": "test"})
            await view.wait_for(lambda s: s["status"] == "cancelled")
            assert view.gaps == 0 and view.snapshots == 1


def test_order_idle_time_and_topic_limits_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OMNITILL_IDLE_ORDER_ACTOR_S", raising=False)
    assert Config.from_env().idle_order_actor_s == 5.0
    monkeypatch.setenv("OMNITILL_IDLE_ORDER_ACTOR_S", "2.5")
    monkeypatch.setenv("OMNITILL_IDLE_TOPIC_S", "60")
    monkeypatch.setenv("OMNITILL_MAX_IDLE_TOPICS", "500")
    cfg = Config.from_env()
    assert (cfg.idle_order_actor_s, cfg.idle_topic_s, cfg.max_idle_topics) == (2.5, 60.0, 500)


def view_position(seen: tuple[Any, ...]) -> Position:
    return Position(seen[0], seen[1])
