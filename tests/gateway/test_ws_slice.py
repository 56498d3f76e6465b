"""The thin end-to-end slice over real WebSockets: command -> journal -> delta to subscribers."""

from __future__ import annotations

import trio

from actors.inventory import decode_event
from clients.python import CommandRejected, open_client
from engine.server import Engine
from tests.conftest import ws_url
from tests.gateway.helpers import stocked, token


async def test_hello_welcome_roles(engine: Engine) -> None:
    async with open_client(ws_url(engine), token(engine, "cashier", "P01")) as c:
        assert c.welcome is not None
        assert c.welcome.roles == ["cashier"]
        assert c.welcome.location == "P01"


async def test_receive_reaches_every_subscriber(engine: Engine) -> None:
    sku, loc, balance = stocked(engine)
    topic = f"stock:{sku}"
    async with (
        open_client(ws_url(engine), token(engine)) as writer,
        open_client(ws_url(engine), token(engine, "storefront")) as reader1,
        open_client(ws_url(engine), token(engine, "kiosk"), encoding="msgpack") as reader2,
    ):
        v1 = await reader1.subscribe(topic)
        v2 = await reader2.subscribe(topic)
        assert v1.state[loc]["on_hand"] == balance["on_hand"]
        result = await writer.command(
            "stock.receive", {"sku": sku, "location_id": loc, "qty": 5}
        )
        assert result["balance"]["on_hand"] == balance["on_hand"] + 5
        for view in (v1, v2):
            await view.wait_for(lambda s: s[loc]["on_hand"] == balance["on_hand"] + 5)
            assert view.seq == engine.inventory.views.version(sku)  # type: ignore[attr-defined]


async def test_ack_means_durable_and_retry_is_exactly_once(engine: Engine) -> None:
    sku, loc, balance = stocked(engine)
    async with open_client(ws_url(engine), token(engine)) as c:
        args = {"sku": sku, "location_id": loc, "qty": 3}
        first = await c.command("stock.receive", args, op_id="op-retry-1")
        again = await c.command("stock.receive", args, op_id="op-retry-1")
        assert first == again
        try:
            await c.command("stock.receive", {**args, "qty": 4}, op_id="op-retry-1")
            raise AssertionError("expected idempotency_conflict")
        except CommandRejected as exc:
            assert exc.code == "idempotency_conflict"
    # Exactly one receive landed in the journal.
    ops = await engine.journal.lookup_ops(["op-retry-1"])
    assert ops["op-retry-1"].ok
    events = await engine.journal.read(f"sku:{sku}")
    receives = [decode_event(e.data) for e in events if e.type == "Received"]
    assert [r.qty for r in receives if r.qty == 3 and r.location_id == loc] == [3]
    inv = engine.inventory  # type: ignore[attr-defined]
    assert inv.views.stock[sku][loc]["on_hand"] == balance["on_hand"] + 3


async def test_resume_inside_history_gets_missed_deltas(engine: Engine) -> None:
    sku, loc, balance = stocked(engine)
    topic = f"stock:{sku}"
    async with open_client(ws_url(engine), token(engine)) as writer:
        async with open_client(ws_url(engine), token(engine, "kiosk")) as reader:
            view = await reader.subscribe(topic)
            epoch, seq = view.epoch, view.seq
        for _ in range(3):
            await writer.command("stock.receive", {"sku": sku, "location_id": loc, "qty": 1})
        async with open_client(ws_url(engine), token(engine, "kiosk")) as reader:
            view = reader.view(topic)
            view.epoch, view.seq, view.state = epoch, seq, {loc: balance}
            await reader.subscribe(topic)
            await view.wait_for(lambda s: s[loc]["on_hand"] == balance["on_hand"] + 3)
            assert view.resumes == 1 and view.snapshots == 0


async def test_resume_when_current_needs_no_snapshot(engine: Engine) -> None:
    sku, _loc, _ = stocked(engine)
    topic = f"stock:{sku}"
    async with open_client(ws_url(engine), token(engine, "kiosk")) as reader:
        view = await reader.subscribe(topic)
        epoch, seq, state = view.epoch, view.seq, dict(view.state)
    async with open_client(ws_url(engine), token(engine, "kiosk")) as reader:
        view = reader.view(topic)
        view.epoch, view.seq, view.state = epoch, seq, state
        await reader.subscribe(topic)
        assert view.resumes == 1 and view.snapshots == 0 and view.live


async def test_resume_with_unknown_epoch_gets_snapshot(engine: Engine) -> None:
    sku, loc, balance = stocked(engine)
    topic = f"stock:{sku}"
    async with open_client(ws_url(engine), token(engine, "kiosk")) as reader:
        view = reader.view(topic)
        view.epoch, view.seq = "some-other-history", 3
        await reader.subscribe(topic)
        assert view.snapshots == 1
        assert view.state[loc]["on_hand"] == balance["on_hand"]


async def test_many_subscribers_converge_under_concurrent_writes(engine: Engine) -> None:
    sku, loc, balance = stocked(engine)
    topic = f"stock:{sku}"
    async with open_client(ws_url(engine), token(engine)) as writer:
        readers = []
        async with trio.open_nursery() as nursery:

            async def reader_task(i: int) -> None:
                async with open_client(ws_url(engine), token(engine, "storefront")) as r:
                    view = await r.subscribe(topic)
                    readers.append(view)
                    await view.wait_for(lambda s: s[loc]["on_hand"] == balance["on_hand"] + 40, timeout=15)

            for i in range(20):
                nursery.start_soon(reader_task, i)
            while len(readers) < 20:
                await trio.sleep(0.01)

            async def write(i: int) -> None:
                await writer.command("stock.receive", {"sku": sku, "location_id": loc, "qty": 1})

            async with trio.open_nursery() as writers:
                for i in range(40):
                    writers.start_soon(write, i)
        final = engine.inventory.views.version(sku)  # type: ignore[attr-defined]
        assert all(v.seq == final for v in readers)
