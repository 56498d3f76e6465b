"""The stores the journal contract suite runs against.

Adding a store = one entry in BACKENDS: a function that, given the test's tmp_path, returns a
`Backend` whose `make()` builds a new, unopened journal over the SAME storage each time it is
called (so tests can close and reopen it).

PostgreSQL: every Backend gets a fresh schema with a random name in the database of
OMNITILL_TEST_PG_DSN (default postgresql://postgres@127.0.0.1:5432/test), so parallel test
workers never share data. The postgres parameter is never skipped: with PostgreSQL down its
tests fail (loudly so under CI). Schemas are dropped when the test process exits, and schemas
left behind by a crashed run (older than an hour) are swept the next time.
"""

from __future__ import annotations

import atexit
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import trio

from engine.bridge import ThreadBridge
from engine.journal import Journal, JournalError, MemoryJournal, MemoryStore, SqliteJournal
from engine.journal.postgres import PostgresJournal

__all__ = ["BACKENDS", "Backend"]


@dataclass
class Backend:
    name: str
    make: Callable[..., Journal]  # make(max_group=...) -> new unopened journal, same storage

    async def start(self, nursery: trio.Nursery, **kwargs: Any) -> Journal:
        """A new journal over this storage, opened and with its writer running."""
        journal = self.make(**kwargs)
        await journal.open()
        await nursery.start(journal.run)
        return journal


def _sqlite(tmp_path: Path) -> Backend:
    path = tmp_path / "journal.db"
    return Backend("sqlite", lambda **kw: SqliteJournal(path, **kw))


def _sqlite_thread(tmp_path: Path) -> Backend:
    """The SQLite store with its group commit in a worker thread (OMNITILL_SQLITE_WRITER)."""
    path = tmp_path / "journal.db"
    return Backend("sqlite-thread", lambda **kw: SqliteJournal(path, writer="thread", **kw))


def _sqlite_process(tmp_path: Path) -> Backend:
    """The SQLite store with its writer in a child process (OMNITILL_SQLITE_WRITER=process)."""
    path = tmp_path / "journal.db"
    return Backend("sqlite-process", lambda **kw: SqliteJournal(path, writer="process", **kw))


def _memory(tmp_path: Path) -> Backend:
    store = MemoryStore()  # shared by every journal this backend makes: a "reopen" sees it
    return Backend("memory", lambda **kw: MemoryJournal(store, **kw))


PG_DSN = os.environ.get("OMNITILL_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
_SCHEMA_PREFIX = "omnitill_t_"
_created_schemas: list[str] = []


class _LoudPostgresJournal(PostgresJournal):
    """Says plainly that the test store is unreachable, instead of a bare driver error."""

    async def open(self) -> None:
        try:
            await super().open()
        except JournalError as exc:
            ci = " (CI is set: PostgreSQL is required)" if os.environ.get("CI") else ""
            raise JournalError(
                f"PostgreSQL test store unreachable at {PG_DSN}{ci}: {exc}. Start it with "
                "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`."
            ) from exc


def _postgres(tmp_path: Path) -> Backend:
    if not _created_schemas:
        atexit.register(_drop_schemas)
    schema = f"{_SCHEMA_PREFIX}{int(time.time())}_{secrets.token_hex(4)}"
    _created_schemas.append(schema)
    return Backend(
        "postgres", lambda **kw: _LoudPostgresJournal(PG_DSN, schema=schema, readers=2, **kw)
    )


async def _drop_async(conn: asyncpg.Connection, names: list[str]) -> None:
    stale_before = int(time.time()) - 3600
    rows = await conn.fetch(
        "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", _SCHEMA_PREFIX + "%"
    )
    for (name,) in rows:
        try:
            born = int(name[len(_SCHEMA_PREFIX):].split("_")[0])
        except ValueError:
            continue
        if name in names or born < stale_before:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    await conn.close()


def _drop_schemas() -> None:
    async def main() -> None:
        async with ThreadBridge() as bridge:
            with trio.move_on_after(30):
                conn = await bridge.run(asyncpg.connect, PG_DSN)
                await bridge.run(_drop_async, conn, list(_created_schemas))

    try:
        trio.run(main)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        pass  # PostgreSQL is down: the tests already failed; the next run sweeps


BACKENDS: dict[str, Callable[[Path], Backend]] = {
    "sqlite": _sqlite,
    "sqlite-thread": _sqlite_thread,
    "sqlite-process": _sqlite_process,
    "memory": _memory,
    "postgres": _postgres,
}
