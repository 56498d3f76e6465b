"""`/ws` through hypercorn's ASGI websocket (`Config.ws_front = "hypercorn"`,
engine/gateway/_asgi.py): the same connection logic on the other transport, which has its
own writer task instead of the flusher. Real engine, real sockets."""

from __future__ import annotations

from pathlib import Path

import trio

from clients.python import open_client
from engine.server import Engine
from tests.conftest import _config, ws_url
from tests.gateway.helpers import stocked, token


async def test_commands_and_live_deltas_over_the_hypercorn_front(
    data_dir: Path, nursery: trio.Nursery
) -> None:
    engine = Engine(_config(data_dir, ws_front="hypercorn"))
    await nursery.start(engine.run)
    sku, loc, balance = stocked(engine)
    async with (
        open_client(ws_url(engine), token(engine)) as admin,
        open_client(ws_url(engine), token(engine, "kiosk")) as kiosk,
    ):
        view = await kiosk.subscribe(f"stock:{sku}")
        assert view.state[loc]["on_hand"] == balance["on_hand"]
        result = await admin.command("stock.receive", {"sku": sku, "location_id": loc, "qty": 3})
        assert result["balance"]["on_hand"] == balance["on_hand"] + 3
        await view.wait_for(lambda s: s[loc]["on_hand"] == balance["on_hand"] + 3, timeout=5)
        await kiosk.ping()
        # Lean connections are written by the flusher; these have their own writer tasks.
        assert len(engine.connections) == 2
        assert all(c.flusher is None for c in engine.connections)
    engine.stop()
