"""Actor ownership leases in Redis, with fencing tokens.

Theory of operation
-------------------
A lease says "node N runs actor K" for `ttl` milliseconds. `acquire(key)` runs one Lua script
(atomic in Redis): if `{prefix}:lease:{key}` does not exist, INCR `{prefix}:fence:{key}` and
SET the lease to "node:token" with PX ttl (SET NX PX semantics), returning the token; else
None. Tokens only grow, per key, so a newer owner always holds a larger token than any older
one. `renew(key, token)` extends the TTL only if the lease still holds exactly that
"node:token" (compare-and-PEXPIRE); `release` is compare-and-DEL.

Losing a lease: Redis expires it after `ttl` without renewal, and another node may then take
it. Locally the lease counts as lost earlier -- at `sent + ttl * (1 - drift) - margin`, where
`sent` is the trio clock just BEFORE the acquire/renew request went out -- so by our own clock
we stop believing in it before Redis can hand it to anyone else. `owner(key)` answers from
that local view (no I/O). `keep_alive()` renews every held lease each ttl/3 and reports
losses to `on_lost`.

Leases are an optimisation (one active owner per actor, few conflicts), not the safety net:
a stale owner that still writes (a long GC pause, a partition) is stopped by the journal's
expected-version check. The fencing token is what an owner attaches to side effects outside
the journal (webhooks, device commands) so receivers can drop a stale owner's work.

A node that restarts with the same node_id does NOT get its old lease back: the old
in-memory state is gone, so it waits for the lease to expire like anyone else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from ..bridge import Bridge, ThreadBridge
from . import _redis as r

__all__ = ["ClusterUnavailable", "Lease", "Leases"]

log = logging.getLogger("omnitill.cluster.leases")

_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'PX', ARGV[2])
return token
"""

