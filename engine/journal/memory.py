"""In-process journal with the same semantics as the SQLite one, for fast tests.

It runs the same group-commit writer (`_group.py`), so grouping, conflicts inside a group,
back-pressure and close/cancel behaviour match the real stores. A group's "transaction" is
applied synchronously after one checkpoint: cancellation can only land before it starts.

State lives in a `MemoryStore`; pass the same store to a new `MemoryJournal` to simulate a
restart of the engine over a durable store (the contract suite's reopen test does this).
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import trio

from ._group import GroupCommitJournal, Outcome, WriteOp
from .base import (
    AppendResult,
    Batch,
    Journal,
    JournalClosed,
    OpRecord,
    Snapshot,
    StoredEvent,
    Timer,
    VersionConflict,
)

__all__ = ["MemoryJournal", "MemoryStore"]


class MemoryStore:
    """The durable part of a MemoryJournal."""

    def __init__(self) -> None:
        self.epoch = uuid.uuid4().hex
        self.events: list[StoredEvent] = []  # index i holds global_pos i + 1
        self.by_stream: dict[str, list[StoredEvent]] = {}  # index i holds version i + 1
        self.ops: dict[str, OpRecord] = {}
        self.timers: dict[tuple[str, str], Timer] = {}
        self.snapshots: dict[str, Snapshot] = {}


class MemoryJournal(GroupCommitJournal):
    def __init__(self, store: MemoryStore | None = None, *, max_group: int = 512) -> None:
        super().__init__(max_group=max_group)
        self.store = store if store is not None else MemoryStore()
        self._opened = False
        self._closed = False

    @property
    def epoch(self) -> str:
        return self.store.epoch

    async def open(self) -> None:
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise JournalClosed("journal is closed")
        self._opened = True

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if not self._opened:
            raise RuntimeError("call open() before run()")
        await self._run_writer(task_status)

    async def close(self) -> None:
        with trio.CancelScope(shield=True):
            await self._stop_writer()
        self._closed = True

    # --- writes -----------------------------------------------------------------------------

    async def _write_group(self, ops: Sequence[WriteOp], ts: float) -> list[Outcome]:
        await trio.lowlevel.checkpoint()  # the only place a cancel can land: before applying
        outcomes: list[Outcome] = []
        for op in ops:
            if isinstance(op, Snapshot):
                old = self.store.snapshots.get(op.stream)
                if old is None or op.version >= old.version:
                    self.store.snapshots[op.stream] = op
                outcomes.append(None)
            else:
                conflict = self._precheck(op)
                outcomes.append(conflict if conflict is not None else self._apply(op, ts))
        return outcomes

    def _precheck(self, batch: Batch) -> VersionConflict | None:
        current = len(self.store.by_stream.get(batch.stream, ()))
        if current != batch.expected_version:
            return VersionConflict(batch.stream, batch.expected_version, current)
        ids = [op.op_id for op in batch.ops]
        if len(set(ids)) != len(ids) or any(i in self.store.ops for i in ids):
            return VersionConflict(batch.stream, batch.expected_version, current)
        return None

    def _apply(self, batch: Batch, ts: float) -> AppendResult:
        s = self.store
        first_pos = len(s.events) + 1
        version = batch.expected_version
        if batch.events:
            stream_events = s.by_stream.setdefault(batch.stream, [])
            for typ, data in batch.events:
                version += 1
                ev = StoredEvent(
                    stream=batch.stream, version=version, type=typ, data=data, ts=ts,
                    global_pos=len(s.events) + 1,
                )
                s.events.append(ev)
                stream_events.append(ev)
        for op in batch.ops:
            s.ops[op.op_id] = op
        for key in batch.timers_cleared:
            s.timers.pop((key[0], key[1]), None)
        for t in batch.timers_set:
            s.timers[(t.actor_key, t.timer_id)] = t
        return AppendResult(
            stream=batch.stream,
            version=version,
            first_global_pos=first_pos if batch.events else 0,
            ts=ts,
        )

    # --- reads ------------------------------------------------------------------------------

    async def _checkpoint(self) -> None:
        await trio.lowlevel.checkpoint()
        if self._closed or not self._opened:
            raise JournalClosed("journal is not open")

    async def read(
        self, stream: str, from_version: int = 1, limit: int | None = None
    ) -> list[StoredEvent]:
        await self._checkpoint()
        events = self.store.by_stream.get(stream, [])
        start = max(from_version, 1) - 1
        return events[start:] if limit is None else events[start : start + max(limit, 0)]

    async def read_all(self, from_global_pos: int = 1, limit: int = 1000) -> list[StoredEvent]:
        await self._checkpoint()
        start = max(from_global_pos, 1) - 1
        return self.store.events[start : start + max(limit, 0)]

    async def stream_version(self, stream: str) -> int:
        await self._checkpoint()
        return len(self.store.by_stream.get(stream, ()))

    async def lookup_ops(self, op_ids: Sequence[str]) -> dict[str, OpRecord]:
        await self._checkpoint()
        return {i: self.store.ops[i] for i in op_ids if i in self.store.ops}

    async def due_timers(self, until: float, limit: int = 1000) -> list[Timer]:
        await self._checkpoint()
        due = [t for t in self.store.timers.values() if t.due_at <= until]
        due.sort(key=lambda t: (t.due_at, t.actor_key, t.timer_id))
        return due[: max(limit, 0)]

    async def next_timer_due(self) -> float | None:
        await self._checkpoint()
        return min((t.due_at for t in self.store.timers.values()), default=None)

    async def list_timers(self, prefix: str) -> list[Timer]:
        await self._checkpoint()
        return [self.store.timers[k] for k in sorted(self.store.timers) if k[0].startswith(prefix)]

    async def load_snapshot(self, stream: str) -> Snapshot | None:
        await self._checkpoint()
        return self.store.snapshots.get(stream)

    async def list_streams(self, prefix: str) -> list[str]:
        await self._checkpoint()
        names = sorted(self.store.by_stream)
        start = bisect.bisect_left(names, prefix)
        out: list[str] = []
        for name in names[start:]:
            if not name.startswith(prefix):
                break
            out.append(name)
        return out

    async def read_streams(self, streams: Sequence[str]) -> list[StoredEvent]:
        await self._checkpoint()
        return [e for name in sorted(set(streams)) for e in self.store.by_stream.get(name, ())]

    async def read_prefix(
        self, prefix: str, after: tuple[str, int] = ("", 0), limit: int = 1000
    ) -> list[StoredEvent]:
        out: list[StoredEvent] = []
        for name in await self.list_streams(prefix):
            if name < after[0]:
                continue
            for e in self.store.by_stream[name]:
                if (name, e.version) > after:
                    out.append(e)
                    if len(out) >= limit:
                        return out
        return out

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out["store"] = "memory"
        return out


if TYPE_CHECKING:

    def _implements_protocol(j: MemoryJournal) -> Journal:  # mypy checks the Protocol here
        return j
