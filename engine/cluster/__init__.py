"""The cluster layer (scale-out): cross-node bus fan-out and actor ownership leases in Redis.

`RedisBusRelay` mirrors the local bus through Redis pub/sub with global positions and a
periodic position check; `Leases` hands out actor ownership with fencing tokens. Both reach
redis.asyncio through `engine.bridge`. `wiring.install(engine)` plugs them into an Engine.
"""

from ._leases import ClusterUnavailable, Lease, Leases
from ._relay import RedisBusRelay

__all__ = ["ClusterUnavailable", "Lease", "Leases", "RedisBusRelay"]
