"""PostgreSQL journal: the system of record when several engine nodes share one store.

Theory of operation
-------------------
asyncpg is an asyncio library, so every database call crosses `engine.bridge` (by default a
private `ThreadBridge`: an asyncio loop in its own thread). A crossing costs more than a query,
so the coroutines that run on the asyncio side are coarse: ONE crossing applies a whole group
transaction, one crossing runs one read.

Writes go through the shared group-commit writer (`_group.py`) on one dedicated connection. A
group is one transaction of five round trips, whatever its size:

1. BEGIN;
2. `SELECT last_pos FROM event_counter FOR UPDATE` -- the cluster-wide write lock. Groups from
   every node queue on this row, so global positions are handed out in commit order with no
   gaps, and (READ COMMITTED: each later statement takes a fresh snapshot) everything the
   previous holder committed is visible to the checks below;
3. one pre-check query: current versions of the group's streams and which of its op_ids exist;
4. the plan (`_Planner`, pure Python): each job in order is checked against the stored state
   plus the jobs before it (stale expected_version or a known op_id -> VersionConflict for
   that job alone), accepted jobs get their versions and global positions; timer clears/sets
   and snapshots are folded into their net effect per key;
5. one statement of data-modifying CTEs (`_WRITE_SQL`) writes every accepted row with unnest()
   arrays and moves the counter; then COMMIT.

A stale owner on another node is stopped by step 3: its expected_version no longer matches.

Bad data (e.g. a NUL character in a text column, which PostgreSQL refuses) would fail the one
statement and so the whole group. The writer then rolls back and replays the group in the
isolating mode: every job in its own SAVEPOINT, so only the bad job fails (JournalError) and
the rest still commit together.

Cancellation: the writer shields its bridge call, so a started transaction always reaches
COMMIT or ROLLBACK (asyncpg's `command_timeout` bounds a hung server). Reads are cancellable;
the bridge cancels the query in PostgreSQL.

Schema: numbered files in `migrations/` (`0001_init.sql`, ...), applied at `open()` in one
transaction under a transaction-level advisory lock keyed by the schema name, so nodes starting
together neither race nor apply anything twice; `schema_migrations` records what ran. Each
journal lives in one schema (`schema=`; tests use a fresh random schema each). `meta.epoch` is
created with the schema and identifies this store's history.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg
import trio

from ..bridge import Bridge, BridgeClosed, ThreadBridge
from ._group import GroupCommitJournal, Outcome, WriteOp
from .base import (
    AppendResult,
    Batch,
    Journal,
    JournalClosed,
    JournalError,
    OpRecord,
    Snapshot,
    StoredEvent,
    Timer,
    VersionConflict,
)
from .sqlite import _prefix_upper

__all__ = ["Migration", "PostgresJournal", "load_migrations"]

T = TypeVar("T")

_SCHEMA_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_MIGRATION_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_EVENT_COLS = "global_pos, stream, version, type, data, ts"

# Errors that mean "this data was refused", not "the store is broken": replay isolated.
_DATA_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.DataError,  # SQLSTATE class 22, and asyncpg's own argument encoding errors
    asyncpg.IntegrityConstraintViolationError,  # class 23
    TypeError,
    ValueError,
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The numbered .sql files of `engine/journal/migrations/`, in order."""
    found: list[Migration] = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        m = _MIGRATION_RE.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers: {versions}")
    return found


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _event(row: Any) -> StoredEvent:
    return StoredEvent(
        stream=row[1], version=row[2], type=row[3], data=bytes(row[4]), ts=row[5],
        global_pos=row[0],
    )


# --- the group plan (pure) ------------------------------------------------------------------


