"""The `/ws` endpoint: one Connection per client, over a small transport interface.

Theory of operation
-------------------
A Connection runs on a `Transport`: `recv()` the next message (None when the input is over),
`send_frames()` many messages in one write, `send_close()`, `ping()` and `abort()`. Two
transports exist: the engine's own lean front (`_front.LeanTransport`, raw trio socket, the
default) and ASGI (`_asgi.AsgiTransport`, for hypercorn: `Config.ws_front = "hypercorn"`, and for a
`/ws` upgrade that arrives on an HTTP keep-alive connection hypercorn already serves).

Each connection runs two tasks: its reader (the task that accepted it: decodes frames, answers
hello/subscribe/ping inline, hands commands to their actors without waiting, so one connection
can pipeline many) and
its writer (the only task that ever writes to this socket: it drains the connection's Outbox,
everything that is due in one `send_frames`). Actors and the bus only ever call the Outbox's
non-blocking methods, so a stalled socket can delay nobody but itself; its pending deltas are
conflated per topic, so its memory stays bounded.

One engine-wide sweeper task (`sweep_connections`) is the watchdog and heartbeat of every
connection: hello deadline, slow-consumer cut-off, WebSocket pings every `heartbeat_s` to
connections that sent nothing for that long, 1001 "going away" to all on shutdown, and the
ask timeout of commands in flight. A timer per connection would cost thousands of deadline
expiries a second at 10,000 clients.

Commands. The reader does the synchronous part itself (decode, authorize, validate, route:
`Dispatcher.prepare`) and queues the command in its actor's mailbox with a reply callback
(`Engine.try_ask`); the actor's answer becomes the ack or reject right in the actor's task. No
task, event or cancel scope per command: on the hot-SKU bench that was ~20% of the CPU per
hold. The ask timeout is kept by the sweeper (`pending`, oldest first): past it the client gets
`unavailable` ("retry with the same op_id") and a late answer is dropped. Commands that need
to wait (a full mailbox, a cluster owner on another node, routing that awaits the read models)
take the old path: one task per command doing a normal `ask` with its timeout.

Closing. `close(code)` only records the code and wakes the writer, which flushes what is
queued (the error that explains the close), sends the close frame and gives the reader
LINGER_S to see the peer's answer. When the peer closes first, the reader ends and the writer
echoes the close. A writer that cannot get the close out (the client stopped reading and the
socket buffers are full) is the stuck-client case: STUCK_SEND_S after the close the sweeper
aborts the transport (lean: closes the socket with a reset, which fails the blocked write;
ASGI: shuts the socket down under hypercorn, whose writes shield cancellation). The client
sees the connection drop, reconnects and resumes.

Bad input never closes the connection by itself: every bad message gets an `error` with a
stable code and changes nothing. A client that sends nothing but bad messages (over
BAD_FRAME_LIMIT in a row) is closed with 1008, and one that never says hello within
HELLO_TIMEOUT_S with 4003. Broken WebSocket framing (lean front) closes with 1002/1007/1009.
"""

from __future__ import annotations

import itertools
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import trio

from protocol import (
    CLOSE_CODES,
    PROTOCOL_VERSION,
    SERVER_VERSION,
    Ack,
    Command,
    Error,
    ErrorCode,
    Hello,
    Ping,
    Pong,
    ProtocolError,
    Reject,
    Subscribe,
    Unsubscribe,
    Welcome,
    decode_client_frame,
    join_frames,
)

from ..auth import Claims
from ..bus import Outbox, OutboxOverflow
from ..commands import CommandMsg, RouteMiss
from ..runtime import ActorCrashed, ActorStopped
from ._flush import BURST_WRITES, MIN_DELTA_INTERVAL_S
from ._ratelimit import TokenBucket
from ._subscribe import subscribe
from ._wsframe import FrameError

if TYPE_CHECKING:
    from ..server import Engine

__all__ = ["Connection", "Transport", "run_connection", "sweep_connections"]

log = logging.getLogger("omnitill.gateway")

