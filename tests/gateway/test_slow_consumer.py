"""Slow consumers never slow others (invariant 5), over real sockets.

A client that stops reading is made with a small TCP receive window, so the server's socket
writes block after a few tens of kilobytes. What happens then, found out here:

* The connection's writer blocks in its socket write, with everything that was due in that
  one write. The close (4001) cannot get out behind it, so STUCK_SEND_S later the sweeper
  aborts the socket (lean front: closed with a reset; hypercorn front, whose writes shield
  cancellation: shut down under hypercorn), which fails the blocked write
  (engine/gateway/_ws.py).
* While it is stuck, its outbox holds at most one (conflated) delta per subscribed topic,
  everyone else keeps getting deltas and acks promptly, and after `slow_client_grace_s` it is
  cut off (4001 / dropped) and its resources are freed.
* If it reads again before the grace ends, it gets the conflated deltas and converges.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, wrap_client_stream

import engine.gateway._ws as ws_module
from actors.inventory import stock_view
from actors.inventory.shell import load_pool
from clients.python import Client, TopicView, open_client
from engine.server import Engine
from protocol import Delta, Snapshot, Welcome, decode_server
from tests.conftest import ws_url
from tests.gateway.helpers import stocked, token


class Stalled:
    """A raw client whose TCP receive window is small, so it can stall the server quickly."""

    def __init__(self, ws: WebSocketConnection, engine: Engine) -> None:
        self.ws = ws
        self.engine = engine
        self.session = ""

    async def send(self, msg: dict[str, Any]) -> None:
        await self.ws.send_message(msgspec.json.encode(msg).decode())

    async def recv(self) -> Any:
        with trio.fail_after(5):
            return decode_server(await self.ws.get_message())

    async def hello(self, role: str = "storefront") -> None:
        await self.send({"type": "hello", "protocol": 1, "token": token(self.engine, role)})
        welcome = await self.recv()
        assert isinstance(welcome, Welcome)
        self.session = welcome.session

    @property
    def conn(self) -> Any:
        """The server's side of this connection (None once the server let go of it)."""
        for conn in self.engine.connections:
            if conn.session == self.session:
                return conn
        return None

    async def close_code(self) -> int | None:
        """Read again until the connection ends; the close code the client saw."""
        with trio.fail_after(10):
            try:
                while True:
                    await self.ws.get_message()
            except ConnectionClosed as exc:
                return exc.reason.code


@asynccontextmanager
async def stalled_client(engine: Engine) -> AsyncIterator[Stalled]:
    sock = trio.socket.socket()
    # Set before connect so the advertised window stays small.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", engine.bound_port))
    async with trio.open_nursery() as nursery:
        # message_queue_size=1: trio-websocket's reader stops taking bytes off the socket as
        # soon as one message waits unread, so "not calling get_message" means "not reading".
        ws = await wrap_client_stream(
            nursery, trio.SocketStream(sock), "127.0.0.1", "/ws", message_queue_size=1,
            max_message_size=1 << 20,
        )
        try:
            yield Stalled(ws, engine)
        finally:
            with trio.move_on_after(1):
                await ws.aclose()
            nursery.cancel_scope.cancel()


def pending_deltas(conn: Any) -> int:
    return len(conn.outbox._pending)


async def wait_until(predicate: Any, timeout: float, what: str) -> None:
    """Poll a condition that has no event to wait on (the server's internal state)."""
    with trio.move_on_after(timeout) as scope:
        while not predicate():
            await trio.sleep(0.02)
    assert not scope.cancelled_caught, f"timed out waiting for {what}"


