"""REST API, static web clients, health, metrics and the OpenAPI document (Quart on trio)."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from quart import Response, request, send_from_directory
from quart_trio import QuartTrio

from protocol import COMMAND_ARGS, ErrorCode, ProtocolError

from ..auth import Claims
from ._rest_routes import COMMAND_ROUTES, CommandRoute

if TYPE_CHECKING:
    from ..server import Engine

__all__ = ["HTTP_STATUS", "build_http_app"]

WEB_DIR = Path(__file__).resolve().parents[2] / "clients" / "web"

HTTP_STATUS: dict[str, int] = {
    "bad_frame": 400,
    "invalid_args": 400,
    "unknown_type": 404,
    "unauthorized": 401,
    "forbidden": 403,
    "unknown_topic": 404,
    "not_found": 404,
    "insufficient_stock": 409,
    "idempotency_conflict": 409,
    "conflict": 409,
    "rate_limited": 429,
    "too_large": 413,
    "unavailable": 503,
    "internal": 500,
}

PAGES = {
    "/": "index.html",
    "/register": "register.html",
    "/kiosk": "kiosk.html",
    "/ops": "ops.html",
    "/widget-demo": "widget-demo.html",
    "/order-status": "order-status.html",
}


def error_response(exc: ProtocolError) -> tuple[dict[str, Any], int]:
    body: dict[str, Any] = {"code": exc.code.value, "message": exc.message}
    body.update({k: v for k, v in exc.details.items() if k not in body})
    if exc.details:
        body["details"] = exc.details
    return body, HTTP_STATUS.get(exc.code.value, 400)


def build_http_app(engine: Engine) -> QuartTrio:
    app = QuartTrio("omnitill", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = engine.config.max_frame_bytes
    app.config["JSON_SORT_KEYS"] = False

    def bearer() -> Claims:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            raise ProtocolError(ErrorCode.UNAUTHORIZED, "missing 'Authorization: Bearer <token>'")
        return engine.signer.verify(auth[7:].strip())

    async def json_body() -> dict[str, Any]:
        raw = await request.get_data()
        if not raw:
            return {}
        try:
            body = msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            raise ProtocolError(ErrorCode.BAD_FRAME, f"body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ProtocolError(ErrorCode.BAD_FRAME, "body must be a JSON object")
        return body

    @app.errorhandler(ProtocolError)
    async def on_protocol_error(exc: ProtocolError) -> Any:
        return error_response(exc)

    @app.errorhandler(413)
    async def on_too_large(_exc: Any) -> Any:
        return {"code": "too_large", "message": "request body over the limit"}, 413

    @app.errorhandler(404)
    async def on_404(_exc: Any) -> Any:
        return {"code": "not_found", "message": f"no route {request.path}"}, 404

    @app.errorhandler(405)
    async def on_405(_exc: Any) -> Any:
        return {"code": "not_found", "message": f"{request.method} not allowed on {request.path}"}, 405

    @app.after_request
    async def cors(response: Response) -> Response:
        origin = request.headers.get("Origin")
        if origin and request.path.startswith("/api/") and engine.origin_allowed(origin):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
            response.headers["Access-Control-Allow-Headers"] = (
                "Authorization, Content-Type, Idempotency-Key"
            )
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
            response.headers["Access-Control-Max-Age"] = "600"
        return response

    @app.route("/api/<path:_rest>", methods=["OPTIONS"])
    async def preflight(_rest: str) -> Any:
        return "", 204

    # --- health and metrics -------------------------------------------------------------

    @app.get("/healthz")
    async def healthz() -> Any:
        return {"status": "ok", "node": engine.config.node_id, "uptime_s": round(time.time() - engine.metrics.started, 1)}

    @app.get("/readyz")
    async def readyz() -> Any:
        ready, detail = engine.readiness()
        return {"ready": ready, **detail}, (200 if ready else 503)

    @app.get("/metrics")
    async def metrics() -> Any:
        engine.refresh_gauges()
        return Response(engine.metrics.prometheus(), content_type="text/plain; version=0.0.4")

    @app.get("/openapi.json")
    async def openapi() -> Any:
        return engine.openapi()

    # --- static web clients -------------------------------------------------------------

    for path, filename in PAGES.items():

        async def page(filename: str = filename) -> Any:
            response = await send_from_directory(WEB_DIR, filename)
            response.headers["Cache-Control"] = "no-cache"
            return response

        app.add_url_rule(path, f"page_{filename}", page, methods=["GET"])

    @app.get("/static/<path:filename>")
    async def static_file(filename: str) -> Any:
        response = await send_from_directory(WEB_DIR, filename)
        # The storefront widget is loaded as a module script from shops on other origins.
        origin = request.headers.get("Origin")
        if origin and engine.origin_allowed(origin):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        # Unversioned URLs: revalidate (ETag) so an upgrade never leaves old JS running.
        response.headers["Cache-Control"] = "no-cache"
        return response

    # --- commands over REST -------------------------------------------------------------

    def add_command_route(route: CommandRoute) -> None:
        async def view(**path_args: str) -> Any:
            claims = bearer()
            body = await json_body() if request.method != "DELETE" else {}
            # Pop op_id from the body even when the header wins: it is not a command arg.
            body_op_id = body.pop("op_id", None)
            op_id = request.headers.get("Idempotency-Key") or body_op_id
            if not isinstance(op_id, str) or not op_id:
                raise ProtocolError(
                    ErrorCode.INVALID_ARGS,
                    "every mutating call needs an op_id (Idempotency-Key header or op_id field)",
                )
            for key, value in path_args.items():
                if key in body and body[key] != value:
                    raise ProtocolError(ErrorCode.INVALID_ARGS, f"{key} in the body differs from the path")
                body[key] = value
            result = await engine.dispatcher.execute(claims, op_id, route.command, body)
            return result, route.status

        app.add_url_rule(
            route.path, f"cmd_{route.command}", view, methods=[route.method]
        )

    for route in COMMAND_ROUTES:
        add_command_route(route)

    @app.post("/api/v1/commands/<name>")
    async def generic_command(name: str) -> Any:
        claims = bearer()
        body = await json_body()
        body_op_id = body.pop("op_id", None)
        op_id = request.headers.get("Idempotency-Key") or body_op_id
        if not isinstance(op_id, str) or not op_id:
            raise ProtocolError(ErrorCode.INVALID_ARGS, "op_id is required")
        args = body.get("args", {})
        if not isinstance(args, dict):
            raise ProtocolError(ErrorCode.INVALID_ARGS, "args must be an object")
        return await engine.dispatcher.execute(claims, op_id, name, args), 200

    engine.install_http_routes(app, bearer, json_body)
    return app


def openapi_document(
    engine_version: str, extra_paths: dict[str, Any], webhooks: dict[str, Any] | None = None
) -> dict[str, Any]:
    """OpenAPI 3.1 built from the route table and the msgspec args Structs; `webhooks`: the
    plugins' outgoing webhook bodies (OpenAPI 3.1 `webhooks`, same `$defs` hoisting)."""
    types = [COMMAND_ARGS[r.command] for r in COMMAND_ROUTES]
    _, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    paths: dict[str, Any] = {}
    error_schema = {"$ref": "#/components/schemas/Error"}
    for route in COMMAND_ROUTES:
        oa_path = route.path.replace("<", "{").replace(">", "}")
        params = [
            {"name": p.strip("<>"), "in": "path", "required": True, "schema": {"type": "string"}}
            for p in route.path.split("/")
            if p.startswith("<")
        ]
        params.append(
            {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"},
             "description": "op_id; or send op_id in the body. A retry returns the original response."}
        )
        args_name = COMMAND_ARGS[route.command].__name__
        op: dict[str, Any] = {
            "summary": route.summary,
            "operationId": route.command,
            "parameters": params,
            "security": [{"bearer": []}],
            "responses": {
                str(route.status): {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}},
                **{
                    str(s): {"description": d, "content": {"application/json": {"schema": error_schema}}}
                    for s, d in ((400, "invalid_args / bad_frame"), (401, "unauthorized"), (403, "forbidden"),
                                 (404, "not_found"), (409, "insufficient_stock / conflict / idempotency_conflict"),
                                 (429, "rate_limited"), (503, "unavailable: retry with the same op_id"))
                },
            },
        }
        if route.method != "DELETE":
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{args_name}"}}},
                "description": "The command args (path parameters are filled in from the path) plus op_id.",
            }
        paths.setdefault(oa_path, {})[route.method.lower()] = op
    paths["/api/v1/commands/{name}"] = {
        "post": {
            "summary": "Run any command by name (the WebSocket `command` frame over HTTP)",
            "operationId": "command",
            "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"}},
            ],
            "security": [{"bearer": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": {"op_id": {"type": "string"}, "args": {"type": "object"}},
                }}},
            },
            "responses": {
                "200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}},
                "default": {"description": "error", "content": {"application/json": {"schema": error_schema}}},
            },
        }
    }
    # Plugins' entries are copied (never mutate engine.extra_openapi) and their self-contained
    # JSON Schemas' `$defs` are hoisted into components: in OpenAPI 3.1 a `#/$defs/X` ref
    # resolves against the whole document, where there is no `$defs`.
    paths.update(_hoist_defs(copy.deepcopy(extra_paths), components))
    for oa_path, ops in paths.items():
        # OpenAPI requires every templated path segment to be declared as a parameter;
        # plugins' hand-written entries may leave that out, so fill it in here.
        names = [seg[1:-1] for seg in oa_path.split("/") if seg.startswith("{") and seg.endswith("}")]
        for op in ops.values():
            declared = {p.get("name") for p in op.get("parameters", []) if p.get("in") == "path"}
            missing = [n for n in names if n not in declared]
            if missing:
                op["parameters"] = [
                    *op.get("parameters", []),
                    *({"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                      for n in missing),
                ]
    components["Error"] = {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "enum": [c.value for c in ErrorCode]},
            "message": {"type": "string"},
            "details": {"type": "object"},
        },
    }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "omnitill API", "version": engine_version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
    if webhooks:
        doc["webhooks"] = _hoist_defs(copy.deepcopy(webhooks), components)
    return doc


def _hoist_defs(node: Any, components: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        for name, schema in node.pop("$defs", {}).items():
            components.setdefault(name, _hoist_defs(schema, components))
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            node["$ref"] = "#/components/schemas/" + ref[len("#/$defs/"):]
        for value in node.values():
            _hoist_defs(value, components)
    elif isinstance(node, list):
        for value in node:
            _hoist_defs(value, components)
    return node
