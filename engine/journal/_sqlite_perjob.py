"""A journal group applied the careful way: each job pre-checked and applied inside its own
SAVEPOINT, so a job that fails -- a stale expected_version, an op_id stored earlier, data the
database rejects -- is rolled back alone and the rest of the group commits.

The writer takes this path when the optimistic one (`_sqlite_bulk.py`) refused the group.
Like it, `stage_per_job` leaves the transaction open for the caller's COMMIT.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from ._group import Outcome, WriteOp
from .base import AppendResult, Batch, JournalError, Snapshot, VersionConflict

__all__ = ["stage_per_job", "stream_version"]


def stage_per_job(conn: sqlite3.Connection, ops: Sequence[WriteOp], ts: float) -> list[Outcome]:
    """The careful path: each job in its own savepoint, so a bad one fails alone."""
    outcomes: list[Outcome] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        next_pos = (row[0] if row else 0) + 1
        for op in ops:
            if isinstance(op, Snapshot):
                outcome: Outcome = _in_savepoint(conn, _save_snapshot, op)
            else:
                outcome = _precheck(conn, op)
                if outcome is None:
                    outcome = _in_savepoint(conn, _apply_batch, op, next_pos, ts)
                if isinstance(outcome, AppendResult):
                    next_pos += len(op.events)
            outcomes.append(outcome)
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _in_savepoint(conn: sqlite3.Connection, fn: Callable[..., Outcome], *args: Any) -> Outcome:
    conn.execute("SAVEPOINT job")
    try:
        outcome = fn(conn, *args)
    except _OpStored:
        # An op_id already stored: the caller reloads and answers it from the op table.
        conn.execute("ROLLBACK TO job")
        conn.execute("RELEASE job")
        batch = args[0]
        return VersionConflict(batch.stream, batch.expected_version, batch.expected_version)
    except (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError,
            sqlite3.DataError, TypeError, ValueError) as exc:
        # This job's data was rejected: undo it alone, keep the group going.
        conn.execute("ROLLBACK TO job")
        conn.execute("RELEASE job")
        err = JournalError(f"rejected by the store: {exc!r}")
        err.__cause__ = exc
        return err
    conn.execute("RELEASE job")
    return outcome


def _precheck(conn: sqlite3.Connection, batch: Batch) -> VersionConflict | None:
    """The reasons a batch is refused up front: a stale expected_version, or an op_id twice
    in the batch. An op_id stored earlier is caught by the op table's primary key when the
    batch inserts it (`_apply_batch`): no lookup per op on the hot path."""
    current = stream_version(conn, batch.stream)
    if current != batch.expected_version:
        return VersionConflict(batch.stream, batch.expected_version, current)
    if batch.ops:
        ids = [op.op_id for op in batch.ops]
        if len(set(ids)) != len(ids):
            return VersionConflict(batch.stream, batch.expected_version, current)
    return None


class _OpStored(Exception):
    """An op_id of the batch is in the op table already (its savepoint is rolled back)."""


def _apply_batch(conn: sqlite3.Connection, batch: Batch, first_pos: int, ts: float) -> AppendResult:
    version = batch.expected_version
    if batch.events:
        rows = []
        for i, (typ, data) in enumerate(batch.events):
            rows.append((first_pos + i, batch.stream, version + i + 1, typ, data, ts))
        conn.executemany(
            "INSERT INTO events (global_pos, stream, version, type, data, ts)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        version += len(batch.events)
        conn.execute(
            "INSERT INTO streams (stream, version) VALUES (?, ?)"
            " ON CONFLICT (stream) DO UPDATE SET version = excluded.version",
            (batch.stream, version),
        )
    if batch.ops:
        try:
            conn.executemany(
                "INSERT INTO ops (op_id, stream, payload_hash, ok, result, ts)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(op.op_id, op.stream, op.payload_hash, int(op.ok), op.result, ts)
                 for op in batch.ops],
            )
        except sqlite3.IntegrityError:
            raise _OpStored from None
    if batch.timers_cleared:
        conn.executemany(
            "DELETE FROM timers WHERE actor_key = ? AND timer_id = ?",
            [(key, tid) for key, tid in batch.timers_cleared],
        )
    if batch.timers_set:
        conn.executemany(
            "INSERT OR REPLACE INTO timers (actor_key, timer_id, due_at, payload)"
            " VALUES (?, ?, ?, ?)",
            [(t.actor_key, t.timer_id, t.due_at, t.payload) for t in batch.timers_set],
        )
    return AppendResult(
        stream=batch.stream,
        version=version,
        first_global_pos=first_pos if batch.events else 0,
        ts=ts,
    )


def _save_snapshot(conn: sqlite3.Connection, snap: Snapshot) -> None:
    conn.execute(
        "INSERT INTO snapshots (stream, version, state) VALUES (?, ?, ?)"
        " ON CONFLICT (stream) DO UPDATE SET version = excluded.version, state = excluded.state"
        " WHERE excluded.version >= snapshots.version",
        (snap.stream, snap.version, snap.state),
    )


def stream_version(conn: sqlite3.Connection, stream: str) -> int:
    row = conn.execute("SELECT version FROM streams WHERE stream = ?", (stream,)).fetchone()
    return int(row[0]) if row else 0
