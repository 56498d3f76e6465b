"""Group commit: many callers, one writer task, one transaction per group.

Theory of operation
-------------------
Every write (`append`, `save_snapshot`) becomes a `_Job` that the caller puts on a bounded trio
memory channel and then waits on the job's `trio.Event`. A single writer task (`run`, started by
the owner with `await nursery.start(journal.run)`) takes the first queued job plus everything
else already queued, up to `max_group`, and hands the whole group to the store's
`_write_group`, which applies every job in ONE transaction and commits once. A job that must
fail (stale `expected_version`, duplicate `op_id`, bad data) gets its own exception as its
outcome; the other jobs of the group still commit. Only after `_write_group` returned (the
commit is done) does the writer set each job's event, so a caller is never answered before its
data is durable (invariant 2, "ack means durable").

Grouping needs no timer: while one transaction commits (an fsync, ~ms), new jobs pile up in the
channel and form the next group. Under no load a group is one job and latency is one commit.

Back-pressure: the channel is bounded, so when the writer falls behind `append` blocks in
`send` instead of queueing without limit.

Cancellation: a caller cancelled while waiting only stops waiting; its job stays queued and may
still commit (the caller re-reads or retries with the same op_id, which the op record makes
idempotent). The writer is cancelled only at shutdown; stores run their transaction so that it
either finishes (SQLite: a non-abandoned worker thread) or never starts, and every job not
answered when the writer stops is failed with `JournalClosed`.

`close()` closes the send side: the writer drains and commits what is queued, then stops.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import trio

from .base import AppendResult, Batch, JournalClosed, JournalError, Snapshot, VersionConflict

__all__ = ["LATENCY_BUCKETS_MS", "GroupCommitJournal", "Outcome", "WriteOp"]

WriteOp = Batch | Snapshot
# Per job: AppendResult for a committed Batch, None for a saved Snapshot, or the exception the
# caller gets (VersionConflict, JournalError).
Outcome = AppendResult | Exception | None

# Upper bounds (ms) of the commit latency histogram, Prometheus style (cumulative counts).
LATENCY_BUCKETS_MS: tuple[float, ...] = (
    0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 250.0, 500.0, 1000.0, math.inf,
)


class _Job:
    __slots__ = ("done", "op", "outcome")

    def __init__(self, op: WriteOp) -> None:
        self.op = op
        self.outcome: Outcome = None
        self.done = trio.Event()


class GroupCommitJournal(ABC):
    """The queue, the writer loop and the metrics; stores supply `_write_group`."""

    def __init__(self, *, max_group: int) -> None:
        self._epoch: str | None = None  # set by the store's open()
        self._opened = False  # set by the store's open()
        if max_group < 1:
            raise ValueError("max_group must be >= 1")
        self._max_group = max_group
        self._send, self._recv = trio.open_memory_channel[_Job](max_group)
        self._inflight: list[_Job] = []
        self._writer_started = False
        self._writer_done = trio.Event()
        self._stopping = False
        # metrics
        self._commits = 0
        self._batches = 0
        self._snapshots = 0
        self._events = 0
        self._conflicts = 0
        self._failures = 0
        self._last_group = 0
        self._max_group_seen = 0
        self._commit_ms_sum = 0.0
        self._commit_ms_max = 0.0
        self._bucket_counts = [0] * len(LATENCY_BUCKETS_MS)

    # --- the store's part -------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The group-commit writer: start it with `nursery.start(journal.run)` after open()."""
        if not self._opened:
            raise RuntimeError("call open() before run()")
        await self._run_writer(task_status)

    @property
    def epoch(self) -> str:
        """Identity of this store's history (from its meta table); set by open()."""
        if self._epoch is None:
            raise RuntimeError("journal not opened")
        return self._epoch

    @abstractmethod
    async def _write_group(self, ops: Sequence[WriteOp], ts: float) -> list[Outcome]:
        """Apply `ops` in one transaction and commit; one outcome per op, in order.

        Raise (anything) only if the whole transaction failed and nothing was committed. If
        cancelled, either finish the commit and return, or raise before anything committed.
        """

    # --- callers ----------------------------------------------------------------------------

    async def append(self, batch: Batch) -> AppendResult:
        outcome = await self._submit(batch)
        assert isinstance(outcome, AppendResult)
        return outcome

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await self._submit(snapshot)

    async def _submit(self, op: WriteOp) -> Outcome:
        job = _Job(op)
        try:
            await self._send.send(job)
        except (trio.ClosedResourceError, trio.BrokenResourceError) as exc:
            raise JournalClosed("journal is closed") from exc
        # Cancelled here: the job stays queued and may commit; nobody reads the outcome.
        await job.done.wait()
        if isinstance(job.outcome, Exception):
            raise job.outcome
        return job.outcome

    # --- the writer -------------------------------------------------------------------------

    async def _run_writer(self, task_status: trio.TaskStatus[None]) -> None:
        if self._writer_started:
            raise RuntimeError("the journal writer is already running (or has run)")
        if self._stopping:
            raise JournalClosed("journal is closed")
        self._writer_started = True
        try:
            task_status.started()
            async for first in self._recv:  # ends once close() closed the send side and drained
                group = [first]
                while len(group) < self._max_group:
                    try:
                        group.append(self._recv.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                await self._commit(group)
        finally:
            # No checkpoints here: fail whatever is left, synchronously.
            for job in self._inflight:
                self._finish(job, JournalClosed("journal writer stopped before the commit"))
            self._inflight = []
            self._fail_queued()
            self._writer_done.set()

    async def _commit(self, group: list[_Job]) -> None:
        self._inflight = group
        ops = [job.op for job in group]
        started = time.perf_counter()
        try:
            outcomes = await self._write_group(ops, time.time())
        except Exception as exc:  # nothing committed; a store error is mapped at the seam
            outcomes = [self._group_failed(exc) for _ in group]
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        # From here to the end: no checkpoint, so a cancel cannot split answering the group.
        self._inflight = []
        self._record(group, outcomes, elapsed_ms)
        for job, outcome in zip(group, outcomes, strict=True):
            self._finish(job, outcome)

    @staticmethod
    def _group_failed(cause: Exception) -> JournalError:
        # One exception object per caller: tracebacks are mutated as each caller re-raises.
        err = JournalError(f"commit failed: {cause!r}")
        err.__cause__ = cause
        return err

    @staticmethod
    def _finish(job: _Job, outcome: Outcome) -> None:
        if not job.done.is_set():
            job.outcome = outcome
            job.done.set()

    def _fail_queued(self) -> None:
        while True:
            try:
                job = self._recv.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            self._finish(job, JournalClosed("journal closed before the commit"))
        self._recv.close()  # later sends raise BrokenResourceError -> JournalClosed

    async def _stop_writer(self) -> None:
        """Stop taking writes; let a running writer commit what is queued, then return."""
        if not self._stopping:
            self._stopping = True
            self._send.close()  # callers blocked in send() get ClosedResourceError
        if self._writer_started:
            await self._writer_done.wait()
        else:
            self._fail_queued()

    # --- metrics ----------------------------------------------------------------------------

    def _record(self, group: list[_Job], outcomes: list[Outcome], elapsed_ms: float) -> None:
        self._commits += 1
        self._last_group = len(group)
        self._max_group_seen = max(self._max_group_seen, len(group))
        self._commit_ms_sum += elapsed_ms
        self._commit_ms_max = max(self._commit_ms_max, elapsed_ms)
        for i, le in enumerate(LATENCY_BUCKETS_MS):
            if elapsed_ms <= le:
                self._bucket_counts[i] += 1
                break
        for job, outcome in zip(group, outcomes, strict=True):
            if isinstance(job.op, Snapshot):
                self._snapshots += 1
            else:
                self._batches += 1
                if isinstance(outcome, AppendResult):
                    self._events += len(job.op.events)
            if isinstance(outcome, VersionConflict):
                self._conflicts += 1
            elif isinstance(outcome, JournalError):
                self._failures += 1

    def stats(self) -> dict[str, Any]:
        """Writer metrics. `commit_ms_buckets` is cumulative: [(le_ms, count)], last le = inf."""
        cumulative: list[tuple[float, int]] = []
        running = 0
        for le, count in zip(LATENCY_BUCKETS_MS, self._bucket_counts, strict=True):
            running += count
            cumulative.append((le, running))
        writes = self._batches + self._snapshots
        return {
            "commits": self._commits,
            "batches": self._batches,
            "snapshots": self._snapshots,
            "events": self._events,
            "conflicts": self._conflicts,
            "failures": self._failures,
            "last_group_size": self._last_group,
            "avg_group_size": writes / self._commits if self._commits else 0.0,
            "max_group_size": self._max_group_seen,
            "queue_depth": self._send.statistics().current_buffer_used,
            "commit_ms_avg": self._commit_ms_sum / self._commits if self._commits else 0.0,
            "commit_ms_max": self._commit_ms_max,
            "commit_ms_buckets": cumulative,
        }
