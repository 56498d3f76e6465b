"""The stores the journal contract suite runs against.

Adding a store (e.g. PostgreSQL) = one entry in BACKENDS: a function that, given the test's
tmp_path, returns a `Backend` whose `make()` builds a new, unopened journal over the SAME
storage each time it is called (so tests can close and reopen it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from engine.journal import Journal, MemoryJournal, MemoryStore, SqliteJournal

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


def _memory(tmp_path: Path) -> Backend:
    store = MemoryStore()  # shared by every journal this backend makes: a "reopen" sees it
    return Backend("memory", lambda **kw: MemoryJournal(store, **kw))


BACKENDS: dict[str, Callable[[Path], Backend]] = {
    "sqlite": _sqlite,
    "memory": _memory,
}
