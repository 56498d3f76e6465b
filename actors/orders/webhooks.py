"""Signed outgoing webhooks: order and stock events for shops and ERPs.

Theory of operation
-------------------
`Webhooks.emit()` is synchronous and never blocks: it builds the JSON body once and
`try_tell`s one `Deliver` per endpoint to the `webhooks:out` actor (a full mailbox drops the
delivery and logs it as `dropped` -- the order never waits for a webhook).

The actor POSTs each delivery (concurrently, each under its own timeout, so an endpoint that
hangs costs one timeout, not the queue). Every attempt is appended to the journal stream
`webhooks:log`; a failed attempt with tries left also sets a durable journal timer for the
next attempt (exponential backoff with jitter), so retries survive a restart. The newest
attempts are also kept in memory for `GET /api/v1/webhooks/deliveries`.

Signature: `Omnitill-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`
with the secret from OMNITILL_WEBHOOK_SECRET. Receivers recompute it over the raw body and
reject old timestamps (replay). Endpoints: OMNITILL_WEBHOOK_URLS, comma-separated.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import random
import secrets
import time
import urllib.parse
from collections import deque
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from engine.journal.base import Batch, Timer
from engine.runtime import Actor, Envelope, TimerFired

if TYPE_CHECKING:
    from engine.runtime import Registry
    from engine.server import Engine

__all__ = ["EVENT_TYPES", "Deliver", "WebhookActor", "Webhooks", "post_json", "sign", "verify"]

log = logging.getLogger("omnitill.webhooks")

LOG_STREAM = "webhooks:log"
ACTOR_KEY = "webhooks:out"
EVENT_TYPES = ("order.updated", "stock.changed", "stock.conflict")
OUTCOMES = ("delivered", "retrying", "failed", "dropped")
MIN_SECRET_CHARS = 16


class Deliver(msgspec.Struct, frozen=True):
    delivery_id: str
    url: str
    body: bytes
    event_type: str
    attempt: int = 1


def sign(secret: bytes, body: bytes, ts: int) -> str:
    mac = hmac.new(secret, f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def verify(
    secret: bytes, body: bytes, header: str, *, now: float | None = None, tolerance_s: float = 300
) -> bool:
    """Receiver side (used by tests and as the reference for integrators)."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        ts = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, ts), header)


