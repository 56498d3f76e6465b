"""End-to-end tests of the web clients in real Chromium against a real engine process.

Two registers, a kiosk, the storefront widget (on another origin) and the ops dashboard are
open at once; a change made on one shows on the others within a second; an engine outage
marks every view offline/stale and a restart brings them back current without a reload;
bad input gets a clear message. Each scenario saves screenshots to test-artifacts/.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.harness import Engine

pytestmark = pytest.mark.browser

STORE = "pdx-pearl"  # the demo flagship: a kiosk link and two staff members work here


# --- helpers --------------------------------------------------------------------------


class Pages:
    """Open pages, each in its own browser context (its own storage, like its own device)."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.contexts: list[Any] = []
        self.errors: list[str] = []

    def open(self, url: str, name: str, width: int = 1280, height: int = 900) -> Page:
        ctx = self.browser.new_context(viewport={"width": width, "height": height})
        self.contexts.append(ctx)
        page = ctx.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"{name}: {exc}"))
        page.goto(url)
        return page

    def close(self) -> None:
        for ctx in self.contexts:
            ctx.close()


@contextmanager
def pages(browser: Browser) -> Iterator[Pages]:
    p = Pages(browser)
    try:
        yield p
    finally:
        p.close()
    assert not p.errors, f"uncaught errors in the pages: {p.errors}"


def staff(engine: Engine, role: str, location: str = STORE) -> dict[str, Any]:
    demo = engine.get("/api/v1/demo")
    return next(s for s in demo["staff"] if s["role"] == role and s["location_id"] == location)


def kiosk_url(engine: Engine, location: str = STORE) -> str:
    demo = engine.get("/api/v1/demo")
    return next(link["url"] for link in demo["links"] if f"location={location}&" in link["url"])


def login(engine: Engine, member: dict[str, Any]) -> str:
    body = {"user_id": member["user_id"], "pin": member["pin"]}
    return str(engine.post("/api/v1/auth/login", body)["token"])


def location(engine: Engine, token: str, location_id: str = STORE) -> dict[str, Any]:
    items = engine.get("/api/v1/locations", token)["items"]
    return next(loc for loc in items if loc["id"] == location_id)


def widget_url(origin: str, engine: Engine, sku: str, here: dict[str, Any]) -> str:
    """The demo shop page on its own origin, pointing its widget at the engine."""
    near = f"{here['lat']},{here['lon']}"
    return f"{origin}/widget-demo.html?endpoint={engine.url}&sku={sku}&near={near}"


def pick_sku(engine: Engine, token: str, min_here: int) -> dict[str, Any]:
    """A product with at least `min_here` available at STORE (demo stock is random)."""
    for query in ("shirt", "tee", "jacket", "sweater", "dress", "jeans"):
        for item in engine.get(f"/api/v1/products?query={query}&limit=50", token)["items"]:
            bal = engine.get(f"/api/v1/stock/{item['sku']}", token)["locations"].get(STORE)
            if bal and bal["available"] >= min_here:
                return {**item, "available": bal["available"]}
    raise AssertionError(f"no demo SKU with {min_here} available at {STORE}")


def available_here(engine: Engine, token: str, sku: str) -> int:
    return int(engine.get(f"/api/v1/stock/{sku}", token)["locations"][STORE]["available"])


def sign_in(page: Page, member: dict[str, Any]) -> None:
    page.fill("#user-id", member["user_id"])
    page.fill("#pin", member["pin"])
    page.click("#signin-btn")
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#banner")).to_have_attribute("data-state", "live", timeout=10_000)


def scan(page: Page, barcode: str) -> None:
    page.fill("#scan", barcode)
    page.press("#scan", "Enter")


def cart_badge(page: Page, sku: str) -> Any:
    return page.locator(f'#cart tr[data-sku="{sku}"] .badge')


