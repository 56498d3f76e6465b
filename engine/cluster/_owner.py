"""Actor ownership across nodes: run each command on the node holding its key's lease.

Theory of operation
-------------------
Every actor key (`sku:X`, `order:Y`, ...) is active on at most one node at a time: the node
holding its Redis lease (`Leases`, fencing token per key). `Ownership.ask(key, msg)` is the
cluster's replacement for `registry.ask`:

1. this node holds the lease (local view, no I/O) -> ask the local registry;
2. else one Lua round trip (`acquire_or_holder`): the lease was free -> it is ours now, the
   actor activates here and loads its state from the journal -> ask locally;
3. else FORWARD to the holder: the request (msgpack) is RPUSHed onto the holder's inbox list
   `{prefix}:inbox:{node}`; the holder's inbox task BLPOPs batches, asks its own registry and
   RPUSHes the replies onto `{prefix}:reply:{origin}`, where our reply task BLPOPs them and
   wakes the waiting ask. Pushes are batched per target list in one pipeline (one bridge
   crossing per batch), so a hot key forwarded from two nodes costs a few crossings per
   batch of commands, not per command.

A holder that no longer owns the key (lease lost or released) answers `not_owner`; the
sender forgets its cached holder and resolves again. A forward that gets no answer within
`forward_timeout_s` (owner killed, or paused with SIGSTOP) is resolved again too: once the
dead owner's lease expired, step 2 makes this node the owner. Requests carry a wall-clock
deadline; a holder that resumes after a pause drops the ones nobody waits for. Forwarding the
same op twice is harmless: the op table makes every command exactly-once.

Safety does not rest on any of this. Leases keep the number of active owners to one in the
normal case; a stale owner (paused past its lease, or any node while Redis is down) may still
decide, but its journal append carries the stream version it decided against and fails with
VersionConflict, after which the actor reloads from the journal and decides again.

Redis down: `ask` runs every command locally (degraded; counted), with a short circuit
breaker so commands do not each wait for a connect timeout. When Redis returns, the next
command of each key takes (or finds) its lease again.

`wrap(key, actor)` adapts every actor the registry activates: `on_start` makes sure the lease
is held (if another node holds it -- an activation that did not come through `ask`, e.g. a
local actor-to-actor ask -- it runs anyway, counted as `unowned`, and the journal keeps it
safe); after `on_lease_lost` the next batch first reloads the state from the journal;
`on_stop` (passivation, shutdown) releases the lease so another node can take over at once.
"""

from __future__ import annotations

import itertools
import logging
import math
import secrets
import time
from collections.abc import Callable
from typing import Any

import msgspec
import trio

from ..bridge import Bridge
from ..runtime import Actor, ActorCrashed, ActorStopped, AskTimeout, Envelope, Overloaded, Registry
from . import _redis as r
from ._leases import ClusterUnavailable, Leases

__all__ = ["Ownership"]

log = logging.getLogger("omnitill.cluster.owner")

_POP_BATCH = 512
_LIST_TTL_S = 60  # an inbox of a node that is gone expires instead of growing forever
_HOLDER_CACHE_S = 1.0
_BREAKER_S = 1.0  # after a Redis error, go local at once for this long


class _Req(msgspec.Struct, array_like=True, frozen=True):
    req_id: int
    origin: str
    key: str
    deadline: float  # wall clock (nodes' clocks agree well enough for a drop-if-late check)
    op_id: str
    name: str
    args: Any
    payload_hash: str
    now: float
    actor: str


class _Rep(msgspec.Struct, array_like=True, frozen=True):
    req_id: int
    status: str  # ok | not_owner | overloaded | timeout | crashed | stopped
    outcome: bytes = b""


_enc = msgspec.msgpack.Encoder()
_dec_req = msgspec.msgpack.Decoder(_Req)
_dec_rep = msgspec.msgpack.Decoder(_Rep)
_ERRORS: dict[str, type[Exception]] = {
    "overloaded": Overloaded,
    "timeout": AskTimeout,
    "crashed": ActorCrashed,
    "stopped": ActorStopped,
}


class _Pending:
    __slots__ = ("event", "reply")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.reply: _Rep | None = None


