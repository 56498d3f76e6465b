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
        if scope["type"] == "websocket" and scope.get("path") == "/ws":
            await serve_websocket(self.engine, scope, receive, send)
        else:
            await self.http(scope, receive, send)  # type: ignore[arg-type]
