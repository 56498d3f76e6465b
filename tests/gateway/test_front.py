"""The lean front (engine/gateway/_front.py) over real sockets, byte by byte: the RFC 6455
handshake and its errors, framing rules (masking, sizes, fragments, control frames), the
close handshake, heartbeats, shutdown, and HTTP served by hypercorn on the same port."""

from __future__ import annotations

import httpx
import msgspec
import pytest
import trio

from engine.gateway._wsframe import accept_key
from engine.server import Engine
from tests.conftest import http_url
from tests.gateway.helpers import token
from tests.gateway.rawframes import RawSocketWS, client_frame, open_raw, upgrade_request

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


async def connected(engine: Engine, **kw: object) -> RawSocketWS:
    raw = await open_raw(engine.bound_port or 0, upgrade_request(engine.bound_port or 0, **kw))  # type: ignore[arg-type]
    status, headers, _ = await raw.response_head()
    assert status == 101
    assert headers["sec-websocket-accept"] == accept_key(KEY)
    assert headers["upgrade"].lower() == "websocket"
    return raw


async def hello(engine: Engine, raw: RawSocketWS, role: str = "kiosk") -> dict[str, object]:
    await raw.send_json({"type": "hello", "protocol": 1, "token": token(engine, role)})
    welcome = await raw.message()
    assert welcome["type"] == "welcome", welcome
    return welcome


def test_accept_key_matches_rfc_example() -> None:
    assert accept_key(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455, section 1.3


# --- handshake ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("kw", "status", "header"),
    [
        pytest.param({"key": None}, 400, None, id="missing-key"),
        pytest.param({"key": "c2hvcnQ="}, 400, None, id="key-not-16-bytes"),
        pytest.param({"key": "!!!not base64!!!"}, 400, None, id="key-not-base64"),
        pytest.param({"version": "8"}, 426, ("sec-websocket-version", "13"), id="wrong-version"),
        pytest.param({"version": None}, 426, ("sec-websocket-version", "13"), id="no-version"),
        pytest.param({"upgrade": False}, 426, ("upgrade", "websocket"), id="not-an-upgrade"),
    ],
)
async def test_bad_handshake_gets_an_http_error(
    engine: Engine, kw: dict[str, object], status: int, header: tuple[str, str] | None
) -> None:
    raw = await open_raw(engine.bound_port or 0, upgrade_request(engine.bound_port or 0, **kw))  # type: ignore[arg-type]
    got, headers, body = await raw.response_head()
    assert got == status
    if header is not None:
        assert headers[header[0]] == header[1]
    err = msgspec.json.decode(body)
    assert err["code"] == "bad_frame" and err["message"]
    assert await raw.frame() is None  # and the server hangs up


async def test_origin_not_allowed_is_403_and_allowed_origin_connects(engine: Engine) -> None:
    engine.config.allowed_origins = ["https://shop.example"]
    raw = await open_raw(engine.bound_port or 0,
                         upgrade_request(engine.bound_port or 0, origin="https://evil.example"))
    status, _, body = await raw.response_head()
    assert status == 403
    assert msgspec.json.decode(body)["code"] == "forbidden"
    assert engine.metrics.errors["origin_rejected"] == 1
    raw = await connected(engine, origin="https://shop.example")
    await hello(engine, raw)


async def test_accept_rate_limit_closes_with_1013(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "accept_ok", lambda: False)
    raw = await connected(engine)
    assert await raw.close_code() == 1013
    assert engine.metrics.errors["accept_rate_limited"] == 1
    assert not engine.connections


async def test_first_frame_in_the_same_packet_as_the_head(engine: Engine) -> None:
    port = engine.bound_port or 0
    first = client_frame(msgspec.json.encode({"type": "hello", "protocol": 1, "token": token(engine)}))
    raw = await open_raw(port, upgrade_request(port) + first)
    assert (await raw.response_head())[0] == 101
    assert (await raw.message())["type"] == "welcome"


