"""The lean front: one listener for the engine's port, `/ws` on raw trio sockets, HTTP to hypercorn.

Theory of operation
-------------------
hypercorn's per-connection machinery (TCPServer, its TaskGroup, the H11 protocol and WSStream,
an ASGI app task, memory channels, wsproto) cost about half of the server's main-thread time
per message and ~30 KB of RSS per idle WebSocket. So the engine accepts connections itself:

* `serve_front` opens the listeners (port 0 allowed: it reports the bound port) and runs
  hypercorn's lifespan once, as `hypercorn.trio.serve` would.
* Per accepted socket, `Front.handle` reads the start of the request. Anything that is not
  `GET /ws ...` is handed to hypercorn at once (hypercorn's own `TCPServer`, on a stream that
  replays the bytes already read), so every HTTP feature, keep-alive and graceful shutdown
  stay hypercorn's. For `GET /ws` it reads the whole head (HEAD_LIMIT bytes, HEAD_TIMEOUT_S;
  past either it is hypercorn's problem too), checks it (RFC 6455 4.2.1: 400 for a bad key,
  426 without an upgrade or for another version), the Origin allowlist (403) and the accept
  rate limit (101 then close 1013, as before, so clients back off the same way), answers 101
  and runs the connection (`_ws.run_connection`) on a `LeanTransport`: the raw SocketStream
  plus `FrameReader` (`_wsframe.py`). The accepting task becomes the connection's reader;
  with its writer that is two tasks per connection.
* Shutdown (engine.stopping): stop accepting; hypercorn connections get its graceful
  behaviour (idle keep-alives close, requests in flight get `graceful_timeout`); WebSocket
  connections are closed with 1001 by the connection sweeper (`_ws.sweep_connections`).

A `/ws` upgrade on an HTTP keep-alive connection that hypercorn already serves still works: it
reaches `_asgi.serve_websocket` through ASGI.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import socket
import struct
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import msgspec
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState, LifespanState
from hypercorn.utils import wrap_app

from ._ws import run_connection
from ._wsframe import CLOSED, FrameReader, accept_key, close_frame, encode_frames, ping_frame

if TYPE_CHECKING:
    from ..server import Engine

__all__ = ["Front", "LeanTransport", "PrefixedStream", "serve_front"]

log = logging.getLogger("omnitill.gateway")

HEAD_LIMIT = 16 * 1024
HEAD_TIMEOUT_S = 10.0
RECV_BYTES = 64 * 1024
_WS_PREFIX = b"GET /ws"
_LINGER_RESET = struct.pack("ii", 1, 0)
_PING = ping_frame()  # the heartbeat: an empty ping


class LeanTransport(FrameReader):
    """A WebSocket on a raw trio SocketStream (see `_ws.Transport`)."""

    __slots__ = ("drained", "stream", "wake")

    def __init__(self, stream: trio.SocketStream, max_message: int, initial: bytes = b"") -> None:
        super().__init__(max_message)
        self.stream = stream
        self.wake: Callable[[], None] | None = None
        self.drained = False  # the last read took less than it asked for: the buffer was empty
        if initial:
            self.feed(initial)

    async def recv(self) -> str | bytes | None:
        while True:
            msg = self.next_message()
            if self.pending_ctrl is not None and self.wake is not None:
                self.wake()  # pongs to send
            if msg is not None:
                return None if msg is CLOSED else msg  # type: ignore[return-value]
            data = await self._read()
            if not data:
                return None
            self.feed(data)

    async def _read(self) -> bytes:
        """`receive_some`, minus trio's per-call layers (three coroutine frames that an idle
        connection would keep alive, and their CPU per read). Same semantics: one checkpoint
        per call, wait in epoll while there is nothing to read.

        After a short read (the kernel buffer was emptied) the next call waits for readiness
        first instead of trying a read that almost always fails with EAGAIN: one syscall and
        one exception less per request on a request/response connection. The wait is the
        call's checkpoint (no second one after the read)."""
        sock = self.stream.socket
        waited = False
        if self.drained:
            await trio.lowlevel.wait_readable(sock)
            waited = True
        while True:
            fd = sock.fileno()
            if fd < 0:
                raise trio.ClosedResourceError("socket was closed")
            try:
                data = os.read(fd, RECV_BYTES)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(sock)
                waited = True
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(exc) from exc
            self.drained = len(data) < RECV_BYTES
            if not waited:
                await trio.lowlevel.checkpoint()
            return data

    async def send_frames(self, frames: list[bytes], text: bool) -> None:
        data = self.wire_bytes(frames, text)
        if data:
            await self._write(data)

    def wire_bytes(self, frames: list[bytes], text: bool) -> bytes:
        """`frames` framed for the wire, after any queued control frames (pongs, pings)."""
        data = encode_frames(frames, text)
        ctrl = self.pending_ctrl
        if ctrl is not None:
            self.pending_ctrl = None
            data = b"".join(ctrl) + data
        return data

    def write_nowait(self, data: bytes) -> bytes:
        """Write what the kernel takes now; return the rest (b"" when all of it went).
        Raises BrokenResourceError/ClosedResourceError like `send_all`."""
        fd = self.stream.socket.fileno()
        if fd < 0:
            raise trio.ClosedResourceError("socket was closed")
        try:
            sent = os.write(fd, data)
        except BlockingIOError:
            return data
        except OSError as exc:
            raise trio.BrokenResourceError(exc) from exc
        return data[sent:] if sent < len(data) else b""

    async def write_rest(self, data: bytes) -> None:
        """Finish a write that `write_nowait` could not (waits for the socket to drain)."""
        await self.stream.send_all(data)

    async def send_close(self, code: int, reason: str) -> None:
        self.pending_ctrl = None
        await self._write(close_frame(code, reason))

    async def _write(self, data: bytes) -> None:
        """`send_all`, minus trio's per-call machinery when the kernel takes it all at once
        (the common case). The writer's loop checkpoints on every pass (`outbox.wait`)."""
        rest = self.write_nowait(data)
        if rest:
            await self.stream.send_all(rest)

    def ping(self) -> None:
        if self.pending_ctrl is None:
            self.pending_ctrl = [_PING]
        elif _PING not in self.pending_ctrl:
            self.pending_ctrl.append(_PING)
        if self.wake is not None:
            self.wake()

    def abort(self) -> bool:
        sock = self.stream.socket
        try:
            # A reset, not a FIN behind megabytes the client will never read.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        except OSError:
            pass
        sock.close()  # trio wakes a task blocked on this socket with ClosedResourceError
        return True


