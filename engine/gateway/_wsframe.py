"""RFC 6455 framing, sans-I/O: the handshake key, server frames out, client frames in.

Theory of operation
-------------------
The lean front (`_front.py`) owns the socket; this module only turns bytes into messages and
messages into bytes, so it can be tested without sockets and costs no objects of its own per
connection: `FrameReader` keeps its state in four slots of the transport that subclasses it.

Server to client frames are never masked, so a frame is a 2-, 4- or 10-byte header and the
payload; `encode_frames` writes everything that is due as ONE buffer (one `send_all`, one
syscall), whatever the number of messages. Headers of short frames come from a table.

Client to server: every frame must be masked (1002 otherwise), control frames must be final
and at most 125 bytes, continuation frames must continue something, reserved bits must be
zero (no extension is ever negotiated). A message over `max_message` bytes (counted across
its fragments, from the declared length before the payload arrives) is refused with 1009;
text must be UTF-8 (1007). Pings are answered by queueing a pong in `pending_ctrl` (only
the latest one), which the connection's writer sends before its next data; a close frame ends the input and records
the peer's code so the close can be echoed.
"""

from __future__ import annotations

import base64
import hashlib
import struct

__all__ = [
    "CLOSED",
    "FrameError",
    "FrameReader",
    "accept_key",
    "close_frame",
    "encode_frames",
    "ping_frame",
]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

# Close codes a peer may put on the wire (RFC 6455 7.4.1 and the registered/private ranges).
_VALID_PEER_CODES = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014))

MAX_FRAGMENTS = 1024  # empty continuation frames must not grow a list for ever
_H16 = struct.Struct("!BBH")
_H64 = struct.Struct("!BBQ")
_SHORT_TEXT = [bytes((0x80 | OP_TEXT, n)) for n in range(126)]
_SHORT_BINARY = [bytes((0x80 | OP_BINARY, n)) for n in range(126)]


class _Closed:
    __slots__ = ()

    def __repr__(self) -> str:
        return "CLOSED"


CLOSED = _Closed()  # next_message(): the peer sent a close frame


