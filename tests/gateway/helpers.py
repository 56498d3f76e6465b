"""Small helpers for gateway tests (real engine, real sockets)."""

from __future__ import annotations

from typing import Any

from engine.server import Engine


def token(engine: Engine, role: str = "admin", location: str | None = None, ttl: float = 600) -> str:
    return engine.signer.mint(role, sub=f"test-{role}", location=location, ttl_s=ttl)  # type: ignore[arg-type]


def stocked(engine: Engine, min_available: int = 1) -> tuple[str, str, dict[str, Any]]:
    """A (sku, store location, balance) with at least `min_available` available for pickup."""
    inv = engine.inventory  # type: ignore[attr-defined]
    for sku, balances in sorted(inv.views.stock.items()):
        for loc, balance in sorted(balances.items()):
            info = engine.catalog.location(loc)
            if info and info.pickup_enabled and balance["available"] >= min_available:
                return sku, loc, balance
    raise AssertionError("demo data has no stocked SKU")
