"""One group of journal writes applied with a handful of SQL statements, whatever its size.

Theory of operation
-------------------
Python's sqlite3 releases the GIL around every `sqlite3_step`: once per row with
`executemany`. From a worker thread that is a GIL hand-back per row, and the busy trio thread
makes each hand-back wait (the "GIL convoy"). So the writer thread here turns a whole group
into multi-row statements: every event row of every batch in one `INSERT ... VALUES (...),
(...)`, every op record in another, the stream versions in one upsert, the timers in one
delete and one insert. A group costs about eight steps -- eight GIL hand-backs -- and SQLite's
own work (B-tree inserts, the WAL append, the fsync at COMMIT) runs in C with the GIL released,
in parallel with the event loop on the other core.

Statements are cached by the sqlite3 module by their text, so row counts are cut into
power-of-two chunks (150 rows: 128 + 16 + 4 + 2): a few dozen distinct statements in all.

It is the optimistic path. Stale `expected_version`s and op_ids repeated inside one batch are
found up front from one read of the stream versions (a stream appended to twice in one group
is checked in order), and those jobs are answered with `VersionConflict` and left out.
Anything else -- an op_id stored by an earlier group (the op table's primary key), data the
database rejects -- makes
`apply_group` return None with the transaction rolled back, and the caller applies the group
the careful way (one savepoint per job) so that only the guilty job fails.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from ._group import Outcome
from .base import AppendResult, Batch, Snapshot, VersionConflict

__all__ = ["BULK_CACHE_STATEMENTS", "apply_group"]

_MAX_CHUNK = 512  # rows per statement (x6 columns stays far below SQLite's 32,766 parameters)
BULK_CACHE_STATEMENTS = 256  # the writer connection's statement cache (sqlite3's default: 128)



def _chunks(rows: list[Any]) -> Iterator[list[Any]]:
    """Power-of-two slices of `rows`, largest first (so each size's SQL is cached)."""
    i, n = 0, len(rows)
    while i < n:
        size = min(_MAX_CHUNK, 1 << ((n - i).bit_length() - 1))
        yield rows[i : i + size]
        i += size


def _sql_cache(head: str, width: int, tail: str = "") -> dict[int, str]:
    group = "(" + ",".join("?" * width) + ")"
    sizes = [1 << k for k in range(_MAX_CHUNK.bit_length())]
    return {n: f"{head} VALUES {','.join([group] * n)}{tail}" for n in sizes}


# OR ROLLBACK: a refused row ends the whole transaction (the per-job path then finds whose it
# was), so SQLite keeps no statement journal -- a copy of every page a multi-row INSERT changes,
# kept only to undo that one statement -- for these statements.
_EVENTS_SQL = _sql_cache(
    "INSERT OR ROLLBACK INTO events (global_pos, stream, version, type, data, ts)", 6
)
_STREAMS_SQL = _sql_cache(
    "INSERT OR ROLLBACK INTO streams (stream, version)", 2,
    " ON CONFLICT (stream) DO UPDATE SET version = excluded.version",
)
_OPS_SQL = _sql_cache(
    "INSERT OR ROLLBACK INTO ops (op_id, stream, payload_hash, ok, result, ts)", 6
)
_TIMERS_SET_SQL = _sql_cache("INSERT OR REPLACE INTO timers (actor_key, timer_id, due_at, payload)", 4)
_TIMERS_CLEAR_SQL = {
    n: "DELETE FROM timers WHERE (actor_key, timer_id) IN (VALUES "
    + ",".join(["(?,?)"] * n) + ")"
    for n in (1 << k for k in range(_MAX_CHUNK.bit_length()))
}
_SNAPSHOT_SQL = (
    "INSERT INTO snapshots (stream, version, state) VALUES (?, ?, ?)"
    " ON CONFLICT (stream) DO UPDATE SET version = excluded.version, state = excluded.state"
    " WHERE excluded.version >= snapshots.version"
)


def _insert(conn: sqlite3.Connection, sql: dict[int, str], rows: list[tuple[Any, ...]]) -> None:
    for chunk in _chunks(rows):
        conn.execute(sql[len(chunk)], [v for row in chunk for v in row])


def _versions(conn: sqlite3.Connection, streams: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in _chunks(streams):
        marks = ",".join("?" * len(chunk))
        found.update(conn.execute(
            f"SELECT stream, version FROM streams WHERE stream IN ({marks})", chunk
        ).fetchall())
    return found


def apply_group(
    conn: sqlite3.Connection, ops: Sequence[Batch | Snapshot], ts: float
) -> list[Outcome] | None:
    """BEGIN and apply `ops` (the caller's conn, no transaction open); the caller COMMITs.

    Returns one outcome per op with the transaction open, or None with it rolled back when
    the group needs the per-job path (see the module docstring)."""
    streams = list({op.stream: None for op in ops if isinstance(op, Batch)})
    conn.execute("BEGIN IMMEDIATE")
    try:
        outcomes = _apply(conn, ops, streams, ts)
        if outcomes is None:
            if conn.in_transaction:  # (OR ROLLBACK statements have ended it already)
                conn.execute("ROLLBACK")
            return None
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _apply(
    conn: sqlite3.Connection, ops: Sequence[Batch | Snapshot], streams: list[str], ts: float
) -> list[Outcome] | None:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    next_pos = (row[0] if row else 0) + 1
    current = _versions(conn, streams) if streams else {}
    outcomes: list[Outcome] = []
    events: list[tuple[Any, ...]] = []
    stream_versions: dict[str, int] = {}  # the last word per stream
    op_rows: list[tuple[Any, ...]] = []
    # (actor_key, timer_id) -> its row, or None for cleared: the last word in the group wins
    timers: dict[tuple[str, str], tuple[Any, ...] | None] = {}
    snapshots: list[tuple[str, int, bytes]] = []
    for op in ops:
        if isinstance(op, Snapshot):
            snapshots.append((op.stream, op.version, op.state))
            outcomes.append(None)
            continue
        stream = op.stream
        version = op.expected_version
        # A stream appended to twice in one group (e.g. an actor restarted meanwhile): the
        # second batch must find the stream where the first left it.
        have = current.get(stream, 0)
        if have != version or (op.ops and len({o.op_id for o in op.ops}) != len(op.ops)):
            outcomes.append(VersionConflict(stream, version, have))
            continue
        first_pos = next_pos
        if op.events:
            for typ, data in op.events:
                version += 1
                events.append((next_pos, stream, version, typ, data, ts))
                next_pos += 1
            stream_versions[stream] = current[stream] = version
        for rec in op.ops:
            op_rows.append((rec.op_id, rec.stream, rec.payload_hash, int(rec.ok), rec.result, ts))
        for key in op.timers_cleared:
            timers[key] = None
        for t in op.timers_set:
            timers[(t.actor_key, t.timer_id)] = (t.actor_key, t.timer_id, t.due_at, t.payload)
        outcomes.append(AppendResult(
            stream=stream, version=version, first_global_pos=first_pos if op.events else 0, ts=ts,
        ))
    try:
        _insert(conn, _EVENTS_SQL, events)
        _insert(conn, _STREAMS_SQL, list(stream_versions.items()))
        _insert(conn, _OPS_SQL, op_rows)
        if timers:
            _insert(conn, _TIMERS_CLEAR_SQL, [k for k, v in timers.items() if v is None])
            _insert(conn, _TIMERS_SET_SQL, [v for v in timers.values() if v is not None])
        for snap in snapshots:
            conn.execute(_SNAPSHOT_SQL, snap)
    except (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError,
            sqlite3.DataError, TypeError, ValueError, OverflowError):
        return None  # someone's data (or a stored op_id) was refused: the per-job path finds whom
    return outcomes
