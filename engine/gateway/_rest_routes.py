"""The REST command routes, as data: (method, path, command, status). One table drives the
Quart routes and the OpenAPI document, so the two cannot drift apart."""

from __future__ import annotations

import msgspec

__all__ = ["COMMAND_ROUTES", "CommandRoute"]


class CommandRoute(msgspec.Struct, frozen=True):
    method: str
    path: str  # Quart syntax: <name> path params are merged into the command args
    command: str
    status: int = 200
    summary: str = ""


COMMAND_ROUTES: tuple[CommandRoute, ...] = (
    CommandRoute("POST", "/api/v1/holds", "hold.place", 201, "Place a pickup hold"),
    CommandRoute("DELETE", "/api/v1/holds/<hold_id>", "hold.release", 200, "Release a hold"),
    CommandRoute("POST", "/api/v1/holds/<hold_id>/extend", "hold.extend", 200, "Extend a hold"),
    CommandRoute("POST", "/api/v1/holds/<hold_id>/pickup", "hold.pickup", 200, "Customer collected the hold"),
    CommandRoute("POST", "/api/v1/holds/<hold_id>/commit", "hold.commit", 200, "Commit a hold to an order"),
    CommandRoute("POST", "/api/v1/stock/<sku>/<location_id>/receive", "stock.receive", 200, "Receive stock"),
    CommandRoute("POST", "/api/v1/stock/<sku>/<location_id>/adjust", "stock.adjust", 200, "Adjust stock with a reason"),
    CommandRoute("POST", "/api/v1/stock/<sku>/<location_id>/count", "stock.count", 200, "Record a cycle count"),
    CommandRoute("POST", "/api/v1/stock/<sku>/<location_id>/sale", "stock.sale", 200, "Record a sale"),
    CommandRoute("POST", "/api/v1/stock/<sku>/<location_id>/return", "stock.return", 200, "Return to stock"),
    CommandRoute("POST", "/api/v1/stock/<sku>/<location_id>/safety-stock", "stock.set_safety", 200, "Set safety stock"),
    CommandRoute("POST", "/api/v1/transfers", "transfer.create", 201, "Create a transfer"),
    CommandRoute("POST", "/api/v1/transfers/<transfer_id>/ship", "transfer.ship", 200, "Ship a transfer"),
    CommandRoute("POST", "/api/v1/transfers/<transfer_id>/receive", "transfer.receive", 200, "Receive a transfer"),
    CommandRoute("POST", "/api/v1/transfers/<transfer_id>/cancel", "transfer.cancel", 200, "Cancel a transfer"),
)
