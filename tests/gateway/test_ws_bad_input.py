"""Bad input over /ws: every bad frame gets an `error` or `reject` with its stable code, the
connection stays open (a following ping gets its pong), the server stays up, and nothing
changes (the SKU's stream version and the op table are as before). Only a flood of bad frames
(1008) or a missing hello (4003) closes the connection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
import trio
from trio_websocket import ConnectionClosed

import engine.gateway._ws as ws_module
from engine.server import Engine
from protocol import Error, Reject
from tests.gateway.helpers import stocked, token
from tests.gateway.rawws import RawWS, closed_code, raw_ws


class Probe:
    """One stocked SKU at one store, and the proof that nothing happened to it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sku, self.loc, self.balance = stocked(engine)
        self.before = -1

    async def version(self) -> int:
        journal = await self.engine.journal.stream_version(f"sku:{self.sku}")
        view = self.engine.inventory.views.version(self.sku)  # type: ignore[attr-defined]
        assert journal == view
        return journal

    async def start(self) -> None:
        self.before = await self.version()

    async def assert_unchanged(self, op_ids: tuple[str, ...] = ()) -> None:
        assert await self.version() == self.before
        assert self.engine.inventory.views.stock[self.sku][self.loc] == self.balance  # type: ignore[attr-defined]
        if op_ids:
            assert await self.engine.journal.lookup_ops(list(op_ids)) == {}

    def args(self, **kw: Any) -> dict[str, Any]:
        return {"sku": self.sku, "location_id": self.loc, "qty": 1, **kw}


@pytest.fixture
async def probe(engine: Engine) -> AsyncIterator[Probe]:
    p = Probe(engine)
    await p.start()
    yield p
    # The server is still up and serving new connections after whatever the test sent.
    async with raw_ws(engine) as fresh:
        await fresh.hello(token(engine, "kiosk"))
        await fresh.ping()


async def expect_error(raw: RawWS, code: str) -> Error:
    err = await raw.error()
    assert err.code == code, err
    assert err.message
    await raw.ping()  # still open, still served
    return err


async def expect_reject(raw: RawWS, op_id: str, code: str) -> Reject:
    rej = await raw.reject()
    assert (rej.op_id, rej.code) == (op_id, code), rej
    assert rej.message
    await raw.ping()
    return rej


# --- frames that do not decode ----------------------------------------------------------

@pytest.mark.parametrize(
    ("frame", "code"),
    [
        pytest.param('{"type": "ping",', "bad_frame", id="malformed-json"),
        pytest.param("", "bad_frame", id="empty-frame"),
        pytest.param('[{"type": "ping"}]', "bad_frame", id="json-array"),
        pytest.param('"ping"', "bad_frame", id="json-string"),
        pytest.param('{"type": "frobnicate"}', "unknown_type", id="unknown-type"),
        pytest.param(
            '{"topic": "stock:x"}',
            "unknown_type",
            id="missing-type"
        ),
        pytest.param('{"type": "subscribe", "topic": 5}', "invalid_args", id="subscribe-topic-int"),
        pytest.param(
            '{"type": "subscribe"}', "invalid_args", id="subscribe-no-topic"
        ),
        pytest.param('{"type": "ping", "nonce": "x"}', "invalid_args", id="ping-nonce-str"),
        pytest.param(
            '{"type": "command", "op_id": "o1", "name": "stock.receive", "args": 5}',
            "invalid_args",
            id="command-args-not-object",
        ),
    ],
)
async def test_undecodable_frame(engine: Engine, probe: Probe, frame: str, code: str) -> None:
    async with raw_ws(engine) as raw:
        await raw.hello(token(engine))
        await raw.send(frame)
        await expect_error(raw, code)
    await probe.assert_unchanged(("o1",))


async def test_garbage_msgpack_after_msgpack_hello(engine: Engine, probe: Probe) -> None:
    async with raw_ws(engine) as raw:
        await raw.hello(token(engine), encoding="msgpack")
        await raw.send(b"\xc1\xff\x00garbage")
        await expect_error(raw, "bad_frame")
        # A msgpack array instead of a map is no better.
        await raw.send(msgspec.msgpack.encode([1, 2, 3]))
        await expect_error(raw, "bad_frame")
        # And the connection still takes well-formed msgpack commands afterwards.
        await raw.send({"type": "command", "op_id": "mp-1", "name": "stock.receive",
                        "args": {"sku": probe.sku, "location_id": "nowhere", "qty": 1}})
        await expect_reject(raw, "mp-1", "not_found")
    await probe.assert_unchanged(("mp-1",))