@dataclass
class _Writes:
    """Every row one write statement puts into the store."""

    ev_pos: list[int] = field(default_factory=list)
    ev_stream: list[str] = field(default_factory=list)
    ev_version: list[int] = field(default_factory=list)
    ev_type: list[str] = field(default_factory=list)
    ev_data: list[bytes] = field(default_factory=list)
    streams: dict[str, int] = field(default_factory=dict)
    ops: list[OpRecord] = field(default_factory=list)
    timers: dict[tuple[str, str], Timer | None] = field(default_factory=dict)  # None = clear
    snapshots: dict[str, Snapshot] = field(default_factory=dict)

    def empty(self) -> bool:
        return not (self.ev_pos or self.ops or self.timers or self.snapshots)

    def args(self, last_pos: int, ts: float) -> tuple[Any, ...]:
        ops = self.ops
        cleared = [k for k, t in self.timers.items() if t is None]
        timers = [t for t in self.timers.values() if t is not None]
        snaps = list(self.snapshots.values())
        return (
            self.ev_pos, self.ev_stream, self.ev_version, self.ev_type, self.ev_data, ts,
            list(self.streams), list(self.streams.values()),
            [o.op_id for o in ops], [o.stream for o in ops], [o.payload_hash for o in ops],
            [o.ok for o in ops], [o.result for o in ops],
            [k for k, _ in cleared], [i for _, i in cleared],
            [t.actor_key for t in timers], [t.timer_id for t in timers],
            [t.due_at for t in timers], [t.payload for t in timers],
            [s.stream for s in snaps], [s.version for s in snaps], [s.state for s in snaps],
            last_pos,
        )


class _Planner:
    """Checks jobs in order against the stored state plus the jobs accepted before them."""

    def __init__(self, versions: dict[str, int], known_ops: set[str], last_pos: int) -> None:
        self.versions = versions
        self.known_ops = known_ops
        self.last_pos = last_pos

    def check(self, batch: Batch) -> VersionConflict | None:
        current = self.versions.get(batch.stream, 0)
        if current != batch.expected_version:
            return VersionConflict(batch.stream, batch.expected_version, current)
        ids = [o.op_id for o in batch.ops]
        if len(set(ids)) != len(ids) or any(i in self.known_ops for i in ids):
            return VersionConflict(batch.stream, batch.expected_version, current)
        return None

    def accept(self, batch: Batch, w: _Writes, ts: float) -> AppendResult:
        first_pos = self.last_pos + 1
        version = batch.expected_version
        for typ, data in batch.events:
            version += 1
            self.last_pos += 1
            w.ev_pos.append(self.last_pos)
            w.ev_stream.append(batch.stream)
            w.ev_version.append(version)
            w.ev_type.append(typ)
            w.ev_data.append(data)
        if batch.events:
            self.versions[batch.stream] = version
            w.streams[batch.stream] = version
        for o in batch.ops:
            self.known_ops.add(o.op_id)
            w.ops.append(o)
        for key in batch.timers_cleared:  # clears before sets, and later jobs after earlier
            w.timers[(key[0], key[1])] = None
        for t in batch.timers_set:
            w.timers[(t.actor_key, t.timer_id)] = t
        return AppendResult(
            stream=batch.stream, version=version,
            first_global_pos=first_pos if batch.events else 0, ts=ts,
        )

    def undo(self, batch: Batch, saved: tuple[int, int | None]) -> None:
        """Forget an accepted job whose write the store refused (isolating mode)."""
        self.last_pos, old_version = saved
        if old_version is None:
            self.versions.pop(batch.stream, None)
        else:
            self.versions[batch.stream] = old_version
        for o in batch.ops:
            self.known_ops.discard(o.op_id)


def _add_snapshot(w: _Writes, snap: Snapshot) -> None:
    old = w.snapshots.get(snap.stream)
    if old is None or snap.version >= old.version:  # the store applies the same rule
        w.snapshots[snap.stream] = snap


