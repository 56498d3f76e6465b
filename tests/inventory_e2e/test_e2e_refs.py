"""Routing id-only commands (hold.*, transfer.*) keeps open ids, and only the newest
MAX_CLOSED_REFS finished ones: the map must not grow with every hold ever placed. A late
command on a recently finished hold still reaches its pool for a precise answer."""

from __future__ import annotations

import pytest

from actors.inventory import projection
from engine.server import Engine
from protocol import ProtocolError
from tests.gateway.helpers import stocked


async def test_finished_holds_leave_the_open_refs_and_stay_bounded(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(projection, "MAX_CLOSED_REFS", 3)
    sku, loc, _ = stocked(engine, min_available=6)
    views = engine.inventory.views  # type: ignore[attr-defined]
    claims = engine.signer.verify(engine.signer.mint("admin", sub="t"))
    d = engine.dispatcher
    holds = []
    for i in range(5):
        r = await d.execute(claims, f"p{i}", "hold.place", {"sku": sku, "location_id": loc, "qty": 1})
        holds.append(r["hold_id"])
    assert all(views.sku_of(h) == sku for h in holds)
    for i, h in enumerate(holds):
        await d.execute(claims, f"r{i}", "hold.release", {"hold_id": h})
    assert not any(h in views.refs for h in holds)  # no longer open
    assert list(views.closed_refs) == holds[-3:]  # the newest finished, bounded
    # A recently finished one still routes: its pool says what became of it.
    with pytest.raises(ProtocolError) as late:
        await d.execute(claims, "x4", "hold.extend", {"hold_id": holds[-1], "ttl_s": 600})
    assert late.value.details.get("state") == "released"
    # An older one is forgotten by the router: plain not_found.
    with pytest.raises(ProtocolError) as old:
        await d.execute(claims, "x0", "hold.extend", {"hold_id": holds[0], "ttl_s": 600})
    assert old.value.code.value == "not_found"
