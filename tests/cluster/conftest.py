"""Fixtures for the scale-out layer: the real PostgreSQL and Redis of this machine.

Never skipped: with a service down these tests fail and say which one (CI requires both).
PostgreSQL tests get a fresh random schema (dropped afterwards); Redis tests get a random key
prefix (keys deleted afterwards), so parallel workers and other users do not collide.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
import trio
from cluster_helpers import PG_DSN, REDIS_URL

from engine.bridge import ThreadBridge


@pytest.fixture
async def bridge() -> AsyncIterator[ThreadBridge]:
    async with ThreadBridge() as b:
        yield b


@pytest.fixture
async def pg_schema(bridge: ThreadBridge) -> AsyncIterator[str]:
    name = f"omnitill_t_{int(time.time())}_{secrets.token_hex(4)}"
    yield name
    with trio.CancelScope(shield=True):
        conn = await bridge.run(asyncpg.connect, PG_DSN)
        await bridge.run(conn.execute, f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        await bridge.run(conn.close)


async def _delete_prefix(client: object, prefix: str) -> None:
    keys = [k async for k in client.scan_iter(match=prefix + ":*")]  # type: ignore[attr-defined]
    if keys:
        await client.delete(*keys)  # type: ignore[attr-defined]
    await client.aclose()  # type: ignore[attr-defined]


@pytest.fixture
async def redis_prefix(bridge: ThreadBridge) -> AsyncIterator[str]:
    from engine.cluster import _redis

    prefix = f"omnitill-test-{secrets.token_hex(4)}"
    yield prefix
    with trio.CancelScope(shield=True):
        client = await bridge.run(_redis.make_client, REDIS_URL, 2.0)
        await bridge.run(_delete_prefix, client, prefix)