class FrameError(Exception):
    """The peer broke the protocol: fail the connection with this close code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


def _header(opcode: int, n: int) -> bytes:
    if n < 126:
        return bytes((0x80 | opcode, n))
    if n < 65536:
        return _H16.pack(0x80 | opcode, 126, n)
    return _H64.pack(0x80 | opcode, 127, n)


def encode_frames(frames: list[bytes], text: bool) -> bytes:
    """Every message as one final, unmasked frame, all in one buffer."""
    short = _SHORT_TEXT if text else _SHORT_BINARY
    opcode = OP_TEXT if text else OP_BINARY
    parts: list[bytes] = []
    append = parts.append
    for frame in frames:
        n = len(frame)
        append(short[n] if n < 126 else _header(opcode, n))
        append(frame)
    return b"".join(parts)


def ping_frame(payload: bytes = b"") -> bytes:
    return _header(OP_PING, len(payload)) + payload


def close_frame(code: int, reason: str = "") -> bytes:
    payload = code.to_bytes(2, "big") + reason.encode()[:120]
    return _header(OP_CLOSE, len(payload)) + payload


def _unmask(payload: bytes | bytearray, mask: bytes | bytearray) -> bytes:
    n = len(payload)
    if not n:
        return b""
    # One big-integer XOR instead of a per-byte loop (the trick wsproto uses too).
    key = (mask * ((n + 3) >> 2))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


class FrameReader:
    """Client frames in, messages out. Subclassed by the transport (one object per connection)."""

    __slots__ = ("_buf", "_frag", "_frag_len", "_frag_op", "max_message", "peer_close",
                 "pending_ctrl")

    def __init__(self, max_message: int) -> None:
        self.max_message = max_message
        # Unparsed input: bytes (empty costs nothing when idle), a bytearray while a big
        # frame trickles in (appending to bytes would copy it all again for every segment).
        self._buf: bytes | bytearray = b""
        self._frag: list[bytes] | None = None  # payloads of a fragmented message so far
        self._frag_len = 0
        self._frag_op = 0
        self.pending_ctrl: list[bytes] | None = None  # pongs for the writer to send first
        self.peer_close: int | None = None  # the code of the peer's close frame (1005: none)

    def feed(self, data: bytes) -> None:
        buf = self._buf
        if not buf:
            self._buf = data
        elif len(buf) < 65536:
            self._buf = buf + data
        else:
            if not isinstance(buf, bytearray):
                self._buf = buf = bytearray(buf)
            buf += data

    def next_message(self) -> str | bytes | _Closed | None:
        """The next complete message, CLOSED, or None when more bytes are needed."""
        buf = self._buf
        pos = 0
        try:
            while True:
                avail = len(buf) - pos
                if avail < 2:
                    return None
                b0 = buf[pos]
                b1 = buf[pos + 1]
                if b0 & 0x70:
                    raise FrameError(1002, "reserved bits set (no extension was negotiated)")
                if not b1 & 0x80:
                    raise FrameError(1002, "client frames must be masked")
                opcode = b0 & 0x0F
                n = b1 & 0x7F
                head = 6
                if n == 126:
                    if avail < 4:
                        return None
                    n = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                    head = 8
                elif n == 127:
                    if avail < 10:
                        return None
                    n = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                    head = 14
                fin = b0 & 0x80
                if opcode >= 0x8:
                    if not fin or n > 125:
                        raise FrameError(1002, "control frames must be final and at most 125 bytes")
                else:
                    so_far = self._frag_len if self._frag is not None else 0
                    if so_far + n > self.max_message:
                        raise FrameError(1009, f"message over {self.max_message} bytes")
                if avail < head + n:
                    return None
                mask = buf[pos + head - 4 : pos + head]
                payload = _unmask(buf[pos + head : pos + head + n], mask)
                pos += head + n
                if opcode == OP_TEXT or opcode == OP_BINARY:
                    if self._frag is not None:
                        raise FrameError(1002, "a new message started inside a fragmented one")
                    if fin:
                        return self._complete(opcode, payload)
                    self._frag = [payload]
                    self._frag_len = n
                    self._frag_op = opcode
                elif opcode == OP_CONT:
                    if self._frag is None:
                        raise FrameError(1002, "continuation frame with nothing to continue")
                    if len(self._frag) >= MAX_FRAGMENTS:
                        raise FrameError(1009, f"message in over {MAX_FRAGMENTS} fragments")
                    self._frag.append(payload)
                    self._frag_len += n
                    if fin:
                        parts, self._frag = self._frag, None
                        return self._complete(self._frag_op, b"".join(parts))
                elif opcode == OP_PING:
                    # Only the latest ping gets its pong (RFC 6455 5.5.3 allows it): a client
                    # flooding pings while not reading cannot grow this list.
                    pong = _header(OP_PONG, n) + payload
                    ctrl = self.pending_ctrl
                    if ctrl is None:
                        self.pending_ctrl = [pong]
                    else:
                        self.pending_ctrl = [f for f in ctrl if f[0] != 0x80 | OP_PONG]
                        self.pending_ctrl.append(pong)
                elif opcode == OP_PONG:
                    pass
                elif opcode == OP_CLOSE:
                    self.peer_close = self._close_code(payload)
                    return CLOSED
                else:
                    raise FrameError(1002, f"unknown opcode {opcode:#x}")
        finally:
            if pos:
                self._buf = buf[pos:] if pos < len(buf) else b""

    @staticmethod
    def _complete(opcode: int, payload: bytes) -> str | bytes:
        if opcode == OP_BINARY:
            return payload
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError(1007, "text message is not valid UTF-8") from None

    @staticmethod
    def _close_code(payload: bytes) -> int:
        if not payload:
            return 1005
        if len(payload) == 1:
            raise FrameError(1002, "close frame with a 1-byte payload")
        code = int.from_bytes(payload[:2], "big")
        if code not in _VALID_PEER_CODES and not 3000 <= code <= 4999:
            raise FrameError(1002, f"invalid close code {code}")
        try:
            payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError(1007, "close reason is not valid UTF-8") from None
        return code
