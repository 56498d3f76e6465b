"""Helpers for inventory end-to-end tests: a real engine, real sockets, the SDK and httpx."""

from __future__ import annotations

from typing import Any

from actors.inventory import stock_view
from actors.inventory.shell import load_pool
from clients.python import Client
from engine.server import Engine

__all__ = ["balance", "journal_truth", "set_available", "token"]


def token(engine: Engine, role: str = "admin", location: str | None = None, ttl: float = 600) -> str:
    return engine.signer.mint(role, sub=f"e2e-{role}", location=location, ttl_s=ttl)  # type: ignore[arg-type]


def balance(engine: Engine, sku: str, loc: str) -> dict[str, int]:
    return dict(engine.inventory.views.stock[sku][loc])  # type: ignore[attr-defined]


async def journal_truth(engine: Engine, sku: str) -> tuple[int, dict[str, Any]]:
    """(version, stock:{sku} state) from a fresh replay of the SKU's journal stream."""
    pool = await load_pool(engine.journal, sku)
    return pool.version, stock_view(pool)


async def set_available(engine: Engine, admin: Client, sku: str, loc: str, n: int) -> dict[str, int]:
    """Make exactly `n` units available at `loc` (no safety stock, no promises) via commands."""
    bal = balance(engine, sku, loc)
    assert bal["reserved"] == bal["committed"] == bal["unsellable"] == 0, bal
    await admin.command("stock.set_safety", {"sku": sku, "location_id": loc, "safety_stock": 0})
    await admin.command("stock.count", {"sku": sku, "location_id": loc, "counted": n})
    bal = balance(engine, sku, loc)
    assert bal["available"] == bal["on_hand"] == n, bal
    return bal
