"""The journal interface: append-only event streams with optimistic concurrency.

One implementation per store (SQLite embedded default, PostgreSQL for scale-out); both pass
the same test suite (tests/journal/). A `Batch` is what one actor writes after deciding a batch
of commands: events for its one stream, the op results that make those commands idempotent,
and durable timer changes -- all committed in one transaction, or none of it.

Implementations group-commit: batches from many actors that arrive together share one
transaction, and every caller is answered only after that transaction committed (invariant 2).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import msgspec
import trio

__all__ = [
    "AppendResult",
    "Batch",
    "Journal",
    "JournalClosed",
    "JournalError",
    "OpRecord",
    "Snapshot",
    "StoredEvent",
    "Timer",
    "VersionConflict",
    "streams_with_prefix",
]


class JournalError(Exception):
    """The store failed (I/O error, disk full, ...); the batch was NOT committed.

    Store-specific exceptions (sqlite3.Error, asyncpg errors) are mapped to this at the seam and
    chained as `__cause__`, so callers never import a driver to handle failures.
    """


class JournalClosed(JournalError):
    """The journal was closed (or its writer stopped) before the batch could be committed."""


class VersionConflict(Exception):
    """The stream moved past `expected_version`: another writer (or a stale owner) got there."""

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        super().__init__(f"stream {stream!r}: expected version {expected}, found {actual}")
        self.stream = stream
        self.expected = expected
        self.actual = actual


class StoredEvent(msgspec.Struct, frozen=True):
    stream: str
    version: int  # 1-based position inside the stream
    type: str  # event type tag, for readers that do not decode `data`
    data: bytes  # msgpack-encoded event Struct
    ts: float  # commit wall-clock time (unix seconds)
    global_pos: int = 0  # position in the whole journal (set by the store)


class OpRecord(msgspec.Struct, frozen=True):
    """The remembered outcome of one command: a retry with the same op_id gets `result` back."""

    op_id: str
    stream: str
    payload_hash: str  # hash of (command name, args): same op_id + other payload = conflict
    ok: bool
    result: bytes  # msgpack-encoded result dict (ack result, or reject {code,message,details})


class Timer(msgspec.Struct, frozen=True):
    """A durable timer: at `due_at` the engine delivers `payload` to the actor `actor_key`."""

    timer_id: str  # unique per actor_key; setting it again replaces it
    actor_key: str
    due_at: float  # unix seconds
    payload: bytes  # msgpack, meaning is the actor's


class Snapshot(msgspec.Struct, frozen=True):
    stream: str
    version: int
    state: bytes


class Batch(msgspec.Struct):
    stream: str
    expected_version: int  # the stream's version the events were decided against
    events: list[tuple[str, bytes]] = []  # (type, msgpack data)
    ops: list[OpRecord] = []
    timers_set: list[Timer] = []
    timers_cleared: list[tuple[str, str]] = []  # (actor_key, timer_id)


class AppendResult(msgspec.Struct, frozen=True):
    stream: str
    version: int  # stream version after the append
    first_global_pos: int  # global_pos of the batch's first event; 0 if it had no events
    ts: float


class Journal(Protocol):
    """What every store implements. All methods are trio-async and cancellation-safe."""

    @property
    def epoch(self) -> str:
        """Identity of this store's history; changes only if the store is wiped/recreated."""
        ...

    async def open(self) -> None:
        """Prepare the store (connect, create/migrate the schema). Does not start the writer."""
        ...

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The group-commit writer; runs until close() or cancellation.

        trio has no background tasks, so the owner starts it after open() with
        `await nursery.start(journal.run)`. Appends made before it runs wait in the queue.
        """
        ...

    async def close(self) -> None:
        """Commit what is already queued, stop the writer, release the store. Idempotent.

        Appends still waiting (or made later) raise JournalClosed.
        """
        ...

    async def append(self, batch: Batch) -> AppendResult:
        """Commit one batch atomically; raise VersionConflict if the stream moved on.

        If an op_id in `batch.ops` already exists the whole batch is rejected with
        VersionConflict too (the caller re-reads and answers from the stored op).
        A batch without events still checks `expected_version` and applies its ops/timers.
        Timer clears are applied before timer sets. Returns only after the commit; if the
        caller is cancelled while waiting, the batch may still commit.
        """
        ...

    async def read(
        self, stream: str, from_version: int = 1, limit: int | None = None
    ) -> list[StoredEvent]:
        """Events of `stream` with version >= from_version, in order."""
        ...

    async def read_all(self, from_global_pos: int = 1, limit: int = 1000) -> list[StoredEvent]:
        """Events of every stream with global_pos >= from_global_pos, in commit order."""
        ...

    async def stream_version(self, stream: str) -> int:
        """Current version of the stream (0 if it does not exist)."""
        ...

    async def lookup_ops(self, op_ids: Sequence[str]) -> dict[str, OpRecord]: ...

    async def due_timers(self, until: float, limit: int = 1000) -> list[Timer]:
        """Timers with due_at <= until, earliest first."""
        ...

    async def next_timer_due(self) -> float | None:
        """The earliest due_at of any timer, or None."""
        ...

    async def list_timers(self, prefix: str) -> list[Timer]:
        """Every timer whose actor key starts with `prefix`, by (actor_key, timer_id). Start-up
        uses it as an index: an open order keeps a timer row (parked far in the future when
        nothing is due), so the open orders are found without reading every order stream."""
        ...

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store the stream's snapshot; an older version never replaces a newer one."""
        ...

    async def load_snapshot(self, stream: str) -> Snapshot | None: ...

    async def list_streams(self, prefix: str) -> list[str]:
        """Names of streams starting with `prefix`, sorted (used at start-up by read models)."""
        ...

    async def read_prefix(
        self, prefix: str, after: tuple[str, int] = ("", 0), limit: int = 1000
    ) -> list[StoredEvent]:
        """Events of every stream starting with `prefix`, ordered by (stream, version), from
        just after the position `after` = (stream, version) on: one page of a scan that
        rebuilds many small streams at start-up without a read per stream."""
        ...

    async def read_streams(self, streams: Sequence[str]) -> list[StoredEvent]:
        """Every event of the named streams, ordered by (stream, version): one query for many
        small streams (start-up reads the open orders this way, a few hundred per call)."""
        ...

    def stats(self) -> dict[str, Any]:
        """Writer metrics for the ops dashboard: commits, batches, events, group sizes,
        commit latency histogram (`commit_ms_buckets`: cumulative [(le_ms, count)], last le inf).
        """
        ...


async def streams_with_prefix(
    journal: Journal, prefix: str, page: int = 5000
) -> AsyncIterator[tuple[str, list[StoredEvent]]]:
    """Every stream starting with `prefix` with all its events, in stream order, read in pages
    of `page` events (a stream may span pages: it is yielded once, whole)."""
    after = ("", 0)
    stream = ""
    events: list[StoredEvent] = []
    while True:
        rows = await journal.read_prefix(prefix, after, page)
        for row in rows:
            if row.stream != stream:
                if events:
                    yield stream, events
                stream, events = row.stream, []
            events.append(row)
        if len(rows) < page:
            break
        after = (rows[-1].stream, rows[-1].version)
    if events:
        yield stream, events