# Like _ACQUIRE, but says who holds the lease when it is taken: {token, ""} or {0, "node:token"}.
_ACQUIRE_OR_HOLDER = """
local cur = redis.call('GET', KEYS[1])
if cur then return {0, cur} end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'PX', ARGV[2])
return {token, ''}
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class ClusterUnavailable(Exception):
    """Redis could not be reached; the lease state is unknown (the cause is chained)."""


@dataclass
class Lease:
    key: str
    token: int
    valid_until: float  # trio clock


class Leases:
    """Leases held by this node. `start()` (or `async with`) before use; `aclose()` after."""

    def __init__(
        self,
        url: str,
        *,
        node_id: str,
        ttl_ms: int = 10_000,
        prefix: str = "omnitill",
        bridge: Bridge | None = None,
        clock_drift: float = 0.01,
        margin_ms: int = 50,
        connect_timeout: float = 2.0,
        on_lost: Callable[[str, int], None] | None = None,
    ) -> None:
        if ttl_ms <= 2 * margin_ms:
            raise ValueError("ttl_ms must be well above margin_ms")
        if ":" in node_id:
            raise ValueError("node_id must not contain ':'")
        self.node_id = node_id
        self.ttl_ms = ttl_ms
        self._url = url
        self._prefix = prefix
        self._own_bridge = bridge is None
        self._bridge: Bridge = bridge if bridge is not None else ThreadBridge()
        self._validity_s = ttl_ms / 1000 * (1 - clock_drift) - margin_ms / 1000
        self._timeout = connect_timeout
        self._on_lost = on_lost
        self._client: Any = None
        self._connect_lock = trio.Lock()
        self._held: dict[str, Lease] = {}
        self.lost = 0

    # --- keys -------------------------------------------------------------------------------

    def lease_key(self, key: str) -> str:
        return f"{self._prefix}:lease:{key}"

    def fence_key(self, key: str) -> str:
        return f"{self._prefix}:fence:{key}"

    # --- API --------------------------------------------------------------------------------

    async def acquire(self, key: str) -> int | None:
        """Take the lease on `key`: its new fencing token, or None if someone holds it.

        If this node already holds it, renews it and returns the same token.
        """
        held = self.owner(key)
        if held is not None and await self.renew(key, held):
            return held
        sent = trio.current_time()
        token = await self._eval(
            _ACQUIRE, [self.lease_key(key), self.fence_key(key)], [self.node_id, self.ttl_ms]
        )
        if token is None:
            return None
        self._held[key] = Lease(key, int(token), sent + self._validity_s)
        return int(token)

    async def acquire_or_holder(self, key: str) -> tuple[int | None, str | None]:
        """(token, None) if this node holds the lease now (taken or renewed), else
        (None, holder's node_id): one round trip, for routing a command to its owner."""
        held = self.owner(key)
        if held is not None and await self.renew(key, held):
            return held, None
        sent = trio.current_time()
        token, holder = await self._eval(
            _ACQUIRE_OR_HOLDER,
            [self.lease_key(key), self.fence_key(key)],
            [self.node_id, self.ttl_ms],
        )
        if int(token):
            self._held[key] = Lease(key, int(token), sent + self._validity_s)
            return int(token), None
        raw = holder.decode() if isinstance(holder, bytes) else str(holder)
        return None, raw.rpartition(":")[0]

    async def release_all(self) -> int:
        """Give up every held lease (graceful shutdown: others take over at once)."""
        released = 0
        for key, lease in list(self._held.items()):
            try:
                released += await self.release(key, lease.token)
            except ClusterUnavailable:
                break
        return released

    async def renew(self, key: str, token: int) -> bool:
        """Extend the lease; False if it is no longer ours with this token (then it is lost)."""
        sent = trio.current_time()
        ok = await self._eval(
            _RENEW, [self.lease_key(key)], [f"{self.node_id}:{token}", self.ttl_ms]
        )
        lease = self._held.get(key)
        if ok == 1:
            if lease is None or lease.token != token:
                lease = self._held[key] = Lease(key, token, 0.0)
            lease.valid_until = sent + self._validity_s
            return True
        if lease is not None and lease.token == token:
            self._forget(key, token)
        return False

    async def release(self, key: str, token: int) -> bool:
        """Give the lease up (passivation); False if it was not ours any more."""
        lease = self._held.get(key)
        if lease is not None and lease.token == token:
            del self._held[key]
        done = await self._eval(_RELEASE, [self.lease_key(key)], [f"{self.node_id}:{token}"])
        return bool(done == 1)

    def owner(self, key: str) -> int | None:
        """The token this node holds for `key`, if its lease is valid by the local clock."""
        lease = self._held.get(key)
        if lease is None:
            return None
        if trio.current_time() >= lease.valid_until:
            self._forget(key, lease.token)
            return None
        return lease.token

    async def holder(self, key: str) -> tuple[str, int] | None:
        """Who holds `key` according to Redis: (node_id, token), or None."""
        raw = await self._eval("return redis.call('GET', KEYS[1])", [self.lease_key(key)], [])
        if raw is None:
            return None
        node, _, token = (raw.decode() if isinstance(raw, bytes) else str(raw)).rpartition(":")
        return node, int(token)

    def held(self) -> list[str]:
        return [k for k in list(self._held) if self.owner(k) is not None]

    async def keep_alive(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Renew every held lease each ttl/3 until cancelled; losses go to `on_lost`."""
        task_status.started()
        while True:
            await trio.sleep(self.ttl_ms / 3000)
            for key in self.held():
                lease = self._held[key]
                try:
                    await self.renew(key, lease.token)
                except ClusterUnavailable as exc:
                    log.warning("lease renew failed for %s: %r", key, exc.__cause__)
                    self.owner(key)  # drops it once the local validity ran out

    # --- plumbing ---------------------------------------------------------------------------

    def _forget(self, key: str, token: int) -> None:
        lease = self._held.pop(key, None)
        if lease is None:
            return
        self.lost += 1
        log.info("lease lost: %s (token %s)", key, token)
        if self._on_lost is not None:
            self._on_lost(key, token)

    async def _eval(self, script: str, keys: list[str], args: list[Any]) -> Any:
        try:
            client = await self._ensure_client()
            return await self._bridge.run(r.eval_script, client, script, keys, args)
        except r.REDIS_ERRORS as exc:
            await self._drop_client()
            raise ClusterUnavailable(f"redis: {exc!r}") from exc

    async def _ensure_client(self) -> Any:
        async with self._connect_lock:
            if self._client is None:
                if isinstance(self._bridge, ThreadBridge):
                    self._bridge.start()
                self._client = await self._bridge.run(r.make_client, self._url, self._timeout)
            return self._client

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with trio.CancelScope(shield=True):
                try:
                    await self._bridge.run(r.close_client, client)
                except r.REDIS_OR_CLOSED:
                    pass

    async def aclose(self) -> None:
        await self._drop_client()
        if self._own_bridge and isinstance(self._bridge, ThreadBridge):
            await self._bridge.aclose()

    async def __aenter__(self) -> Leases:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
