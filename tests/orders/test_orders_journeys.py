"""Order journeys end to end over the real gateway (WebSocket commands, REST, topics)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from clients.python import CommandRejected, open_client
from engine.server import Engine
from tests.conftest import http_url, ws_url
from tests.gateway.helpers import token


def inv(engine: Engine) -> Any:
    return engine.inventory  # type: ignore[attr-defined]


def stocked_at(
    engine: Engine,
    n: int = 1,
    min_available: int = 1,
    *,
    curbside: bool | None = None,
    exclude: set[str] | None = None,
) -> tuple[str, list[str]]:
    """A pickup store with at least `n` SKUs available >= min_available there."""
    by_loc: dict[str, list[str]] = {}
    for sku, balances in sorted(inv(engine).views.stock.items()):
        for loc, bal in balances.items():
            info = engine.catalog.location(loc)
            if not info or not info.pickup_enabled or bal["available"] < min_available:
                continue
            if curbside is not None and info.curbside != curbside:
                continue
            if exclude and sku in exclude:
                continue
            by_loc.setdefault(loc, []).append(sku)
    for loc, skus in sorted(by_loc.items(), key=lambda kv: -len(kv[1])):
        if len(skus) >= n:
            return loc, skus[:n]
    raise AssertionError("demo data has no such store")


def bal(engine: Engine, sku: str, loc: str) -> dict[str, int]:
    return dict(inv(engine).views.stock[sku][loc])


async def test_bopis_web_order_to_register_pickup(engine: Engine) -> None:
    store, (s1, s2) = stocked_at(engine, 2)
    before = {s: bal(engine, s, store) for s in (s1, s2)}
    async with (
        open_client(ws_url(engine), token(engine, "storefront")) as web,
        open_client(ws_url(engine), token(engine, "cashier", store)) as register,
    ):
        queue = await register.subscribe(f"location:{store}")
        created = await web.command(
            "order.create",
            {
                "lines": [{"sku": s1, "qty": 1}, {"sku": s2, "qty": 1}],
                "pickup_location": store,
                "channel": "web",
                "customer_ref": "Ada",
            },
            op_id="bopis-1",
        )
        oid = created["order_id"]
        assert created["status"] == "placed" and len(created["pickup_code"]) == 6
        # Retrying the create is answered from the op record: same order, nothing doubled.
        assert (
            await web.command(
                "order.create",
                {
                    "lines": [{"sku": s1, "qty": 1}, {"sku": s2, "qty": 1}],
                    "pickup_location": store,
                    "channel": "web",
                    "customer_ref": "Ada",
                },
                op_id="bopis-1",
            )
            == created
        )
        assert bal(engine, s1, store)["reserved"] == before[s1]["reserved"] + 1
        await queue.wait_for(lambda s: f"order:{oid}" in s)
        assert queue.state[f"order:{oid}"]["customer_ref"] == "Ada"
        status = await register.subscribe(f"order:{oid}")
        assert status.state["status"] == "placed" and status.state["pickup_code"] == ""
        await register.command("order.pick", {"order_id": oid})
        await register.command("order.ready", {"order_id": oid})
        await status.wait_for(lambda s: s["status"] == "ready")
        assert status.state["pickup_code"] == created["pickup_code"]
        try:
            await register.command(
                "order.pickup",
                {
                    "order_id": oid,
                    "pickup_code": "000000" if created["pickup_code"] != "000000" else "111111",
                },
            )
            raise AssertionError("wrong code accepted")
        except CommandRejected as exc:
            assert exc.code == "conflict"
        done = await register.command(
            "order.pickup", {"order_id": oid, "pickup_code": created["pickup_code"]}
        )
        assert done["status"] == "picked_up"
        await status.wait_for(lambda s: s["status"] == "picked_up")
        await queue.wait_for(lambda s: f"order:{oid}" not in s)
    for s in (s1, s2):
        after = bal(engine, s, store)
        assert after["on_hand"] == before[s]["on_hand"] - 1
        assert after["reserved"] == before[s]["reserved"]


async def test_partial_pickup_and_rest_test_over_rest(engine: Engine) -> None:
    store, (sku,) = stocked_at(engine, 1, min_available=2)
    before = bal(engine, sku, store)
    admin = {"Authorization": f"Bearer {token(engine)}"}
    async with httpx.AsyncClient(base_url=http_url(engine), headers=admin) as http:
        r = await http.post(
            "/api/v1/orders",
            json={
                "op_id": "partial-1",
                "lines": [{"sku": sku, "qty": 2}],
                "pickup_location": store,
            },
        )
        assert r.status_code == 201, r.text
        oid = r.json()["order_id"]
        assert r.json()["customer_token"]
        r = await http.post(
            f"/api/v1/orders/{oid}/pickup",
            json={"op_id": "partial-2", "lines": [{"line": 1, "qty": 1}]},
        )
        assert r.status_code == 200 and r.json()["status"] == "partially_picked_up", r.text
        r = await http.post(
            f"/api/v1/orders/{oid}/pickup",
            json={"op_id": "partial-3", "lines": [{"line": 1, "qty": 5}]},
        )
        assert r.status_code == 409 and "only 1 left" in r.json()["message"]
        r = await http.post(f"/api/v1/orders/{oid}/cancel", json={"op_id": "partial-4"})
        assert r.status_code == 200 and r.json()["status"] == "picked_up"
        r = await http.get(f"/api/v1/orders/{oid}")
        line = r.json()["lines"][0]
        assert (line["fulfilled"], line["cancelled"], line["outstanding"]) == (1, 1, 0)
        customer = {
            "Authorization": f"Bearer {(await http.post('/api/v1/orders', json={'op_id': 'partial-1', 'lines': [{'sku': sku, 'qty': 2}], 'pickup_location': store})).json()['customer_token']}"
        }
        assert (await http.get(f"/api/v1/orders/{oid}", headers=customer)).status_code == 200
        other = (await http.get("/api/v1/orders/Onope", headers=customer)).status_code
        assert other == 403
        doc = (await http.get("/openapi.json")).json()
        assert "/api/v1/orders/{order_id}/pickup" in doc["paths"]
    after = bal(engine, sku, store)
    assert after["on_hand"] == before["on_hand"] - 1
    assert after["reserved"] == before["reserved"] and after["committed"] == before["committed"]


async def test_bad_input_over_rest(engine: Engine) -> None:
    store, (sku,) = stocked_at(engine, 1)
    nopickup = next(loc.id for loc in engine.catalog.locations() if not loc.pickup_enabled)
    admin = {"Authorization": f"Bearer {token(engine)}"}
    async with httpx.AsyncClient(base_url=http_url(engine), headers=admin) as http:

        async def create(op: str, **body: Any) -> httpx.Response:
            return await http.post("/api/v1/orders", json={"op_id": op, **body})

        r = await create("bad-1", lines=[], pickup_location=store)
        assert r.status_code == 400 and "empty" in r.json()["message"]
        r = await create("bad-2", lines=[{"sku": "NO-SUCH", "qty": 1}], pickup_location=store)
        assert r.status_code == 404 and r.json()["code"] == "not_found"
        r = await create(
            "bad-3",
            lines=[{"sku": sku, "qty": 100000}],
            ship_to={"address": "1 Main St", "lat": 45.52, "lon": -122.68},
        )
        assert r.status_code == 409 and r.json()["code"] == "insufficient_stock"
        assert r.json()["details"]["available"][sku]  # what is available where
        r = await create("bad-4", lines=[{"sku": sku, "qty": 1}], pickup_location=nopickup)
        assert r.status_code == 409 and "does not offer pickup" in r.json()["message"]
        r = await create("bad-5", lines=[{"sku": sku, "qty": 1}], pickup_location=store)
        oid = r.json()["order_id"]
        r = await http.post(
            f"/api/v1/orders/{oid}/ship",
            json={"op_id": "bad-6", "carrier": "ups", "tracking": "1Z"},
        )
        assert r.status_code == 409 and "pickup order" in r.json()["message"]
        r = await http.post(
            f"/api/v1/orders/{oid}/return",
            json={"op_id": "bad-7", "location_id": store, "lines": [{"line": 1, "qty": 1}]},
        )
        assert r.status_code == 409 and r.json()["code"] == "conflict"
        r = await http.post(f"/api/v1/orders/{oid}/deliver", json={"op_id": "bad-8"})
        assert r.status_code == 409 and "placed" in r.json()["message"]
        # Packing is for ship orders; parcels must be 1-99; the order stays as it was.
        r = await http.post(f"/api/v1/orders/{oid}/pack", json={"op_id": "bad-9"})
        assert r.status_code == 409 and "only ship orders are packed" in r.json()["message"]
        for parcels in (0, 100, "two"):
            r = await http.post(f"/api/v1/orders/{oid}/pack", json={"op_id": f"bad-10-{parcels}", "parcels": parcels})
            assert r.status_code == 400 and r.json()["code"] == "invalid_args", r.json()
        r = await http.post("/api/v1/orders/O-NOPE/pack", json={"op_id": "bad-11"})
        assert r.status_code == 404 and r.json()["code"] == "not_found"
        assert (await http.get(f"/api/v1/orders/{oid}")).json()["status"] == "placed"


async def test_curbside_bay_shows_in_pickup_queue(engine: Engine) -> None:
    store, (sku,) = stocked_at(engine, 1, curbside=True)
    async with (
        open_client(ws_url(engine), token(engine, "storefront")) as phone,
        open_client(ws_url(engine), token(engine, "cashier", store)) as register,
    ):
        oid = (
            await phone.command(
                "order.create", {"lines": [{"sku": sku, "qty": 1}], "pickup_location": store}
            )
        )["order_id"]
        queue = await register.subscribe(f"location:{store}")
        await register.command("order.ready", {"order_id": oid})
        # The shop's public token may not announce anyone's arrival: only this order's own
        # customer token (minted at creation with the subject order:{id}) may.
        try:
            await phone.command("order.arrived", {"order_id": oid, "bay": "7"})
            raise AssertionError("a public token announced an arrival")
        except CommandRejected as exc:
            assert exc.code == "forbidden"
        customer = engine.signer.mint("storefront", sub=f"order:{oid}", ttl_s=600)
        async with open_client(ws_url(engine), customer) as own_phone:
            await own_phone.command("order.arrived", {"order_id": oid, "bay": "7"})
        entry = await queue.wait_for(lambda s: (s.get(f"order:{oid}") or {}).get("bay") == "7")
        assert entry[f"order:{oid}"]["curbside"] is True
        await register.command("order.pickup", {"order_id": oid})
        await queue.wait_for(lambda s: f"order:{oid}" not in s)


async def test_ship_from_store_with_tracking(engine: Engine) -> None:
    store, (sku,) = stocked_at(engine, 1)
    loc = engine.catalog.location(store)
    assert loc is not None
    before = bal(engine, sku, store)
    async with (
        open_client(ws_url(engine), token(engine, "kiosk", store)) as kiosk,
        open_client(ws_url(engine), token(engine, "manager")) as staff,
    ):
        created = await kiosk.command(
            "order.create",
            {
                "lines": [{"sku": sku, "qty": 1}],
                "channel": "kiosk",
                "sold_at": store,
                "ship_to": {"address": "12 Home Rd", "lat": loc.lat, "lon": loc.lon},
            },
        )
        oid = created["order_id"]
        view = await staff.subscribe(f"order:{oid}")
        assert view.state["sold_at"] == store and view.state["fulfilment"] == "ship"
        alloc = view.state["lines"][0]["allocations"][0]
        assert alloc["state"] == "committed"
        mid = bal(engine, sku, alloc["location_id"])
        await staff.command("order.pick", {"order_id": oid})
        # Packed: the picking list shows it (parcels) until it ships; a re-pack corrects it.
        packed = await staff.command("order.pack", {"order_id": oid, "parcels": 1})
        assert packed["status"] == "packed"
        await staff.command("order.pack", {"order_id": oid, "parcels": 2, "weight_g": 1800})
        await view.wait_for(lambda s: s["package"] == {"parcels": 2, "weight_g": 1800})
        queue = inv(engine).views.locations[alloc["location_id"]][f"ship:{oid}"]
        assert queue["status"] == "packed" and queue["parcels"] == 2
        shipped = await staff.command(
            "order.ship", {"order_id": oid, "carrier": "ups", "tracking": "1Z999"}
        )
        assert shipped["status"] == "shipped"
        await view.wait_for(lambda s: (s["shipment"] or {}).get("tracking") == "1Z999")
        with pytest.raises(CommandRejected) as late:  # shipped: too late to pack
            await staff.command("order.pack", {"order_id": oid})
        assert late.value.code == "conflict" and late.value.details["status"] == "shipped"
        await staff.command("order.deliver", {"order_id": oid})
        await view.wait_for(lambda s: s["status"] == "delivered")
    after = bal(engine, sku, alloc["location_id"])
    assert after["on_hand"] == mid["on_hand"] - 1 and after["committed"] == mid["committed"] - 1
    if alloc["location_id"] == store:
        assert after["on_hand"] == before["on_hand"] - 1


async def test_return_at_another_store_restocks_by_reason(engine: Engine) -> None:
    store, (sku,) = stocked_at(engine, 1, min_available=2)
    other = next(
        loc.id for loc in engine.catalog.locations() if loc.id != store and loc.kind == "store"
    )
    async with open_client(ws_url(engine), token(engine, "manager")) as c:
        oid = (
            await c.command(
                "order.create", {"lines": [{"sku": sku, "qty": 2}], "pickup_location": store}
            )
        )["order_id"]
        await c.command("order.pickup", {"order_id": oid})
        price = engine.catalog.variant(sku)[1].price_cents  # type: ignore[index]
        before = (
            bal(engine, sku, other)
            if other in inv(engine).views.stock[sku]
            else {"on_hand": 0, "unsellable": 0}
        )
    async with open_client(ws_url(engine), token(engine, "cashier", other)) as register:
        result = await register.command(
            "order.return",
            {
                "order_id": oid,
                "location_id": other,
                "lines": [{"line": 1, "qty": 1, "reason": "damaged"}, {"line": 1, "qty": 1}],
            },
        )
        assert result["refund_due_cents"] == 2 * price
        try:
            await register.command(
                "order.return",
                {"order_id": oid, "location_id": other, "lines": [{"line": 1, "qty": 1}]},
            )
            raise AssertionError("returned more than bought")
        except CommandRejected as exc:
            assert exc.code == "conflict" and exc.details["returnable"] == 0
        view = await register.subscribe(f"order:{oid}")
        assert view.state["status"] == "returned" and view.state["lines"][0]["returned"] == 2
    after = bal(engine, sku, other)
    assert after["on_hand"] == before["on_hand"] + 2
    assert after["unsellable"] == before["unsellable"] + 1


async def test_offline_sale_conflict_reroutes_to_another_store(engine: Engine) -> None:
    pickup = {loc.id for loc in engine.catalog.locations() if loc.pickup_enabled}
    found = None
    for sku, balances in sorted(inv(engine).views.stock.items()):
        have = sorted((b["available"], loc) for loc, b in balances.items() if loc in pickup)
        if len(have) >= 2 and have[-2][0] >= 1:
            found = (sku, have[-2][1], have[-2][0])  # the second best store; the best one covers
            break
    assert found is not None
    sku, store, qty = found
    async with open_client(ws_url(engine), token(engine, "manager")) as c:
        oid = (
            await c.command(
                "order.create", {"lines": [{"sku": sku, "qty": qty}], "pickup_location": store}
            )
        )["order_id"]
        view = await c.subscribe(f"order:{oid}")
        on_hand = bal(engine, sku, store)["on_hand"]
        await c.command(
            "stock.sale", {"sku": sku, "location_id": store, "qty": on_hand, "offline_at": 1.0}
        )
        state = await view.wait_for(
            lambda s: bool(s["exceptions"]) and s["exceptions"][0]["resolution"] == "rerouted"
        )
        live = [a for a in state["lines"][0]["allocations"] if a["state"] != "closed"]
        assert live and all(a["location_id"] != store for a in live)
        assert sum(a["qty"] for a in live) == qty
    assert bal(engine, sku, store)["reserved"] == 0


async def test_offline_sale_conflict_flags_staff_when_nowhere_else(engine: Engine) -> None:
    store, (sku,) = stocked_at(engine, 1)
    async with open_client(ws_url(engine), token(engine, "manager")) as c:
        for loc, b in list(inv(engine).views.stock[sku].items()):
            if loc != store and b["available"] > 0:  # nothing left anywhere else
                await c.command(
                    "stock.sale", {"sku": sku, "location_id": loc, "qty": b["available"]}
                )
        avail = bal(engine, sku, store)["available"]
        oid = (
            await c.command(
                "order.create", {"lines": [{"sku": sku, "qty": avail}], "pickup_location": store}
            )
        )["order_id"]
        view = await c.subscribe(f"order:{oid}")
        on_hand = bal(engine, sku, store)["on_hand"]
        await c.command(
            "stock.sale", {"sku": sku, "location_id": store, "qty": on_hand, "offline_at": 1.0}
        )
        state = await view.wait_for(lambda s: bool(s["exceptions"]))
        exc = state["exceptions"][0]
        assert exc["kind"] == "stock_conflict" and exc["location_id"] == store
        assert exc["resolution"] == ""
        try:
            await c.command("order.ready", {"order_id": oid})
            raise AssertionError("ready with an open exception")
        except CommandRejected as e:
            assert "exceptions" in e.message
        await c.command(
            "order.resolve",
            {"order_id": oid, "exception_id": exc["exception_id"], "action": "cancel_line"},
        )
        await view.wait_for(lambda s: s["status"] == "cancelled")
    assert bal(engine, sku, store)["reserved"] == 0
