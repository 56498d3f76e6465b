"""Order journeys in real Chromium against a real engine process (issue 7, Clients).

* BOPIS: a web order placed over REST shows in the store register's pickup queue with its
  details; the cashier marks it ready, hands over part of it, then the rest; the customer's
  order-status page (fed by `order:{id}`, opened with the `customer_token`) follows live.
* A return at another store: that store's register finds the order by its code, shows the
  refund due, takes the item back, and the stock lands there (unsellable when damaged).
* The kiosk orders to this store and to a home address; the home order shows on the shipping
  store's picking list and is shipped from its register.
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.harness import Engine
from tests.browser.test_web_clients import (
    STORE,
    kiosk_url,
    login,
    open_kiosk_product,
    pages,
    pick_sku,
    shot,
    sign_in,
    staff,
)

pytestmark = pytest.mark.browser

OTHER = "pdx-downtown"


def web_order(engine: Engine, sku: str, qty: int, customer: str) -> dict[str, Any]:
    """What a web shop does: a public storefront token, then POST /api/v1/orders."""
    public = engine.get("/api/v1/auth/public-token")["token"]
    body = {
        "op_id": f"web-{uuid.uuid4().hex[:12]}",
        "lines": [{"sku": sku, "qty": qty}],
        "pickup_location": STORE,
        "channel": "web",
        "customer_ref": customer,
    }
    return dict(engine.post("/api/v1/orders", body, public))


def stock_at(engine: Engine, token: str, sku: str, loc: str) -> dict[str, int]:
    locs = engine.get(f"/api/v1/stock/{sku}", token)["locations"]
    return dict(locs.get(loc) or {"on_hand": 0, "unsellable": 0, "available": 0})


def status_page(p: Any, engine: Engine, order: dict[str, Any]) -> Page:
    url = f"{engine.url}/order-status?order={order['order_id']}&token={order['customer_token']}"
    return p.open(url, "order status", 700, 900)


def order_card(page: Page, order_id: str) -> Any:
    return page.locator(f'#orders li[data-order="{order_id}"]')


def test_bopis_web_order_through_the_register_with_live_status(
    engine: Engine, browser: Browser, artifacts: Path
) -> None:
    cashier = staff(engine, "cashier")
    token = login(engine, cashier)
    item = pick_sku(engine, token, min_here=3)
    sku = item["sku"]
    before = stock_at(engine, token, sku, STORE)
    order = web_order(engine, sku, 2, "Grace Web")
    oid = order["order_id"]
    assert order["status"] == "placed" and len(order["pickup_code"]) == 6

    with pages(browser) as p:
        reg = p.open(engine.url + "/register", "register")
        sign_in(reg, cashier)
        status = status_page(p, engine, order)
        card = order_card(reg, oid)
        expect(card).to_contain_text("Grace Web", timeout=5_000)
        expect(card).to_contain_text(oid)
        expect(card).to_contain_text("New")
        expect(card.locator(".items")).to_contain_text(f"2 \u00d7 {item['name']}")
        # The order's hold is on the card, not listed again as a loose hold.
        expect(reg.locator("#queue-empty")).to_be_visible()
        widget = status.locator("omnitill-order")
        expect(widget.locator(".headline")).to_have_text("Order received", timeout=10_000)
        expect(widget.locator(".code")).to_have_count(0)
        shot(reg, artifacts, "bopis-register-new")
        shot(status, artifacts, "bopis-status-received")

        card.get_by_role("button", name=f"Ready: order {oid} for Grace Web").click()
        expect(card).to_contain_text("Ready", timeout=2_000)
        expect(widget.locator(".headline")).to_have_text("Ready for pickup", timeout=2_000)
        expect(widget.locator(".code")).to_have_text(order["pickup_code"])
        shot(status, artifacts, "bopis-status-ready")

        # The customer takes one now and one later: a partial pickup, then the rest.
        card.get_by_role("button", name=f"Partial…: order {oid} for Grace Web").click()
        card.get_by_label("Hand over how many of line 1").fill("1")
        shot(reg, artifacts, "bopis-register-partial")
        card.get_by_role("button", name="Hand over these").click()
        expect(card).to_contain_text("Partly picked up", timeout=2_000)
        expect(card.locator(".items")).to_contain_text(f"1 \u00d7 {item['name']}")
        expect(widget.locator(".headline")).to_have_text("Partly picked up", timeout=2_000)
        expect(widget.locator('tr[data-line="1"]')).to_contain_text("1 picked up")

        card.get_by_role("button", name=f"Picked up: order {oid} for Grace Web").click()
        expect(card).to_have_count(0, timeout=2_000)
        expect(reg.locator("#orders-empty")).to_be_visible()
        expect(widget.locator(".headline")).to_have_text("Picked up — thank you!", timeout=2_000)
        expect(widget.locator(".code")).to_have_count(0)
        shot(reg, artifacts, "bopis-register-done")
        shot(status, artifacts, "bopis-status-picked-up")

    after = stock_at(engine, token, sku, STORE)
    assert after["on_hand"] == before["on_hand"] - 2
    assert after["available"] == before["available"] - 2
    assert engine.get(f"/api/v1/orders/{oid}", token)["status"] == "picked_up"


def test_return_at_another_store(engine: Engine, browser: Browser, artifacts: Path) -> None:
    here = login(engine, staff(engine, "cashier"))
    item = pick_sku(engine, here, min_here=2)
    sku = item["sku"]
    order = web_order(engine, sku, 2, "Ravi Return")
    oid = order["order_id"]
    engine.post(f"/api/v1/orders/{oid}/pickup", {"op_id": f"pu-{oid}"}, here)
    elsewhere = staff(engine, "cashier", OTHER)
    other_token = login(engine, elsewhere)
    before = stock_at(engine, other_token, sku, OTHER)
    price = item["price_cents"]

    with pages(browser) as p:
        reg = p.open(engine.url + "/register", "register elsewhere")
        sign_in(reg, elsewhere)
        status = status_page(p, engine, order)
        widget = status.locator("omnitill-order")
        expect(widget.locator(".headline")).to_have_text("Picked up — thank you!", timeout=10_000)

        # Bad input first: a code that names no order.
        reg.fill("#return-code", "ONOSUCHORDER")
        reg.click("#return-find-btn")
        expect(reg.locator("#return-msg")).to_contain_text("No order ONOSUCHORDER")

        reg.fill("#return-code", oid.lower())  # typed by hand; codes are case-insensitive here
        reg.click("#return-find-btn")
        row = reg.locator('#return-lines tr[data-line="1"]')
        expect(row).to_contain_text(item["name"])
        expect(row.locator("td").nth(1)).to_have_text("2")
        row.get_by_label("Return how many of line 1").fill("3")
        reg.get_by_label("Reason for line 1").select_option("damaged")
        reg.click("#return-btn")
        expect(reg.locator("#return-msg")).to_contain_text("only 2 can come back")
        row.get_by_label("Return how many of line 1").fill("1")
        expect(reg.locator("#return-total")).to_contain_text(f"${price / 100:,.2f}")
        shot(reg, artifacts, "return-register-before")
        reg.click("#return-btn")
        expect(reg.locator("#return-msg")).to_contain_text(
            f"Refund due ${price / 100:,.2f}", timeout=5_000
        )
        expect(widget.locator('tr[data-line="1"]')).to_contain_text("1 returned", timeout=2_000)
        expect(widget.locator(".note")).to_contain_text("Refund due")
        shot(reg, artifacts, "return-register-done")
        shot(status, artifacts, "return-status")

    after = stock_at(engine, other_token, sku, OTHER)
    assert after["on_hand"] == before["on_hand"] + 1
    assert after["unsellable"] == before["unsellable"] + 1  # damaged: not sellable
    view = engine.get(f"/api/v1/orders/{oid}", other_token)
    assert view["refund_due_cents"] == price and view["returns"][0]["location_id"] == OTHER


def test_kiosk_orders_to_this_store_and_to_home(
    engine: Engine, browser: Browser, artifacts: Path
) -> None:
    cashier = staff(engine, "cashier")
    token = login(engine, cashier)
    item = pick_sku(engine, token, min_here=2)

    with pages(browser) as p:
        reg = p.open(engine.url + "/register", "register")
        sign_in(reg, cashier)
        kiosk = p.open(engine.url + kiosk_url(engine), "kiosk", 1600, 1200)
        open_kiosk_product(kiosk, item)

        # To this store: a pickup order sold here, in this store's queue.
        kiosk.click("#order-btn")
        expect(kiosk.locator("#order-msg")).to_contain_text("Please enter your name")
        kiosk.fill("#order-name", "Kim Kiosk")
        kiosk.click("#order-btn")
        expect(kiosk.locator("#done")).to_be_visible(timeout=5_000)
        expect(kiosk.locator("#done-label")).to_have_text("Your order number")
        oid = kiosk.locator("#done-id").inner_text().strip()
        expect(kiosk.locator("#done-text")).to_contain_text("pickup code")
        shot(kiosk, artifacts, "kiosk-order-store")
        card = order_card(reg, oid)
        expect(card).to_contain_text("Kim Kiosk", timeout=2_000)
        expect(card).to_contain_text("kiosk")
        view = engine.get(f"/api/v1/orders/{oid}", token)
        assert (view["channel"], view["sold_at"], view["pickup_location"]) == ("kiosk", STORE, STORE)

        # To home: a ship order, routed by the network; bad ZIP first.
        kiosk.click("#done-btn")
        open_kiosk_product(kiosk, {**item, "available": item["available"] - 1})
        kiosk.check('input[name="dest"][value="home"]')
        kiosk.fill("#order-name", "Hal Home")
        kiosk.fill("#order-address", "1 Elm St")
        kiosk.fill("#order-zip", "12")
        kiosk.click("#order-btn")
        expect(kiosk.locator("#order-msg")).to_contain_text("5-digit ZIP")
        kiosk.fill("#order-zip", "97205")
        kiosk.click("#order-btn")
        expect(kiosk.locator("#done")).to_be_visible(timeout=5_000)
        ship_id = kiosk.locator("#done-id").inner_text().strip()
        expect(kiosk.locator("#done-text")).to_contain_text("shipped to your home")
        shot(kiosk, artifacts, "kiosk-order-home")
        ship = engine.get(f"/api/v1/orders/{ship_id}", token)
        assert ship["fulfilment"] == "ship" and ship["sold_at"] == STORE
        (alloc,) = ship["lines"][0]["allocations"]
        assert alloc["state"] == "committed"

    # The shipping store's register picks and ships it from its picking list.
    shipper = staff(engine, "cashier", alloc["location_id"])
    with pages(browser) as p:
        reg = p.open(engine.url + "/register", "shipping register")
        sign_in(reg, shipper)
        entry = reg.locator(f'#ship li[data-ship="{ship_id}"]')
        expect(entry).to_contain_text("Hal Home", timeout=5_000)
        expect(entry).to_contain_text("1 Elm St")
        entry.get_by_role("button", name=f"Start picking order {ship_id}").click()
        expect(entry).to_contain_text("Picking", timeout=2_000)
        entry.get_by_label("Parcels").fill("2")
        entry.get_by_role("button", name="Packed").click()
        expect(entry).to_contain_text("Packed · 2 parcels", timeout=2_000)
        entry.get_by_label("Tracking").fill("1Z999AA10123456784")
        shot(reg, artifacts, "ship-from-store-register")
        entry.get_by_role("button", name="Ship").click()
        expect(entry).to_have_count(0, timeout=2_000)
    shipped = engine.get(f"/api/v1/orders/{ship_id}", token)
    assert shipped["status"] == "shipped"
    assert shipped["shipment"] == {"carrier": "ups", "tracking": "1Z999AA10123456784"}
    assert shipped["package"] == {"parcels": 2, "weight_g": None}
