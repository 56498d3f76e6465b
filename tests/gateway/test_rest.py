"""The REST API over a real socket (httpx.AsyncClient runs on trio through anyio)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from engine.gateway._http import build_http_app
from engine.server import Engine
from protocol import ErrorCode
from tests.conftest import http_url
from tests.gateway.helpers import stocked, token

V1 = "/api/v1"


class Api:
    def __init__(self, client: httpx.AsyncClient, engine: Engine) -> None:
        self.c = client
        self.engine = engine
        self._n = 0

    def key(self) -> str:
        self._n += 1
        return f"rest-op-{self._n}"

    async def post(self, path: str, body: dict[str, Any] | None = None, *, key: str | None = None,
                   role: str = "admin", location: str | None = None) -> httpx.Response:
        headers = {"Idempotency-Key": key or self.key(),
                   "Authorization": f"Bearer {token(self.engine, role, location)}"}
        return await self.c.post(V1 + path, json=body or {}, headers=headers)

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.c.get(V1 + path, params=params)

    def balance(self, sku: str, loc: str) -> dict[str, int]:
        return dict(self.engine.inventory.views.stock[sku][loc])  # type: ignore[attr-defined]


@pytest.fixture
async def api(engine: Engine) -> AsyncIterator[Api]:
    headers = {"Authorization": f"Bearer {token(engine)}"}
    async with httpx.AsyncClient(base_url=http_url(engine), headers=headers, timeout=10) as client:
        yield Api(client, engine)


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code, body
    assert body["message"]
    return body


# --- reads ------------------------------------------------------------------------------


async def test_stock_of_a_sku(api: Api, engine: Engine) -> None:
    sku, loc, balance = stocked(engine)
    r = await api.get(f"/stock/{sku}")
    assert r.status_code == 200
    body = r.json()
    assert body["sku"] == sku
    assert body["locations"][loc] == balance
    assert body["epoch"] == engine.journal.epoch
    assert body["seq"] == await engine.journal.stream_version(f"sku:{sku}")
    assert body["total_available"] == sum(max(b["available"], 0) for b in body["locations"].values())
    assert_error(await api.get("/stock/NO-SUCH-SKU"), 404, "not_found")


async def test_locations(api: Api, engine: Engine) -> None:
    r = await api.get("/locations")
    assert r.status_code == 200
    items = {item["id"]: item for item in r.json()["items"]}
    assert set(items) == {loc.id for loc in engine.catalog.locations()}
    assert items["pdx-pearl"]["pickup_enabled"] is True
    assert {"lat", "lon", "timezone", "opening_hours"} <= set(items["pdx-pearl"])


async def test_product_search_by_name_sku_and_barcode(api: Api, engine: Engine) -> None:
    product = engine.catalog.products()[0]
    variant = product.variants[0]
    by_name = (await api.get("/products", query=product.name.split()[-1], limit=50)).json()["items"]
    assert product.id in {i["product_id"] for i in by_name}
    by_sku = (await api.get("/products", query=variant.sku)).json()["items"]
    assert by_sku[0]["sku"] == variant.sku
    by_barcode = (await api.get("/products", query=variant.barcode)).json()["items"]
    assert by_barcode[0]["sku"] == variant.sku
    assert (await api.get("/products", query="zzqqxx-nothing")).json()["items"] == []
    assert len((await api.get("/products", limit=3)).json()["items"]) == 3
    assert_error(await api.get("/products", limit="many"), 400, "invalid_args")
    assert_error(await api.get("/products", query="x" * 201), 400, "invalid_args")


async def test_product_by_barcode(api: Api, engine: Engine) -> None:
    variant = engine.catalog.products()[0].variants[0]
    r = await api.get(f"/products/by-barcode/{variant.barcode}")
    assert r.status_code == 200
    assert r.json()["sku"] == variant.sku
    body = assert_error(await api.get("/products/by-barcode/0000000000000"), 404, "not_found")
    assert body["barcode"] == "0000000000000"


async def test_location_holds_follow_the_topic_policy(api: Api, engine: Engine) -> None:
    sku, loc, _ = stocked(engine)
    hold = (await api.post("/holds", {"sku": sku, "location_id": loc, "qty": 1})).json()
    r = await api.get(f"/locations/{loc}/holds")
    assert [h["hold_id"] for h in r.json()["items"]] == [hold["hold_id"]]
    assert_error(await api.get("/locations/nowhere/holds"), 404, "not_found")
    other = "pdx-downtown" if loc != "pdx-downtown" else "pdx-pearl"
    for role, scope in (("storefront", None), ("cashier", other)):
        r = await api.c.get(f"{V1}/locations/{loc}/holds",
                            headers={"Authorization": f"Bearer {token(engine, role, scope)}"})
        assert_error(r, 403, "forbidden")
    r = await api.c.get(f"{V1}/locations/{loc}/holds",
                        headers={"Authorization": f"Bearer {token(engine, 'cashier', loc)}"})
    assert r.status_code == 200


# --- holds ------------------------------------------------------------------------------


async def test_hold_lifecycle_and_idempotency(api: Api, engine: Engine) -> None:
    sku, loc, balance = stocked(engine)
    args = {"sku": sku, "location_id": loc, "qty": 1, "ttl_s": 600, "customer_ref": "order #7"}
    r = await api.post("/holds", args, key="hold-key-1")
    assert r.status_code == 201, r.text
    hold = r.json()
    assert {"hold_id", "expires_at", "ready_at", "qty", "sku", "location_id"} <= set(hold)
    assert hold["qty"] == 1 and hold["available"] == balance["available"] - 1
    assert api.balance(sku, loc)["reserved"] == balance["reserved"] + 1

    # A retry with the same key gets the same answer and changes nothing.
    version = await engine.journal.stream_version(f"sku:{sku}")
    again = await api.post("/holds", args, key="hold-key-1")
    assert (again.status_code, again.json()) == (201, hold)
    assert await engine.journal.stream_version(f"sku:{sku}") == version
    # The same key with another payload is a conflict.
    other = await api.post("/holds", {**args, "qty": 2}, key="hold-key-1")
    assert assert_error(other, 409, "idempotency_conflict")["op_id"] == "hold-key-1"
    # op_id in the body works too, and both at once (header wins) is not an error.
    both = await api.c.post(f"{V1}/holds", json={**args, "op_id": "hold-key-1"},
                            headers={"Idempotency-Key": "hold-key-1"})
    assert (both.status_code, both.json()) == (201, hold)

    hid = hold["hold_id"]
    r = await api.post(f"/holds/{hid}/extend", {"ttl_s": 3600})
    assert r.status_code == 200, r.text
    assert r.json()["expires_at"] > hold["expires_at"]

    r = await api.c.delete(f"{V1}/holds/{hid}", headers={"Idempotency-Key": api.key()})
    assert r.status_code == 200, r.text
    assert api.balance(sku, loc)["reserved"] == balance["reserved"]
    # Released: extending or releasing again finds no live hold.
    assert_error(await api.post(f"/holds/{hid}/extend", {"ttl_s": 600}), 404, "not_found")
    r = await api.c.delete(f"{V1}/holds/{hid}", headers={"Idempotency-Key": api.key()})
    assert_error(r, 404, "not_found")


async def test_hold_beyond_available_is_insufficient_stock(api: Api, engine: Engine) -> None:
    sku, loc, balance = stocked(engine)
    version = await engine.journal.stream_version(f"sku:{sku}")
    r = await api.post("/holds", {"sku": sku, "location_id": loc, "qty": balance["available"] + 1})
    body = assert_error(r, 409, "insufficient_stock")
    assert body["available"] == balance["available"]
    assert body["details"]["requested"] == balance["available"] + 1
    assert await engine.journal.stream_version(f"sku:{sku}") == version
    # Exactly all of it is fine, and then nothing is left.
    r = await api.post("/holds", {"sku": sku, "location_id": loc, "qty": balance["available"]})
    assert r.status_code == 201
    body = assert_error(await api.post("/holds", {"sku": sku, "location_id": loc, "qty": 1}),
                        409, "insufficient_stock")
    assert body["available"] == 0


async def test_unknown_hold(api: Api) -> None:
    assert_error(await api.post("/holds/HNOSUCHHOLD/extend", {"ttl_s": 600}), 404, "not_found")
    assert_error(await api.post("/holds/HNOSUCHHOLD/pickup"), 404, "not_found")
    r = await api.c.delete(f"{V1}/holds/HNOSUCHHOLD", headers={"Idempotency-Key": api.key()})
    assert_error(r, 404, "not_found")


# --- stock facts ------------------------------------------------------------------------


async def test_receive_adjust_count(api: Api, engine: Engine) -> None:
    sku, loc, balance = stocked(engine)
    on_hand = balance["on_hand"]
    r = await api.post(f"/stock/{sku}/{loc}/receive", {"qty": 12, "reference": "PO-1"})
    assert r.status_code == 200, r.text
    assert r.json()["balance"]["on_hand"] == on_hand + 12
    r = await api.post(f"/stock/{sku}/{loc}/adjust", {"delta": -2, "reason": "shrink"})
    assert r.status_code == 200, r.text
    assert r.json()["balance"]["on_hand"] == on_hand + 10
    r = await api.post(f"/stock/{sku}/{loc}/adjust", {"delta": 1, "reason": "damage"})
    assert r.status_code == 200, r.text
    assert r.json()["balance"]["unsellable"] == balance["unsellable"] + 1
    assert_error(await api.post(f"/stock/{sku}/{loc}/adjust", {"delta": -1, "reason": "whim"}),
                 400, "invalid_args")
    r = await api.post(f"/stock/{sku}/{loc}/count", {"counted": 3})
    assert r.status_code == 200, r.text
    assert r.json()["balance"]["on_hand"] == 3
    assert api.balance(sku, loc)["on_hand"] == 3
    # The path names the SKU and location; a body that disagrees is refused.
    assert_error(await api.post(f"/stock/{sku}/{loc}/receive", {"qty": 1, "sku": "OTHER"}),
                 400, "invalid_args")


async def test_bad_quantities(api: Api, engine: Engine) -> None:
    sku, loc, _ = stocked(engine)
    version = await engine.journal.stream_version(f"sku:{sku}")
    for qty in (0, -1, 1.5, 2.0, "3", None, True, 10**7, 10**30):
        r = await api.post("/holds", {"sku": sku, "location_id": loc, "qty": qty})
        assert_error(r, 400, "invalid_args")
        r = await api.post(f"/stock/{sku}/{loc}/receive", {"qty": qty})
        assert_error(r, 400, "invalid_args")
        r = await api.post("/transfers", {"sku": sku, "from_location": loc, "to_location": "pdx-dc",
                                          "qty": qty})
        assert_error(r, 400, "invalid_args")
    assert await engine.journal.stream_version(f"sku:{sku}") == version


async def test_unknown_sku_and_location(api: Api, engine: Engine) -> None:
    sku, loc, _ = stocked(engine)
    body = assert_error(await api.post("/holds", {"sku": "NO-SUCH-SKU", "location_id": loc, "qty": 1}),
                        404, "not_found")
    assert body["sku"] == "NO-SUCH-SKU"
    body = assert_error(await api.post(f"/stock/{sku}/nowhere/receive", {"qty": 1}), 404, "not_found")
    assert body["location_id"] == "nowhere"


# --- transfers --------------------------------------------------------------------------


async def test_transfer_lifecycle(api: Api, engine: Engine) -> None:
    sku, loc, balance = stocked(engine)
    await api.post(f"/stock/{sku}/{loc}/receive", {"qty": 10})
    dest = "pdx-dc"
    before_dest = engine.inventory.views.stock[sku].get(dest, {}).get("on_hand", 0)  # type: ignore[attr-defined]

    r = await api.post("/transfers", {"sku": sku, "from_location": loc, "to_location": dest, "qty": 4})
    assert r.status_code == 201, r.text
    tid = r.json()["transfer_id"]
    assert r.json()["state"] == "created"
    assert api.balance(sku, loc)["committed"] == balance["committed"] + 4

    r = await api.post(f"/transfers/{tid}/ship")
    assert (r.status_code, r.json()["state"]) == (200, "shipped")
    assert api.balance(sku, dest)["incoming"] == 4
    body = assert_error(await api.post(f"/transfers/{tid}/receive", {"qty": 5}), 400, "invalid_args")
    assert body["details"]["shipped"] == 4
    r = await api.post(f"/transfers/{tid}/receive", {"qty": 3})
    assert r.status_code == 200, r.text
    assert (r.json()["received"], r.json()["lost"]) == (3, 1)
    assert api.balance(sku, dest)["on_hand"] == before_dest + 3
    assert api.balance(sku, dest)["incoming"] == 0
    assert_error(await api.post(f"/transfers/{tid}/cancel"), 409, "conflict")

    r = await api.post("/transfers", {"sku": sku, "from_location": loc, "to_location": dest, "qty": 2})
    tid2 = r.json()["transfer_id"]
    committed = api.balance(sku, loc)["committed"]
    r = await api.post(f"/transfers/{tid2}/cancel")
    assert (r.status_code, r.json()["state"]) == (200, "cancelled")
    assert api.balance(sku, loc)["committed"] == committed - 2
    assert_error(await api.post(f"/transfers/{tid2}/ship"), 409, "conflict")
    assert_error(await api.post("/transfers/TNOSUCH/ship"), 404, "not_found")


async def test_transfer_to_the_same_location(api: Api, engine: Engine) -> None:
    sku, loc, _ = stocked(engine)
    r = await api.post("/transfers", {"sku": sku, "from_location": loc, "to_location": loc, "qty": 1})
    assert_error(r, 400, "invalid_args")


async def test_location_scoped_staff_act_on_their_own_transfers_only(api: Api, engine: Engine) -> None:
    sku, loc, _ = stocked(engine)
    dest = "pdx-dc"
    other = "pdx-downtown" if loc != "pdx-downtown" else "pdx-pearl"
    tid = (await api.post("/transfers", {"sku": sku, "from_location": loc, "to_location": dest,
                                         "qty": 1})).json()["transfer_id"]
    # A cashier of another store may not ship it; the sending store's cashier may.
    assert_error(await api.post(f"/transfers/{tid}/ship", role="cashier", location=other),
                 403, "forbidden")
    r = await api.post(f"/transfers/{tid}/ship", role="cashier", location=loc)
    assert r.status_code == 200, r.text


# --- auth and request hygiene -----------------------------------------------------------


async def test_missing_or_invalid_bearer(api: Api, engine: Engine) -> None:
    sku, loc, _ = stocked(engine)
    payload, sig = token(engine).split(".")
    cases = [None, "", "Bearer", "Bearer not-a-token", "Basic YWRtaW46YWRtaW4=",
             f"Bearer {token(engine, ttl=-1)}", f"Bearer {payload}.{sig[::-1]}"]
    for authorization in cases:
        headers = {"Idempotency-Key": api.key()}
        if authorization is not None:
            headers["Authorization"] = authorization
        async with httpx.AsyncClient(base_url=http_url(engine), headers=headers) as anon:
            assert_error(await anon.get(f"{V1}/stock/{sku}"), 401, "unauthorized")
            r = await anon.post(f"{V1}/holds", json={"sku": sku, "location_id": loc, "qty": 1})
            assert_error(r, 401, "unauthorized")
            assert_error(await anon.get(f"{V1}/locations"), 401, "unauthorized")


async def test_role_may_not(api: Api, engine: Engine) -> None:
    sku, loc, _ = stocked(engine)
    r = await api.post("/holds", {"sku": sku, "location_id": loc, "qty": 1}, role="storefront")
    assert_error(r, 403, "forbidden")
    r = await api.post(f"/stock/{sku}/{loc}/receive", {"qty": 1}, role="cashier")
    assert_error(r, 403, "forbidden")


async def test_body_not_json(api: Api) -> None:
    for raw in (b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe"):
        r = await api.c.post(f"{V1}/holds", content=raw,
                             headers={"Idempotency-Key": api.key(), "Content-Type": "application/json"})
        assert_error(r, 400, "bad_frame")


async def test_oversized_body(api: Api, engine: Engine) -> None:
    sku, loc, _ = stocked(engine)
    limit = engine.config.max_frame_bytes
    big = {"sku": sku, "location_id": loc, "qty": 1, "customer_ref": "x" * limit}
    r = await api.c.post(f"{V1}/holds", json=big, headers={"Idempotency-Key": api.key()})
    assert_error(r, 413, "too_large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit still holds
        for _ in range(limit // 1024 + 2):
            yield b" " * 1024

    r = await api.c.post(f"{V1}/holds", content=chunks(), headers={"Idempotency-Key": api.key()})
    assert_error(r, 413, "too_large")


async def test_missing_op_id(api: Api, engine: Engine) -> None:
    sku, loc, _ = stocked(engine)
    r = await api.c.post(f"{V1}/holds", json={"sku": sku, "location_id": loc, "qty": 1})
    assert "op_id" in assert_error(r, 400, "invalid_args")["message"]
    r = await api.c.delete(f"{V1}/holds/HWHATEVER")
    assert_error(r, 400, "invalid_args")
    r = await api.c.post(f"{V1}/holds", json={"sku": sku, "location_id": loc, "qty": 1, "op_id": 5})
    assert_error(r, 400, "invalid_args")


async def test_generic_command_route(api: Api, engine: Engine) -> None:
    sku, loc, balance = stocked(engine)
    r = await api.c.post(f"{V1}/commands/stock.receive",
                         json={"op_id": "gen-1", "args": {"sku": sku, "location_id": loc, "qty": 2}})
    assert r.status_code == 200, r.text
    assert r.json()["balance"]["on_hand"] == balance["on_hand"] + 2
    r = await api.c.post(f"{V1}/commands/stock.teleport", json={"op_id": "gen-2", "args": {}})
    assert_error(r, 404, "unknown_type")


# --- documents, CORS, health ------------------------------------------------------------


async def test_openapi_lists_every_route(api: Api, engine: Engine) -> None:
    r = await api.c.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"

    app = build_http_app(engine)
    served: set[tuple[str, str]] = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/") or "<path:" in rule.rule:
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                served.add((path, method.lower()))
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert served - documented == set(), "routes missing from /openapi.json"
    assert documented - served == set(), "documented routes that do not exist"

    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op.get("responses"), (path, method)
            for name in re.findall(r"{(\w+)}", path):
                params = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
                assert name in params, (path, method, name)

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [v for k, v in node.items() if k == "$ref"] + [x for v in node.values() for x in refs(v)]
        if isinstance(node, list):
            return [x for v in node for x in refs(v)]
        return []

    schemas = doc["components"]["schemas"]
    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    assert set(schemas["Error"]["properties"]["code"]["enum"]) == {c.value for c in ErrorCode}
    assert schemas["HoldPlaceArgs"]["properties"]["qty"]["minimum"] == 1
    # Outgoing webhooks are documented too (OpenAPI 3.1 `webhooks`), bodies included.
    assert set(doc["webhooks"]) == {"order.updated", "stock.changed", "stock.conflict"}
    body = doc["webhooks"]["stock.changed"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["properties"]["data"]["$ref"] == "#/components/schemas/StockChanged"
    assert "available" in schemas["StockLevel"]["required"]


async def test_cors_preflight(api: Api, engine: Engine) -> None:
    engine.config.allowed_origins = ["https://shop.example"]
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type, idempotency-key"}
    r = await api.c.options(f"{V1}/holds", headers={"Origin": "https://shop.example", **preflight})
    assert r.status_code in (200, 204)
    assert r.headers["access-control-allow-origin"] == "https://shop.example"
    allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key"} <= allowed
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "Origin" in r.headers["vary"]
    r = await api.c.options(f"{V1}/holds", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in r.headers
    # The actual request from the allowed origin carries the header too.
    sku, _, _ = stocked(engine)
    r = await api.c.get(f"{V1}/stock/{sku}", headers={"Origin": "https://shop.example"})
    assert r.headers["access-control-allow-origin"] == "https://shop.example"


async def test_health_ready_and_metrics(api: Api, engine: Engine) -> None:
    r = await api.c.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    r = await api.c.get("/readyz")
    assert r.status_code == 200 and r.json()["ready"] is True

    sku, loc, _ = stocked(engine)
    await api.post(f"/stock/{sku}/{loc}/receive", {"qty": 1})
    await api.post("/holds", {"sku": sku, "location_id": loc, "qty": 10**6})  # a reject
    r = await api.c.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    sample = re.compile(r'^(omnitill_[a-z0-9_]+)(\{([a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*)?\})? (-?[0-9.e+]+|\+Inf|NaN)$')
    values: dict[str, float] = {}
    types: list[str] = []
    for line in r.text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert kind in ("counter", "gauge", "histogram", "summary")
            types.append(name)
            continue
        m = sample.match(line)
        assert m, f"not Prometheus text: {line!r}"
        labels = m.group(2) if m.group(2) and m.group(2) != "{}" else ""
        values[m.group(1) + labels] = float(m.group(5))
    assert len(types) == len(set(types)), "a metric is declared twice"
    assert values["omnitill_commands_total"] >= 2
    assert values['omnitill_rejects_total{code="insufficient_stock"}'] >= 1
    assert values["omnitill_command_latency_seconds_count"] >= 2
    assert "omnitill_uptime_seconds" in values
