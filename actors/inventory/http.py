"""REST reads for back office, registers, kiosks and widgets: products, locations, stock,
geo resolution, staff sign-in, public storefront tokens and demo hints."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from quart import request

from engine.auth import check_topic
from protocol import ErrorCode, LocationTopic, ProtocolError

from .wiring import product_item, resolve_point

if TYPE_CHECKING:
    from .wiring import InventoryWiring

__all__ = ["install_http"]

PUBLIC_TOKEN_TTL_S = 3600
STAFF_TOKEN_TTL_S = 12 * 3600


def install_http(w: InventoryWiring, app: Any, bearer: Any, json_body: Any) -> None:
    engine = w.engine
    catalog = w.catalog

    def location_item(loc: Any) -> dict[str, Any]:
        return {
            "id": loc.id, "name": loc.name, "kind": loc.kind, "address": loc.address,
            "postal_code": loc.postal_code, "city": loc.city, "lat": loc.lat, "lon": loc.lon,
            "timezone": loc.timezone, "pickup_enabled": loc.pickup_enabled,
            "pickup_lead_s": loc.pickup_lead_s, "curbside": loc.curbside,
            "opening_hours": loc.opening_hours,
        }

    @app.get("/api/v1/locations")
    async def locations() -> Any:
        bearer()
        return {"items": [location_item(loc) for loc in catalog.locations()]}

    @app.get("/api/v1/products")
    async def products() -> Any:
        bearer()
        query = request.args.get("query", "").strip()
        try:
            limit = min(max(int(request.args.get("limit", "20")), 1), 200)
        except ValueError:
            raise ProtocolError(ErrorCode.INVALID_ARGS, "limit must be a number") from None
        if len(query) > 200:
            raise ProtocolError(ErrorCode.INVALID_ARGS, "query is too long")
        found = catalog.search(query, limit) if query else [
            (p, v) for p in catalog.products()[:limit] for v in p.variants[:1]
        ]
        return {"items": [product_item(p, v) for p, v in found]}

    @app.get("/api/v1/products/by-barcode/<code>")
    async def by_barcode(code: str) -> Any:
        bearer()
        found = catalog.by_barcode(code)
        if found is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"no product with barcode {code!r}", {"barcode": code})
        return product_item(*found)

    @app.get("/api/v1/stock/<sku>")
    async def stock(sku: str) -> Any:
        bearer()
        if catalog.variant(sku) is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"unknown SKU {sku!r}", {"sku": sku})
        balances = w.views.stock.get(sku, {})
        return {
            "sku": sku,
            "epoch": engine.journal.epoch,
            "seq": w.views.version(sku),
            "locations": balances,
            "total_available": sum(max(b.get("available", 0), 0) for b in balances.values()),
        }

    @app.get("/api/v1/locations/<location_id>/holds")
    async def location_holds(location_id: str) -> Any:
        claims = bearer()
        if catalog.location(location_id) is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"unknown location {location_id!r}",
                                {"location_id": location_id})
        # The same policy as the `location:{id}` topic that carries this queue.
        check_topic(claims, LocationTopic(location_id))
        view = w.views.locations.get(location_id, {})
        return {"items": [v for k, v in view.items() if k.startswith("hold:")]}

    @app.get("/api/v1/geo/resolve")
    async def geo_resolve() -> Any:
        q = request.args.get("q", "").strip()
        point = resolve_point(w, q) if q else None
        if point is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"cannot place {q!r}: use 'lat,lon' or a known postal code")
        return {"lat": point[0], "lon": point[1]}

    @app.post("/api/v1/auth/login")
    async def login() -> Any:
        body = await json_body()
        user_id, pin = body.get("user_id"), body.get("pin")
        if not isinstance(user_id, str) or not isinstance(pin, str):
            raise ProtocolError(ErrorCode.INVALID_ARGS, "user_id and pin are required strings")
        member = catalog.verify_pin(user_id, pin)
        if member is None:
            raise ProtocolError(ErrorCode.UNAUTHORIZED, "unknown user or wrong PIN")
        token = engine.signer.mint(member.role, sub=member.user_id, location=member.location_id,
                                   ttl_s=STAFF_TOKEN_TTL_S, name=member.name)
        return {
            "token": token, "role": member.role, "location_id": member.location_id,
            "name": member.name, "expires_at": time.time() + STAFF_TOKEN_TTL_S,
        }

    @app.get("/api/v1/auth/public-token")
    async def public_token() -> Any:
        token = engine.signer.mint("storefront", sub="public", ttl_s=PUBLIC_TOKEN_TTL_S)
        return {"token": token, "expires_at": time.time() + PUBLIC_TOKEN_TTL_S}

    @app.get("/api/v1/demo")
    async def demo() -> Any:
        if not engine.config.demo:
            raise ProtocolError(ErrorCode.NOT_FOUND, "demo mode is off")
        stores = [loc for loc in catalog.locations() if loc.kind == "store"]
        links = [
            {"label": "Register", "url": "/register"},
            {"label": "Ops dashboard", "url": "/ops"},
            {"label": "Storefront widget demo (same origin)", "url": "/widget-demo"},
        ]
        # `localhost` and `127.0.0.1` are different origins to a browser: the shop page
        # below embeds the widget across origins, exactly as a retailer's web shop would.
        port = engine.bound_port or engine.config.port
        shop_host = "localhost" if request.host.split(":")[0] != "localhost" else "127.0.0.1"
        api_host = request.host.split(":")[0]
        links.append({
            "label": "Storefront widget on a web shop (another origin)",
            "url": f"http://{shop_host}:{port}/widget-demo?endpoint=http://{api_host}:{port}",
        })
        kiosks = []
        for loc in stores[:3]:
            token = engine.signer.mint("kiosk", sub=f"kiosk-{loc.id}", location=loc.id, ttl_s=7 * 86400)
            kiosks.append({"label": f"Kiosk at {loc.name}", "url": f"/kiosk?location={loc.id}&token={token}"})
        return {
            "retailer": engine.config.demo,
            "links": links + kiosks,
            "staff": [
                {"user_id": s.user_id, "name": s.name, "role": s.role,
                 "location_id": s.location_id, "pin": s.pin}
                for s in catalog.all_staff()
            ],
        }

    def path_param(name: str) -> dict[str, Any]:
        return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}

    engine.extra_openapi.update({
        "/api/v1/stock/{sku}": {"get": {"summary": "Per-location quantities of a SKU", "parameters": [path_param("sku")], "responses": {"200": {"description": "ok"}, "404": {"description": "not_found"}}}},
        "/api/v1/locations": {"get": {"summary": "Stores and warehouses", "responses": {"200": {"description": "ok"}}}},
        "/api/v1/locations/{location_id}/holds": {"get": {"summary": "A location's pickup queue (staff, kiosks, hubs)", "parameters": [path_param("location_id")], "responses": {"200": {"description": "ok"}, "403": {"description": "forbidden"}, "404": {"description": "not_found"}}}},
        "/api/v1/products": {"get": {"summary": "Search products by name, SKU or barcode", "parameters": [{"name": "query", "in": "query", "schema": {"type": "string"}}, {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}}], "responses": {"200": {"description": "ok"}}}},
        "/api/v1/products/by-barcode/{code}": {"get": {"summary": "Resolve a scanned barcode or PLU", "parameters": [path_param("code")], "responses": {"200": {"description": "ok"}, "404": {"description": "not_found"}}}},
        "/api/v1/demo": {"get": {"summary": "Demo hints: links, kiosk tokens, staff sign-ins (demo mode only)", "responses": {"200": {"description": "ok"}, "404": {"description": "demo mode is off"}}}},
        "/api/v1/auth/login": {"post": {"summary": "Staff sign-in with user id and PIN", "responses": {"200": {"description": "token"}, "401": {"description": "unauthorized"}}}},
        "/api/v1/auth/public-token": {"get": {"summary": "A short-lived storefront (public) token", "responses": {"200": {"description": "token"}}}},
        "/api/v1/geo/resolve": {"get": {"summary": "Postal code or lat,lon to coordinates", "responses": {"200": {"description": "ok"}, "404": {"description": "not_found"}}}},
    })