async def test_frame_over_the_limit(engine: Engine, probe: Probe) -> None:
    limit = engine.config.max_frame_bytes
    async with raw_ws(engine) as raw:
        await raw.hello(token(engine))
        big = {"type": "command", "op_id": "big-1", "name": "stock.receive",
               "args": probe.args(reference="x" * limit)}
        await raw.send(big)
        err = await expect_error(raw, "too_large")
        assert str(limit) in err.message
    await probe.assert_unchanged(("big-1",))


# --- commands with bad args -------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "code"),
    [
        pytest.param({"qty": "3"}, "invalid_args", id="qty-string"),
        pytest.param({"qty": 1.5}, "invalid_args", id="qty-fractional"),
        pytest.param({"qty": 2.0}, "invalid_args", id="qty-float-whole"),
        pytest.param({"qty": 0}, "invalid_args", id="qty-zero"),
        pytest.param({"qty": -4}, "invalid_args", id="qty-negative"),
        pytest.param({"qty": 1_000_001}, "invalid_args", id="qty-over-max"),
        pytest.param({"qty": 10**30}, "invalid_args", id="qty-absurd"),
        pytest.param({"qty": None}, "invalid_args", id="qty-null"),
        pytest.param({"qty": True}, "invalid_args", id="qty-bool"),
        pytest.param({"sku": 17}, "invalid_args", id="sku-int"),
        pytest.param({"sku": "a b/c"}, "invalid_args", id="sku-bad-chars"),
        pytest.param({"surprise": 1}, "invalid_args", id="unknown-field"),
        pytest.param({"sku": None, "drop": "sku"}, "invalid_args", id="missing-sku"),
        pytest.param({"sku": "NO-SUCH-SKU"}, "not_found", id="unknown-sku"),
        pytest.param({"location_id": "nowhere"}, "not_found", id="unknown-location"),
    ],
)
async def test_command_with_bad_args(
    engine: Engine, probe: Probe, override: dict[str, Any], code: str
) -> None:
    args = probe.args(**override)
    if "drop" in args:
        args.pop(args.pop("drop"))
    async with raw_ws(engine) as raw:
        await raw.hello(token(engine))
        await raw.send({"type": "command", "op_id": "bad-1", "name": "stock.receive", "args": args})
        await expect_reject(raw, "bad-1", code)
    await probe.assert_unchanged(("bad-1",))


async def test_unknown_command_name(engine: Engine, probe: Probe) -> None:
    async with raw_ws(engine) as raw:
        await raw.hello(token(engine))
        await raw.send({"type": "command", "op_id": "u-1", "name": "stock.teleport", "args": probe.args()})
        rej = await expect_reject(raw, "u-1", "unknown_type")
        assert "stock.receive" in rej.details["known"]
    await probe.assert_unchanged(("u-1",))


async def test_bad_op_id(engine: Engine, probe: Probe) -> None:
    async with raw_ws(engine) as raw:
        await raw.hello(token(engine))
        for op_id in ("", "x" * 129):
            await raw.send({"type": "command", "op_id": op_id, "name": "stock.receive", "args": probe.args()})
            await expect_reject(raw, op_id, "invalid_args")
    await probe.assert_unchanged()


# --- authentication ---------------------------------------------------------------------


async def test_command_and_subscribe_before_hello(engine: Engine, probe: Probe) -> None:
    async with raw_ws(engine) as raw:
        await raw.send({"type": "command", "op_id": "pre-1", "name": "stock.receive", "args": probe.args()})
        await expect_reject(raw, "pre-1", "unauthorized")
        await raw.send({"type": "subscribe", "topic": f"stock:{probe.sku}"})
        await expect_error(raw, "unauthorized")
        # Having been turned away, the connection can still sign in and work.
        await raw.hello(token(engine, "kiosk"))
    await probe.assert_unchanged(("pre-1",))


async def test_hello_with_bad_signature(engine: Engine, probe: Probe) -> None:
    good = token(engine)
    payload, sig = good.split(".")
    forged = f"{payload}.{'A' * len(sig)}"
    async with raw_ws(engine) as raw:
        for bad in (forged, "not-a-token", ""):
            await raw.send({"type": "hello", "protocol": 1, "token": bad})
            await expect_error(raw, "unauthorized")
        await raw.send({"type": "command", "op_id": "f-1", "name": "stock.receive", "args": probe.args()})
        await expect_reject(raw, "f-1", "unauthorized")
    await probe.assert_unchanged(("f-1",))


async def test_hello_with_token_from_another_secret(engine: Engine, probe: Probe) -> None:
    from engine.auth import TokenSigner

    other = TokenSigner(b"some-other-secret-of-enough-length").mint("admin")
    async with raw_ws(engine) as raw:
        await raw.send({"type": "hello", "protocol": 1, "token": other})
        await expect_error(raw, "unauthorized")
    await probe.assert_unchanged()


