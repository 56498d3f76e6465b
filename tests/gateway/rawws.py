"""A bare WebSocket client for gateway tests that need to send what the SDK never would.

It speaks the wire protocol by hand (dicts in, decoded server Structs out), so tests can send
malformed frames, skip the hello, stop reading, or watch the exact close code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from engine.server import Engine
from protocol import PROTOCOL_VERSION, Error, Pong, Reject, ServerMessage, Welcome, decode_server
from tests.conftest import ws_url

__all__ = ["RawWS", "closed_code", "raw_ws"]


class RawWS:
    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.encoding = "json"
        self._nonce = 0

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        if isinstance(frame, dict):
            if self.encoding == "json":
                frame = msgspec.json.encode(frame).decode()
            else:
                frame = msgspec.msgpack.encode(frame)
        await self.ws.send_message(frame)

    async def recv(self, timeout: float = 5.0) -> ServerMessage:
        with trio.fail_after(timeout):
            return decode_server(await self.ws.get_message())

    async def recv_until(self, kind: type, timeout: float = 5.0) -> Any:
        """The next frame of type `kind`, skipping snapshots/deltas/pongs in between."""
        with trio.fail_after(timeout):
            while True:
                msg = await self.recv(timeout)
                if isinstance(msg, kind):
                    return msg

    async def hello(self, token: str, *, encoding: str = "json", protocol: int = PROTOCOL_VERSION) -> Welcome:
        await self.send({"type": "hello", "protocol": protocol, "token": token, "encoding": encoding})
        msg = await self.recv()
        assert isinstance(msg, Welcome), msg
        self.encoding = encoding
        return msg

    async def error(self, timeout: float = 5.0) -> Error:
        msg = await self.recv(timeout)
        assert isinstance(msg, Error), msg
        return msg

    async def reject(self, timeout: float = 5.0) -> Reject:
        msg = await self.recv_until(Reject, timeout)
        assert isinstance(msg, Reject)
        return msg

    async def ping(self, timeout: float = 5.0) -> None:
        """A ping is answered with its pong: proof the connection is still served."""
        self._nonce += 1
        await self.send({"type": "ping", "nonce": self._nonce})
        msg = await self.recv_until(Pong, timeout)
        assert msg.nonce == self._nonce


@asynccontextmanager
async def raw_ws(engine: Engine, **kwargs: Any) -> AsyncIterator[RawWS]:
    async with open_websocket_url(ws_url(engine), max_message_size=16 << 20, **kwargs) as ws:
        yield RawWS(ws)


async def closed_code(raw: RawWS, timeout: float = 5.0) -> int | None:
    """Read (and drop) frames until the server closes; return its close code."""
    with trio.fail_after(timeout):
        try:
            while True:
                await raw.ws.get_message()
        except ConnectionClosed as exc:
            return exc.reason.code