async def pump_until_stalled(engine: Engine, writer: Client, slow: Stalled, sku: str, loc: str,
                             *, min_conflated: int = 10) -> int:
    """Receive stock from 8 tasks until the stalled connection has been conflating a while
    and its socket is full (the writer holds a backlog it cannot write: `sending`). Deltas to
    a connection are conflated for up to 50 ms even when it reads (gateway/_flush.py), so
    conflation alone does not prove it stalled.

    Returns the number of commands acked. Also checks, all along, that the stalled outbox holds
    at most one pending delta per subscribed topic.
    """
    conn = slow.conn
    acked = 0
    worst = 0

    def stalling() -> bool:
        stuck = conn.outbox.conflated >= min_conflated and conn.sending
        return not stuck and conn.close_code is None

    async def pump() -> None:
        nonlocal acked
        while stalling():
            await writer.command("stock.receive", {"sku": sku, "location_id": loc, "qty": 1,
                                                   "reference": "slow-consumer test " * 8})
            acked += 1

    async def watch() -> None:
        nonlocal worst
        while stalling():
            worst = max(worst, len(conn.outbox))
            assert pending_deltas(conn) <= len(conn.outbox.subscribed)
            await trio.sleep(0)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(pump)
            nursery.start_soon(watch)
    assert conn.close_code is None, "cut off before it ever fell behind"
    assert worst <= len(conn.outbox.subscribed) + 1  # one delta per topic (+ a racing pong)
    return acked


async def test_stalled_client_is_cut_off_and_freed_while_others_flow(engine: Engine) -> None:
    engine.config.slow_client_grace_s = 2.0
    engine.config.commands_per_s = engine.config.command_burst = 100_000  # the writer pumps
    sku, loc, balance = stocked(engine)
    lat, lon = 45.52, -122.68
    topics = [f"stock:{sku}", f"near:{sku}:{lat},{lon}"]
    async with (
        open_client(ws_url(engine), token(engine)) as writer,
        open_client(ws_url(engine), token(engine, "kiosk")) as reader,
        stalled_client(engine) as slow,
    ):
        view = await reader.subscribe(topics[0])
        await slow.hello()
        for topic in topics:
            await slow.send({"type": "subscribe", "topic": topic})
            assert isinstance(await slow.recv(), Snapshot)
        conn = slow.conn
        acked = await pump_until_stalled(engine, writer, slow, sku, loc)

        # Stalled now. Others still get every ack and delta promptly, one by one.
        on_hand = balance["on_hand"] + acked
        for _ in range(15):
            result = await writer.command("stock.receive", {"sku": sku, "location_id": loc, "qty": 1},
                                          timeout=1.0)
            on_hand += 1
            assert result["balance"]["on_hand"] == on_hand
            await view.wait_for(lambda s, n=on_hand: s[loc]["on_hand"] == n, timeout=1.0)
            assert pending_deltas(conn) <= len(topics)
        assert conn.close_code is None  # still inside its grace

        # After the grace the server cuts it off and lets go of it, stuck socket and all.
        await wait_until(lambda: slow.conn is None, 2.0 + ws_module.STUCK_SEND_S + 3, "the cut-off")
        assert conn.close_code == 4001
        assert engine.metrics.slow_disconnects == 1
        assert all(engine.bus.subscriber_count(t) == 0 or conn.outbox not in
                   engine.bus._topics[t].subscribers for t in topics)
        assert await slow.close_code() in (4001, 1006)  # 1006: the close frame could not get out

        # The others never noticed.
        result = await writer.command("stock.receive", {"sku": sku, "location_id": loc, "qty": 1})
        await view.wait_for(lambda s: s[loc]["on_hand"] == result["balance"]["on_hand"], timeout=1.0)
        assert view.gaps == 0