class PrefixedStream(trio.abc.HalfCloseableStream):
    """A socket stream with the bytes the front already read put back in front (for hypercorn)."""

    def __init__(self, stream: trio.SocketStream, prefix: bytes) -> None:
        self.stream = stream
        self.socket = stream.socket  # hypercorn's TCPServer reads the peer address from it
        self._prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        prefix = self._prefix
        if not prefix:
            return await self.stream.receive_some(max_bytes)
        await trio.lowlevel.checkpoint()
        if max_bytes is None or max_bytes >= len(prefix):
            self._prefix = b""
            return prefix
        self._prefix = prefix[max_bytes:]
        return prefix[:max_bytes]

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.stream.send_eof()

    async def aclose(self) -> None:
        await self.stream.aclose()


def _maybe_ws(buf: bytes) -> bool:
    """Could this still be `GET /ws` or `GET /ws?...`? (decided on the first few bytes)"""
    n = len(_WS_PREFIX)
    if len(buf) <= n:
        return _WS_PREFIX.startswith(buf)
    return buf.startswith(_WS_PREFIX) and buf[n] in b" ?"


async def read_head(stream: trio.SocketStream) -> tuple[bytes, int]:
    """Bytes read so far and the end of the request head (0: not a `/ws` request head)."""
    buf = b""
    with trio.move_on_after(HEAD_TIMEOUT_S):
        while len(buf) <= HEAD_LIMIT:
            data = await stream.receive_some(HEAD_LIMIT)
            if not data:
                break
            buf += data
            if not _maybe_ws(buf):
                break
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                return buf, end + 4
    return buf, 0


