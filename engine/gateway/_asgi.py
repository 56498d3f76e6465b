"""One ASGI app: `/ws` goes to the raw websocket handler, everything else to Quart."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._http import build_http_app
from ._ws import serve_websocket

if TYPE_CHECKING:
    from ..server import Engine

__all__ = ["GatewayApp"]


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
