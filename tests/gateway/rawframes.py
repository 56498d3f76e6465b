"""WebSocket bytes by hand, for tests of the lean front: client frames (masked or not, any
opcode, any fragment) and a socket-level client that reads server frames one by one."""

from __future__ import annotations

import os

import msgspec
import trio

__all__ = ["RawSocketWS", "client_frame", "open_raw", "upgrade_request"]


def client_frame(payload: bytes, opcode: int = 0x1, *, fin: bool = True, masked: bool = True,
                 rsv: int = 0, length: int | None = None) -> bytes:
    """One client frame. `length` overrides the declared payload length (to lie about it)."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | rsv | opcode
    m = 0x80 if masked else 0
    if n < 126:
        head = bytes((b0, m | n))
    elif n < 65536:
        head = bytes((b0, m | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, m | 127)) + n.to_bytes(8, "big")
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def upgrade_request(port: int, *, path: str = "/ws", key: str | None = "dGhlIHNhbXBsZSBub25jZQ==",
                    version: str | None = "13", upgrade: bool = True, origin: str | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    if upgrade:
        lines += ["Upgrade: websocket", "Connection: Upgrade"]
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    if origin is not None:
        lines.append(f"Origin: {origin}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class RawSocketWS:
    """A TCP socket speaking WebSocket frame by frame (no library in between)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buf = b""

    async def _fill(self) -> bool:
        data = await self.stream.receive_some(65536)
        self.buf += data
        return bool(data)

    async def response_head(self, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
        """Status, lower-cased headers and body (the body only for non-101 answers)."""
        with trio.fail_after(timeout):
            while b"\r\n\r\n" not in self.buf:
                if not await self._fill():
                    raise EOFError(self.buf)
            head, _, self.buf = self.buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ")[1])
            headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
            body = b""
            if status != 101:
                while len(self.buf) < int(headers.get("content-length", "0")):
                    if not await self._fill():
                        break
                body, self.buf = self.buf, b""
            return status, headers, body

    async def frame(self, timeout: float = 5.0) -> tuple[int, bytes] | None:
        """The next server frame (opcode, payload); None at EOF. Asserts it is unmasked."""
        with trio.fail_after(timeout):
            while True:
                buf = self.buf
                if len(buf) >= 2:
                    assert not buf[1] & 0x80, "server frames must not be masked"
                    n, head = buf[1] & 0x7F, 2
                    if n == 126 and len(buf) >= 4:
                        n, head = int.from_bytes(buf[2:4], "big"), 4
                    elif n == 127 and len(buf) >= 10:
                        n, head = int.from_bytes(buf[2:10], "big"), 10
                    if n < 126 or head > 2:
                        if len(buf) >= head + n:
                            self.buf = buf[head + n :]
                            return buf[0] & 0x0F, buf[head : head + n]
                try:
                    if not await self._fill():
                        return None
                except trio.BrokenResourceError:
                    return None

    async def message(self, timeout: float = 5.0) -> dict[str, object]:
        """The next data frame decoded as JSON (control frames skipped)."""
        while True:
            got = await self.frame(timeout)
            assert got is not None, "connection closed"
            opcode, payload = got
            if opcode in (0x1, 0x2):
                return msgspec.json.decode(payload)  # type: ignore[no-any-return]

    async def close_code(self, timeout: float = 5.0) -> int | None:
        """Skip frames until the server's close frame; its code (None: closed without one)."""
        while True:
            got = await self.frame(timeout)
            if got is None:
                return None
            if got[0] == 0x8:
                return int.from_bytes(got[1][:2], "big") if got[1] else 1005

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def send_json(self, msg: dict[str, object]) -> None:
        await self.send(client_frame(msgspec.json.encode(msg)))


async def open_raw(port: int, request: bytes | None = None) -> RawSocketWS:
    """Connect and, if `request` is given, send it (read the answer with response_head)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    raw = RawSocketWS(stream)
    if request is not None:
        await raw.send(request)
    return raw
