"""The trio SDK: one long-lived connection with reconnect, resume and command retries.

Theory of operation
-------------------
`Client.run()` loops: connect, hello, resubscribe every topic with its last position (the
server answers with a `resumed` + missed deltas, or a fresh snapshot), resend every command
that has no answer yet with the SAME op_id (the server's op table makes that exactly-once),
then read until the connection drops. Between attempts it sleeps with exponential backoff and
full jitter so that thousands of clients losing one server do not come back in lock-step.
A delta that does not follow the view's position (a gap, or a new epoch) triggers a resume
subscribe for that topic; views are marked not-live while the data may be stale.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection, open_websocket_url

from protocol import (
    PROTOCOL_VERSION,
    Ack,
    Command,
    Delta,
    Error,
    Hello,
    Ping,
    Pong,
    Position,
    Reject,
    Resumed,
    Snapshot,
    Subscribe,
    Unsubscribe,
    Welcome,
    decode_server_frame,
    encode,
)
from protocol.messages import ClientKind, Encoding
from protocol.op_ids import new_op_id

from ._views import TopicView

__all__ = ["Client", "CommandRejected", "ServerError", "open_client"]

log = logging.getLogger("omnitill.sdk")
_RETRYABLE = {"unavailable", "internal"}


class CommandRejected(Exception):
    def __init__(self, op_id: str, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(f"{code}: {message}")
        self.op_id = op_id
        self.code = code
        self.message = message
        self.details = details


class ServerError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class _Pending:
    __slots__ = ("args", "done", "name", "op_id", "outcome", "sent_on")

    def __init__(self, op_id: str, name: str, args: dict[str, Any]) -> None:
        self.op_id = op_id
        self.name = name
        self.args = args
        self.done = trio.Event()
        self.outcome: Ack | Reject | None = None
        self.sent_on = -1  # connection number it was last sent on


class Client:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        kind: ClientKind = "sdk",
        encoding: Encoding = "json",
        backoff_base_s: float = 0.05,
        backoff_max_s: float = 5.0,
        batch: bool = True,
    ) -> None:
        self.url = url
        self.token = token
        self.kind: ClientKind = kind
        self.encoding: Encoding = encoding
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.batch = batch
        self.views: dict[str, TopicView] = {}
        self.welcome: Welcome | None = None
        self.errors: list[Error] = []
        self.connected = trio.Event()
        self.connections = 0
        self.close_codes: list[int | None] = []
        self._ws: WebSocketConnection | None = None
        self._pending: dict[str, _Pending] = {}
        self._closing = False
        self._error_event = trio.Event()

    # --- public API -----------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._ws is not None

    def view(self, topic: str) -> TopicView:
        view = self.views.get(topic)
        if view is None:
            view = self.views[topic] = TopicView(topic)
        return view

    async def subscribe(self, topic: str, *, wait: bool = True, timeout: float = 5.0) -> TopicView:
        view = self.view(topic)
        await self._send_subscribe(view)
        if wait:
            with trio.fail_after(timeout):
                while not view.live:
                    await self._wait_change(view)
        return view

    async def unsubscribe(self, topic: str) -> None:
        self.views.pop(topic, None)
        await self._send(Unsubscribe(topic=topic))

    async def command(
        self,
        name: str,
        args: dict[str, Any] | None = None,
        *,
        op_id: str | None = None,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """Run a command; returns the ack result or raises CommandRejected.

        Retries (after reconnects, or `unavailable`/`internal` answers) reuse the op_id, so the
        command takes effect at most once whatever happens to the connection.
        """
        op_id = op_id or new_op_id()  # time-ordered: see protocol/op_ids.py
        pending = _Pending(op_id, name, args or {})
        self._pending[op_id] = pending
        delay = self.backoff_base_s
        try:
            with trio.fail_after(timeout):
                while True:
                    if self._ws is not None:
                        await self._send_command(pending)
                    await pending.done.wait()
                    outcome = pending.outcome
                    if isinstance(outcome, Ack):
                        return outcome.result
                    assert isinstance(outcome, Reject)
                    if outcome.code in _RETRYABLE:
                        pending.done = trio.Event()
                        pending.outcome = None
                        pending.sent_on = -1  # resend, on this connection too
                        await trio.sleep(random.uniform(0, delay))
                        delay = min(delay * 2, self.backoff_max_s)
                        continue
                    raise CommandRejected(op_id, outcome.code, outcome.message, outcome.details)
        finally:
            self._pending.pop(op_id, None)

    async def ping(self, timeout: float = 5.0) -> float:
        """Round trip time in seconds."""
        started = time.perf_counter()
        nonce = random.randrange(1 << 30)
        self._pong_nonce = nonce
        self._pong = trio.Event()
        await self._send(Ping(nonce=nonce))
        with trio.fail_after(timeout):
            await self._pong.wait()
        return time.perf_counter() - started

    async def send_raw(self, data: str | bytes) -> None:
        """Send a frame as-is (tests of the server's bad-input handling)."""
        assert self._ws is not None
        await self._ws.send_message(data)

    async def next_error(self, timeout: float = 5.0) -> Error:
        with trio.fail_after(timeout):
            while not self.errors:
                await self._error_event.wait()
        return self.errors.pop(0)

    async def wait_connected(self, timeout: float = 10.0) -> None:
        with trio.fail_after(timeout):
            await self.connected.wait()

    def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            self._nursery_cancel()

    # --- connection loop ------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        delay = self.backoff_base_s
        started = False
        while not self._closing:
            try:
                async with open_websocket_url(self.url, max_message_size=16 << 20) as ws:
                    self._ws = ws
                    self.connections += 1
                    await self._handshake(ws)
                    delay = self.backoff_base_s
                    if not started:
                        started = True
                        task_status.started()
                    await self._session(ws)
            except (OSError, ConnectionClosed, HandshakeError, trio.BrokenResourceError) as exc:
                code = getattr(getattr(exc, "reason", None), "code", None)
                self.close_codes.append(code)
                log.debug("connection lost: %r", exc)
            finally:
                self._ws = None
                self.connected = trio.Event()
                for view in self.views.values():
                    view.mark_stale()
            if self._closing:
                break
            await trio.sleep(random.uniform(0, delay))  # full jitter
            delay = min(delay * 2, self.backoff_max_s)

    async def _handshake(self, ws: WebSocketConnection) -> None:
        await ws.send_message(
            encode(Hello(protocol=PROTOCOL_VERSION, token=self.token, client=self.kind,
                         encoding=self.encoding, batch=self.batch), "json").decode()
        )
        welcomed = False
        while not welcomed:
            for msg in decode_server_frame(await ws.get_message()):
                if isinstance(msg, Welcome):
                    self.welcome = msg
                    welcomed = True
                elif isinstance(msg, Error):
                    self._record_error(msg)
                    raise ServerError(msg.code, msg.message)
                elif welcomed:
                    self._dispatch(msg)
        # Resume every topic and resend unanswered commands on the new connection.
        for view in list(self.views.values()):
            await self._send_subscribe(view)
        for pending in list(self._pending.values()):
            if not pending.done.is_set():
                await self._send_command(pending)
        self.connected.set()

    async def _session(self, ws: WebSocketConnection) -> None:
        # A cancel scope, not a nursery: a nursery would wrap the ConnectionClosed that ends
        # every session in an ExceptionGroup, which run()'s `except` would not catch (no
        # reconnect; the client task would die instead).
        with trio.CancelScope() as scope:
            self._nursery_cancel = scope.cancel
            await self._read_loop(ws)

    async def _read_loop(self, ws: WebSocketConnection) -> None:
        while True:
            for msg in decode_server_frame(await ws.get_message()):
                self._dispatch(msg)

    def _dispatch(self, msg: Any) -> None:
        if isinstance(msg, Delta):
            view = self.views.get(msg.topic)
            if view is not None and not view.apply_delta(msg):
                self._resync_soon(view)
        elif isinstance(msg, Snapshot):
            view = self.views.get(msg.topic)
            if view is not None:
                view.apply_snapshot(msg)
        elif isinstance(msg, Resumed):
            view = self.views.get(msg.topic)
            if view is not None:
                view.apply_resumed(msg)
        elif isinstance(msg, Ack | Reject):
            pending = self._pending.get(msg.op_id)
            if pending is not None and not pending.done.is_set():
                pending.outcome = msg
                pending.done.set()
        elif isinstance(msg, Pong):
            if getattr(self, "_pong_nonce", None) == msg.nonce:
                self._pong.set()
        elif isinstance(msg, Error):
            self._record_error(msg)
            if msg.topic and msg.topic in self.views:
                self.views[msg.topic].mark_stale()

    def _record_error(self, msg: Error) -> None:
        self.errors.append(msg)
        self._error_event.set()
        self._error_event = trio.Event()

    def _resync_soon(self, view: TopicView) -> None:
        ws = self._ws
        if ws is None:
            return
        resume = Position(view.epoch, view.seq) if view.epoch is not None else None
        frame = encode(Subscribe(topic=view.topic, resume=resume), self.encoding)
        trio.lowlevel.spawn_system_task(_send_quietly, ws, frame, self.encoding)

    # --- sending --------------------------------------------------------------------------

    async def _send(self, msg: Any) -> None:
        ws = self._ws
        if ws is None:
            return  # sent again on reconnect where that matters
        frame = encode(msg, self.encoding)
        await _send_quietly(ws, frame, self.encoding)

    async def _send_subscribe(self, view: TopicView) -> None:
        resume = Position(view.epoch, view.seq) if view.epoch is not None else None
        await self._send(Subscribe(topic=view.topic, resume=resume))

    async def _send_command(self, pending: _Pending) -> None:
        if pending.sent_on == self.connections:
            return
        pending.sent_on = self.connections
        await self._send(Command(op_id=pending.op_id, name=pending.name, args=pending.args))

    async def _wait_change(self, view: TopicView) -> None:
        await view.changed()


async def _send_quietly(ws: WebSocketConnection, frame: bytes, encoding: Encoding) -> None:
    try:
        await ws.send_message(frame.decode() if encoding == "json" else frame)
    except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
        pass


@asynccontextmanager
async def open_client(url: str, token: str, **kwargs: Any) -> AsyncIterator[Client]:
    """Connect (waits for the first welcome) and keep the connection up until exit."""
    client = Client(url, token, **kwargs)
    async with trio.open_nursery() as nursery:
        await nursery.start(client.run)
        try:
            yield client
        finally:
            client._closing = True
            nursery.cancel_scope.cancel()