async def test_hello_with_expired_token(engine: Engine, probe: Probe) -> None:
    async with raw_ws(engine) as raw:
        await raw.send({"type": "hello", "protocol": 1, "token": token(engine, ttl=-5)})
        err = await expect_error(raw, "unauthorized")
        assert "expired" in err.message
        await raw.send({"type": "command", "op_id": "e-1", "name": "stock.receive", "args": probe.args()})
        await expect_reject(raw, "e-1", "unauthorized")
    await probe.assert_unchanged(("e-1",))


async def test_hello_with_wrong_protocol_version(engine: Engine, probe: Probe) -> None:
    async with raw_ws(engine) as raw:
        for version in (0, 2, 99):
            await raw.send({"type": "hello", "protocol": version, "token": token(engine)})
            err = await expect_error(raw, "bad_frame")
            assert "protocol version" in err.message
        await raw.send({"type": "subscribe", "topic": f"stock:{probe.sku}"})
        await expect_error(raw, "unauthorized")  # the bad hello did not sign it in
    await probe.assert_unchanged()


async def test_token_expiring_mid_session_closes_with_4003(engine: Engine, probe: Probe) -> None:
    async with raw_ws(engine) as raw:
        await raw.hello(token(engine, ttl=0.3))
        await raw.ping()
        await trio.sleep(0.4)  # let the token run out (not an assertion: the frames below are)
        await raw.send({"type": "command", "op_id": "late-1", "name": "stock.receive", "args": probe.args()})
        err = await raw.error()
        assert err.code == "unauthorized" and "expired" in err.message
        assert await closed_code(raw) == 4003
    await probe.assert_unchanged(("late-1",))


async def test_renewed_token_may_not_change_role(engine: Engine, probe: Probe) -> None:
    async with raw_ws(engine) as raw:
        await raw.hello(token(engine, "storefront"))
        await raw.send({"type": "hello", "protocol": 1, "token": token(engine, "admin")})
        await expect_error(raw, "forbidden")
        await raw.send({"type": "command", "op_id": "esc-1", "name": "stock.receive", "args": probe.args()})
        await expect_reject(raw, "esc-1", "forbidden")  # still a storefront
    await probe.assert_unchanged(("esc-1",))


# --- topics -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "topic",
    [
        pytest.param("stock:NO-SUCH-SKU", id="unknown-sku"),
        pytest.param("weather:today", id="unknown-kind"),
        pytest.param("stock", id="no-colon"),
        pytest.param("stock:", id="empty-id"),
        pytest.param("location:nowhere", id="unknown-location"),
        pytest.param("near:{sku}:45.5", id="near-no-lon"),
        pytest.param("near:{sku}:abc,def", id="near-not-numbers"),
        pytest.param("near:{sku}:95.0,10.0", id="near-lat-out-of-range"),
        pytest.param("near:{sku}:45.5,-190", id="near-lon-out-of-range"),
        pytest.param("near:NO-SUCH-SKU:45.5,-122.6", id="near-unknown-sku"),
        pytest.param("ops:everything", id="ops-unknown"),
        pytest.param("x" * 300, id="too-long"),
    ],
)
async def test_unknown_topic(engine: Engine, probe: Probe, topic: str) -> None:
    topic = topic.format(sku=probe.sku)
    async with raw_ws(engine) as raw:
        await raw.hello(token(engine))
        await raw.send({"type": "subscribe", "topic": topic})
        err = await expect_error(raw, "unknown_topic")
        assert err.topic == topic
    assert engine.bus.subscriber_count(topic) == 0
    await probe.assert_unchanged()


@pytest.mark.parametrize(
    ("role", "scope", "topic"),
    [
        pytest.param("storefront", None, "location:pdx-pearl", id="storefront-location"),
        pytest.param("storefront", None, "ops:metrics", id="storefront-ops"),
        pytest.param("cashier", "pdx-pearl", "location:pdx-downtown", id="cashier-other-store"),
        pytest.param("cashier", "pdx-pearl", "ops:metrics", id="cashier-ops"),
        pytest.param("kiosk", "pdx-pearl", "location:pdx-downtown", id="kiosk-other-store"),
    ],
)
async def test_forbidden_topic(
    engine: Engine, probe: Probe, role: str, scope: str | None, topic: str
) -> None:
    async with raw_ws(engine) as raw:
        await raw.hello(token(engine, role, scope))
        await raw.send({"type": "subscribe", "topic": topic})
        err = await expect_error(raw, "forbidden")
        assert err.topic == topic
    assert engine.bus.subscriber_count(topic) == 0
    await probe.assert_unchanged()