# One statement, every write of a group. Data-modifying CTEs all run (to completion) even
# though the main query does not read them; no row is touched twice (timers and snapshots are
# folded per key by the planner), so they do not interfere.
_WRITE_SQL = """
WITH ev AS (
    INSERT INTO events (global_pos, stream, version, type, data, ts)
    SELECT p, s, v, t, d, $6::float8
    FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::bytea[]) AS x(p, s, v, t, d)
), st AS (
    INSERT INTO streams (stream, version)
    SELECT * FROM unnest($7::text[], $8::int[])
    ON CONFLICT (stream) DO UPDATE SET version = excluded.version
), op AS (
    INSERT INTO ops (op_id, stream, payload_hash, ok, result, ts)
    SELECT i, s, h, k, r, $6::float8
    FROM unnest($9::text[], $10::text[], $11::text[], $12::bool[], $13::bytea[])
        AS x(i, s, h, k, r)
), tc AS (
    DELETE FROM timers t USING unnest($14::text[], $15::text[]) AS x(k, i)
    WHERE t.actor_key = x.k AND t.timer_id = x.i
), tm AS (
    INSERT INTO timers (actor_key, timer_id, due_at, payload)
    SELECT * FROM unnest($16::text[], $17::text[], $18::float8[], $19::bytea[])
    ON CONFLICT (actor_key, timer_id)
        DO UPDATE SET due_at = excluded.due_at, payload = excluded.payload
), sn AS (
    INSERT INTO snapshots (stream, version, state)
    SELECT * FROM unnest($20::text[], $21::int[], $22::bytea[])
    ON CONFLICT (stream) DO UPDATE SET version = excluded.version, state = excluded.state
        WHERE excluded.version >= snapshots.version
)
UPDATE event_counter SET last_pos = $23::bigint
"""

_PRECHECK_SQL = """
SELECT 's', stream, version FROM streams WHERE stream = ANY($1::text[])
UNION ALL
SELECT 'o', op_id, 0 FROM ops WHERE op_id = ANY($2::text[])
"""


class _DataRejected(Exception):
    """Internal: the fast path's write statement was refused; replay the group isolated."""


# --- the journal ----------------------------------------------------------------------------


