"""A minimal, cheap WebSocket client engine for load generators (bench only).

Theory of operation
-------------------
A load generator that is heavier than the server it measures measures itself. So the bench
clients are not the SDK and not trio-websocket: each generator process runs ONE epoll loop
(`Loop`) over thousands of non-blocking sockets. A connection (`WsConn`) does the HTTP upgrade
by hand, parses server frames (never masked) straight from a bytearray, and sends client frames
masked with an all-zero key (legal per RFC 6455 §5.3; the XOR is then a no-op, so sending costs
one header concat). Several frames queued in one loop turn go out in one `send` call.

Callbacks are plain functions: `on_open(conn)`, `on_text(conn, str_or_bytes)`,
`on_close(conn, code)`. Timers are a heap of (when, seq, fn). Nothing here allocates per frame
beyond the payload slice.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import os
import resource
import selectors
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Loop", "WsConn", "percentile", "raise_nofile", "summarize"]

_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # any base64 nonce: we do not check Sec-WebSocket-Accept
_ZERO_MASK = b"\x00\x00\x00\x00"


def raise_nofile() -> int:
    """Raise the soft open-file limit to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def encode_frame(payload: bytes, opcode: int = 1) -> bytes:
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + struct.pack("!H", n)
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + struct.pack("!Q", n)
    return head + _ZERO_MASK + payload


