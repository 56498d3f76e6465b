"""The SQLite journal's writer in a process of its own (`writer="process"`).

Theory of operation
-------------------
Inline, a group's statements run on the event loop's thread: Python's sqlite3 releases the
GIL inside each `sqlite3_step`, but the loop still waits for them (the orders benchmark: ~70
µs of the loop per order in the multi-row INSERTs alone). A worker thread does not help: it
must win the GIL back from the busy loop after every statement. A child process has a GIL of
its own, so SQLite's work -- the INSERTs, the B-trees, the WAL write and the fsync -- runs on
the other core while the loop goes on.

The parent keeps everything else: migrations at open, the read pool, the checkpointer (WAL
lets every one of them work beside a writer in another process). Per group it sends one
frame and waits for one back; the group-commit writer has one group in flight at a time, so
the pipe needs no ids.

Wire: each frame is a 4-byte big-endian length and a msgpack body.
  parent -> child   (ts, [(0, Batch) | (1, Snapshot), ...])
  child -> parent   [outcome, ...] one per op, or ("x", message) when the whole group failed
  outcome           ("a", version, first_global_pos, ts) | ("c", stream, expected, actual)
                    | ("e", message) | ("n",)   (a snapshot's None)
The child applies a group exactly as the inline writer does (`apply_group`, else
`stage_per_job`, then COMMIT), so the same rows land whichever writer runs.

A child that dies (killed, crashed) fails the group in flight with JournalError -- it may or
may not have committed, which every caller already handles (the op table answers a retry
with the same op_id) -- and the next group starts a new child.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import msgspec
import trio

from ._group import Outcome, WriteOp
from .base import AppendResult, Batch, JournalError, Snapshot, VersionConflict

__all__ = [
    "WriterProcess",
    "decode_group",
    "decode_outcomes",
    "encode_group",
    "encode_outcomes",
    "main",
]

_enc = msgspec.msgpack.Encoder()
_group_dec = msgspec.msgpack.Decoder(tuple[float, list[tuple[int, msgspec.Raw]]])
_batch_dec = msgspec.msgpack.Decoder(Batch)
_snapshot_dec = msgspec.msgpack.Decoder(Snapshot)
_outcomes_dec = msgspec.msgpack.Decoder(list[Any])


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


def encode_group(ops: Sequence[WriteOp], ts: float) -> bytes:
    return frame(_enc.encode((ts, [(1 if isinstance(op, Snapshot) else 0, op) for op in ops])))


def decode_group(body: bytes) -> tuple[float, list[WriteOp]]:
    ts, items = _group_dec.decode(body)
    ops: list[WriteOp] = [
        _snapshot_dec.decode(raw) if kind == 1 else _batch_dec.decode(raw) for kind, raw in items
    ]
    return ts, ops


def encode_outcomes(outcomes: Sequence[Outcome] | str) -> bytes:
    if isinstance(outcomes, str):
        return frame(_enc.encode(("x", outcomes)))
    out: list[tuple[Any, ...]] = []
    for o in outcomes:
        if isinstance(o, AppendResult):
            out.append(("a", o.version, o.first_global_pos, o.ts))
        elif isinstance(o, VersionConflict):
            out.append(("c", o.stream, o.expected, o.actual))
        elif o is None:
            out.append(("n",))
        else:
            out.append(("e", str(o)))
    return frame(_enc.encode(out))


def decode_outcomes(body: bytes, ops: Sequence[WriteOp]) -> list[Outcome]:
    """The parent's side; raises JournalError when the child failed the whole group."""
    data = _outcomes_dec.decode(body)
    if data and isinstance(data[0], str):  # ("x", message): the whole group failed
        raise JournalError(f"writer process: {data[1]}")
    outcomes: list[Outcome] = []
    for op, o in zip(ops, data, strict=True):
        kind = o[0]
        if kind == "a":
            outcomes.append(AppendResult(stream=op.stream, version=o[1], first_global_pos=o[2], ts=o[3]))
        elif kind == "c":
            outcomes.append(VersionConflict(o[1], o[2], o[3]))
        elif kind == "n":
            outcomes.append(None)
        else:
            outcomes.append(JournalError(o[1]))
    return outcomes


# --- the parent's side --------------------------------------------------------------------

# `-c`, not `-m`: runpy would re-execute a module the package has imported already.
_CHILD_MAIN = "import sys; from engine.journal._sqlite_proc import main; sys.exit(main())"


class WriterProcess:
    """The engine's handle on its writer child: started on first use, replaced after a death."""

    def __init__(self, path: str, synchronous: str) -> None:
        self._argv = [sys.executable, "-c", _CHILD_MAIN, path, synchronous]
        self.process: trio.Process | None = None
        self._buf = bytearray()

    async def write(self, ops: Sequence[WriteOp], ts: float) -> list[Outcome]:
        """One frame out, one back. Shielded: a cancel halfway would leave the pipe between
        two frames; like the thread writer, the group runs to its end."""
        with trio.CancelScope(shield=True):
            try:
                proc = await self._started()
                assert proc.stdin is not None
                await proc.stdin.send_all(encode_group(ops, ts))
                body = await self._receive_frame(proc)
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, EOFError) as exc:
                await self.stop()  # the next group starts a new child
                raise JournalError(f"writer process gone: {exc!r}") from exc
        return decode_outcomes(body, ops)

    async def _started(self) -> trio.Process:
        if self.process is None:
            self._buf.clear()
            self.process = await trio.lowlevel.open_process(
                self._argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
        return self.process

    async def _receive_frame(self, proc: trio.Process) -> bytes:
        assert proc.stdout is not None
        buf = self._buf
        while True:
            if len(buf) >= 4:
                n = int.from_bytes(buf[:4], "big")
                if len(buf) >= 4 + n:
                    body = bytes(buf[4 : 4 + n])
                    del buf[: 4 + n]
                    return body
            chunk = await proc.stdout.receive_some(1 << 16)
            if not chunk:
                raise EOFError("the writer process closed its output")
            buf += chunk

    async def stop(self) -> None:
        """End its input (it closes the database and exits); kill it if it does not."""
        proc, self.process = self.process, None
        if proc is None:
            return
        with trio.CancelScope(shield=True):
            if proc.stdin is not None:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await proc.stdin.aclose()
            with trio.move_on_after(10):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


# --- the child ----------------------------------------------------------------------------


def _read_exact(stream: Any, n: int) -> bytes | None:
    chunks: list[bytes] = []
    while n:
        chunk = stream.read(n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _apply(conn: sqlite3.Connection, ops: list[WriteOp], ts: float) -> list[Outcome]:
    from .sqlite import commit_staged, stage_group  # what the inline writer runs, too

    outcomes = stage_group(conn, ops, ts)
    commit_staged(conn)
    return outcomes


def main(argv: list[str] | None = None) -> int:
    """The child's main (argv: PATH SYNCHRONOUS): serve groups on stdin/stdout until stdin
    ends. Started by `WriterProcess` (`_CHILD_MAIN`)."""
    from .sqlite import open_writer_connection

    path, synchronous = (argv if argv is not None else sys.argv[1:])[:2]
    conn = open_writer_connection(path, synchronous)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    try:
        while (head := _read_exact(stdin, 4)) is not None:
            body = _read_exact(stdin, int.from_bytes(head, "big"))
            if body is None:
                break
            ts, ops = decode_group(body)
            try:
                reply = encode_outcomes(_apply(conn, ops, ts))
            except Exception as exc:  # nothing of this group committed
                reply = encode_outcomes(f"commit failed: {exc!r}")
            stdout.write(reply)
            stdout.flush()
    finally:
        conn.close()
    return 0