async def post_json(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
    """POST over HTTP/1.1 with `Connection: close`; the status code. Raises on I/O errors."""
    u = urllib.parse.urlsplit(url)
    host = u.hostname or "localhost"
    port = u.port or (443 if u.scheme == "https" else 80)
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    with trio.fail_after(timeout_s):
        if u.scheme == "https":
            stream: trio.abc.Stream = await trio.open_ssl_over_tcp_stream(host, port)
        else:
            stream = await trio.open_tcp_stream(host, port)
        async with stream:
            head = [
                f"POST {path} HTTP/1.1",
                f"Host: {u.netloc}",
                "Content-Type: application/json",
                f"Content-Length: {len(body)}",
                "Connection: close",
                "User-Agent: omnitill-webhooks",
            ]
            head += [f"{k}: {v}" for k, v in headers.items()]
            await stream.send_all(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            data = b""
            while b"\r\n" not in data:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                data += chunk
    status_line = data.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ")
    if len(parts) < 2 or not parts[1].isdigit():
        raise OSError(f"bad HTTP response {status_line!r}")
    return int(parts[1])


class Webhooks:
    """Configuration, the emitter and the in-memory delivery log."""

    def __init__(
        self,
        endpoints: list[str],
        secret: bytes,
        *,
        max_attempts: int = 6,
        backoff_s: float = 1.0,
        timeout_s: float = 5.0,
        log_size: int = 500,
        events: frozenset[str] | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.events = events  # event types sent (None: every type)
        self.secret = secret
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.log: deque[dict[str, Any]] = deque(maxlen=log_size)
        self.dropped = 0
        # Attempts by outcome (delivered, retrying, failed, dropped) since start: the ops
        # page's webhook tile and /metrics (`omnitill_webhooks_total{key=...}`).
        self.outcomes: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self._enc = msgspec.json.Encoder()

    @classmethod
    def from_env(cls) -> Webhooks:
        urls = [
            u.strip() for u in os.environ.get("OMNITILL_WEBHOOK_URLS", "").split(",") if u.strip()
        ]
        secret = os.environ.get("OMNITILL_WEBHOOK_SECRET", "")
        events = {e.strip() for e in os.environ.get("OMNITILL_WEBHOOK_EVENTS", "").split(",")}
        events.discard("")
        if urls and len(secret) < MIN_SECRET_CHARS:
            # Unsigned (or randomly signed) deliveries cannot be told from forged ones.
            raise ValueError(
                "OMNITILL_WEBHOOK_URLS is set: set OMNITILL_WEBHOOK_SECRET too (at least"
                f" {MIN_SECRET_CHARS} characters), the key receivers check signatures with"
            )
        unknown = events - set(EVENT_TYPES)
        if unknown:
            raise ValueError(
                f"OMNITILL_WEBHOOK_EVENTS: unknown event type(s) {sorted(unknown)};"
                f" known: {', '.join(EVENT_TYPES)}"
            )
        return cls(
            urls,
            secret.encode() if secret else secrets.token_bytes(32),
            timeout_s=float(os.environ.get("OMNITILL_WEBHOOK_TIMEOUT_S", "5")),
            events=frozenset(events) or None,
        )

    def wants(self, event_type: str) -> bool:
        return bool(self.endpoints) and (self.events is None or event_type in self.events)

    def emit(self, event_type: str, data: msgspec.Struct, registry: Registry) -> None:
        """Queue one delivery per endpoint; `data` is the type's Struct (protocol/webhooks.py)."""
        if not self.wants(event_type):
            return
        event_id = "evt_" + secrets.token_hex(8)
        body = self._enc.encode(
            {"id": event_id, "type": event_type, "created_at": time.time(), "data": data}
        )
        for i, url in enumerate(self.endpoints):
            msg = Deliver(f"{event_id}.{i}", url, body, event_type)
            try:
                ok = registry.ref(ACTOR_KEY).try_tell(msg)
            except Exception:
                ok = False
            if not ok:
                self.dropped += 1
                self.record(msg, "dropped", None, "delivery queue full")

    def backoff(self, attempt: int) -> float:
        """Delay before attempt `attempt + 1`: exponential with full jitter on the top half."""
        base = self.backoff_s * 2 ** (attempt - 1)
        return float(base / 2 + random.uniform(0, base / 2))

    def record(
        self,
        msg: Deliver,
        outcome: str,
        status: int | None,
        error: str,
        next_at: float | None = None,
    ) -> dict[str, Any]:
        entry = {
            "delivery_id": msg.delivery_id,
            "url": msg.url,
            "type": msg.event_type,
            "attempt": msg.attempt,
            "outcome": outcome,
            "status": status,
            "error": error,
            "at": time.time(),
            "next_attempt_at": next_at,
        }
        self.log.append(entry)
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        return entry


class WebhookActor(Actor):
    def __init__(self, hooks: Webhooks, engine: Engine) -> None:
        self.hooks = hooks
        self.engine = engine
        self.version = 0

    async def on_start(self) -> None:
        self.version = await self.engine.journal.stream_version(LOG_STREAM)

    async def handle_batch(self, batch: list[Envelope]) -> None:
        todo: list[tuple[Deliver, str | None]] = []
        for envelope in batch:
            msg = envelope.msg
            if isinstance(msg, Deliver):
                todo.append((msg, None))
            elif isinstance(msg, TimerFired):
                try:
                    todo.append((msgspec.msgpack.decode(msg.payload, type=Deliver), msg.timer_id))
                except msgspec.DecodeError:
                    log.error("bad webhook timer payload %r", msg.timer_id)
            envelope.respond(None)
        if not todo:
            return
        entries: list[dict[str, Any]] = []
        timers: list[Timer] = []
        cleared: list[tuple[str, str]] = []
        limiter = trio.CapacityLimiter(32)

        async def attempt(msg: Deliver, timer_id: str | None) -> None:
            async with limiter:
                ts = int(time.time())
                headers = {
                    "Omnitill-Signature": sign(self.hooks.secret, msg.body, ts),
                    "Omnitill-Event": msg.event_type,
                    "Omnitill-Delivery": msg.delivery_id,
                }
                status: int | None = None
                error = ""
                try:
                    status = await post_json(msg.url, msg.body, headers, self.hooks.timeout_s)
                except trio.TooSlowError:
                    error = f"timed out after {self.hooks.timeout_s}s"
                except OSError as exc:
                    error = f"{type(exc).__name__}: {exc}"
            if timer_id is not None:
                cleared.append((ACTOR_KEY, timer_id))
            if status is not None and 200 <= status < 300:
                entries.append(self.hooks.record(msg, "delivered", status, ""))
                return
            error = error or f"HTTP {status}"
            if msg.attempt >= self.hooks.max_attempts:
                entries.append(self.hooks.record(msg, "failed", status, error))
                return
            due = time.time() + self.hooks.backoff(msg.attempt)
            nxt = msgspec.structs.replace(msg, attempt=msg.attempt + 1)
            timers.append(
                Timer(
                    timer_id=f"{msg.delivery_id}#{nxt.attempt}",
                    actor_key=ACTOR_KEY,
                    due_at=due,
                    payload=msgspec.msgpack.encode(nxt),
                )
            )
            entries.append(self.hooks.record(msg, "retrying", status, error, next_at=due))

        async with trio.open_nursery() as nursery:
            for msg, timer_id in todo:
                nursery.start_soon(attempt, msg, timer_id)
        enc = msgspec.msgpack.Encoder()
        batch_ = Batch(
            stream=LOG_STREAM,
            expected_version=self.version,
            events=[("webhook.attempt", enc.encode(e)) for e in entries],
            timers_set=timers,
            timers_cleared=cleared,
        )
        result = await self.engine.journal.append(batch_)
        self.version = result.version
        if timers:
            self.engine.timers.notify(min(t.due_at for t in timers))
