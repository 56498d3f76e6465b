"""The omnitill Python SDK (trio + trio-websocket)."""

from ._client import Client, CommandRejected, ServerError, open_client
from ._views import TopicView

__all__ = ["Client", "CommandRejected", "ServerError", "TopicView", "open_client"]
