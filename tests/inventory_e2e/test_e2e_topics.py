"""Live topics over the real gateway: `location:{id}` pickup queue, `near:{sku}:{lat},{lon}`,
and a sale past zero (physical facts win, invariant 6) with its StockConflict."""

from __future__ import annotations

from actors.inventory import StockConflict, decode_event
from clients.python import CommandRejected, open_client
from engine.server import Engine
from tests.conftest import ws_url
from tests.gateway.helpers import stocked
from tests.inventory_e2e.e2e_helpers import balance, journal_truth, set_available, token


async def test_hold_shows_on_the_location_topic(engine: Engine) -> None:
    sku, loc, _ = stocked(engine)
    async with (
        open_client(ws_url(engine), token(engine)) as admin,
        open_client(ws_url(engine), token(engine, "cashier", loc)) as register,
    ):
        queue = await register.subscribe(f"location:{loc}")
        held = await admin.command("hold.place", {"sku": sku, "location_id": loc, "qty": 1,
                                                  "customer_ref": "Ada L."})
        key = f"hold:{held['hold_id']}"
        state = await queue.wait_for(lambda s: key in s)
        assert state[key]["qty"] == 1 and state[key]["sku"] == sku
        assert state[key]["customer_ref"] == "Ada L."
        assert state[key]["expires_at"] == held["expires_at"]
        assert state[f"sku:{sku}"] == balance(engine, sku, loc)

        await register.command("hold.release", {"hold_id": held["hold_id"]})
        state = await queue.wait_for(lambda s: key not in s)
        assert state[f"sku:{sku}"]["reserved"] == balance(engine, sku, loc)["reserved"]
        assert queue.gaps == 0


async def test_near_topic_drops_a_store_when_its_last_unit_is_held(engine: Engine) -> None:
    sku, loc, _ = stocked(engine)
    store = engine.catalog.location(loc)
    assert store is not None
    topic = f"near:{sku}:{store.lat},{store.lon}"
    async with (
        open_client(ws_url(engine), token(engine)) as admin,
        open_client(ws_url(engine), token(engine, "storefront")) as widget,
    ):
        await set_available(engine, admin, sku, loc, 2)
        near = await widget.subscribe(topic)
        stock = await widget.subscribe(f"stock:{sku}")
        state = await near.wait_for(lambda s: s.get(loc, {}).get("available") == 2)
        assert state[loc]["distance_km"] == 0.0 and state[loc]["name"] == store.name

        await admin.command("hold.place", {"sku": sku, "location_id": loc, "qty": 1})
        await near.wait_for(lambda s: s.get(loc, {}).get("available") == 1)
        await admin.command("hold.place", {"sku": sku, "location_id": loc, "qty": 1})
        state = await near.wait_for(lambda s: loc not in s)
        assert all(entry["available"] > 0 for entry in state.values())
        # A near topic shares the stock topic's position: same (epoch, seq), no gaps.
        await stock.wait_for(lambda s: s[loc]["available"] == 0)
        assert (near.epoch, near.seq) == (stock.epoch, stock.seq)
        assert near.gaps == stock.gaps == 0


async def test_sale_past_zero_is_accepted_and_the_uncovered_hold_conflicts(engine: Engine) -> None:
    sku, loc, _ = stocked(engine)
    async with (
        open_client(ws_url(engine), token(engine)) as admin,
        open_client(ws_url(engine), token(engine, "cashier", loc)) as register,
    ):
        await set_available(engine, admin, sku, loc, 1)
        view = await register.subscribe(f"stock:{sku}")
        hold = await admin.command("hold.place", {"sku": sku, "location_id": loc, "qty": 1})
        version = await engine.journal.stream_version(f"sku:{sku}")

        # The register sells the last unit, which a pickup hold had promised.
        sold = await register.command("stock.sale", {"sku": sku, "location_id": loc, "qty": 1})
        assert sold["balance"]["on_hand"] == 0
        conflict = sold["conflict"]
        assert conflict["uncovered_hold_ids"] == [hold["hold_id"]]
        assert conflict["shortfall"] == 1 and conflict["location_id"] == loc
        events = [decode_event(e.data) for e in await engine.journal.read(f"sku:{sku}", version + 1)]
        assert [type(e).__name__ for e in events] == ["Sold", "StockConflict"]
        assert isinstance(events[1], StockConflict)
        assert events[1].uncovered_hold_ids == [hold["hold_id"]]

        # An offline register syncs two more sales: accepted, stock goes negative.
        late = await register.command("stock.sale", {"sku": sku, "location_id": loc, "qty": 2,
                                                     "offline_at": 1.0e9})
        assert late["balance"]["on_hand"] == -2
        assert late["balance"]["available"] == -3
        assert "conflict" not in late  # the hold was already uncovered: nothing new to report
        await view.wait_for(lambda s: s[loc]["on_hand"] == -2)

        # No new promise while available is below zero.
        try:
            await register.command("hold.place", {"sku": sku, "location_id": loc, "qty": 1})
            raise AssertionError("a hold was placed on negative stock")
        except CommandRejected as exc:
            assert exc.code == "insufficient_stock" and exc.details["available"] == 0
        version, truth = await journal_truth(engine, sku)
        assert view.state == truth and view.seq == version
