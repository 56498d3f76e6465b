"""The journal: append-only event streams with optimistic concurrency and group commit.

`SqliteJournal` is the embedded default; `MemoryJournal` has the same semantics in-process, for
tests of other components. Lifecycle for both::

    journal = SqliteJournal(path)
    await journal.open()                 # schema/migrations; no tasks started
    await nursery.start(journal.run)     # the group-commit writer
    ...
    await journal.close()                # commits what is queued, stops the writer
"""

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
    streams_with_prefix,
)
from .memory import MemoryJournal, MemoryStore
from .sqlite import SqliteJournal

__all__ = [
    "AppendResult",
    "Batch",
    "Journal",
    "JournalClosed",
    "JournalError",
    "MemoryJournal",
    "MemoryStore",
    "OpRecord",
    "Snapshot",
    "SqliteJournal",
    "StoredEvent",
    "Timer",
    "VersionConflict",
    "streams_with_prefix",
]