HELLO_TIMEOUT_S = 10.0
STUCK_SEND_S = 1.0  # after a close, how long a blocked socket write may keep a connection
LINGER_S = 1.0  # after our close frame, how long we wait for the peer's
BAD_FRAME_LIMIT = 50
MAX_INFLIGHT_COMMANDS = 128
SWEEP_CHUNK = 500  # connections checked between two checkpoints of the sweeper
GOING_AWAY = "server shutting down: reconnect and resume"
_INTERNAL = ProtocolError(ErrorCode.INTERNAL, "internal error: retry with the same op_id")
_BUSY = ProtocolError(
    ErrorCode.UNAVAILABLE, "busy: retry with the same op_id (a retry never applies a command twice)"
)
_session_ids = itertools.count(1)


class Transport(Protocol):
    """What a Connection needs from the socket under it."""

    wake: Callable[[], None] | None  # set by the Connection: wakes its writer

    async def recv(self) -> str | bytes | None:
        """The next message; None once the peer closed or went away. May raise FrameError."""
        ...

    async def send_frames(self, frames: list[bytes], text: bool) -> None:
        """Send each frame as one WebSocket message, all in one write if possible."""
        ...

    async def send_close(self, code: int, reason: str) -> None: ...

    def ping(self) -> None:
        """Queue a WebSocket ping (the writer sends it); a no-op where the server pings."""
        ...

    def abort(self) -> bool:
        """Drop the connection now, failing any blocked write. False if it cannot."""
        ...