class _OwnedActor(Actor):
    """An actor whose activation holds its key's lease (see the module docstring)."""

    def __init__(self, ownership: Ownership, key: str, inner: Actor) -> None:
        self._own = ownership
        self._inner = inner
        inner.key = key
        self.key = key
        self.stale = False

    @property
    def inner(self) -> Actor:
        return self._inner

    async def on_start(self) -> None:
        await self._own._ensure_lease(self.key)
        self._own.active[self.key] = self
        await self._inner.on_start()

    async def handle_batch(self, batch: list[Envelope]) -> None:
        if self.stale:  # our lease lapsed meanwhile: another node may have written
            self.stale = False
            self._own.reloads += 1
            await self._own._ensure_lease(self.key)
            await self._inner.on_start()
        await self._inner.handle_batch(batch)

    async def on_stop(self) -> None:
        try:
            await self._inner.on_stop()
        finally:
            if self._own.active.get(self.key) is self:
                del self._own.active[self.key]
            await self._own._release(self.key)


class Ownership:
    """Lease-based placement of actors plus command forwarding over Redis lists."""

    def __init__(
        self,
        registry: Registry,
        leases: Leases,
        url: str,
        *,
        node_id: str,
        bridge: Bridge,
        prefix: str = "omnitill",
        decode_msg: Callable[[_Req], Any],
        encode_msg: Callable[[Any], dict[str, Any] | None],
        encode_outcome: Callable[[Any], bytes],
        decode_outcome: Callable[[bytes], Any],
        forward_timeout_s: float = 2.0,
        connect_timeout: float = 2.0,
    ) -> None:
        self.registry = registry
        self.leases = leases
        self.node_id = node_id
        self._url = url
        self._bridge = bridge
        self._prefix = prefix
        self._decode_msg = decode_msg
        self._encode_msg = encode_msg
        self._encode_outcome = encode_outcome
        self._decode_outcome = decode_outcome
        self.forward_timeout_s = forward_timeout_s
        self._timeout = connect_timeout
        self.inbox_key = f"{prefix}:inbox:{node_id}"
        self.reply_key = f"{prefix}:reply:{node_id}"
        self.active: dict[str, _OwnedActor] = {}
        self._holders: dict[str, tuple[str, float]] = {}  # key -> (node, cached until)
        self._resolving: dict[str, trio.Event] = {}  # key -> set when its lookup is done
        self._pending: dict[int, _Pending] = {}
        # Random start: a late reply addressed to an earlier run of this node matches nothing.
        self._ids = itertools.count(secrets.randbits(40) << 20)
        self._out_send, self._out_recv = trio.open_memory_channel[tuple[str, bytes]](100_000)
        self._client: Any = None
        self._broken_until = -math.inf
        self.healthy = False
        # metrics
        self.local = 0
        self.acquired = 0
        self.forwarded = 0
        self.served = 0
        self.not_owner = 0
        self.forward_timeouts = 0
        self.degraded_local = 0
        self.unowned = 0
        self.reloads = 0

    # --- routing ----------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        return {
            "local": self.local,
            "acquired": self.acquired,
            "forwarded": self.forwarded,
            "served": self.served,
            "not_owner": self.not_owner,
            "forward_timeouts": self.forward_timeouts,
            "degraded_local": self.degraded_local,
            "unowned": self.unowned,
            "reloads": self.reloads,
            "active_owned": len(self.active),
        }

    def _redis_ok(self) -> bool:
        return trio.current_time() >= self._broken_until

    def _broke(self, exc: BaseException) -> None:
        if self._redis_ok():
            log.warning("ownership %s: Redis unavailable, serving locally: %r", self.node_id, exc)
        self._broken_until = trio.current_time() + _BREAKER_S

    async def ask(self, key: str, msg: Any, timeout: float) -> Any:
        """Ask the actor of `key` wherever it is active; raises what registry.ask raises."""
        deadline = trio.current_time() + timeout
        while True:
            remaining = deadline - trio.current_time()
            if remaining <= 0:
                raise AskTimeout(f"no owner of {key!r} answered in time")
            if self.leases.owner(key) is not None:
                self.local += 1
                return await self.registry.ask(key, msg, timeout=remaining)
            payload = self._encode_msg(msg)
            if payload is None or not self._redis_ok() or self._client is None:
                return await self._degraded(key, msg, remaining)
            node = self._cached_holder(key)
            if node is None:
                busy = self._resolving.get(key)
                if busy is not None:  # single flight: a hot key resolves once, not per command
                    with trio.move_on_at(deadline):
                        await busy.wait()
                    continue
                busy = self._resolving[key] = trio.Event()
                try:
                    token, node = await self.leases.acquire_or_holder(key)
                except ClusterUnavailable as exc:
                    self._broke(exc)
                    return await self._degraded(key, msg, deadline - trio.current_time())
                finally:
                    del self._resolving[key]
                    busy.set()
                if token is not None:
                    self.acquired += 1
                    return await self.registry.ask(
                        key, msg, timeout=max(deadline - trio.current_time(), 0.001)
                    )
                assert node is not None
                if node == self.node_id:
                    # An earlier run of this node holds it: wait for that lease to expire.
                    await trio.sleep(min(0.1, max(deadline - trio.current_time(), 0)))
                    continue
                self._holders[key] = (node, trio.current_time() + _HOLDER_CACHE_S)
            try:
                rep = await self._forward(node, key, payload, deadline)
            except ClusterUnavailable as exc:
                self._broke(exc)
                return await self._degraded(key, msg, deadline - trio.current_time())
            if rep is None:  # no answer: the owner may be dead or paused; resolve again
                self.forward_timeouts += 1
                self._holders.pop(key, None)
                continue
            if rep.status == "not_owner":
                self.not_owner += 1
                self._holders.pop(key, None)
                await trio.sleep(0.005)
                continue
            if rep.status != "ok":
                raise _ERRORS.get(rep.status, ActorCrashed)(f"owner of {key!r}: {rep.status}")
            return self._decode_outcome(rep.outcome)

    async def _degraded(self, key: str, msg: Any, remaining: float) -> Any:
        self.degraded_local += 1
        return await self.registry.ask(key, msg, timeout=max(remaining, 0.001))

    async def tell_timer(self, key: str, msg: Any, *, timeout: float | None = None) -> None:
        """Timer delivery (the TimerService's `registry.tell`): only the owner delivers.

        Every node's timer service sees every due timer. The lease holder (or whoever can
        take the lease) delivers; the others do nothing -- the owner's service delivers, and
        if the owner dies the lease expires and the next pass here takes over.
        """
        if self.leases.owner(key) is None and self._redis_ok() and self._client is not None:
            try:
                token, _node = await self.leases.acquire_or_holder(key)
            except ClusterUnavailable as exc:
                self._broke(exc)
            else:
                if token is None:
                    return
        await self.registry.tell(key, msg, timeout=timeout)

    def _cached_holder(self, key: str) -> str | None:
        cached = self._holders.get(key)
        if cached is None:
            return None
        if trio.current_time() >= cached[1]:
            del self._holders[key]
            return None
        return cached[0]

    async def _forward(
        self, node: str, key: str, payload: dict[str, Any], deadline: float
    ) -> _Rep | None:
        req_id = next(self._ids)
        wall_deadline = time.time() + (deadline - trio.current_time())
        data = _enc.encode(
            _Req(req_id=req_id, origin=self.node_id, key=key, deadline=wall_deadline, **payload)
        )
        pending = self._pending[req_id] = _Pending()
        try:
            try:
                self._out_send.send_nowait((f"{self._prefix}:inbox:{node}", data))
            except trio.WouldBlock:
                raise Overloaded("forward queue full") from None
            self.forwarded += 1
            wait_until = min(deadline, trio.current_time() + self.forward_timeout_s)
            with trio.move_on_at(wait_until):
                await pending.event.wait()
            return pending.reply
        finally:
            del self._pending[req_id]

    # --- leases of local activations -------------------------------------------------------

    def wrap(self, key: str, actor: Actor) -> Actor:
        return _OwnedActor(self, key, actor)

    def on_lease_lost(self, key: str, token: int) -> None:
        actor = self.active.get(key)
        if actor is not None:
            actor.stale = True

    async def _ensure_lease(self, key: str) -> None:
        if self.leases.owner(key) is not None or not self._redis_ok():
            return
        try:
            token, _node = await self.leases.acquire_or_holder(key)
        except ClusterUnavailable as exc:
            self._broke(exc)
            return
        if token is None:
            self.unowned += 1
            log.info("ownership %s: %s active here without its lease (held elsewhere)",
                     self.node_id, key)

    async def _release(self, key: str) -> None:
        token = self.leases.owner(key)
        if token is None or not self._redis_ok():
            return
        with trio.move_on_after(1.0):
            try:
                await self.leases.release(key, token)
            except ClusterUnavailable as exc:
                self._broke(exc)

    # --- the Redis side: sender, inbox server, reply reader -------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect (with back-off, never blocking start-up) and serve until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._sender)
            task_status.started()
            delay = 0.1
            while True:
                try:
                    self._client = await self._bridge.run(r.make_client, self._url, self._timeout)
                except r.REDIS_ERRORS as exc:
                    self._client, self.healthy = None, False
                    self._broke(exc)
                    await trio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                delay = 0.1
                self.healthy = True
                self._broken_until = -math.inf
                try:
                    async with trio.open_nursery() as inner:
                        inner.start_soon(self._inbox, inner)
                        inner.start_soon(self._replies)
                except* r.REDIS_ERRORS as group:
                    self._broke(group.exceptions[0])
                finally:
                    client, self._client, self.healthy = self._client, None, False
                    with trio.CancelScope(shield=True):
                        try:
                            await self._bridge.run(r.close_client, client)
                        except r.REDIS_OR_CLOSED:
                            pass
                await trio.sleep(delay)

    async def _sender(self) -> None:
        async for first in self._out_recv:
            batch = [first]
            while len(batch) < 4096:
                try:
                    batch.append(self._out_recv.receive_nowait())
                except trio.WouldBlock:
                    break
            per_list: dict[str, list[bytes]] = {}
            for target, data in batch:
                per_list.setdefault(target, []).append(data)
            client = self._client
            if client is None:
                continue  # the waiting asks time out and resolve again
            try:
                await self._bridge.run(r.push_many, client, per_list, _LIST_TTL_S)
            except r.REDIS_ERRORS as exc:
                self._broke(exc)

    async def _inbox(self, nursery: trio.Nursery) -> None:
        while True:
            raw = await self._bridge.run(r.pop_batch, self._client, self.inbox_key, _POP_BATCH, 1.0)
            for data in raw:
                try:
                    req = _dec_req.decode(data)
                except msgspec.DecodeError:
                    log.warning("ownership %s: undecodable request dropped", self.node_id)
                    continue
                nursery.start_soon(self._serve, req)

    async def _serve(self, req: _Req) -> None:
        remaining = req.deadline - time.time()
        if remaining <= 0:
            return  # nobody waits for it any more (we were paused, or the queue was long)
        status, outcome = "ok", b""
        if self.leases.owner(req.key) is None:
            try:
                token, _node = await self.leases.acquire_or_holder(req.key)
            except ClusterUnavailable:
                token = None
            if token is None:
                self._reply(req, "not_owner", b"")
                return
        self.served += 1
        try:
            result = await self.registry.ask(req.key, self._decode_msg(req), timeout=remaining)
            outcome = self._encode_outcome(result)
        except Overloaded:
            status = "overloaded"
        except AskTimeout:
            status = "timeout"
        except ActorStopped:
            status = "stopped"
        except Exception:
            log.exception("ownership %s: forwarded %s failed", self.node_id, req.key)
            status = "crashed"
        self._reply(req, status, outcome)

    def _reply(self, req: _Req, status: str, outcome: bytes) -> None:
        data = _enc.encode(_Rep(req_id=req.req_id, status=status, outcome=outcome))
        try:
            self._out_send.send_nowait((f"{self._prefix}:reply:{req.origin}", data))
        except trio.WouldBlock:
            pass  # the asker times out and retries (same op_id)

    async def _replies(self) -> None:
        while True:
            raw = await self._bridge.run(r.pop_batch, self._client, self.reply_key, _POP_BATCH, 1.0)
            for data in raw:
                try:
                    rep = _dec_rep.decode(data)
                except msgspec.DecodeError:
                    continue
                pending = self._pending.get(rep.req_id)
                if pending is not None:
                    pending.reply = rep
                    pending.event.set()