async def test_cashier_reads_own_store(engine: Engine, probe: Probe) -> None:
    """The counterpart of the forbidden cases: the same cashier may read its own store."""
    async with raw_ws(engine) as raw:
        await raw.hello(token(engine, "cashier", "pdx-pearl"))
        await raw.send({"type": "subscribe", "topic": "location:pdx-pearl"})
        snap = await raw.recv()
        assert type(snap).__name__ == "Snapshot"


# --- commands the role may not run ------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "scope", "name", "where"),
    [
        pytest.param("storefront", None, "stock.receive", None, id="storefront-receive"),
        pytest.param("storefront", None, "hold.place", None, id="storefront-hold"),
        pytest.param("kiosk", None, "stock.sale", None, id="kiosk-sale"),
        pytest.param("cashier", None, "stock.receive", None, id="cashier-receive"),
        pytest.param("cashier", "pdx-pearl", "stock.sale", "pdx-downtown", id="cashier-sells-elsewhere"),
        pytest.param("manager", "pdx-pearl", "stock.receive", "pdx-downtown", id="manager-receives-elsewhere"),
    ],
)
async def test_forbidden_command(
    engine: Engine, probe: Probe, role: str, scope: str | None, name: str, where: str | None
) -> None:
    args = probe.args(location_id=where or probe.loc)
    async with raw_ws(engine) as raw:
        await raw.hello(token(engine, role, scope))
        await raw.send({"type": "command", "op_id": "nope-1", "name": name, "args": args})
        await expect_reject(raw, "nope-1", "forbidden")
    await probe.assert_unchanged(("nope-1",))
    assert await engine.journal.stream_version(f"sku:{probe.sku}") == probe.before


# --- rate limit and closes --------------------------------------------------------------


async def test_rate_limited(engine: Engine, probe: Probe) -> None:
    # The bucket is made per connection from the config at connect time.
    engine.config.commands_per_s = 0.001
    engine.config.command_burst = 3
    async with raw_ws(engine) as raw:
        await raw.hello(token(engine))
        for i in range(8):
            await raw.send({"type": "command", "op_id": f"rl-{i}", "name": "stock.receive",
                            "args": probe.args(), })
        answers: dict[str, Any] = {}
        with trio.fail_after(5):
            while len(answers) < 8:
                msg = await raw.recv()
                if hasattr(msg, "op_id"):
                    answers[msg.op_id] = msg
        codes = [getattr(answers[f"rl-{i}"], "code", "ack") for i in range(8)]
        assert codes == ["ack"] * 3 + ["rate_limited"] * 5
        assert answers["rl-3"].details["limit_per_s"] == 0.001
        await raw.ping()
    # Exactly the three admitted commands changed anything.
    assert await probe.version() == probe.before + 3
    assert set(await engine.journal.lookup_ops([f"rl-{i}" for i in range(8)])) == {"rl-0", "rl-1", "rl-2"}
    assert engine.metrics.rate_limited == 5
    # Another connection has its own bucket (made at connect time, from the config then).
    engine.config.commands_per_s = 200.0
    engine.config.command_burst = 400
    probe.before = await probe.version()
    probe.balance = engine.inventory.views.stock[probe.sku][probe.loc]  # type: ignore[attr-defined]


async def test_too_many_bad_frames_close_with_1008(engine: Engine, probe: Probe) -> None:
    limit = ws_module.BAD_FRAME_LIMIT
    async with raw_ws(engine) as raw:
        await raw.hello(token(engine))
        # Good frames in between reset the count: this many never closes.
        for _ in range(2):
            for _ in range(limit):
                await raw.send("{nope")
            await raw.ping()
        for _ in range(limit + 1):
            await raw.send("{nope")
        errors = 0
        with trio.fail_after(5):
            while True:
                try:
                    msg = await raw.recv()
                except ConnectionClosed as exc:
                    assert exc.reason.code == 1008, exc
                    break
                if isinstance(msg, Error):
                    assert msg.code == "bad_frame"
                    errors += 1
        assert errors >= limit  # every bad frame got its explanation before the close
    await probe.assert_unchanged()


async def test_no_hello_closes_with_4003(
    engine: Engine, probe: Probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ws_module, "HELLO_TIMEOUT_S", 1.0)
    async with raw_ws(engine) as raw:
        await raw.ping()  # pings are fine before hello, but do not count as one
        assert await closed_code(raw, timeout=5) == 4003
    async with raw_ws(engine) as raw:  # a bad hello does not count either
        await raw.send({"type": "hello", "protocol": 1, "token": "bad"})
        assert await closed_code(raw, timeout=5) == 4003
    await probe.assert_unchanged()