def open_kiosk_product(page: Page, item: dict[str, Any]) -> None:
    page.fill("#q", item["barcode"])  # a scanner types the barcode and Enter
    page.press("#q", "Enter")
    expect(page.locator("#product")).to_be_visible()
    expect(page.locator("#here-qty")).to_have_text(f"{item['available']} available")


def widget_qty(page: Page) -> Any:
    return page.locator(f'omnitill-stock li[data-location="{STORE}"] .qty')


def shot(page: Page, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def expect_all_within(checks: list[tuple[Any, str]], start: float, budget_s: float) -> None:
    """Every (locator, text) reaches its text before start + budget_s."""
    for locator, text in checks:
        remaining_ms = max(50.0, (start + budget_s - time.monotonic()) * 1000)
        expect(locator).to_have_text(text, timeout=remaining_ms)
    assert time.monotonic() - start < budget_s + 0.05


# --- scenarios ------------------------------------------------------------------------


def test_live_sync_across_channels(
    engine: Engine, second_origin: str, browser: Browser, artifacts: Path
) -> None:
    cashier, manager = staff(engine, "cashier"), staff(engine, "manager")
    token = login(engine, cashier)
    item = pick_sku(engine, token, min_here=4)
    sku, n = item["sku"], item["available"]
    here = location(engine, token)

    with pages(browser) as p:
        reg_a = p.open(engine.url + "/register", "register A")
        sign_in(reg_a, cashier)
        reg_b = p.open(engine.url + "/register", "register B")
        sign_in(reg_b, manager)
        kiosk = p.open(engine.url + kiosk_url(engine), "kiosk", 1600, 1000)
        widget = p.open(widget_url(second_origin, engine, sku, here), "widget", 900, 800)
        ops = p.open(engine.url + "/ops", "ops", 1400, 1000)
        sign_in(ops, manager)

        for reg in (reg_a, reg_b):
            scan(reg, item["barcode"])
            expect(cart_badge(reg, sku)).to_have_text(str(n))
        open_kiosk_product(kiosk, item)
        expect(widget_qty(widget)).to_have_text(f"{n} left", timeout=10_000)
        expect(widget.locator("omnitill-stock .headline")).to_contain_text("In stock near you")

        # A cash sale of one unit on register A reaches every other channel within 1 s.
        reg_a.fill("#tendered", "500")
        start = time.monotonic()
        reg_a.click("#complete")
        expect_all_within(
            [
                (cart_badge(reg_b, sku), str(n - 1)),
                (kiosk.locator("#here-qty"), f"{n - 1} available"),
                (widget_qty(widget), f"{n - 1} left"),
            ],
            start,
            1.0,
        )
        expect(reg_a.locator("#sale-msg")).to_contain_text("Change due")
        expect(reg_a.locator("#recent li").first).to_contain_text("synced")
        assert available_here(engine, token, sku) == n - 1

        # A hold placed at the kiosk shows in the store's pickup queue on both registers.
        kiosk.click(f'#stores button[data-store="{STORE}"]')
        kiosk.fill("#customer", "Ana Kiosk")
        kiosk.click("#hold-btn")
        expect(kiosk.locator("#done")).to_be_visible()
        hold_id = kiosk.locator("#done-id").inner_text().strip()
        assert hold_id
        for reg in (reg_a, reg_b):
            row = reg.locator(f'#queue li[data-hold="{hold_id}"]')
            expect(row).to_contain_text("Ana Kiosk", timeout=2_000)
        expect(widget_qty(widget)).to_have_text(f"{n - 2} left", timeout=2_000)
        expect(cart_badge(reg_b, sku)).to_have_text(str(n - 2))

        expect(ops.locator("#tiles")).to_contain_text("Connections", timeout=5_000)
        expect(ops.locator("#tiles")).to_contain_text("Webhooks failed")
        ops.wait_for_timeout(2_500)  # a few samples, so the charts have lines
        for name, page in [("register-a", reg_a), ("register-b", reg_b), ("kiosk", kiosk),
                           ("widget", widget), ("ops", ops)]:
            shot(page, artifacts, f"live-{name}")

        # The customer collects it: "Picked up" on register A clears it from both queues.
        reg_a.locator(f'#queue li[data-hold="{hold_id}"] button:has-text("Picked up")').click()
        for reg in (reg_a, reg_b):
            expect(reg.locator(f'#queue li[data-hold="{hold_id}"]')).to_have_count(0, timeout=2_000)
        holds = engine.get(f"/api/v1/locations/{STORE}/holds", token)["items"]
        assert not [h for h in holds if h["hold_id"] == hold_id and h.get("status") == "active"]


def test_outage_marks_views_stale_and_restart_resumes(
    engine: Engine, second_origin: str, browser: Browser, artifacts: Path
) -> None:
    cashier = staff(engine, "cashier")
    token = login(engine, cashier)
    item = pick_sku(engine, token, min_here=3)
    sku, n = item["sku"], item["available"]
    here = location(engine, token)

    with pages(browser) as p:
        reg = p.open(engine.url + "/register", "register")
        sign_in(reg, cashier)
        kiosk = p.open(engine.url + kiosk_url(engine), "kiosk", 1600, 1000)
        widget = p.open(widget_url(second_origin, engine, sku, here), "widget", 900, 800)
        scan(reg, item["barcode"])
        expect(cart_badge(reg, sku)).to_have_text(str(n))
        open_kiosk_product(kiosk, item)
        expect(widget_qty(widget)).to_have_text(f"{n} left", timeout=10_000)
        for page in (reg, kiosk, widget):
            page.evaluate("window.__noReload = true")

        engine.stop()
        for page in (reg, kiosk):
            banner = page.locator("#banner")
            expect(banner).to_have_attribute("data-state", "offline", timeout=10_000)
            expect(banner).to_contain_text("Offline — data may be stale")
        expect(reg.locator(f'#cart tr[data-sku="{sku}"] td.is-stale .stale-label')).to_be_visible()
        expect(reg.locator("#queue-panel")).to_have_class("panel is-stale")
        expect(kiosk.locator("#here-box.is-stale .stale-label")).to_be_visible()
        stock_el = widget.locator("omnitill-stock")
        expect(stock_el).to_have_attribute("data-state", "stale", timeout=10_000)
        expect(stock_el.locator(".status-text")).to_contain_text("Offline")
        for name, page in [("register", reg), ("kiosk", kiosk), ("widget", widget)]:
            shot(page, artifacts, f"offline-{name}")

        # The register keeps selling through the outage: the sale waits with its op_id.
        reg.fill("#tendered", "1000")
        reg.click("#complete")
        expect(reg.locator("#recent li").first).to_contain_text("will sync when back online")
        expect(reg.locator("#banner")).to_contain_text("waiting to sync")
        shot(reg, artifacts, "offline-register-sale-queued")

        engine.start()  # same data dir, same port
        for page in (reg, kiosk):
            banner = page.locator("#banner")
            expect(banner).to_have_attribute("data-state", "live", timeout=15_000)
        # The offline sale synced exactly once, and every view converged on it.
        expect(reg.locator("#recent li").first).to_contain_text("synced", timeout=10_000)
        expect(kiosk.locator("#here-qty")).to_have_text(f"{n - 1} available", timeout=5_000)
        expect(widget_qty(widget)).to_have_text(f"{n - 1} left", timeout=15_000)
        expect(widget.locator("omnitill-stock")).to_have_attribute("data-state", "live")
        expect(kiosk.locator("#here-box")).not_to_have_class("here-box is-stale")
        assert available_here(engine, token, sku) == n - 1

        # And they are subscribed again: a sale made elsewhere (REST) shows up live.
        scan(reg, item["barcode"])
        expect(cart_badge(reg, sku)).to_have_text(str(n - 1))
        engine.post(
            f"/api/v1/stock/{sku}/{STORE}/sale",
            {"qty": 1, "register_id": "rest", "op_id": str(uuid.uuid4())},
            token,
        )
        expect(cart_badge(reg, sku)).to_have_text(str(n - 2), timeout=2_000)
        expect(kiosk.locator("#here-qty")).to_have_text(f"{n - 2} available", timeout=2_000)
        expect(widget_qty(widget)).to_have_text(f"{n - 2} left", timeout=2_000)
        for page in (reg, kiosk, widget):
            assert page.evaluate("window.__noReload") is True
        for name, page in [("register", reg), ("kiosk", kiosk), ("widget", widget)]:
            shot(page, artifacts, f"recovered-{name}")


def test_offline_sale_survives_a_closed_tab(engine: Engine, browser: Browser, artifacts: Path) -> None:
    """A sale rung up during an outage lives in the register's outbox (localStorage), not
    only in the page: the tab is closed before the server is back, and the next sign-in at
    that register sends it, exactly once."""
    cashier = staff(engine, "cashier")
    token = login(engine, cashier)
    item = pick_sku(engine, token, min_here=2)
    sku, n = item["sku"], item["available"]
    outbox = "() => JSON.parse(localStorage.getItem('omnitill.register.outbox') || '[]')"

    with pages(browser) as p:
        device = browser.new_context(viewport={"width": 1280, "height": 900})  # one register
        p.contexts.append(device)
        reg = device.new_page()
        reg.on("pageerror", lambda exc: p.errors.append(f"register: {exc}"))
        reg.goto(engine.url + "/register")
        sign_in(reg, cashier)
        scan(reg, item["barcode"])
        expect(cart_badge(reg, sku)).to_have_text(str(n))

        engine.stop()
        expect(reg.locator("#banner")).to_have_attribute("data-state", "offline", timeout=10_000)
        reg.fill("#tendered", "1000")
        reg.click("#complete")
        expect(reg.locator("#recent li").first).to_contain_text("will sync when back online")
        queued = reg.evaluate(outbox)
        assert [(e["name"], e["args"]["sku"], e["args"]["qty"]) for e in queued] == [("stock.sale", sku, 1)]
        assert queued[0]["args"]["offline_at"] > 0
        shot(reg, artifacts, "outbox-sale-queued")
        reg.click("#signout")  # the cashier is told the sale stays on this register
        expect(reg.locator("#signin-msg")).to_contain_text(
            "1 sale line(s) not synced yet: they are kept on this register"
        )
        reg.close()  # and the tab is gone before the server came back

        engine.start()
        assert available_here(engine, token, sku) == n  # nothing reached the server yet
        reg = device.new_page()
        reg.on("pageerror", lambda exc: p.errors.append(f"register (reopened): {exc}"))
        reg.goto(engine.url + "/register")
        sign_in(reg, cashier)
        restored = reg.locator("#recent li").first
        expect(restored).to_contain_text("(restored): 1 item(s)")
        expect(restored).to_contain_text("synced", timeout=10_000)
        assert available_here(engine, token, sku) == n - 1
        assert reg.evaluate(outbox) == []
        shot(reg, artifacts, "outbox-sale-restored")

        # Signing in again sends nothing twice: the outbox is empty and the sale counted once.
        reg.reload()
        expect(reg.locator("#banner")).to_have_attribute("data-state", "live", timeout=10_000)
        expect(reg.locator("#recent li")).to_have_count(0)
        assert available_here(engine, token, sku) == n - 1


def test_bad_input_gets_clear_messages(engine: Engine, browser: Browser, artifacts: Path) -> None:
    cashier = staff(engine, "cashier")
    token = login(engine, cashier)
    item = pick_sku(engine, token, min_here=1)
    sku, n = item["sku"], item["available"]

    with pages(browser) as p:
        reg = p.open(engine.url + "/register", "register")

        # Wrong PIN.
        reg.fill("#user-id", cashier["user_id"])
        reg.fill("#pin", "not-the-pin")
        reg.click("#signin-btn")
        expect(reg.locator("#signin-msg")).to_have_text("Wrong user id or PIN.")
        sign_in(reg, cashier)

        # Unknown barcode: an inline message, the code stays selected, focus stays on scan.
        scan(reg, "0000000000000")
        expect(reg.locator("#scan-msg")).to_contain_text('Unknown barcode "0000000000000"')
        expect(reg.locator("#scan")).to_be_focused()
        expect(reg.locator("#scan")).to_have_attribute("aria-invalid", "true")

        # More than is available here: a warning on the line, then a confirmation to sell.
        scan(reg, item["barcode"])
        expect(cart_badge(reg, sku)).to_have_text(str(n))
        expect(reg.locator("#scan-msg")).to_be_empty()
        reg.locator(f'#cart tr[data-sku="{sku}"] input[type="number"]').fill(str(n + 2))
        expect(reg.locator(f'#cart tr[data-sku="{sku}"] .msg-warn')).to_contain_text(
            f"ringing up {n + 2} needs confirmation"
        )
        reg.click("#complete")
        dialog = reg.locator("#confirm-dialog")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text(f"selling {n + 2}")
        shot(reg, artifacts, "bad-oversell-confirm")
        reg.click("#confirm-cancel")
        expect(dialog).to_be_hidden()
        expect(reg.locator(f'#cart tr[data-sku="{sku}"]')).to_have_count(1)  # nothing was sold
        assert available_here(engine, token, sku) == n

        # Short cash is refused before anything is sent.
        reg.locator(f'#cart tr[data-sku="{sku}"] input[type="number"]').fill("1")
        reg.fill("#tendered", "0.01")
        reg.click("#complete")
        expect(reg.locator("#sale-msg")).to_contain_text("short of the total")
        shot(reg, artifacts, "bad-register")

        # Holding without a customer name asks for one.
        reg.locator("#hold-box summary").click()
        reg.click("#hold-cart")
        expect(reg.locator("#hold-msg")).to_contain_text("Enter the customer's name or phone")

        # An expired token sends the cashier back to sign-in with a clear message.
        expired = engine.mint_token("cashier", STORE, ttl=1)
        time.sleep(1.5)
        stale_tab = p.open(engine.url + "/register", "register (expired token)")
        stale_tab.evaluate(
            """(t) => sessionStorage.setItem('omnitill.register.session', JSON.stringify(
                {token: t, role: 'cashier', location_id: 'pdx-pearl', name: 'Old tab',
                 user_id: 'c-pdx-pearl', expires_at: Date.now() / 1000 + 3600}))""",
            expired,
        )
        stale_tab.reload()
        expect(stale_tab.locator("#signin-view")).to_be_visible(timeout=10_000)
        expect(stale_tab.locator("#signin-msg")).to_contain_text("session has expired")
        shot(stale_tab, artifacts, "bad-expired-token")

        # The engine unreachable: sign-in and lookups say so plainly.
        kiosk = p.open(engine.url + kiosk_url(engine), "kiosk", 1600, 1000)
        expect(kiosk.locator("#banner")).to_have_attribute("data-state", "live", timeout=10_000)
        engine.stop()
        stale_tab.fill("#user-id", cashier["user_id"])
        stale_tab.fill("#pin", cashier["pin"])
        stale_tab.click("#signin-btn")
        expect(stale_tab.locator("#signin-msg")).to_contain_text("Cannot reach the omnitill server")
        scan(reg, item["barcode"])
        expect(reg.locator("#scan-msg")).to_contain_text("Cannot reach the server")
        expect(reg.locator("#banner")).to_contain_text("Offline", timeout=10_000)
        kiosk.fill("#q", "shirt")
        kiosk.press("#q", "Enter")
        expect(kiosk.locator("#search-msg")).to_contain_text("can't search right now")
        expect(kiosk.locator("#banner")).to_contain_text("Offline", timeout=10_000)
        shot(reg, artifacts, "unreachable-register")
        shot(kiosk, artifacts, "unreachable-kiosk")
