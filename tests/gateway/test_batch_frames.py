"""Batched frames (hello.batch): several messages per frame, both directions, over real sockets."""

from __future__ import annotations

import json

import trio
from trio_websocket import open_websocket_url

from engine.server import Engine
from tests.conftest import ws_url
from tests.gateway.helpers import stocked, token


async def _hello(ws: object, tok: str, batch: bool) -> None:
    await ws.send_message(  # type: ignore[attr-defined]
        json.dumps({"type": "hello", "protocol": 1, "token": tok, "client": "sdk", "batch": batch})
    )


async def _messages(ws: object, until: int, timeout: float = 5.0) -> tuple[list[dict], int]:
    """Read frames until `until` messages arrived; returns (messages, frames)."""
    out: list[dict] = []
    frames = 0
    with trio.fail_after(timeout):
        while len(out) < until:
            data = json.loads(await ws.get_message())  # type: ignore[attr-defined]
            frames += 1
            out.extend(data if isinstance(data, list) else [data])
    return out, frames


async def test_client_batch_frame_runs_each_message_and_isolates_bad_ones(engine: Engine) -> None:
    sku, loc, balance = stocked(engine)
    version = engine.inventory.views.version(sku)  # type: ignore[attr-defined]
    async with open_websocket_url(ws_url(engine)) as ws:
        await _hello(ws, token(engine), batch=True)
        (welcome,), _ = await _messages(ws, 1)
        assert welcome["type"] == "welcome"
        batch = [
            {"type": "ping", "nonce": 1},
            {"type": "nope"},
            {"type": "command", "op_id": "b1", "name": "stock.receive",
             "args": {"sku": sku, "location_id": loc, "qty": 2}},
            {"type": "command", "op_id": "b2", "name": "stock.receive",
             "args": {"sku": sku, "location_id": loc, "qty": 0}},
        ]
        await ws.send_message(json.dumps(batch))
        msgs, _ = await _messages(ws, 4)
        by_type: dict[str, list[dict]] = {}
        for m in msgs:
            by_type.setdefault(m["type"], []).append(m)
        assert by_type["pong"][0]["nonce"] == 1
        assert by_type["error"][0]["code"] == "unknown_type"
        assert by_type["ack"][0]["op_id"] == "b1"
        assert by_type["reject"][0]["code"] == "invalid_args"
    # Only the valid receive changed state: one event.
    assert engine.inventory.views.version(sku) == version + 1  # type: ignore[attr-defined]
    assert engine.inventory.views.stock[sku][loc]["on_hand"] == balance["on_hand"] + 2  # type: ignore[attr-defined]


async def test_array_frame_without_batch_opt_in_is_bad_frame(engine: Engine) -> None:
    async with open_websocket_url(ws_url(engine)) as ws:
        await _hello(ws, token(engine), batch=False)
        await _messages(ws, 1)
        await ws.send_message(json.dumps([{"type": "ping", "nonce": 1}]))
        (err,), _ = await _messages(ws, 1)
        assert err["type"] == "error" and err["code"] == "bad_frame"


async def test_server_batches_due_messages_into_one_frame(engine: Engine) -> None:
    """Many acks due at once reach a batch client in fewer frames than messages."""
    sku, loc, _ = stocked(engine)
    async with open_websocket_url(ws_url(engine)) as ws:
        await _hello(ws, token(engine), batch=True)
        await _messages(ws, 1)
        commands = [
            {"type": "command", "op_id": f"m{i}", "name": "stock.receive",
             "args": {"sku": sku, "location_id": loc, "qty": 1}}
            for i in range(50)
        ]
        await ws.send_message(json.dumps(commands))
        msgs, frames = await _messages(ws, 50)
        assert sorted(m["op_id"] for m in msgs) == sorted(f"m{i}" for i in range(50))
        assert frames < 50
    assert engine.metrics.frames_batched >= 2
