"""The Redis seam: redis.asyncio clients built and used only on the asyncio side of a bridge.

Everything here is an `async def` that `Bridge.run` executes in the bridge's loop, so the
clients (and their connection pools) belong to that loop. Callers catch `REDIS_ERRORS`.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

__all__ = [
    "REDIS_ERRORS",
    "REDIS_OR_CLOSED",
    "close_client",
    "close_pubsub",
    "eval_script",
    "hmget",
    "hset",
    "make_client",
    "open_pubsub",
    "pop_batch",
    "publish_many",
    "push_many",
    "read_messages",
]

# A lost connection shows up as RedisError (ConnectionError, TimeoutError) or, below redis-py,
# as OSError.
REDIS_ERRORS = (RedisError, OSError, TimeoutError)
# ... plus a bridge that is already closed (BridgeClosed is a RuntimeError): for cleanup paths.
REDIS_OR_CLOSED = (RedisError, OSError, TimeoutError, RuntimeError)


async def make_client(url: str, timeout: float) -> aioredis.Redis:
    # Fail fast (one quick retry) and let our own loops do the reconnecting with back-off.
    client: aioredis.Redis = aioredis.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 1),
        health_check_interval=10,
        max_connections=512,  # concurrent lease round trips + blocking pops share the pool
    )
    try:
        await client.ping()
    except BaseException:
        await client.aclose()
        raise
    return client


async def close_client(client: aioredis.Redis) -> None:
    await client.aclose()


async def open_pubsub(client: aioredis.Redis, channels: list[str]) -> Any:
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(*channels)
    except BaseException:
        await pubsub.aclose()
        raise
    return pubsub


async def close_pubsub(pubsub: Any) -> None:
    await pubsub.aclose()


async def read_messages(pubsub: Any, max_messages: int, timeout: float) -> list[bytes]:
    """Wait up to `timeout` for one message, then take what else is ready (one crossing)."""
    out: list[bytes] = []
    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
    while msg is not None:
        if msg.get("type") == "message":
            out.append(msg["data"])
        if len(out) >= max_messages:
            break
        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.0)
    return out


async def publish_many(client: aioredis.Redis, messages: list[tuple[str, bytes]]) -> None:
    async with client.pipeline(transaction=False) as pipe:
        for channel, data in messages:
            pipe.publish(channel, data)
        await pipe.execute()


# Positions only move forward: several nodes report the same topic, and the last HSET must
# not replace a newer position with an older one (a node that was cut off would never learn).
_HSET_MAX = """
for i = 1, #ARGV, 2 do
  local new = ARGV[i + 1]
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  local keep = false
  if cur then
    local ce, cs = string.match(cur, '^(.*):(%d+)$')
    local ne, ns = string.match(new, '^(.*):(%d+)$')
    keep = ce ~= nil and ce == ne and tonumber(cs) >= tonumber(ns)
  end
  if not keep then redis.call('HSET', KEYS[1], ARGV[i], new) end
end
return 0
"""


async def hset(client: aioredis.Redis, key: str, mapping: dict[str, str]) -> None:
    """Record "epoch:seq" positions; within one epoch a position never goes backwards."""
    args: list[str] = []
    for field, value in mapping.items():
        args += [field, value]
    await client.eval(_HSET_MAX, 1, key, *args)


async def hmget(client: aioredis.Redis, key: str, fields: list[str]) -> list[bytes | None]:
    values: list[bytes | None] = await client.hmget(key, fields)  # type: ignore[assignment]
    return values


async def eval_script(
    client: aioredis.Redis, script: str, keys: list[str], args: list[Any]
) -> Any:
    return await client.eval(script, len(keys), *keys, *args)


async def push_many(
    client: aioredis.Redis, items: dict[str, list[bytes]], expire_s: int
) -> None:
    """RPUSH each list's items and (re)set the list's expiry, in one pipeline."""
    async with client.pipeline(transaction=False) as pipe:
        for key, values in items.items():
            pipe.rpush(key, *values)
            pipe.expire(key, expire_s)
        await pipe.execute()


async def pop_batch(client: aioredis.Redis, key: str, max_items: int, block_s: float) -> list[bytes]:
    """Block up to `block_s` for the first item of list `key`, then take up to `max_items`."""
    first: Any = await client.blpop([key], timeout=block_s)
    if first is None:
        return []
    out: list[bytes] = [first[1]]
    if max_items > 1:
        more = await client.lpop(key, max_items - 1)
        if more:
            out.extend(more)  # type: ignore[arg-type]
    return out
