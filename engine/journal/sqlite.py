"""SQLite journal: the embedded default store.

Theory of operation
-------------------
One database file in WAL mode. WAL lets readers run while the writer commits, and makes a
commit one append to the -wal file (plus an fsync) instead of a rewrite of the database pages.

Writes: all of them go through the group-commit writer (`_group.py`): one writer connection.
A group is applied in one `BEGIN IMMEDIATE ... COMMIT`, first the optimistic way
(`_sqlite_bulk.py`): every event, op record, stream version and timer of the whole group in a
handful of multi-row statements, whatever the group's size. If that path refuses the group (an
op_id stored earlier, data the database rejects), it is rolled back and applied the careful
way (`_sqlite_perjob.py`): each job pre-checked (stream version, op_ids) and applied inside
its own SAVEPOINT, so the job that fails -- a conflict, or bad data -- is rolled back alone
while the rest commits.

By default (`writer="inline"`) the statements run on the trio thread itself. That is far
cheaper than a worker thread: Python's sqlite3 releases the GIL around every `sqlite3_step`,
and a worker thread must win the GIL back from the busy trio thread each time (up to the 5 ms
switch interval: the "GIL convoy"; measured on the hot-SKU bench with one step per row:
commits averaged 19 ms in a worker thread against well under 1 ms inline). The COMMIT -- the
WAL write of every dirty page, and the fsync -- is one step: a group of
COMMIT_IN_THREAD_MIN_JOBS jobs or more commits in a worker thread while the loop goes on
(orders: 15-20 jobs per group, each dirtying pages all over the stream and op indexes; +10-15%
orders/s measured side by side). A narrower group commits inline: its COMMIT is short, and a
thread hop (several ms on a busy loop) would lengthen the cycle of the one hot actor waiting
on it (hot SKU: -8% holds/s measured when every group went to the thread). The worker thread
is not abandoned on cancellation (trio's default), so a transaction that started always runs
to COMMIT or ROLLBACK before the writer task sees Cancelled.
`writer="thread"` (env OMNITILL_SQLITE_WRITER=thread) runs whole groups in a worker thread,
for disks whose fsync takes several ms: there the loop must not wait on the disk. There the
connection is used only from worker threads that hold `_write_limiter` (a CapacityLimiter(1)),
so exactly one thread touches it at a time.
`writer="process"` (OMNITILL_SQLITE_WRITER=process) runs the writer in a child process with
a GIL of its own (`_sqlite_proc.py`): one frame per group over a pipe, and none of SQLite's
work on the loop's thread or under its GIL (orders benchmark: 0.52-0.66 instead of
0.67-0.86 ms of engine CPU per order, ~8 % more orders/s; hot SKU unchanged). The parent
keeps the migrations, the read pool and the checkpointer.

SQLite's automatic WAL checkpoint is off on the writer connection: it runs inside a COMMIT now
and then (copying ~1,000 pages back and syncing the database file) and would stall the writer
for it. A checkpointer task runs a PASSIVE checkpoint every CHECKPOINT_EVERY_S instead, from
its own connection in a worker thread (one `sqlite3_step`, so one GIL hand-back), alongside the
writer (WAL allows that).

Global positions: the writer holds the write lock, so it reads the AUTOINCREMENT counter once
per group and numbers the group's events itself. A rolled-back
savepoint rolls back its events and the counter together, so positions have no gaps.

Reads: a small pool of read connections (`query_only`), each checked out by one trio task and
used by one worker thread at a time. Every read is a single statement, so in WAL mode it sees
one committed snapshot and never blocks, nor is blocked by, the writer.

Durability: `synchronous=FULL` by default. In WAL mode NORMAL skips the fsync at each commit
(only checkpoints sync), so a power loss or OS crash can lose the last commits -- acks that were
already sent, breaking invariant 2. With group commit one fsync covers a whole group; see
bench/journal_bench.py for what FULL costs here (it is small relative to the group). NORMAL is
still available for throwaway/dev databases.

Schema changes are numbered migrations (`MIGRATIONS`), applied in order at `open()` in one
transaction and recorded in `schema_migrations`; re-opening applies nothing twice.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import trio

from ._group import GroupCommitJournal, Outcome, WriteOp
from ._sqlite_bulk import BULK_CACHE_STATEMENTS, apply_group
from ._sqlite_perjob import stage_per_job, stream_version
from ._sqlite_proc import WriterProcess
from .base import (
    Journal,
    JournalClosed,
    JournalError,
    OpRecord,
    Snapshot,
    StoredEvent,
    Timer,
)

__all__ = ["MIGRATIONS", "SqliteJournal"]

log = logging.getLogger("omnitill.journal")

T = TypeVar("T")

# (version, name, statements). Append only: never edit a migration that has shipped.
MIGRATIONS: list[tuple[int, str, tuple[str, ...]]] = [
    (
        1,
        "initial schema",
        (
            """CREATE TABLE events (
                global_pos INTEGER PRIMARY KEY AUTOINCREMENT,
                stream     TEXT    NOT NULL,
                version    INTEGER NOT NULL,
                type       TEXT    NOT NULL,
                data       BLOB    NOT NULL,
                ts         REAL    NOT NULL,
                UNIQUE (stream, version)
            )""",
            """CREATE TABLE streams (
                stream  TEXT PRIMARY KEY,
                version INTEGER NOT NULL
            ) WITHOUT ROWID""",
            """CREATE TABLE ops (
                op_id        TEXT PRIMARY KEY,
                stream       TEXT    NOT NULL,
                payload_hash TEXT    NOT NULL,
                ok           INTEGER NOT NULL,
                result       BLOB    NOT NULL,
                ts           REAL    NOT NULL
            ) WITHOUT ROWID""",
            """CREATE TABLE timers (
                actor_key TEXT NOT NULL,
                timer_id  TEXT NOT NULL,
                due_at    REAL NOT NULL,
                payload   BLOB NOT NULL,
                PRIMARY KEY (actor_key, timer_id)
            ) WITHOUT ROWID""",
            "CREATE INDEX timers_due_at ON timers (due_at)",
            """CREATE TABLE snapshots (
                stream  TEXT PRIMARY KEY,
                version INTEGER NOT NULL,
                state   BLOB    NOT NULL
            ) WITHOUT ROWID""",
            """CREATE TABLE meta (
                key   TEXT PRIMARY KEY,
                value TEXT NOT NULL
            ) WITHOUT ROWID""",
        ),
    ),
]

_IN_CHUNK = 500  # bound on `?` parameters per IN (...) query

_EVENT_COLS = "global_pos, stream, version, type, data, ts"


def _event(row: tuple[Any, ...]) -> StoredEvent:
    pos, stream, version, typ, data, ts = row
    return StoredEvent(
        stream=stream, version=version, type=typ, data=bytes(data), ts=ts, global_pos=pos
    )


def _prefix_upper(prefix: str) -> str | None:
    """Smallest string greater than every string starting with `prefix` (None: no bound)."""
    chars = list(prefix)
    while chars and ord(chars[-1]) == 0x10FFFF:
        chars.pop()
    if not chars:
        return None
    nxt = ord(chars[-1]) + 1
    if 0xD800 <= nxt <= 0xDFFF:  # surrogates cannot be stored; skip to the next scalar value
        nxt = 0xE000
    chars[-1] = chr(nxt)
    return "".join(chars)


class SqliteJournal(GroupCommitJournal):
    """Journal on one SQLite file. `open()`, then `await nursery.start(j.run)`, then use it.

    `open()` only prepares the database (connections, migrations); trio has no background
    tasks, so the group-commit writer is `run()`, which the owner starts in its own nursery.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_group: int = 512,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        readers: int = 2,
        writer: Literal["inline", "thread", "process"] = "inline",
    ) -> None:
        super().__init__(max_group=max_group)
        if writer not in ("inline", "thread", "process"):
            raise ValueError("writer must be 'inline', 'thread' or 'process'")
        self._writer_mode = writer
        self._inline_writer = writer == "inline"
        # writer="process": the child that writes (`_sqlite_proc.py`), started on first use
        self._writer_proc = (
            WriterProcess(os.fspath(path), synchronous) if writer == "process" else None
        )
        self._path = os.fspath(path)
        if self._path == ":memory:" or self._path.startswith("file::memory:"):
            raise ValueError("SqliteJournal needs a file (WAL and several connections)")
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError("synchronous must be 'FULL' or 'NORMAL'")
        if readers < 1:
            raise ValueError("readers must be >= 1")
        self._synchronous = synchronous
        self._n_readers = readers
        self._write_limiter = trio.CapacityLimiter(1)
        self._ckpt_limiter = trio.CapacityLimiter(1)
        self._read_limiter = trio.CapacityLimiter(readers)
        self._pool_send, self._pool_recv = trio.open_memory_channel[sqlite3.Connection](readers)
        self._wconn: sqlite3.Connection | None = None
        self._ckpt_conn: sqlite3.Connection | None = None  # inline mode's checkpointer
        self._released = False
        self.checkpoints = 0

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def path(self) -> str:
        return self._path

    async def open(self) -> None:
        if self._opened:
            return
        if self._released:
            raise JournalClosed("journal is closed")
        try:
            wconn, readers, epoch = await trio.to_thread.run_sync(
                self._open_sync, limiter=self._write_limiter
            )
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open {self._path!r}: {exc}") from exc
        self._wconn, self._epoch = wconn, epoch
        if self._writer_mode == "process":  # the child writes; the parent only migrated
            self._wconn = None
            await trio.to_thread.run_sync(wconn.close, limiter=self._write_limiter)
        for conn in readers:
            self._pool_send.send_nowait(conn)
        self._opened = True

    async def close(self) -> None:
        with trio.CancelScope(shield=True):  # cleanup must finish even during shutdown
            await self._stop_writer()
            if self._writer_proc is not None:
                await self._writer_proc.stop()
            if self._released:
                return
            self._released = True
            conns: list[sqlite3.Connection] = []
            if self._opened:
                for _ in range(self._n_readers):  # waits for in-flight reads to give them back
                    conns.append(await self._pool_recv.receive())
                if self._wconn is not None:
                    conns.append(self._wconn)
                self._wconn = None
                if self._ckpt_conn is not None:
                    conns.append(self._ckpt_conn)
                self._ckpt_conn = None
            self._pool_send.close()
            self._pool_recv.close()
            await trio.to_thread.run_sync(_close_all, conns, limiter=self._write_limiter)

    def _open_sync(self) -> tuple[sqlite3.Connection, list[sqlite3.Connection], str]:
        wconn = self._connect()
        try:
            mode = wconn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise JournalError(f"{self._path!r}: WAL mode unavailable (got {mode!r})")
            epoch = _migrate(wconn)
            # The op table is keyed by random op_ids: inserts touch pages all over its tree.
            # SQLite's default page cache (2 MiB) makes most of them reads once the table
            # outgrows it; 64 MiB keeps a few million op records' interior pages cached.
            wconn.execute(f"PRAGMA cache_size = -{_WRITER_CACHE_KIB}")
            if self._inline_writer:
                wconn.execute("PRAGMA busy_timeout = 0")  # never block the loop on a lock
            wconn.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpointer does it
            self._ckpt_conn = self._connect()
            readers = []
            for _ in range(self._n_readers):
                rconn = self._connect()
                rconn.execute("PRAGMA query_only=ON")
                readers.append(rconn)
        except BaseException:
            wconn.close()
            raise
        return wconn, readers, epoch

    def _connect(self) -> sqlite3.Connection:
        return _connect(self._path, self._synchronous)

    # --- writes (group commit) --------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The group-commit writer, plus the WAL checkpointer beside it."""
        if not self._opened:
            await super().run(task_status=task_status)  # (which refuses to run unopened)
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._checkpointer)
            await super().run(task_status=task_status)
            nursery.cancel_scope.cancel()

    async def _checkpointer(self) -> None:
        while True:
            await trio.sleep(CHECKPOINT_EVERY_S)
            conn = self._ckpt_conn
            if conn is None:
                return
            try:
                await trio.to_thread.run_sync(_checkpoint, conn, limiter=self._ckpt_limiter)
                self.checkpoints += 1
            except sqlite3.Error as exc:  # e.g. busy: the next round tries again
                log.warning("WAL checkpoint failed: %s", exc)

    async def _write_group(self, ops: Sequence[WriteOp], ts: float) -> list[Outcome]:
        if self._writer_proc is not None:
            return await self._writer_proc.write(ops, ts)
        if self._inline_writer:
            # The statements run on the trio thread (see the module docstring), the COMMIT --
            # the WAL write and the fsync, one `sqlite3_step` -- in a worker thread, while the
            # loop goes on. The writer connection has busy_timeout 0: if another process holds
            # the write lock (a backup, `omnitill seed`), BEGIN fails at once instead of
            # stalling the event loop, and this group waits for the lock in a worker thread.
            try:
                outcomes = self._stage_group(ops, ts)
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                return await trio.to_thread.run_sync(
                    self._write_group_waiting, ops, ts, limiter=self._write_limiter
                )
            if len(ops) < COMMIT_IN_THREAD_MIN_JOBS:
                self._commit_staged()
                await trio.lowlevel.cancel_shielded_checkpoint()
            else:
                # Not abandoned on cancel (trio's default): the COMMIT finishes or fails first.
                await trio.to_thread.run_sync(self._commit_staged, limiter=self._write_limiter)
            return outcomes
        return await trio.to_thread.run_sync(
            self._write_group_sync, ops, ts, limiter=self._write_limiter
        )

    def _write_group_waiting(self, ops: Sequence[WriteOp], ts: float) -> list[Outcome]:
        """Inline mode, database locked by someone else: wait for the lock (worker thread)."""
        conn = self._wconn
        if conn is None:
            raise JournalClosed("journal is closed")
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        try:
            return self._write_group_sync(ops, ts)
        finally:
            conn.execute("PRAGMA busy_timeout = 0")

    def _write_group_sync(self, ops: Sequence[WriteOp], ts: float) -> list[Outcome]:
        outcomes = self._stage_group(ops, ts)
        self._commit_staged()
        return outcomes

    def _stage_group(self, ops: Sequence[WriteOp], ts: float) -> list[Outcome]:
        """BEGIN and apply the group; the transaction is left open for `_commit_staged`."""
        conn = self._wconn
        if conn is None:
            raise JournalClosed("journal is closed")
        return stage_group(conn, ops, ts)

    def _commit_staged(self) -> None:
        conn = self._wconn
        if conn is None:
            raise JournalClosed("journal is closed")
        commit_staged(conn)

    # --- reads ------------------------------------------------------------------------------

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            conn = await self._pool_recv.receive()
        except (trio.ClosedResourceError, trio.EndOfChannel) as exc:
            raise JournalClosed("journal is closed") from exc
        try:
            return await trio.to_thread.run_sync(fn, conn, limiter=self._read_limiter)
        except sqlite3.Error as exc:
            raise JournalError(f"read failed: {exc}") from exc
        finally:
            self._pool_send.send_nowait(conn)

    async def read(
        self, stream: str, from_version: int = 1, limit: int | None = None
    ) -> list[StoredEvent]:
        def q(conn: sqlite3.Connection) -> list[StoredEvent]:
            rows = conn.execute(
                f"SELECT {_EVENT_COLS} FROM events WHERE stream = ? AND version >= ?"
                " ORDER BY version LIMIT ?",
                (stream, from_version, -1 if limit is None else limit),
            ).fetchall()
            return [_event(r) for r in rows]

        return await self._read(q)

    async def read_all(self, from_global_pos: int = 1, limit: int = 1000) -> list[StoredEvent]:
        def q(conn: sqlite3.Connection) -> list[StoredEvent]:
            rows = conn.execute(
                f"SELECT {_EVENT_COLS} FROM events WHERE global_pos >= ?"
                " ORDER BY global_pos LIMIT ?",
                (from_global_pos, limit),
            ).fetchall()
            return [_event(r) for r in rows]

        return await self._read(q)

    async def stream_version(self, stream: str) -> int:
        return await self._read(lambda conn: stream_version(conn, stream))

    async def lookup_ops(self, op_ids: Sequence[str]) -> dict[str, OpRecord]:
        wanted = list(dict.fromkeys(op_ids))

        def q(conn: sqlite3.Connection) -> dict[str, OpRecord]:
            found: dict[str, OpRecord] = {}
            for i in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[i : i + _IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                for op_id, stream, phash, ok, result in conn.execute(
                    "SELECT op_id, stream, payload_hash, ok, result FROM ops"
                    f" WHERE op_id IN ({marks})",
                    chunk,
                ):
                    found[op_id] = OpRecord(
                        op_id=op_id, stream=stream, payload_hash=phash, ok=bool(ok),
                        result=bytes(result),
                    )
            return found

        if not wanted:
            return {}
        return await self._read(q)

    async def due_timers(self, until: float, limit: int = 1000) -> list[Timer]:
        def q(conn: sqlite3.Connection) -> list[Timer]:
            rows = conn.execute(
                "SELECT actor_key, timer_id, due_at, payload FROM timers WHERE due_at <= ?"
                " ORDER BY due_at, actor_key, timer_id LIMIT ?",
                (until, limit),
            ).fetchall()
            return [
                Timer(timer_id=tid, actor_key=key, due_at=due, payload=bytes(payload))
                for key, tid, due, payload in rows
            ]

        return await self._read(q)

    async def next_timer_due(self) -> float | None:
        def q(conn: sqlite3.Connection) -> float | None:
            due: float | None = conn.execute("SELECT min(due_at) FROM timers").fetchone()[0]
            return due

        return await self._read(q)

    async def list_timers(self, prefix: str) -> list[Timer]:
        upper = _prefix_upper(prefix)

        def q(conn: sqlite3.Connection) -> list[Timer]:
            # A range scan on the primary key (actor_key, timer_id).
            bound = "" if upper is None else " AND actor_key < ?"
            rows = conn.execute(
                "SELECT actor_key, timer_id, due_at, payload FROM timers WHERE actor_key >= ?"
                f"{bound} ORDER BY actor_key, timer_id",
                (prefix, *(() if upper is None else (upper,))),
            ).fetchall()
            return [
                Timer(timer_id=tid, actor_key=key, due_at=due, payload=bytes(payload))
                for key, tid, due, payload in rows
            ]

        return await self._read(q)

    async def load_snapshot(self, stream: str) -> Snapshot | None:
        def q(conn: sqlite3.Connection) -> Snapshot | None:
            row = conn.execute(
                "SELECT version, state FROM snapshots WHERE stream = ?", (stream,)
            ).fetchone()
            if row is None:
                return None
            return Snapshot(stream=stream, version=row[0], state=bytes(row[1]))

        return await self._read(q)

    async def list_streams(self, prefix: str) -> list[str]:
        upper = _prefix_upper(prefix)

        def q(conn: sqlite3.Connection) -> list[str]:
            # A range scan on the primary key (LIKE/GLOB would need escaping and a full scan).
            if upper is None:
                cur = conn.execute(
                    "SELECT stream FROM streams WHERE stream >= ? ORDER BY stream", (prefix,)
                )
            else:
                cur = conn.execute(
                    "SELECT stream FROM streams WHERE stream >= ? AND stream < ? ORDER BY stream",
                    (prefix, upper),
                )
            return [r[0] for r in cur]

        return await self._read(q)

    async def read_streams(self, streams: Sequence[str]) -> list[StoredEvent]:
        names = sorted(set(streams))

        def q(conn: sqlite3.Connection) -> list[StoredEvent]:
            out: list[StoredEvent] = []
            for i in range(0, len(names), _READ_STREAMS_CHUNK):  # bound the parameter count
                chunk = names[i : i + _READ_STREAMS_CHUNK]
                out += map(_event, conn.execute(
                    f"SELECT {_EVENT_COLS} FROM events WHERE stream IN"
                    f" ({','.join('?' * len(chunk))}) ORDER BY stream, version",
                    chunk,
                ))
            return out

        return await self._read(q)

    async def read_prefix(
        self, prefix: str, after: tuple[str, int] = ("", 0), limit: int = 1000
    ) -> list[StoredEvent]:
        upper = _prefix_upper(prefix)
        lower = max(after, (prefix, 0))

        def q(conn: sqlite3.Connection) -> list[StoredEvent]:
            # One range scan of the (stream, version) index, resumed after the last row seen.
            bound = "" if upper is None else " AND stream < ?"
            rows = conn.execute(
                f"SELECT {_EVENT_COLS} FROM events WHERE (stream, version) > (?, ?){bound}"
                " ORDER BY stream, version LIMIT ?",
                (*lower, *(() if upper is None else (upper,)), limit),
            ).fetchall()
            return [_event(r) for r in rows]

        return await self._read(q)

    # --- introspection (tests, ops) ---------------------------------------------------------

    async def pragma(self, name: str) -> Any:
        """Value of a read-only PRAGMA as the read connections see it (e.g. 'journal_mode')."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"bad pragma name {name!r}")
        return await self._read(lambda conn: conn.execute(f"PRAGMA {name}").fetchone()[0])

    async def applied_migrations(self) -> list[int]:
        def q(conn: sqlite3.Connection) -> list[int]:
            rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version")
            return [r[0] for r in rows]

        return await self._read(q)

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out["store"] = "sqlite"
        out["synchronous"] = self._synchronous
        out["writer"] = self._writer_mode
        out["checkpoints"] = self.checkpoints
        return out


# --- helpers run in worker threads -------------------------------------------------------------


_BUSY_TIMEOUT_MS = 10_000
CHECKPOINT_EVERY_S = 0.5
# A group of this many jobs or more COMMITs in a worker thread (see the module docstring).
COMMIT_IN_THREAD_MIN_JOBS = 4
_READ_STREAMS_CHUNK = 500  # stream names per `IN (...)`: far below SQLite's parameter limit


def stage_group(conn: sqlite3.Connection, ops: Sequence[WriteOp], ts: float) -> list[Outcome]:
    """BEGIN and apply the group (bulk, else per job); the transaction stays open."""
    outcomes = apply_group(conn, ops, ts)  # a few statements for the whole group
    if outcomes is None:
        outcomes = stage_per_job(conn, ops, ts)
    return outcomes


def commit_staged(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _connect(path: str, synchronous: str) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; the writer issues BEGIN/COMMIT itself.
    conn = sqlite3.connect(
        path, timeout=10.0, isolation_level=None, check_same_thread=False,
        cached_statements=BULK_CACHE_STATEMENTS,
    )
    conn.execute(f"PRAGMA synchronous={synchronous}")
    # Temporary files in memory: a multi-row INSERT inside a transaction keeps a statement
    # journal (the pages it changes, to undo just that statement), and with the default
    # (files) that was an open, a pwrite per page and an unlink on the event loop's thread
    # for every group: ~8,000 pwrites per 3 s of the orders benchmark.
    conn.execute("PRAGMA temp_store = MEMORY")
    return conn


def open_writer_connection(path: str, synchronous: str) -> sqlite3.Connection:
    """The writer process's connection (`_sqlite_proc.py`): the database is migrated already.
    It may wait for the write lock (it is not the event loop), and leaves checkpoints to the
    parent's checkpointer."""
    conn = _connect(path, synchronous)
    conn.execute(f"PRAGMA cache_size = -{_WRITER_CACHE_KIB}")
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    return conn


def _checkpoint(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
_WRITER_CACHE_KIB = 64 * 1024


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def _close_all(conns: list[sqlite3.Connection]) -> None:
    for conn in conns:
        conn.close()


def _migrate(conn: sqlite3.Connection) -> str:
    """Apply missing migrations and make sure an epoch exists; return the epoch."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    conn.execute("BEGIN IMMEDIATE")
    try:
        applied = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
        for version, name, statements in MIGRATIONS:
            if version in applied:
                continue
            for sql in statements:
                conn.execute(sql)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at)"
                " VALUES (?, ?, ?)",
                (version, name, time.time()),
            )
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?)", (uuid.uuid4().hex,)
        )
        epoch: str = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0]
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return epoch


if TYPE_CHECKING:

    def _implements_protocol(j: SqliteJournal) -> Journal:  # mypy checks the Protocol here
        return j