def parse_head(head: bytes) -> tuple[str, str, dict[str, str]] | None:
    """(target, version, lower-cased headers) of a request head, or None if malformed."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            return None
        key = name.decode("latin-1").lower()
        text = value.strip().decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return parts[1].decode("latin-1"), parts[2].decode("latin-1"), headers


def _tokens(value: str) -> set[str]:
    return {t.strip().lower() for t in value.split(",")}


def http_error(status: int, reason: str, code: str, message: str, extra: str = "") -> bytes:
    body = msgspec.json.encode({"code": code, "message": message})
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
    ).encode("latin-1") + body


def handshake_error(headers: dict[str, str]) -> bytes | None:
    """The HTTP error response for a bad WebSocket upgrade request, or None if it is fine."""
    if "websocket" not in _tokens(headers.get("upgrade", "")) or "upgrade" not in _tokens(
        headers.get("connection", "")
    ):
        return http_error(426, "Upgrade Required", "bad_frame",
                          "/ws is a WebSocket endpoint: send an Upgrade: websocket request",
                          "Upgrade: websocket\r\n")
    if headers.get("sec-websocket-version") != "13":
        return http_error(426, "Upgrade Required", "bad_frame",
                          "unsupported WebSocket version: this server speaks 13",
                          "Sec-WebSocket-Version: 13\r\n")
    key = headers.get("sec-websocket-key", "")
    try:
        ok = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        ok = False
    if not ok:
        return http_error(400, "Bad Request", "bad_frame",
                          "missing or malformed Sec-WebSocket-Key")
    return None


class Front:
    """Per-connection entry point of the listener (see the module docstring)."""

    def __init__(self, engine: Engine, app: Any, hconfig: HypercornConfig,
                 context: WorkerContext, state: ConnectionState) -> None:
        self.engine = engine
        self.app = app
        self.hconfig = hconfig
        self.context = context
        self.state = state
        self.max_message = max(engine.config.max_frame_bytes * 16, 1 << 20)

    async def handle(self, stream: trio.SocketStream) -> None:
        try:
            buf, end = await read_head(stream)
            if not end:
                await self.http(stream, buf)
                return
            transport = await self.handshake(stream, buf, end)
            del buf  # nothing of the head stays alive with the connection
            if transport is not None:
                await run_connection(self.engine, transport)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # the peer went away
        except Exception:
            log.exception("connection handler failed")
        finally:
            stream.socket.close()

    async def http(self, stream: trio.SocketStream, prefix: bytes) -> None:
        wrapped: Any = PrefixedStream(stream, prefix) if prefix else stream
        await TCPServer(self.app, self.hconfig, self.context, self.state, wrapped).run()

    async def handshake(self, stream: trio.SocketStream, buf: bytes, end: int) -> LeanTransport | None:
        """Answer the upgrade request: the transport to run, or None when it was refused."""
        engine = self.engine
        parsed = parse_head(buf[: end - 4])
        if parsed is None or not parsed[1].startswith("HTTP/1."):
            await stream.send_all(http_error(400, "Bad Request", "bad_frame", "malformed request"))
            return None
        headers = parsed[2]
        error = handshake_error(headers)
        if error is None and not engine.origin_allowed(headers.get("origin")):
            engine.metrics.errors["origin_rejected"] += 1
            error = http_error(403, "Forbidden", "forbidden", "origin not allowed")
        if error is not None:
            await stream.send_all(error)
            return None
        accept = (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(headers['sec-websocket-key'])}\r\n\r\n"
        ).encode("latin-1")
        if not engine.accept_ok():
            # Reconnect storms: turn extra connections away fast (the close code clients
            # back off on); one write, no connection state.
            engine.metrics.errors["accept_rate_limited"] += 1
            await stream.send_all(accept + close_frame(1013, "try again later"))
            return None
        transport = LeanTransport(stream, self.max_message, buf[end:])
        await transport._write(accept)
        return transport


async def serve_front(
    engine: Engine, app: Any, hconfig: HypercornConfig,
    *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on the engine's host:port until engine.stopping; report the bound port."""
    cfg = engine.config
    hconfig.set_statsd_logger_class(StatsdLogger)
    wrapped = wrap_app(app, hconfig.wsgi_max_body_size, None)
    lifespan_state: LifespanState = {}
    lifespan = Lifespan(wrapped, hconfig, lifespan_state)
    context = WorkerContext(None)
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        listeners = await trio.open_tcp_listeners(
            cfg.port, host=cfg.host or None, backlog=hconfig.backlog
        )
        port = int(listeners[0].socket.getsockname()[1])
        front = Front(engine, wrapped, hconfig, context, ConnectionState(lifespan_state.copy()))
        async with trio.open_nursery() as connections:
            async with trio.open_nursery() as accepting:
                accepting.start_soon(
                    partial(trio.serve_listeners, front.handle, listeners, handler_nursery=connections)
                )
                task_status.started(port)
                await engine.stopping.wait()
                accepting.cancel_scope.cancel()
            # WebSockets: the sweeper closes them with 1001 (going away). HTTP: idle
            # keep-alives close now, requests in flight get hypercorn's graceful timeout.
            await context.terminated.set()
            connections.cancel_scope.deadline = trio.current_time() + hconfig.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()