class WsConn:
    __slots__ = (
        "_frag",
        "_rbuf",
        "_wbuf",
        "closed",
        "data",
        "host",
        "loop",
        "on_close",
        "on_open",
        "on_text",
        "path",
        "port",
        "sock",
        "state",
    )

    def __init__(
        self,
        loop: Loop,
        host: str,
        port: int,
        path: str,
        on_open: Callable[[WsConn], None],
        on_text: Callable[[WsConn, bytes], None],
        on_close: Callable[[WsConn, int], None],
    ) -> None:
        self.loop = loop
        self.host, self.port, self.path = host, port, path
        self.on_open, self.on_text, self.on_close = on_open, on_text, on_close
        self.state = "connecting"
        self._rbuf = bytearray()
        self._wbuf = bytearray()
        self._frag = bytearray()
        self.closed = False
        self.data: Any = None  # the caller's per-connection state
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        err = sock.connect_ex((host, port))
        if err not in (0, errno.EINPROGRESS):
            self._fail(1006)
            return
        loop.sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self)

    # --- writing ----------------------------------------------------------------------------

    def send_text(self, payload: bytes | str) -> None:
        if isinstance(payload, str):
            payload = payload.encode()
        self._write(encode_frame(payload, 1))

    def send_raw(self, data: bytes) -> None:
        """Pre-framed bytes (several frames joined), sent as they are."""
        self._write(data)

    def _write(self, data: bytes) -> None:
        if self.closed:
            return
        if self._wbuf or self.state == "connecting":
            self._wbuf += data
            return
        try:
            n = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            self._fail(1006)
            return
        if n < len(data):
            self._wbuf += data[n:]
            self.loop.sel.modify(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self)

    def _flush(self) -> None:
        try:
            n = self.sock.send(self._wbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._fail(1006)
            return
        del self._wbuf[:n]
        if not self._wbuf:
            self.loop.sel.modify(self.sock, selectors.EVENT_READ, self)

    def close(self, code: int = 1000) -> None:
        if self.closed:
            return
        try:
            self.sock.send(encode_frame(struct.pack("!H", code), 8))
        except OSError:
            pass
        self._fail(code, notify=False)

    def _fail(self, code: int, notify: bool = True) -> None:
        if self.closed:
            return
        self.closed = True
        self.state = "closed"
        try:
            self.loop.sel.unregister(self.sock)
        except (KeyError, ValueError):
            pass
        self.sock.close()
        if notify:
            self.on_close(self, code)

    # --- events -----------------------------------------------------------------------------

    def _on_event(self, mask: int) -> None:
        if self.state == "connecting":
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._fail(1006)
                return
            self.state = "handshake"
            req = (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {_KEY.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
            # Callers send only after on_open, so nothing else is queued yet.
            self._wbuf.clear()
            self.loop.sel.modify(self.sock, selectors.EVENT_READ, self)
            self._write(req)
            return
        if mask & selectors.EVENT_WRITE and self._wbuf:
            self._flush()
            if self.closed:
                return
        if mask & selectors.EVENT_READ:
            try:
                chunk = self.sock.recv(262144)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._fail(1006)
                return
            if not chunk:
                self._fail(1006)
                return
            self._rbuf += chunk
            if self.state == "handshake":
                end = self._rbuf.find(b"\r\n\r\n")
                if end < 0:
                    return
                status = bytes(self._rbuf[:end]).split(b"\r\n", 1)[0]
                del self._rbuf[: end + 4]
                if b" 101 " not in status + b" ":
                    self._fail(1006)
                    return
                self.state = "open"
                self.on_open(self)
                if self.closed:
                    return
            self._parse()

    def _parse(self) -> None:
        buf = self._rbuf
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            b0 = buf[pos]
            ln = buf[pos + 1] & 0x7F
            hdr = 2
            if ln == 126:
                if n - pos < 4:
                    break
                ln = (buf[pos + 2] << 8) | buf[pos + 3]
                hdr = 4
            elif ln == 127:
                if n - pos < 10:
                    break
                ln = struct.unpack_from("!Q", buf, pos + 2)[0]
                hdr = 10
            if n - pos < hdr + ln:
                break
            payload = bytes(buf[pos + hdr : pos + hdr + ln])
            pos += hdr + ln
            opcode = b0 & 0x0F
            fin = b0 & 0x80
            if opcode in (1, 2, 0):
                if not fin or self._frag:
                    self._frag += payload
                    if not fin:
                        continue
                    payload = bytes(self._frag)
                    self._frag.clear()
                self.on_text(self, payload)
                if self.closed:
                    return
            elif opcode == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self._fail(code)
                return
            elif opcode == 9:
                self._write(encode_frame(payload, 10))
        if pos:
            del buf[:pos]


class Loop:
    """One epoll loop: sockets, timers, and optional extra fds (e.g. a control pipe)."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.stopped = False

    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (when, next(self._seq), fn))

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        self.call_at(time.monotonic() + delay, fn)

    def add_reader(self, fileobj: Any, fn: Callable[[], None]) -> None:
        self.sel.register(fileobj, selectors.EVENT_READ, fn)

    def connect(self, host: str, port: int, path: str, **callbacks: Any) -> WsConn:
        return WsConn(self, host, port, path, **callbacks)

    def run(self, until: Callable[[], bool] | None = None, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        timers = self._timers
        select = self.sel.select
        while not self.stopped:
            if until is not None and until():
                return
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return
            while timers and timers[0][0] <= now:
                heapq.heappop(timers)[2]()
            wait = 0.05
            if timers:
                wait = min(wait, max(0.0, timers[0][0] - time.monotonic()))
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - now))
            for key, mask in select(wait):
                obj = key.data
                if isinstance(obj, WsConn):
                    obj._on_event(mask)
                else:
                    obj()


def percentile(sorted_values: Any, q: float) -> float:
    n = len(sorted_values)
    if not n:
        return float("nan")
    return float(sorted_values[min(n - 1, max(0, round(q * (n - 1))))])


def summarize(latencies_s: Any) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds of an unsorted sequence of seconds."""
    values = sorted(latencies_s)
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 0.50) * 1000, 2),
        "p90_ms": round(percentile(values, 0.90) * 1000, 2),
        "p99_ms": round(percentile(values, 0.99) * 1000, 2),
        "max_ms": round((values[-1] if values else float("nan")) * 1000, 2),
    }


def cpu_count() -> int:
    return os.cpu_count() or 1
