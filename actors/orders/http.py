"""REST for orders: create, read, transitions (the same commands as over the WebSocket),
the webhook delivery log and a store's pickup queue; plus their OpenAPI entries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from quart import request

from engine.auth import Claims
from protocol import ErrorCode, ProtocolError
from protocol.orders import ORDER_COMMAND_ARGS
from protocol.webhooks import WEBHOOK_DATA

from . import views

if TYPE_CHECKING:
    from .wiring import OrdersWiring

__all__ = ["ACTIONS", "install_http"]

CUSTOMER_TOKEN_TTL_S = 30 * 24 * 3600
ACTIONS: dict[str, str] = {
    "pay": "Record the payment reference",
    "pick": "Staff started picking",
    "ready": "Ready for pickup (customer sees the pickup code)",
    "arrived": "Curbside: the customer is here (bay)",
    "pickup": "Handed over at the counter (all or some lines)",
    "pack": "Ship-from-store: packed (parcels, weight), waiting for the carrier",
    "ship": "Shipped with carrier and tracking reference",
    "deliver": "Carrier delivered",
    "cancel": "Cancel: releases everything the order holds",
    "return": "Return lines at any store (restock by reason, refund due)",
    "resolve": "Resolve an exception (reroute, cancel_line, dismiss)",
}
_STAFF = ("cashier", "manager", "admin", "kiosk", "hub")


def _op_id(body: dict[str, Any]) -> str:
    op_id = request.headers.get("Idempotency-Key") or body.pop("op_id", None)
    if not isinstance(op_id, str) or not op_id:
        raise ProtocolError(
            ErrorCode.INVALID_ARGS,
            "every mutating call needs an op_id (Idempotency-Key header or op_id field)",
        )
    return op_id


def install_http(w: OrdersWiring, app: Any, bearer: Any, json_body: Any) -> None:
    engine = w.engine

    def may_read(claims: Claims, order_id: str) -> None:
        if claims.role not in _STAFF and claims.sub != f"order:{order_id}":
            raise ProtocolError(ErrorCode.FORBIDDEN, "this order is not yours to read")

    @app.post("/api/v1/orders")
    async def create_order() -> Any:
        claims = bearer()
        body = await json_body()
        op_id = _op_id(body)
        result = await engine.dispatcher.execute(claims, op_id, "order.create", body)
        order_id = result.get("order_id", "")
        result = {
            **result,
            "customer_token": engine.signer.mint(
                "storefront", sub=f"order:{order_id}", ttl_s=CUSTOMER_TOKEN_TTL_S
            ),
        }
        return result, 201

    @app.get("/api/v1/orders/<order_id>")
    async def get_order(order_id: str) -> Any:
        claims = bearer()
        may_read(claims, order_id)
        version, state = await w.get(order_id)
        if version == 0:
            raise ProtocolError(
                ErrorCode.NOT_FOUND, f"unknown order {order_id!r}", {"order_id": order_id}
            )
        return views.order_view(state)

    def add_action(action: str) -> None:
        async def view(order_id: str) -> Any:
            claims = bearer()
            body = await json_body()
            op_id = _op_id(body)
            if body.get("order_id", order_id) != order_id:
                raise ProtocolError(
                    ErrorCode.INVALID_ARGS, "order_id in the body differs from the path"
                )
            body["order_id"] = order_id
            return await engine.dispatcher.execute(claims, op_id, f"order.{action}", body), 200

        app.add_url_rule(
            f"/api/v1/orders/<order_id>/{action}", f"order_{action}", view, methods=["POST"]
        )

    for action in ACTIONS:
        add_action(action)

    @app.get("/api/v1/webhooks/deliveries")
    async def deliveries() -> Any:
        claims = bearer()
        if claims.role not in ("manager", "admin"):
            raise ProtocolError(ErrorCode.FORBIDDEN, "the delivery log is for managers")
        return {
            "endpoints": w.webhooks.endpoints,
            "dropped": w.webhooks.dropped,
            "items": list(reversed(w.webhooks.log)),
        }

    @app.get("/api/v1/locations/<location_id>/pickup-queue")
    async def pickup_queue(location_id: str) -> Any:
        claims = bearer()
        if claims.role not in _STAFF:
            raise ProtocolError(ErrorCode.FORBIDDEN, "the pickup queue is for staff")
        view = engine.inventory.views.locations.get(location_id, {})  # type: ignore[attr-defined]
        return {"items": [v for k, v in view.items() if k.startswith("order:")]}

    engine.extra_openapi.update(openapi_paths())
    engine.extra_openapi_webhooks.update(openapi_webhooks())


def openapi_paths() -> dict[str, Any]:
    by_name = {t.__name__: t for t in ORDER_COMMAND_ARGS.values()}

    # Self-contained schemas (JSON Schema `$defs`): extra paths cannot add components.
    def body(name: str) -> dict[str, Any]:
        schema = msgspec.json.schema(by_name[name])
        return {"required": True, "content": {"application/json": {"schema": schema}}}

    errors = {
        str(s): {"description": d}
        for s, d in (
            (400, "invalid_args"),
            (401, "unauthorized"),
            (403, "forbidden"),
            (404, "not_found"),
            (409, "insufficient_stock (with what is available where) / conflict"),
            (503, "unavailable: retry with the same op_id"),
        )
    }
    idem = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "op_id (or op_id in the body)",
    }
    path_id = {"name": "order_id", "in": "path", "required": True, "schema": {"type": "string"}}
    paths: dict[str, Any] = {
        "/api/v1/orders": {
            "post": {
                "summary": "Create an order (cart, channel, pickup store or ship-to address)",
                "operationId": "order.create",
                "parameters": [idem],
                "security": [{"bearer": []}],
                "requestBody": body("OrderCreateArgs"),
                "responses": {
                    "201": {"description": "order placed; `customer_token` reads order:{id}"},
                    **errors,
                },
            }
        },
        "/api/v1/orders/{order_id}": {
            "get": {
                "summary": "The order's current state (same shape as the order:{id} topic)",
                "parameters": [path_id],
                "security": [{"bearer": []}],
                "responses": {"200": {"description": "ok"}, "404": {"description": "not_found"}},
            }
        },
        "/api/v1/webhooks/deliveries": {
            "get": {
                "summary": "Recent webhook delivery attempts (newest first)",
                "security": [{"bearer": []}],
                "responses": {"200": {"description": "ok"}},
            }
        },
        "/api/v1/locations/{location_id}/pickup-queue": {
            "get": {
                "summary": "Open pickup orders at a store (with curbside bay)",
                "security": [{"bearer": []}],
                "responses": {"200": {"description": "ok"}},
            }
        },
    }
    for action, summary in ACTIONS.items():
        args_type = ORDER_COMMAND_ARGS[f"order.{action}"].__name__
        paths[f"/api/v1/orders/{{order_id}}/{action}"] = {
            "post": {
                "summary": summary,
                "operationId": f"order.{action}",
                "parameters": [path_id, idem],
                "security": [{"bearer": []}],
                "requestBody": body(args_type),
                "responses": {"200": {"description": "ok"}, **errors},
            }
        }
    return paths


def openapi_webhooks() -> dict[str, Any]:
    """What a webhook endpoint receives, per event type (protocol/webhooks.py)."""
    out: dict[str, Any] = {}
    for event_type, data in WEBHOOK_DATA.items():
        schema = msgspec.json.schema(data)
        out[event_type] = {
            "post": {
                "summary": f"`{event_type}` delivery (signed: Omnitill-Signature)",
                "parameters": [
                    {"name": h, "in": "header", "required": True, "schema": {"type": "string"}}
                    for h in ("Omnitill-Signature", "Omnitill-Event", "Omnitill-Delivery")
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["id", "type", "created_at", "data"],
                                "properties": {
                                    "id": {"type": "string"},
                                    "type": {"const": event_type},
                                    "created_at": {"type": "number"},
                                    "data": {"$ref": schema["$ref"]},
                                },
                                "$defs": schema["$defs"],
                            }
                        }
                    },
                },
                "responses": {"2XX": {"description": "delivered; anything else is retried"}},
            }
        }
    return out