# --- framing -----------------------------------------------------------------------------

async def test_unmasked_client_frame_closes_with_1002(engine: Engine) -> None:
    raw = await connected(engine)
    await raw.send(client_frame(b'{"type":"ping","nonce":1}', masked=False))
    assert await raw.close_code() == 1002
    assert engine.metrics.errors["ws_1002"] == 1


async def test_reserved_bits_close_with_1002(engine: Engine) -> None:
    raw = await connected(engine)
    await raw.send(client_frame(b"{}", rsv=0x40))  # "compressed", but nothing was negotiated
    assert await raw.close_code() == 1002


async def test_oversized_message_closes_with_1009_before_its_payload(engine: Engine) -> None:
    raw = await connected(engine)
    await hello(engine, raw)
    # Declared far over the hard limit; the payload never comes: the header alone decides.
    await raw.send(client_frame(b"", length=64 << 20)[:14])
    assert await raw.close_code() == 1009


async def test_oversized_fragmented_message_closes_with_1009(engine: Engine) -> None:
    raw = await connected(engine)
    await hello(engine, raw)
    limit = max(engine.config.max_frame_bytes * 16, 1 << 20)
    chunk = b" " * (256 * 1024)
    await raw.send(client_frame(b"[", fin=False))
    sent = 1
    code = None
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                nonlocal code
                code = await raw.close_code(timeout=10)
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            while sent <= limit + len(chunk):
                try:
                    await raw.send(client_frame(chunk, 0x0, fin=False))
                except trio.BrokenResourceError:
                    break
                sent += len(chunk)
            await trio.sleep_forever()
    assert code == 1009


async def test_soft_limit_is_an_error_not_a_close(engine: Engine) -> None:
    raw = await connected(engine)
    await hello(engine, raw)
    big = b'{"type":"ping","nonce":1,"pad":"' + b"x" * engine.config.max_frame_bytes + b'"}'
    await raw.send(client_frame(big))
    err = await raw.message()
    assert err["type"] == "error" and err["code"] == "too_large"
    await raw.send_json({"type": "ping", "nonce": 2})
    assert (await raw.message())["nonce"] == 2


async def test_fragmented_message_with_a_ping_in_between_is_reassembled(engine: Engine) -> None:
    raw = await connected(engine)
    frame = msgspec.json.encode({"type": "hello", "protocol": 1, "token": token(engine)})
    a, b, c = frame[:5], frame[5:40], frame[40:]
    await raw.send(client_frame(a, 0x1, fin=False))
    await raw.send(client_frame(b"mid", 0x9))  # control frames may come between fragments
    await raw.send(client_frame(b, 0x0, fin=False) + client_frame(c, 0x0, fin=True))
    assert await raw.frame() == (0xA, b"mid")
    assert (await raw.message())["type"] == "welcome"


async def test_binary_fragments_after_msgpack_hello(engine: Engine) -> None:
    raw = await connected(engine)
    await raw.send_json({"type": "hello", "protocol": 1, "token": token(engine), "encoding": "msgpack"})
    got = await raw.frame()
    assert got is not None and got[0] == 0x2 and msgspec.msgpack.decode(got[1])["type"] == "welcome"
    ping = msgspec.msgpack.encode({"type": "ping", "nonce": 9})
    await raw.send(client_frame(ping[:3], 0x2, fin=False) + client_frame(ping[3:], 0x0))
    got = await raw.frame()
    assert got is not None and msgspec.msgpack.decode(got[1])["nonce"] == 9


async def test_client_ping_gets_its_pong(engine: Engine) -> None:
    raw = await connected(engine)
    await raw.send(client_frame(b"are you there", 0x9))
    assert await raw.frame() == (0xA, b"are you there")
    await raw.send(client_frame(b"", 0x9))
    assert await raw.frame() == (0xA, b"")