class PostgresJournal(GroupCommitJournal):
    """Journal in one PostgreSQL schema. `open()`, `await nursery.start(j.run)`, `close()`.

    `bridge`: share one asyncio bridge with other components; by default the journal starts
    (and closes) a private `ThreadBridge`.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        max_group: int = 512,
        readers: int = 4,
        command_timeout: float = 30.0,
        bridge: Bridge | None = None,
    ) -> None:
        super().__init__(max_group=max_group)
        if not _SCHEMA_RE.match(schema):
            raise ValueError(f"bad schema name {schema!r}")
        if readers < 1:
            raise ValueError("readers must be >= 1")
        self._dsn = dsn
        self._schema = schema
        self._readers = readers
        self._command_timeout = command_timeout
        self._own_bridge = bridge is None
        self._bridge: Bridge = bridge if bridge is not None else ThreadBridge()
        self._settings = {"search_path": _quote_ident(schema)}
        self._wconn: asyncpg.Connection | None = None
        self._pool: asyncpg.Pool | None = None
        self._released = False
        self._isolated_replays = 0

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def schema(self) -> str:
        return self._schema

    async def open(self) -> None:
        if self._opened:
            return
        if self._released:
            raise JournalClosed("journal is closed")
        if isinstance(self._bridge, ThreadBridge):
            self._bridge.start()
        migrations = load_migrations()
        with _mapped("cannot open the PostgreSQL journal"):
            self._wconn, self._pool, self._epoch = await self._bridge.run(
                self._open_async, migrations
            )
        self._opened = True

    async def _open_async(
        self, migrations: list[Migration]
    ) -> tuple[asyncpg.Connection, asyncpg.Pool, str]:
        wconn = await self._connect()
        try:
            epoch = await _migrate(wconn, self._schema, migrations)
            pool = await asyncpg.create_pool(
                self._dsn, min_size=1, max_size=self._readers, server_settings=self._settings,
                command_timeout=self._command_timeout,
            )
        except BaseException:
            await wconn.close()
            raise
        return wconn, pool, epoch

    async def _connect(self) -> asyncpg.Connection:
        conn: asyncpg.Connection = await asyncpg.connect(
            self._dsn, server_settings=self._settings, command_timeout=self._command_timeout
        )
        return conn

    async def close(self) -> None:
        with trio.CancelScope(shield=True):  # cleanup must finish even during shutdown
            await self._stop_writer()
            if self._released:
                return
            self._released = True
            wconn, pool = self._wconn, self._pool
            self._wconn = self._pool = None
            if wconn is not None or pool is not None:
                try:
                    await self._bridge.run(_close_all, wconn, pool)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, BridgeClosed):
                    pass  # the server went away first; nothing left to release
            if self._own_bridge and isinstance(self._bridge, ThreadBridge):
                await self._bridge.aclose()

    # --- writes (group commit) --------------------------------------------------------------

    async def _write_group(self, ops: Sequence[WriteOp], ts: float) -> list[Outcome]:
        if self._released:
            raise JournalClosed("journal is closed")
        # Shielded: a transaction that started runs to COMMIT/ROLLBACK (see the module doc).
        outcomes: list[Outcome] = []
        with trio.CancelScope(shield=True), _mapped("commit failed"):
            outcomes = await self._bridge.run(self._write_group_async, list(ops), ts)
        return outcomes

    async def _write_group_async(self, ops: list[WriteOp], ts: float) -> list[Outcome]:
        conn = self._wconn
        if conn is None or conn.is_closed():  # reconnect after the server dropped us
            conn = self._wconn = await self._connect()
        try:
            async with conn.transaction():
                return await self._apply_group(conn, ops, ts, isolate=False)
        except _DataRejected:
            self._isolated_replays += 1
            async with conn.transaction():
                return await self._apply_group(conn, ops, ts, isolate=True)

    async def _apply_group(
        self, conn: asyncpg.Connection, ops: list[WriteOp], ts: float, *, isolate: bool
    ) -> list[Outcome]:
        last_pos: int = await conn.fetchval("SELECT last_pos FROM event_counter FOR UPDATE")
        batches = [op for op in ops if isinstance(op, Batch)]
        versions: dict[str, int] = {}
        known: set[str] = set()
        if batches:
            names = list({b.stream for b in batches})
            ids = list({o.op_id for b in batches for o in b.ops})
            for kind, key, version in await conn.fetch(_PRECHECK_SQL, names, ids):
                if kind == "s":
                    versions[key] = version
                else:
                    known.add(key)
        plan = _Planner(versions, known, last_pos)
        if not isolate:
            return await self._apply_together(conn, plan, ops, ts)
        return await self._apply_isolated(conn, plan, ops, ts)

    @staticmethod
    async def _apply_together(
        conn: asyncpg.Connection, plan: _Planner, ops: list[WriteOp], ts: float
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        w = _Writes()
        for op in ops:
            if isinstance(op, Snapshot):
                _add_snapshot(w, op)
                outcomes.append(None)
            else:
                conflict = plan.check(op)
                outcomes.append(conflict if conflict is not None else plan.accept(op, w, ts))
        if not w.empty():
            try:
                await conn.execute(_WRITE_SQL, *w.args(plan.last_pos, ts))
            except _DATA_ERRORS as exc:
                raise _DataRejected from exc
        return outcomes

    @staticmethod
    async def _apply_isolated(
        conn: asyncpg.Connection, plan: _Planner, ops: list[WriteOp], ts: float
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for op in ops:
            w = _Writes()
            saved: tuple[int, int | None] = (0, None)
            outcome: Outcome = None
            if isinstance(op, Snapshot):
                _add_snapshot(w, op)
            else:
                conflict = plan.check(op)
                if conflict is not None:
                    outcomes.append(conflict)
                    continue
                saved = (plan.last_pos, plan.versions.get(op.stream))
                outcome = plan.accept(op, w, ts)
            try:
                async with conn.transaction():  # nested: a SAVEPOINT
                    if not w.empty():
                        await conn.execute(_WRITE_SQL, *w.args(plan.last_pos, ts))
            except _DATA_ERRORS as exc:
                if isinstance(op, Batch):
                    plan.undo(op, saved)
                err = JournalError(f"rejected by the store: {exc!r}")
                err.__cause__ = exc
                outcome = err
            outcomes.append(outcome)
        return outcomes

    # --- reads ------------------------------------------------------------------------------

    async def _read(self, fn: Callable[..., Any], *args: Any) -> Any:
        pool = self._pool
        if pool is None or not self._opened:
            raise JournalClosed("journal is not open")
        result: Any = None
        with _mapped("read failed"):
            result = await self._bridge.run(fn, pool, *args)
        return result

    async def read(
        self, stream: str, from_version: int = 1, limit: int | None = None
    ) -> list[StoredEvent]:
        result: list[StoredEvent] = await self._read(_q_read, stream, from_version, limit)
        return result

    async def read_all(self, from_global_pos: int = 1, limit: int = 1000) -> list[StoredEvent]:
        result: list[StoredEvent] = await self._read(_q_read_all, from_global_pos, limit)
        return result

    async def stream_version(self, stream: str) -> int:
        result: int = await self._read(_q_stream_version, stream)
        return result

    async def lookup_ops(self, op_ids: Sequence[str]) -> dict[str, OpRecord]:
        wanted = list(dict.fromkeys(op_ids))
        if not wanted:
            return {}
        result: dict[str, OpRecord] = await self._read(_q_lookup_ops, wanted)
        return result

    async def due_timers(self, until: float, limit: int = 1000) -> list[Timer]:
        result: list[Timer] = await self._read(_q_due_timers, until, limit)
        return result

    async def next_timer_due(self) -> float | None:
        result: float | None = await self._read(_q_next_timer_due)
        return result

    async def list_timers(self, prefix: str) -> list[Timer]:
        result: list[Timer] = await self._read(_q_list_timers, prefix, _prefix_upper(prefix))
        return result

    async def load_snapshot(self, stream: str) -> Snapshot | None:
        result: Snapshot | None = await self._read(_q_load_snapshot, stream)
        return result

    async def list_streams(self, prefix: str) -> list[str]:
        result: list[str] = await self._read(_q_list_streams, prefix, _prefix_upper(prefix))
        return result

    async def read_streams(self, streams: Sequence[str]) -> list[StoredEvent]:
        result: list[StoredEvent] = await self._read(_q_read_streams, sorted(set(streams)))
        return result

    async def read_prefix(
        self, prefix: str, after: tuple[str, int] = ("", 0), limit: int = 1000
    ) -> list[StoredEvent]:
        lower = max(after, (prefix, 0))
        result: list[StoredEvent] = await self._read(
            _q_read_prefix, lower, _prefix_upper(prefix), limit
        )
        return result

    # --- introspection (tests, ops) ---------------------------------------------------------

    async def applied_migrations(self) -> list[int]:
        result: list[int] = await self._read(_q_migrations)
        return result

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out["store"] = "postgres"
        out["isolated_replays"] = self._isolated_replays
        return out


@contextmanager
def _mapped(what: str) -> Iterator[None]:
    """Map driver errors to JournalError at the seam (the cause stays chained)."""
    try:
        yield
    except BridgeClosed as exc:
        raise JournalClosed(f"{what}: the asyncio bridge is closed") from exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        raise JournalError(f"{what}: {exc!r}") from exc


# --- coroutines run on the asyncio side of the bridge ----------------------------------------


async def _migrate(conn: asyncpg.Connection, schema: str, migrations: list[Migration]) -> str:
    """Apply missing migrations under an advisory lock; make sure an epoch exists; return it."""
    q = _quote_ident(schema)
    async with conn.transaction():
        # Held to the end of this transaction: a second node starting now waits here, then
        # finds everything applied.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "omnitill.journal:" + schema
        )
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {q}")
        await conn.execute(f"SET LOCAL search_path TO {q}")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at DOUBLE PRECISION NOT NULL)"
        )
        applied = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for mig in migrations:
            if mig.version in applied:
                continue
            await conn.execute(mig.sql)  # no arguments: simple protocol, several statements
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                mig.version, mig.name, time.time(),
            )
        await conn.execute(
            "INSERT INTO meta (key, value) VALUES ('epoch', $1) ON CONFLICT (key) DO NOTHING",
            uuid.uuid4().hex,
        )
        epoch: str = await conn.fetchval("SELECT value FROM meta WHERE key = 'epoch'")
    return epoch


async def _close_all(conn: asyncpg.Connection | None, pool: asyncpg.Pool | None) -> None:
    if pool is not None:
        await pool.close()
    if conn is not None:
        await conn.close()


async def _q_read(
    pool: asyncpg.Pool, stream: str, from_version: int, limit: int | None
) -> list[StoredEvent]:
    rows = await pool.fetch(
        f"SELECT {_EVENT_COLS} FROM events WHERE stream = $1 AND version >= $2"
        " ORDER BY version LIMIT $3",
        stream, from_version, limit,  # LIMIT NULL = no limit
    )
    return [_event(r) for r in rows]


async def _q_read_streams(pool: asyncpg.Pool, names: list[str]) -> list[StoredEvent]:
    rows = await pool.fetch(
        f"SELECT {_EVENT_COLS} FROM events WHERE stream = ANY($1::text[])"
        " ORDER BY stream, version",
        names,
    )
    return [_event(r) for r in rows]


async def _q_read_prefix(
    pool: asyncpg.Pool, lower: tuple[str, int], upper: str | None, limit: int
) -> list[StoredEvent]:
    # A range scan of the (stream, version) unique index, resumed after the last row seen.
    rows = await pool.fetch(
        f"SELECT {_EVENT_COLS} FROM events WHERE (stream, version) > ($1, $2)"
        " AND ($3::text IS NULL OR stream < $3) ORDER BY stream, version LIMIT $4",
        lower[0], lower[1], upper, limit,
    )
    return [_event(r) for r in rows]


async def _q_read_all(pool: asyncpg.Pool, from_pos: int, limit: int) -> list[StoredEvent]:
    rows = await pool.fetch(
        f"SELECT {_EVENT_COLS} FROM events WHERE global_pos >= $1 ORDER BY global_pos LIMIT $2",
        from_pos, max(limit, 0),
    )
    return [_event(r) for r in rows]


async def _q_stream_version(pool: asyncpg.Pool, stream: str) -> int:
    v = await pool.fetchval("SELECT version FROM streams WHERE stream = $1", stream)
    return int(v) if v is not None else 0


async def _q_lookup_ops(pool: asyncpg.Pool, ids: list[str]) -> dict[str, OpRecord]:
    rows = await pool.fetch(
        "SELECT op_id, stream, payload_hash, ok, result FROM ops WHERE op_id = ANY($1::text[])",
        ids,
    )
    return {
        r[0]: OpRecord(op_id=r[0], stream=r[1], payload_hash=r[2], ok=r[3], result=bytes(r[4]))
        for r in rows
    }


async def _q_due_timers(pool: asyncpg.Pool, until: float, limit: int) -> list[Timer]:
    rows = await pool.fetch(
        "SELECT actor_key, timer_id, due_at, payload FROM timers WHERE due_at <= $1"
        " ORDER BY due_at, actor_key, timer_id LIMIT $2",
        until, max(limit, 0),
    )
    return [Timer(timer_id=r[1], actor_key=r[0], due_at=r[2], payload=bytes(r[3])) for r in rows]


async def _q_list_timers(pool: asyncpg.Pool, prefix: str, upper: str | None) -> list[Timer]:
    # A range scan on the primary key (actor_key, timer_id).
    rows = await pool.fetch(
        "SELECT actor_key, timer_id, due_at, payload FROM timers WHERE actor_key >= $1"
        " AND ($2::text IS NULL OR actor_key < $2) ORDER BY actor_key, timer_id",
        prefix, upper,
    )
    return [Timer(timer_id=r[1], actor_key=r[0], due_at=r[2], payload=bytes(r[3])) for r in rows]


async def _q_next_timer_due(pool: asyncpg.Pool) -> float | None:
    due: float | None = await pool.fetchval("SELECT min(due_at) FROM timers")
    return due


async def _q_load_snapshot(pool: asyncpg.Pool, stream: str) -> Snapshot | None:
    row = await pool.fetchrow("SELECT version, state FROM snapshots WHERE stream = $1", stream)
    return None if row is None else Snapshot(stream=stream, version=row[0], state=bytes(row[1]))


async def _q_list_streams(pool: asyncpg.Pool, prefix: str, upper: str | None) -> list[str]:
    # A range scan on the primary key (COLLATE "C": code point order, like sorted()).
    if upper is None:
        rows = await pool.fetch(
            "SELECT stream FROM streams WHERE stream >= $1 ORDER BY stream", prefix
        )
    else:
        rows = await pool.fetch(
            "SELECT stream FROM streams WHERE stream >= $1 AND stream < $2 ORDER BY stream",
            prefix, upper,
        )
    return [r[0] for r in rows]


async def _q_migrations(pool: asyncpg.Pool) -> list[int]:
    rows = await pool.fetch("SELECT version FROM schema_migrations ORDER BY version")
    return [r[0] for r in rows]


if TYPE_CHECKING:

    def _implements_protocol(j: PostgresJournal) -> Journal:  # mypy checks the Protocol here
        return j
