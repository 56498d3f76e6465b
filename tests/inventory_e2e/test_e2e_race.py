"""No oversell under a real crowd (invariants 1, 3 and 4 through the real gateway).

50 WebSocket clients (JSON and msgpack) and 20 REST clients, each on its own connection, race
for the last N units of one SKU at one store at the same instant. Exactly N holds of one unit
succeed, everyone else gets `insufficient_stock`, REST retries with the same key repeat their
first answer, and every subscriber of `stock:{sku}` ends on exactly the numbers a fresh replay
of the journal gives.
"""

from __future__ import annotations

import httpx
import trio

from actors.inventory import HoldPlaced, decode_event
from clients.python import CommandRejected, TopicView, open_client
from engine.server import Engine
from tests.conftest import http_url, ws_url
from tests.gateway.helpers import stocked
from tests.inventory_e2e.e2e_helpers import balance, journal_truth, set_available, token

N = 7
WS_CLIENTS = 50
REST_CLIENTS = 20


class Countdown:
    """An event that fires once `n` parties have arrived."""

    def __init__(self, n: int) -> None:
        self.left = n
        self.event = trio.Event()

    def arrive(self) -> None:
        self.left -= 1
        if self.left == 0:
            self.event.set()


async def test_crowd_races_for_the_last_units(engine: Engine) -> None:
    sku, loc, _ = stocked(engine)
    topic = f"stock:{sku}"
    async with open_client(ws_url(engine), token(engine)) as admin:
        await set_available(engine, admin, sku, loc, N)
    version_before = await engine.journal.stream_version(f"sku:{sku}")

    ready = Countdown(WS_CLIENTS + REST_CLIENTS)
    answered = Countdown(WS_CLIENTS + REST_CLIENTS)
    go = trio.Event()
    converged = trio.Event()
    outcomes: dict[str, str] = {}  # racer -> "held" or the reject code
    hold_ids: set[str] = set()
    views: list[TopicView] = []
    rest_first: dict[str, tuple[int, dict[str, object]]] = {}

    async def ws_racer(i: int) -> None:
        encoding = "msgpack" if i % 2 else "json"
        async with open_client(ws_url(engine), token(engine, "kiosk"), encoding=encoding) as c:
            views.append(await c.subscribe(topic))
            ready.arrive()
            await go.wait()
            try:
                result = await c.command("hold.place", {"sku": sku, "location_id": loc, "qty": 1,
                                                        "customer_ref": f"ws-{i}"})
                outcomes[f"ws-{i}"] = "held"
                hold_ids.add(result["hold_id"])
            except CommandRejected as exc:
                outcomes[f"ws-{i}"] = exc.code
            answered.arrive()
            await converged.wait()  # stay subscribed until every view was checked

    async def rest_racer(i: int) -> None:
        headers = {"Authorization": f"Bearer {token(engine, 'cashier')}"}
        async with httpx.AsyncClient(base_url=http_url(engine), headers=headers, timeout=15) as http:
            assert (await http.get("/healthz")).status_code == 200  # connection is open
            ready.arrive()
            await go.wait()
            key = f"rest-race-{i}"
            body = {"sku": sku, "location_id": loc, "qty": 1, "customer_ref": key}
            r = await http.post("/api/v1/holds", json=body, headers={"Idempotency-Key": key})
            rest_first[key] = (r.status_code, r.json())
            if r.status_code == 201:
                outcomes[key] = "held"
                hold_ids.add(r.json()["hold_id"])
            else:
                outcomes[key] = r.json()["code"]
            answered.arrive()
            # A retry with the same key repeats the first answer, whatever it was.
            await converged.wait()
            again = await http.post("/api/v1/holds", json=body, headers={"Idempotency-Key": key})
            assert (again.status_code, again.json()) == rest_first[key]

    with trio.fail_after(40):
        async with trio.open_nursery() as nursery:
            for i in range(WS_CLIENTS):
                nursery.start_soon(ws_racer, i)
            for i in range(REST_CLIENTS):
                nursery.start_soon(rest_racer, i)
            await ready.event.wait()
            go.set()
            await answered.event.wait()

            assert sorted(outcomes.values()).count("held") == N, outcomes
            assert set(outcomes.values()) == {"held", "insufficient_stock"}, outcomes
            assert len(hold_ids) == N
            bal = balance(engine, sku, loc)
            assert (bal["reserved"], bal["available"]) == (N, 0), bal

            # Every subscriber converges on the journal's truth.
            version, truth = await journal_truth(engine, sku)
            assert version == version_before + N  # rejected holds append nothing
            assert truth[loc]["reserved"] == N
            for view in views:
                await view.wait_for(lambda s, v=view: v.seq == version and s == truth, timeout=10)
                assert view.gaps == 0
            converged.set()

    # The journal holds exactly N one-unit holds at this store, nothing else from the race.
    events = await engine.journal.read(f"sku:{sku}", version_before + 1, 1000)
    placed = [decode_event(e.data) for e in events]
    assert all(isinstance(e, HoldPlaced) and e.location_id == loc and e.qty == 1 for e in placed)
    assert {e.hold_id for e in placed if isinstance(e, HoldPlaced)} == hold_ids
    # And the REST retries changed nothing.
    assert await engine.journal.stream_version(f"sku:{sku}") == version_before + N
