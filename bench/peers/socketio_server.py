"""Peer for bench/fanout.py: python-socketio, the usual Python choice for live updates.

One room per topic; the driver emits `publish` {"topic", "delta"} and the server emits the
delta to the topic's room (python-socketio encodes the packet once per room broadcast).
ASGI app on uvicorn with uvloop + httptools + websockets (`uvicorn[standard]`), as the
python-socketio docs suggest for asyncio deployments. Clients use the websocket transport only.

    .venv/bin/python bench/peers/socketio_server.py PORT
"""

from __future__ import annotations

import sys
from typing import Any

import socketio
import uvicorn

sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*", transports=["websocket"])
app = socketio.ASGIApp(sio)


@sio.on("subscribe")  # type: ignore[misc]
async def subscribe(sid: str, topic: str) -> dict[str, Any]:
    await sio.enter_room(sid, topic)
    return {"type": "snapshot", "topic": topic, "seq": 0, "state": {}}


@sio.on("publish")  # type: ignore[misc]
async def publish(sid: str, msg: dict[str, Any]) -> None:
    await sio.emit("delta", msg["delta"], room=msg["topic"])


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8201
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", backlog=4096,
                loop="auto", http="auto", ws="auto")
