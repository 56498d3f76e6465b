"""The `/ws` endpoint, as a raw ASGI websocket handler.

Theory of operation
-------------------
Each connection runs its reader (decodes frames, answers hello/subscribe/ping inline, starts
commands as tasks so one connection can pipeline many) and its writer (the only task that ever
sends on this socket: it drains the connection's Outbox) in its own nursery. One engine-wide
sweeper task (`sweep_connections`) is the watchdog of every connection (hello deadline,
slow-consumer cut-off): a timer per connection would cost thousands of deadline expiries a
second at 10,000 clients. Actors and the bus only
ever call the Outbox's non-blocking methods, so a stalled socket can delay nobody but itself;
its pending deltas are conflated per topic, so its memory stays bounded.

Stuck sockets. hypercorn shields its socket writes from cancellation, so a client that stops
reading blocks the writer inside `send` and cancelling the connection's nursery cannot free it
(the nursery waits for the writer forever, and so would engine shutdown). The watchdog counts a
send in progress as pending output, so a writer stuck with an empty outbox is still noticed;
and a guard task, woken whenever the nursery is cancelled for any reason, gives the writer
STUCK_SEND_S to come out and otherwise shuts the TCP socket down under hypercorn, which fails
the blocked write and lets everything unwind. The client sees the connection drop (it was not
reading the close frame anyway), reconnects and resumes.

Bad input never closes the connection by itself: every bad frame gets an `error` with a stable
code and changes nothing. A client that sends nothing but bad frames (over BAD_FRAME_LIMIT in
a row) is closed with 1008, and one that never says hello within HELLO_TIMEOUT_S with 4003.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import socket
import time
from typing import TYPE_CHECKING, Any

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
    Resumed,
    Snapshot,
    Subscribe,
    Unsubscribe,
    Welcome,
    decode_client_frame,
    join_frames,
    parse_topic,
)

from ..auth import Claims, check_topic
from ..bus import DeltaFrame, Outbox, OutboxOverflow
from ._ratelimit import TokenBucket

if TYPE_CHECKING:
    from ..server import Engine

__all__ = ["serve_websocket", "sweep_connections"]

log = logging.getLogger("omnitill.gateway")

HELLO_TIMEOUT_S = 10.0
STUCK_SEND_S = 1.0  # after a close or cancel, how long a blocked socket write may keep us
BAD_FRAME_LIMIT = 50
MAX_INFLIGHT_COMMANDS = 128
_session_ids = itertools.count(1)


def _socket_of(send: Any) -> Any:
    """The TCP socket under a hypercorn ASGI `send`, or None.

    hypercorn internals (checked against 0.18): the ASGI send is `WSStream.app_send`; its
    `.send` is the HTTP protocol's `stream_send`, whose `.send` is `TCPServer.protocol_send`,
    and the TCPServer holds the trio stream. Walk bound methods' owners looking for a trio
    Stream; SSL streams wrap the socket stream in `transport_stream`.
    """
    fn = send
    for _ in range(6):
        owner = getattr(fn, "__self__", None)
        if owner is None:
            return None
        stream = getattr(owner, "stream", None)
        if isinstance(stream, trio.abc.Stream):
            stream = getattr(stream, "transport_stream", stream)
            return getattr(stream, "socket", None)
        fn = getattr(owner, "send", None)
    return None


def header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class Connection:
    def __init__(self, engine: Engine, send: Any) -> None:
        self.engine = engine
        self._send = send
        cfg = engine.config
        self.outbox = Outbox("json", max_control=cfg.outbox_max_control)
        self.claims: Claims | None = None
        self.kind = "unknown"
        self.session = f"s{next(_session_ids)}-{secrets.token_hex(3)}"
        self.bucket = TokenBucket(cfg.commands_per_s, cfg.command_burst)
        self.inflight = trio.Semaphore(MAX_INFLIGHT_COMMANDS)
        self.bad_frames = 0
        self.batch = False  # the client accepts several messages per frame (hello.batch)
        self.last_progress = time.monotonic()
        self.sending = False  # the writer is inside hypercorn's `send` (which may block)
        self.writer_done = trio.Event()
        self.conflated_seen = 0  # outbox.conflated already added to the metrics
        self.close_code: int | None = None
        self.close_reason = ""
        self.started = time.monotonic()
        self.cancel_scope: trio.CancelScope | None = None

    # --- output -------------------------------------------------------------------------

    def error(self, code: ErrorCode, message: str, topic: str | None = None) -> None:
        self.engine.metrics.errors[code.value] += 1
        self.outbox.send(Error(code=code.value, message=message, topic=topic))

    async def writer(self) -> None:
        send = self._send
        outbox = self.outbox
        metrics = self.engine.metrics
        try:
            while True:
                await outbox.wait()
                if outbox.closed:
                    return
                self.count_conflated()
                frames = outbox.drain()
                if self.batch and len(frames) > 1:
                    # One socket write and one WebSocket frame for everything that is due.
                    metrics.frames_batched += len(frames)
                    frames = [join_frames(frames, outbox.encoding)]
                text = outbox.encoding == "json"
                self.sending = True
                for frame in frames:
                    if text:
                        await send({"type": "websocket.send", "text": frame.decode()})
                    else:
                        await send({"type": "websocket.send", "bytes": frame})
                    self.last_progress = time.monotonic()
                self.sending = False
                metrics.frames_out += len(frames)
        finally:
            self.writer_done.set()

    def count_conflated(self) -> None:
        conflated = self.outbox.conflated
        self.engine.metrics.conflated += conflated - self.conflated_seen
        self.conflated_seen = conflated

    async def guard(self) -> None:
        """Close with 1001 when the engine stops; free a writer stuck in a shielded socket
        write once the connection is torn down (for whatever reason)."""
        try:
            # Engine.stop() sets this (no public flag yet): tell the client to go elsewhere now
            # rather than letting hypercorn's graceful timeout cut it off without a close code.
            await self.engine.stopping.wait()
            self.close(CLOSE_CODES["going_away"], "server shutting down: reconnect and resume")
            if self.cancel_scope is not None:
                self.cancel_scope.cancel()
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(STUCK_SEND_S):
                    await self.writer_done.wait()
                if not self.writer_done.is_set():
                    self.abort_transport()

    def abort_transport(self) -> None:
        sock = _socket_of(self._send)
        if sock is None:
            log.warning("session %s: writer stuck, socket unreachable", self.session)
            return
        self.engine.metrics.errors["stuck_socket_aborted"] += 1
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked write with a broken pipe
        except OSError:
            pass  # already gone

    def close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason

    # --- input --------------------------------------------------------------------------

    async def reader(self, receive: Any, nursery: trio.Nursery) -> None:
        try:
            await self._read(receive, nursery)
        except OutboxOverflow:
            # Replies to its own frames (pongs, errors) pile up unread: cut it off cleanly.
            self.too_slow("not reading replies")

    def too_slow(self, reason: str) -> None:
        if self.close_code is None:
            self.engine.metrics.slow_disconnects += 1
        self.close(CLOSE_CODES["slow_consumer"], reason)

    async def _read(self, receive: Any, nursery: trio.Nursery) -> None:
        max_bytes = self.engine.config.max_frame_bytes
        metrics = self.engine.metrics
        while self.close_code is None:
            event = await receive()
            etype = event["type"]
            if etype == "websocket.disconnect":
                return
            if etype != "websocket.receive":
                continue
            data = event.get("text")
            if data is None:
                data = event.get("bytes") or b""
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
            await self.inflight.acquire()
            nursery.start_soon(self.run_command, msg)
        elif isinstance(msg, Subscribe):
            await self.subscribe(msg)
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

    async def run_command(self, msg: Command) -> None:
        try:
            assert self.claims is not None
            result = await self.engine.dispatcher.execute(self.claims, msg.op_id, msg.name, msg.args)
            self.outbox.send(Ack(op_id=msg.op_id, result=result))
        except ProtocolError as exc:
            self.outbox.send(
                Reject(op_id=msg.op_id, code=exc.code.value, message=exc.message, details=exc.details)
            )
        except OutboxOverflow:
            self.too_slow("not reading replies")
        except Exception:
            log.exception("command %s failed", msg.name)
            self.outbox.send(
                Reject(
                    op_id=msg.op_id,
                    code=ErrorCode.INTERNAL.value,
                    message="internal error: retry with the same op_id",
                )
            )
        finally:
            self.inflight.release()

    async def subscribe(self, msg: Subscribe) -> None:
        assert self.claims is not None
        name = msg.topic
        topic = parse_topic(name)
        check_topic(self.claims, topic)
        engine = self.engine
        outbox = self.outbox
        if name not in outbox.subscribed and len(outbox.subscribed) >= engine.config.outbox_max_topics:
            raise ProtocolError(
                ErrorCode.TOO_LARGE,
                f"subscription limit of {engine.config.outbox_max_topics} topics reached",
            )
        source = engine.sources.get(topic)
        source.prepare(topic, name)
        outbox.drop_topic(name)
        engine.bus.subscribe(name, outbox)
        if msg.resume is not None:
            missed = engine.bus.catch_up(name, msg.resume)
            if missed is True:
                engine.metrics.resumes += 1
                outbox.send(Resumed(topic=name, epoch=msg.resume.epoch, seq=msg.resume.seq))
                return
            if missed is not None and missed is not False:
                engine.metrics.resumes += 1
                outbox.send(
                    Resumed(
                        topic=name,
                        epoch=missed.epoch,
                        seq=missed.seq,
                        missed=missed.seq - msg.resume.seq,
                    )
                )
                outbox.offer_delta(DeltaFrame(missed))
                return
            engine.metrics.resyncs += 1
        result = source.snapshot(topic, name)
        if not isinstance(result, tuple):
            result = await result
        epoch, seq, state = result
        if name not in outbox.subscribed:
            return  # unsubscribed while the snapshot was being made
        outbox.set_snapshot_floor(name, epoch, seq)
        outbox.send(Snapshot(topic=name, epoch=epoch, seq=seq, state=state))

    # --- watchdog (one sweep for all connections, see sweep_connections) ------------------

    def check(self, now: float, cfg: Any) -> None:
        """Hello deadline and slow-consumer cut-off; called about twice a second."""
        self.count_conflated()
        # A writer inside hypercorn's (shielded) send counts as pending output even when the
        # outbox is empty: that is exactly the stuck-client case.
        pending = bool(len(self.outbox)) or self.sending
        if self.close_code is None:
            if self.claims is None and now - self.started > HELLO_TIMEOUT_S:
                self.close(CLOSE_CODES["unauthorized"], "no hello")
            elif pending and now - self.last_progress > cfg.slow_client_grace_s:
                self.engine.metrics.slow_disconnects += 1
                self.close(CLOSE_CODES["slow_consumer"], "too slow: reconnect and resume")
            elif not pending:
                self.last_progress = now
        if self.close_code is not None and self.cancel_scope is not None:
            self.cancel_scope.cancel()


async def sweep_connections(engine: Engine, interval_s: float = 0.5) -> None:
    """One task checks every connection: a timer per connection would cost thousands of
    deadline expiries per second at 10,000 clients."""
    cfg = engine.config
    while True:
        await trio.sleep(interval_s)
        now = time.monotonic()
        for conn in list(engine.connections):
            conn.check(now, cfg)


async def serve_websocket(engine: Engine, scope: dict[str, Any], receive: Any, send: Any) -> None:
    first = await receive()
    if first["type"] != "websocket.connect":
        return
    origin = header(scope, b"origin")
    if not engine.origin_allowed(origin):
        engine.metrics.errors["origin_rejected"] += 1
        await send({"type": "websocket.close", "code": CLOSE_CODES["protocol_violation"]})
        return
    if not engine.accept_ok():
        # Reconnect storms: turn extra connections away fast; clients back off with jitter.
        engine.metrics.errors["accept_rate_limited"] += 1
        await send({"type": "websocket.close", "code": 1013})
        return
    await send({"type": "websocket.accept"})
    conn = Connection(engine, send)
    engine.metrics.connections_total += 1
    engine.connections.add(conn)
    try:
        async with trio.open_nursery() as nursery:
            conn.cancel_scope = nursery.cancel_scope
            nursery.start_soon(conn.writer)
            nursery.start_soon(conn.guard)

            async def read_then_stop() -> None:
                try:
                    await conn.reader(receive, nursery)
                finally:
                    if conn.close_code is not None:
                        # Let the writer flush the error that explains the close.
                        with trio.move_on_after(1.0):
                            while len(conn.outbox) and not conn.outbox.closed:
                                await trio.sleep(0.01)
                    nursery.cancel_scope.cancel()

            nursery.start_soon(read_then_stop)
    finally:
        engine.connections.discard(conn)
        engine.bus_release(conn.outbox)
        conn.count_conflated()
        conn.outbox.close()
        if conn.claims is not None:
            engine.metrics.connections[conn.kind] -= 1
            if engine.metrics.connections[conn.kind] <= 0:
                del engine.metrics.connections[conn.kind]
        if conn.close_code is not None:
            with trio.move_on_after(1.0) as cs:
                cs.shield = True
                try:
                    await send(
                        {
                            "type": "websocket.close",
                            "code": conn.close_code,
                            "reason": conn.close_reason,
                        }
                    )
                except Exception:  # the peer may be gone already
                    pass