class Connection:
    __slots__ = (
        "backlog",
        "bad_frames",
        "batch",
        "broken",
        "bucket",
        "burst",
        "claims",
        "close_at",
        "close_code",
        "close_reason",
        "conflated_seen",
        "engine",
        "flusher",
        "inflight",
        "input_done",
        "kind",
        "last_progress",
        "last_write",
        "outbox",
        "pending",
        "pending_ids",
        "queued",
        "read_scope",
        "scope",
        "sending",
        "session",
        "started",
        "transport",
        "writer_done",
        "writer_wake",
    )

    def __init__(self, engine: Engine, transport: Transport) -> None:
        self.engine = engine
        self.transport = transport
        cfg = engine.config
        # Lean sockets are written by the engine's flusher task (see _flush.py); others (ASGI)
        # by this connection's own writer task.
        flusher = engine.flusher
        self.flusher = flusher if flusher.running and hasattr(transport, "write_nowait") else None
        self.outbox = Outbox(
            "json",
            max_control=cfg.outbox_max_control,
            notify=self.ready if self.flusher is not None else None,
        )
        transport.wake = self.outbox.wake
        self.queued = 0  # in the flusher's sets: 0 no, 1 dirty, 2 urgent
        self.backlog = b""  # what a flush could not write at once (the writer finishes it)
        self.broken = False  # a flush found the socket broken
        self.burst = 0  # consecutive writes less than MIN_DELTA_INTERVAL_S apart
        self.writer_wake = trio.Event()
        self.claims: Claims | None = None
        self.kind = "unknown"
        self.session = f"s{next(_session_ids)}-{secrets.token_hex(3)}"
        self.bucket = TokenBucket(cfg.commands_per_s, cfg.command_burst)
        self.inflight: trio.Semaphore | None = None  # made on the first command
        # Fast-path commands waiting for their actor: token -> (monotonic deadline, op_id).
        self.pending: dict[int, tuple[float, str]] = {}
        self.pending_ids = itertools.count()
        self.bad_frames = 0
        self.batch = False  # the client accepts several messages per frame (hello.batch)
        now = time.monotonic()
        self.started = now
        self.last_progress = now
        self.last_write = now
        self.sending = False  # the writer is inside send_frames (which may block)
        self.writer_done = False
        self.input_done = False
        self.conflated_seen = 0  # outbox.conflated already added to the metrics
        self.close_code: int | None = None
        self.close_reason = ""
        self.close_at = math.inf  # monotonic time of close(); inf once aborted
        self.scope: trio.CancelScope | None = None  # the connection's nursery
        self.read_scope: trio.CancelScope | None = None

    # --- output -------------------------------------------------------------------------

    def error(self, code: ErrorCode, message: str, topic: str | None = None) -> None:
        self.engine.metrics.errors[code.value] += 1
        self.outbox.send(Error(code=code.value, message=message, topic=topic))

    async def writer(self) -> None:
        transport = self.transport
        outbox = self.outbox
        metrics = self.engine.metrics
        try:
            if self.flusher is not None:
                await self._finish_writes()
            else:
                while True:
                    await outbox.wait()
                    if self.close_code is not None or outbox.closed:
                        break
                    await self._send_due(transport, outbox, metrics)
            if self.close_code is not None and not outbox.closed and not self.broken:
                # Flush what explains the close (an error, at most one drain), then close.
                if len(outbox):
                    await self._send_due(transport, outbox, metrics)
                await transport.send_close(self.close_code, self.close_reason)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the peer is gone (or the sweeper aborted us): the reader sees it too
        finally:
            self.sending = False
            self.writer_done = True
            if self.flusher is not None:
                self.flusher.discard(self)
            if self.input_done:
                if self.scope is not None:
                    self.scope.cancel()
            elif self.read_scope is not None:
                # Give the peer LINGER_S to answer our close (or to notice it is gone).
                self.read_scope.deadline = min(
                    self.read_scope.deadline, trio.current_time() + LINGER_S
                )

    async def _finish_writes(self) -> None:
        """Flusher mode: finish writes the socket could not take at once; return to close."""
        transport: Any = self.transport
        while True:
            await self.writer_wake.wait()
            self.writer_wake = trio.Event()
            if self.broken:
                return
            backlog = self.backlog
            if backlog:
                await transport.write_rest(backlog)
                self.backlog = b""
                self.sending = False
                self.last_progress = self.last_write = time.monotonic()
                if len(self.outbox) or transport.pending_ctrl is not None:
                    self.ready(True)
            if self.close_code is not None or self.outbox.closed:
                return

    def ready(self, urgent: bool) -> None:
        """Flusher mode: the outbox has something to send (urgent: a reply)."""
        if self.sending or self.close_code is not None or self.broken or self.outbox.closed:
            self.writer_wake.set()  # the writer owns the socket now (backlog, closing)
            return
        queued = self.queued
        if queued == 2 or (queued == 1 and not urgent):
            return
        flusher = self.flusher
        assert flusher is not None
        if urgent:
            self.queued = 2
            flusher.mark(self, True)
            return
        self.queued = 1
        due = self.last_write + flusher.defer_s
        if self.burst >= BURST_WRITES and due > time.monotonic():
            flusher.defer(self, due)  # written recently: let its deltas conflate a little
        else:
            flusher.mark(self, False)

    def flush_now(self) -> None:
        """Flusher mode: write everything due in one non-blocking write (never raises)."""
        self.queued = 0
        if self.sending or self.close_code is not None or self.broken:
            return
        transport: Any = self.transport
        outbox = self.outbox
        metrics = self.engine.metrics
        try:
            frames = outbox.drain()
            if self.batch and len(frames) > 1:
                metrics.frames_batched += len(frames)
                frames = [join_frames(frames, outbox.encoding)]
            data = transport.wire_bytes(frames, outbox.encoding == "json")
            if not data:
                return
            rest = transport.write_nowait(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.broken = True
            self.writer_wake.set()
            return
        except Exception:
            log.exception("session %s: flush failed", self.session)
            self.broken = True
            self.writer_wake.set()
            return
        metrics.frames_out += len(frames)
        if rest:
            self.backlog = rest
            self.sending = True
            self.writer_wake.set()
            return
        now = time.monotonic()
        self.burst = self.burst + 1 if now - self.last_write < MIN_DELTA_INTERVAL_S else 0
        self.last_progress = self.last_write = now
        if len(outbox):
            self.ready(False)  # more than one drain's worth: back of the line

    async def _send_due(self, transport: Transport, outbox: Outbox, metrics: Any) -> None:
        self.count_conflated()
        frames = outbox.drain()
        if self.batch and len(frames) > 1:
            # One WebSocket frame for everything that is due.
            metrics.frames_batched += len(frames)
            frames = [join_frames(frames, outbox.encoding)]
        self.sending = True
        await transport.send_frames(frames, outbox.encoding == "json")
        self.sending = False
        self.last_progress = self.last_write = time.monotonic()
        metrics.frames_out += len(frames)

    def count_conflated(self) -> None:
        conflated = self.outbox.conflated
        self.engine.metrics.conflated += conflated - self.conflated_seen
        self.conflated_seen = conflated

    def close(self, code: int, reason: str) -> None:
        """Close with `code`: the writer flushes, sends the close frame and the reader lingers."""
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
            self.close_at = time.monotonic()
            self.outbox.wake()

    def abort(self) -> None:
        """The close did not get out in time: drop the socket (fails a blocked write)."""
        self.close_at = math.inf
        if self.sending:
            self.engine.metrics.errors["stuck_socket_aborted"] += 1
        if not self.transport.abort():
            log.warning("session %s: writer stuck, socket unreachable", self.session)
        if self.scope is not None and self.writer_done:
            self.scope.cancel()

    # --- input --------------------------------------------------------------------------

    async def reader(self, nursery: trio.Nursery) -> None:
        try:
            await self._read(nursery)
        except OutboxOverflow:
            # Replies to its own frames (pongs, errors) pile up unread: cut it off cleanly.
            self.too_slow("not reading replies")
        except FrameError as exc:
            self.engine.metrics.errors[f"ws_{exc.code}"] += 1
            self.close(exc.code, exc.reason)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the peer went away (or the sweeper aborted the socket)

    def too_slow(self, reason: str) -> None:
        if self.close_code is None:
            self.engine.metrics.slow_disconnects += 1
        self.close(CLOSE_CODES["slow_consumer"], reason)

    async def _read(self, nursery: trio.Nursery) -> None:
        max_bytes = self.engine.config.max_frame_bytes
        metrics = self.engine.metrics
        recv = self.transport.recv
        while True:
            data = await recv()
            if data is None:
                return
            if self.close_code is not None:
                continue  # closing: only the peer's close (or EOF) matters now
            metrics.frames_in += 1
            if len(data) > max_bytes:
                self.error(ErrorCode.TOO_LARGE, f"frame of {len(data)} bytes is over the {max_bytes}-byte limit")
                continue
            for msg in decode_client_frame(data, self.outbox.encoding, allow_batch=self.batch):
                if isinstance(msg, ProtocolError):
                    self.bad_frames += 1
                    self.error(msg.code, msg.message)
                    if self.bad_frames > BAD_FRAME_LIMIT:
                        self.close(CLOSE_CODES["protocol_violation"], "too many bad frames")
                    continue
                self.bad_frames = 0
                try:
                    await self.handle(msg, nursery)
                except ProtocolError as exc:
                    topic = getattr(msg, "topic", None)
                    self.error(exc.code, exc.message, topic)

    async def handle(self, msg: Any, nursery: trio.Nursery) -> None:
        if isinstance(msg, Ping):
            self.outbox.send(Pong(nonce=msg.nonce, server_time=time.time()))
            return
        if isinstance(msg, Hello):
            self.hello(msg)
            return
        if self.claims is None:
            if isinstance(msg, Command):
                # A reject carries the op_id, so a client waiting on that command is answered.
                self.engine.metrics.rejects[ErrorCode.UNAUTHORIZED.value] += 1
                self.outbox.send(
                    Reject(
                        op_id=msg.op_id,
                        code=ErrorCode.UNAUTHORIZED.value,
                        message="send hello with a token first",
                    )
                )
                return
            raise ProtocolError(ErrorCode.UNAUTHORIZED, "send hello with a token first")
        if self.claims.exp < time.time():
            self.error(ErrorCode.UNAUTHORIZED, "token expired: sign in again")
            self.close(CLOSE_CODES["unauthorized"], "token expired")
            return
        if isinstance(msg, Command):
            if not self.engine.command_limiter_ok(self.bucket):
                self.outbox.send(
                    Reject(
                        op_id=msg.op_id,
                        code=ErrorCode.RATE_LIMITED.value,
                        message="too many commands per second on this connection: slow down",
                        details={"limit_per_s": self.engine.config.commands_per_s},
                    )
                )
                return
            if self.inflight is None:
                self.inflight = trio.Semaphore(MAX_INFLIGHT_COMMANDS)
            try:
                self.inflight.acquire_nowait()
            except trio.WouldBlock:
                await self.inflight.acquire()
            self.start_command(msg, nursery)
        elif isinstance(msg, Subscribe):
            assert self.claims is not None
            await subscribe(self.engine, self.claims, self.outbox, msg)
        elif isinstance(msg, Unsubscribe):
            self.engine.unsubscribe(msg.topic, self.outbox)

    def hello(self, msg: Hello) -> None:
        if msg.protocol != PROTOCOL_VERSION:
            raise ProtocolError(
                ErrorCode.BAD_FRAME,
                f"protocol version {msg.protocol} is not supported; this server speaks {PROTOCOL_VERSION}",
            )
        claims = self.engine.signer.verify(msg.token)
        first = self.claims is None
        if not first and self.claims is not None and claims.role != self.claims.role:
            # A token refresh may extend the session, not change who it is.
            raise ProtocolError(ErrorCode.FORBIDDEN, "a renewed token must keep the same role")
        self.claims = claims
        if first:
            self.kind = msg.client
            self.outbox.encoding = msg.encoding
            self.batch = msg.batch
            self.engine.metrics.connections[self.kind] += 1
        self.outbox.send(
            Welcome(
                session=self.session,
                server_version=SERVER_VERSION,
                protocol=PROTOCOL_VERSION,
                roles=[claims.role],
                location=claims.loc,
                heartbeat_s=self.engine.config.heartbeat_s,
            )
        )

    def start_command(self, msg: Command, nursery: trio.Nursery) -> None:
        """Queue a command for its actor (the fast path, see the module docstring); the reply
        callback sends the ack. Holds one `inflight` slot until the command is answered."""
        assert self.claims is not None and self.inflight is not None
        engine = self.engine
        dispatcher = engine.dispatcher
        op_id = msg.op_id
        started = time.perf_counter()
        try:
            key, cmd = dispatcher.prepare(self.claims, op_id, msg.name, msg.args)
        except RouteMiss:
            nursery.start_soon(self.run_command, msg)
            return
        except ProtocolError as exc:
            dispatcher.rejected(exc, started)
            self.inflight.release()
            self.reject(op_id, exc)
            return
        token = next(self.pending_ids)
        pending = self.pending
        pending[token] = (time.monotonic() + engine.config.ask_timeout_s, op_id)

        def answered(value: Any, error: BaseException | None) -> None:
            if pending.pop(token, None) is None:
                return  # timed out already (the sweeper answered) or the connection ended
            assert self.inflight is not None
            self.inflight.release()
            self.reply(op_id, value, error, started)

        try:
            queued = engine.try_ask(key, cmd, answered)
        except (ActorCrashed, ActorStopped) as exc:
            answered(None, exc)
            return
        if not queued:
            del pending[token]
            nursery.start_soon(self.run_prepared, op_id, key, cmd, started)

    def reply(self, op_id: str, value: Any, error: BaseException | None, started: float) -> None:
        """Send the ack or reject for an answered command (never raises: runs in actors)."""
        try:
            try:
                result = self.engine.dispatcher.finish(value, error, started)
            except ProtocolError as exc:
                self.reject(op_id, exc)
                return
            except Exception:
                log.exception("command %s failed", op_id)
                self.reject(op_id, _INTERNAL)
                return
            self.outbox.send(Ack(op_id=op_id, result=result))
        except OutboxOverflow:
            self.too_slow("not reading replies")

    def reject(self, op_id: str, exc: ProtocolError) -> None:
        self.outbox.send(
            Reject(op_id=op_id, code=exc.code.value, message=exc.message, details=exc.details)
        )

    def expire_pending(self, now: float) -> None:
        """Answer fast-path commands whose actor has not answered within the ask timeout."""
        pending = self.pending
        expired: list[str] = []
        for deadline, op_id in pending.values():
            if deadline > now:
                break  # insertion order is deadline order (one timeout for all)
            expired.append(op_id)
        for _ in expired:
            del pending[next(iter(pending))]
        for op_id in expired:
            assert self.inflight is not None
            self.inflight.release()
            self.engine.metrics.rejects[ErrorCode.UNAVAILABLE.value] += 1
            try:
                self.reject(op_id, _BUSY)
            except OutboxOverflow:
                self.too_slow("not reading replies")

    async def run_command(self, msg: Command) -> None:
        """The slow path: routing must await the read models first (cluster)."""
        assert self.claims is not None
        await self._answer_when_done(
            msg.op_id,
            msg.name,
            self.engine.dispatcher.execute(self.claims, msg.op_id, msg.name, msg.args),
        )

    async def run_prepared(self, op_id: str, key: str, cmd: CommandMsg, started: float) -> None:
        """The slow path for a routed command: a full mailbox or a remote owner (awaits room
        or the forward, with the ask timeout)."""
        await self._answer_when_done(
            op_id, cmd.name, self.engine.dispatcher.ask_prepared(key, cmd, started)
        )

    async def _answer_when_done(
        self, op_id: str, name: str, outcome: Awaitable[dict[str, Any]]
    ) -> None:
        """Await a slow-path command, send its ack or reject, give back its inflight slot."""
        try:
            result = await outcome
            self.outbox.send(Ack(op_id=op_id, result=result))
        except ProtocolError as exc:
            self.reject(op_id, exc)
        except OutboxOverflow:
            self.too_slow("not reading replies")
        except Exception:
            log.exception("command %s failed", name)
            self.reject(op_id, _INTERNAL)
        finally:
            assert self.inflight is not None
            self.inflight.release()

    # --- watchdog (one sweep for all connections, see sweep_connections) ------------------

    def check(self, now: float, cfg: Any, stopping: bool) -> None:
        """Hello deadline, slow-consumer cut-off, heartbeat; called about twice a second."""
        if self.outbox.conflated != self.conflated_seen:
            self.count_conflated()
        if self.pending:
            self.expire_pending(now)
        if self.close_code is not None:
            if now - self.close_at > STUCK_SEND_S:
                self.abort()
            return
        # A writer inside send_frames counts as pending output even when the outbox is empty:
        # that is exactly the stuck-client case.
        pending = bool(len(self.outbox)) or self.sending
        if stopping:
            # Tell the client to go elsewhere now, with a code that says "resume".
            self.close(CLOSE_CODES["going_away"], GOING_AWAY)
        elif self.claims is None and now - self.started > HELLO_TIMEOUT_S:
            self.close(CLOSE_CODES["unauthorized"], "no hello")
        elif pending and now - self.last_progress > cfg.slow_client_grace_s:
            self.engine.metrics.slow_disconnects += 1
            self.close(CLOSE_CODES["slow_consumer"], "too slow: reconnect and resume")
        elif not pending:
            self.last_progress = now
            if now - self.last_write >= cfg.heartbeat_s:
                self.last_write = now
                self.transport.ping()


async def sweep_connections(engine: Engine, interval_s: float = 0.5) -> None:
    """One task checks every connection: a timer per connection would cost thousands of
    deadline expiries per second at 10,000 clients. Wakes at once when the engine stops.
    Works in chunks with a checkpoint between them: one pass over 5,000 connections is
    ~10 ms of CPU, which commands should not wait for in one piece."""
    cfg = engine.config
    stopping = engine.stopping
    while True:
        with trio.move_on_after(interval_s):
            await stopping.wait()
        now = time.monotonic()
        is_stopping = stopping.is_set()
        for i, conn in enumerate(list(engine.connections)):
            conn.check(now, cfg, is_stopping)
            if i % SWEEP_CHUNK == SWEEP_CHUNK - 1:
                await trio.lowlevel.checkpoint()
        if is_stopping:
            await trio.sleep(min(interval_s, STUCK_SEND_S / 2))


async def run_connection(engine: Engine, transport: Transport) -> None:
    """Serve one accepted WebSocket until it closes. The calling task becomes its reader."""
    conn = Connection(engine, transport)
    engine.metrics.connections_total += 1
    engine.connections.add(conn)
    try:
        async with trio.open_nursery() as nursery:
            conn.scope = nursery.cancel_scope
            nursery.start_soon(conn.writer)
            with trio.CancelScope() as conn.read_scope:
                await conn.reader(nursery)
            conn.input_done = True
            if conn.writer_done:
                nursery.cancel_scope.cancel()
            else:
                # The peer closed (or broke the protocol): the writer echoes the close, then
                # cancels what is left (commands in flight); it has LINGER_S to do so.
                code = getattr(transport, "peer_close", None)
                conn.close(CLOSE_CODES["normal"] if code in (None, 1005) else code, "")
                nursery.cancel_scope.deadline = trio.current_time() + LINGER_S
    finally:
        conn.pending.clear()  # late answers to this connection are dropped
        engine.connections.discard(conn)
        engine.bus_release(conn.outbox)
        conn.count_conflated()
        conn.outbox.close()
        if conn.claims is not None:
            engine.metrics.connections[conn.kind] -= 1
            if engine.metrics.connections[conn.kind] <= 0:
                del engine.metrics.connections[conn.kind]
