"""One ASGI app: `/ws` goes to the websocket handler, everything else to Quart; and `/ws`
over ASGI (`AsgiTransport`): used with `Config.ws_front = "hypercorn"` and for an upgrade
that arrives on an HTTP keep-alive connection hypercorn already serves. The connection logic
itself is `_ws.py`'s, on either transport."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from protocol import CLOSE_CODES

from ._http import build_http_app
from ._ws import run_connection

if TYPE_CHECKING:
    from ..server import Engine

__all__ = ["AsgiTransport", "GatewayApp", "serve_websocket"]


class GatewayApp:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.http = build_http_app(engine)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("path") == "/ws":
            if scope["type"] == "websocket":
                await serve_websocket(self.engine, scope, receive, send)
                return
            if scope["type"] == "http":  # as the lean front answers it (see _front.py)
                await _upgrade_required(send)
                return
        await self.http(scope, receive, send)  # type: ignore[arg-type]


async def _upgrade_required(send: Any) -> None:
    body = b'{"code":"bad_frame","message":"/ws is a WebSocket endpoint: send an Upgrade: websocket request"}'
    await send({"type": "http.response.start", "status": 426, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"upgrade", b"websocket"),
    ]})
    await send({"type": "http.response.body", "body": body})


def _socket_of(send: Any) -> Any:
    """The TCP socket under a hypercorn ASGI `send`, or None.

    hypercorn internals (checked against 0.18): the ASGI send is `WSStream.app_send`; its
    `.send` is the HTTP protocol's `stream_send`, whose `.send` is `TCPServer.protocol_send`,
    and the TCPServer holds the trio stream. Walk bound methods' owners looking for a trio
    Stream; SSL streams wrap the socket stream in `transport_stream`; the lean front's
    prefix stream keeps the socket stream in `stream`.
    """
    fn = send
    for _ in range(6):
        owner = getattr(fn, "__self__", None)
        if owner is None:
            return None
        stream = getattr(owner, "stream", None)
        if isinstance(stream, trio.abc.Stream):
            sock = getattr(stream, "socket", None)
            if sock is None:
                inner = getattr(stream, "transport_stream", None) or getattr(stream, "stream", None)
                sock = getattr(inner, "socket", None)
            return sock
        fn = getattr(owner, "send", None)
    return None


def header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class AsgiTransport:
    """A Connection over ASGI websocket events (hypercorn + wsproto do the framing)."""

    __slots__ = ("receive", "send", "wake")

    def __init__(self, receive: Any, send: Any) -> None:
        self.receive = receive
        self.send = send
        self.wake: Callable[[], None] | None = None

    async def recv(self) -> str | bytes | None:
        while True:
            event = await self.receive()
            etype = event["type"]
            if etype == "websocket.disconnect":
                return None
            if etype == "websocket.receive":
                data = event.get("text")
                if data is None:
                    data = event.get("bytes") or b""
                return data  # type: ignore[no-any-return]

    async def send_frames(self, frames: list[bytes], text: bool) -> None:
        from hypercorn.utils import UnexpectedMessageError

        send = self.send
        try:
            for frame in frames:
                if text:
                    await send({"type": "websocket.send", "text": frame.decode()})
                else:
                    await send({"type": "websocket.send", "bytes": frame})
        except UnexpectedMessageError:  # hypercorn saw the peer's close first
            raise trio.BrokenResourceError("websocket closed") from None

    async def send_close(self, code: int, reason: str) -> None:
        try:
            await self.send({"type": "websocket.close", "code": code, "reason": reason})
        except Exception:  # the peer may be gone already
            pass

    def ping(self) -> None:
        pass  # hypercorn pings (websocket_ping_interval)

    def abort(self) -> bool:
        sock = _socket_of(self.send)
        if sock is None:
            return False
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes hypercorn's shielded write with a broken pipe
        except OSError:
            pass  # already gone
        return True


async def serve_websocket(engine: Engine, scope: dict[str, Any], receive: Any, send: Any) -> None:
    """`/ws` as an ASGI websocket app (hypercorn front)."""
    first = await receive()
    if first["type"] != "websocket.connect":
        return
    origin = header(scope, b"origin")
    if not engine.origin_allowed(origin):
        engine.metrics.errors["origin_rejected"] += 1
        await send({"type": "websocket.close", "code": CLOSE_CODES["protocol_violation"]})
        return
    if not engine.accept_ok():
        # Reconnect storms: turn extra connections away fast; clients back off with jitter.
        engine.metrics.errors["accept_rate_limited"] += 1
        await send({"type": "websocket.close", "code": 1013})
        return
    await send({"type": "websocket.accept"})
    await run_connection(engine, AsgiTransport(receive, send))
