"""The gateway: `/ws`, REST `/api/v1`, static clients, health and metrics, as one ASGI app."""

from ._asgi import GatewayApp
from ._sources import SnapshotResult, TopicSource, TopicSources

__all__ = ["GatewayApp", "SnapshotResult", "TopicSource", "TopicSources"]