async def test_invalid_utf8_text_closes_with_1007(engine: Engine) -> None:
    raw = await connected(engine)
    await raw.send(client_frame(b'{"type":"\xff"}'))
    assert await raw.close_code() == 1007


# --- closing -----------------------------------------------------------------------------

async def test_client_close_is_echoed_and_the_connection_freed(engine: Engine) -> None:
    raw = await connected(engine)
    await hello(engine, raw)
    assert len(engine.connections) == 1
    await raw.send(client_frame((4321).to_bytes(2, "big") + b"bye", 0x8))
    assert await raw.close_code() == 4321
    assert await raw.frame() is None  # then the server closes TCP
    with trio.fail_after(2):
        while engine.connections:
            await trio.sleep(0.01)


async def test_peer_that_just_disconnects_is_freed(engine: Engine) -> None:
    raw = await connected(engine)
    await hello(engine, raw)
    await raw.stream.aclose()
    with trio.fail_after(2):
        while engine.connections:
            await trio.sleep(0.01)


async def test_heartbeat_pings_come_from_the_sweeper(engine: Engine) -> None:
    engine.config.heartbeat_s = 0.3
    raw = await connected(engine)
    await hello(engine, raw)
    got = await raw.frame(timeout=3)
    assert got == (0x9, b"")
    await raw.send(client_frame(b"", 0xA))  # the pong; the connection stays up
    await raw.send_json({"type": "ping", "nonce": 3})
    while (msg := await raw.frame()) is not None and msg[0] != 0x1:
        pass
    assert msg is not None and msgspec.json.decode(msg[1])["nonce"] == 3


async def test_shutdown_closes_websockets_with_1001(engine: Engine) -> None:
    raw = await connected(engine)
    await hello(engine, raw)
    engine.stop()
    assert await raw.close_code(timeout=3) == 1001


# --- HTTP on the same port -----------------------------------------------------------------

async def test_http_and_websocket_on_one_port_at_once(engine: Engine) -> None:
    sockets = [await connected(engine) for _ in range(5)]
    for raw in sockets:
        await hello(engine, raw)
    async with httpx.AsyncClient(base_url=http_url(engine), timeout=10) as client:

        async def http_calls() -> None:
            for _ in range(10):
                r = await client.get("/healthz")
                assert r.status_code == 200 and r.json()["status"] == "ok"
            r = await client.get("/ws")  # a plain GET of /ws is not an upgrade
            assert r.status_code == 426
            r = await client.get("/wsx")  # only /ws itself is the front's
            assert r.status_code == 404
            r = await client.post("/ws", content=b"{}")  # any plain HTTP request on /ws
            assert r.status_code == 426

        async def ws_calls(raw: RawSocketWS, n: int) -> None:
            for nonce in range(n):
                await raw.send_json({"type": "ping", "nonce": nonce})
                assert (await raw.message())["nonce"] == nonce

        async with trio.open_nursery() as nursery:
            nursery.start_soon(http_calls)
            for raw in sockets:
                nursery.start_soon(ws_calls, raw, 20)


async def test_websocket_upgrade_on_an_http_keep_alive_connection(engine: Engine) -> None:
    """hypercorn owns a connection once its first request was HTTP; a later upgrade on it
    still reaches /ws (through ASGI)."""
    port = engine.bound_port or 0
    raw = await open_raw(port, f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    status, _, body = await raw.response_head()
    assert status == 200 and b"ok" in body
    await raw.send(upgrade_request(port))
    status, headers, _ = await raw.response_head()
    assert status == 101 and headers["sec-websocket-accept"] == accept_key(KEY)
    await hello(engine, raw)


async def test_pipelined_http_requests_after_the_front_read_them(engine: Engine) -> None:
    """The front reads some bytes before handing a connection to hypercorn: they are replayed."""
    port = engine.bound_port or 0
    one = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    raw = await open_raw(port, one + one)
    for _ in range(2):
        status, _, body = await raw.response_head()
        assert status == 200 and msgspec.json.decode(body)["status"] == "ok"
