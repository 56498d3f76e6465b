"""A SKU actor that crashes mid-command, seen through the gateway: the client gets `internal`,
a retry with the same op_id takes effect exactly once, and the restarted actor serves from its
journaled state (nothing the crashed batch half-decided survives in memory)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import trio

from actors.inventory import Received, decode_event, domain
from actors.inventory.shell import StockQuery
from clients.python import open_client
from engine.server import Engine
from protocol import Ack, Reject
from tests.conftest import ws_url
from tests.gateway.helpers import stocked
from tests.gateway.rawws import raw_ws
from tests.inventory_e2e.e2e_helpers import balance, journal_truth, token


@pytest.fixture
def crash_once(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fault injection: `decide` raises once for each op_id starting with "crash-".

    This stands in for a bug in the domain. The real `decide` is pure and total (every input
    gets events or a Rejection), so no command a client can send makes it raise; the only way
    to exercise the supervisor through the gateway is to make it fail on purpose.
    """
    real_decide = domain.decide
    crashed: list[str] = []

    def flaky_decide(state: domain.SkuPool, name: str, args: msgspec.Struct, ctx: domain.Ctx) -> Any:
        if ctx.op_id.startswith("crash-") and ctx.op_id not in crashed:
            crashed.append(ctx.op_id)
            raise RuntimeError(f"injected fault for {ctx.op_id}")
        return real_decide(state, name, args, ctx)

    monkeypatch.setattr(domain, "decide", flaky_decide)
    return crashed


async def answers(raw: Any, op_ids: set[str]) -> dict[str, Ack | Reject]:
    out: dict[str, Ack | Reject] = {}
    with trio.fail_after(10):
        while set(out) != op_ids:
            msg = await raw.recv()
            if isinstance(msg, Ack | Reject):
                out[msg.op_id] = msg
    return out


def received(ref: str, qty: int, sku: str, loc: str) -> dict[str, Any]:
    return {"sku": sku, "location_id": loc, "qty": qty, "reference": ref}


async def test_crash_is_internal_and_the_retry_applies_once(engine: Engine, crash_once: list[str]) -> None:
    sku, loc, _ = stocked(engine)
    async with open_client(ws_url(engine), token(engine)) as admin:
        await admin.command("stock.receive", received("before-crash", 5, sku, loc))
    before = balance(engine, sku, loc)
    version_before = await engine.journal.stream_version(f"sku:{sku}")
    restarts = engine.registry.stats()["restarts"]

    async with raw_ws(engine) as raw:
        await raw.hello(token(engine))
        # Pipelined, so the innocent command most likely shares the crashing batch (and has its
        # events evolved into the in-memory state before the crash, never committed).
        frames = [("innocent-1", received("innocent", 2, sku, loc)),
                  ("crash-1", received("crash", 3, sku, loc))]
        for op_id, args in frames:
            await raw.send({"type": "command", "op_id": op_id, "name": "stock.receive", "args": args})
        first = await answers(raw, {"innocent-1", "crash-1"})
        assert isinstance(first["crash-1"], Reject) and first["crash-1"].code == "internal"
        assert "retry with the same op_id" in first["crash-1"].message
        assert isinstance(first["innocent-1"], Ack) or first["innocent-1"].code == "internal"
        assert crash_once == ["crash-1"]

        # Retry both with the same op_ids, twice: each applies exactly once.
        results = []
        for _ in range(2):
            for op_id, args in frames:
                await raw.send({"type": "command", "op_id": op_id, "name": "stock.receive", "args": args})
            again = await answers(raw, {"innocent-1", "crash-1"})
            assert all(isinstance(a, Ack) for a in again.values()), again
            results.append({k: v.result for k, v in again.items() if isinstance(v, Ack)})
        assert results[0] == results[1]
        assert results[0]["crash-1"]["balance"]["on_hand"] == before["on_hand"] + 5

    assert engine.registry.stats()["restarts"] == restarts + 1
    after = balance(engine, sku, loc)
    assert after["on_hand"] == before["on_hand"] + 5

    # The journal has each receive once, and the live actor answers from the journal's truth.
    events = [decode_event(e.data) for e in await engine.journal.read(f"sku:{sku}", version_before + 1)]
    refs = sorted(e.reference for e in events if isinstance(e, Received))
    assert refs == ["crash", "innocent"]
    version, truth = await journal_truth(engine, sku)
    assert version == version_before + 2
    actor_version, actor_view = await engine.registry.ask(f"sku:{sku}", StockQuery(), timeout=5)
    assert (actor_version, actor_view) == (version, truth)
    assert truth[loc] == after


async def test_sdk_retries_through_a_crash_on_its_own(engine: Engine, crash_once: list[str]) -> None:
    sku, loc, _ = stocked(engine)
    topic = f"stock:{sku}"
    async with (
        open_client(ws_url(engine), token(engine)) as admin,
        open_client(ws_url(engine), token(engine, "kiosk")) as kiosk,
    ):
        view = await kiosk.subscribe(topic)
        await admin.command("stock.receive", received("a", 4, sku, loc))
        hold = await admin.command("hold.place", {"sku": sku, "location_id": loc, "qty": 1})
        before = balance(engine, sku, loc)
        # `internal` is retryable: the SDK resends with the same op_id after a backoff.
        result = await admin.command("stock.receive", received("b", 1, sku, loc), op_id="crash-sdk")
        assert crash_once == ["crash-sdk"]
        assert result["balance"]["on_hand"] == before["on_hand"] + 1
        # State from before the crash (the hold, the earlier receive) is intact.
        assert result["balance"]["reserved"] == before["reserved"]
        await admin.command("hold.release", {"hold_id": hold["hold_id"]})
        version, truth = await journal_truth(engine, sku)
        await view.wait_for(lambda s: view.seq == version and s == truth)
        assert view.gaps == 0