async def test_stalled_client_converges_on_conflated_deltas_when_it_reads_again(engine: Engine) -> None:
    engine.config.slow_client_grace_s = 30.0
    engine.config.commands_per_s = engine.config.command_burst = 100_000  # the writer pumps
    sku, loc, _ = stocked(engine)
    topic = f"stock:{sku}"
    conflated_before = engine.metrics.conflated
    async with (
        open_client(ws_url(engine), token(engine)) as writer,
        stalled_client(engine) as slow,
    ):
        await slow.hello()
        await slow.send({"type": "subscribe", "topic": topic})
        view = TopicView(topic)
        snap = await slow.recv()
        assert isinstance(snap, Snapshot)
        view.apply_snapshot(snap)
        await pump_until_stalled(engine, writer, slow, sku, loc, min_conflated=30)
        conn = slow.conn
        assert pending_deltas(conn) == 1
        # The watchdog folds the per-connection count into the engine metric every tick.
        await wait_until(lambda: engine.metrics.conflated >= conflated_before + 30, 2, "the metric")

        # Read again: single deltas from the socket buffers, then conflated ones.
        final = engine.inventory.views.version(sku)  # type: ignore[attr-defined]
        widest = 0
        with trio.fail_after(10):
            while view.seq < final:
                msg = await slow.recv()
                if isinstance(msg, Delta):
                    assert view.apply_delta(msg), f"gap at {view.seq}: {msg.first_seq}..{msg.seq}"
                    widest = max(widest, msg.seq - msg.first_seq + 1)
        assert widest > 1, "no delta was ever conflated"
        assert view.gaps == 0
        truth = stock_view(await load_pool(engine.journal, sku))
        assert view.state == truth
        assert slow.conn is conn and conn.close_code is None  # never cut off
        await slow.send({"type": "ping", "nonce": 7})
        while not hasattr(msg := await slow.recv(), "server_time"):
            pass
        assert msg.nonce == 7


async def test_writer_stuck_with_nothing_queued_is_still_cut_off(engine: Engine) -> None:
    """Big replies stall the writer in one drained batch: the outbox is empty, the writer is
    stuck in `send`. The watchdog must count that as pending output, or it never fires."""
    engine.config.slow_client_grace_s = 1.0
    async with stalled_client(engine) as slow:
        await slow.hello()
        conn = slow.conn
        # Each bad subscribe is answered with an error naming the (60 kB) topic. Send them one
        # at a time, each once the previous answer left the outbox, until one does not get
        # written out: then the writer is stuck on it with nothing queued behind it.
        for _ in range(60):
            frames_in = engine.metrics.frames_in
            await slow.send({"type": "subscribe", "topic": "x" * 60_000})
            await wait_until(lambda n=frames_in: engine.metrics.frames_in > n and not len(conn.outbox),
                             2, "the error to leave the outbox")
            with trio.move_on_after(0.3):
                while conn.sending:
                    await trio.sleep(0.01)
            if conn.sending:
                break
        assert conn.sending and len(conn.outbox) == 0 and conn.close_code is None
        await wait_until(lambda: slow.conn is None, 1.0 + ws_module.STUCK_SEND_S + 3, "the cut-off")
        assert conn.close_code == 4001
        assert engine.metrics.slow_disconnects == 1
        assert engine.metrics.errors["stuck_socket_aborted"] == 1
        assert await slow.close_code() in (4001, 1006)


async def test_client_that_never_reads_its_replies_is_cut_off_cleanly(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Pings whose pongs are never read pile up as control frames until the outbox's control
    limit: the connection is closed as a slow consumer, not crashed with an exception."""
    engine.config.slow_client_grace_s = 30.0  # the control limit, not the watchdog, must act
    engine.config.outbox_max_control = 200
    caplog.set_level(logging.ERROR)
    async with stalled_client(engine) as slow:
        await slow.hello()
        conn = slow.conn

        async def flood() -> None:
            try:
                for nonce in range(20_000):
                    await slow.send({"type": "ping", "nonce": nonce})
            except (ConnectionClosed, trio.BrokenResourceError):
                pass  # the server let go

        async with trio.open_nursery() as nursery:
            nursery.start_soon(flood)
            await wait_until(lambda: slow.conn is None, 15, "the cut-off")
            nursery.cancel_scope.cancel()
        assert conn.close_code == 4001
        assert engine.metrics.slow_disconnects == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    # The server is fine.
    async with open_client(ws_url(engine), token(engine, "kiosk")) as c:
        await c.ping()
