"""What the three demo retailers share: the DemoData record, demo PINs, and the helpers
that make sites, opening hours, GTINs, staff and stock rows (see the package docstring)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

import msgspec

from ..model import (
    Location,
    Product,
    Staff,
    gtin13,
)

__all__ = [
    "ADMIN_PIN", "CASHIER_PIN", "MANAGER_PIN", "RETAILERS", "DemoData", "Hours", "Retailer",
    "StockRow",
]

Retailer = Literal["apparel", "grocer", "electronics"]
RETAILERS: tuple[Retailer, ...] = ("apparel", "grocer", "electronics")

CASHIER_PIN = "1234"
MANAGER_PIN = "5678"
ADMIN_PIN = "9999"

StockRow = tuple[str, str, int]


class DemoData(msgspec.Struct, frozen=True):
    """One retailer's demo: catalog records, opening stock and safety stock (sku, location,
    qty; qty in the SKU's unit, so grams for weighed goods)."""

    locations: list[Location]
    products: list[Product]
    staff: list[Staff]
    stock: list[StockRow]
    safety_stock: list[StockRow]
    retailer: str = ""
    brand: str = ""
    metro: str = ""


# --- shared helpers -----------------------------------------------------------------------

Hours = dict[str, tuple[str, str]]


def _hours(weekdays: tuple[str, str] | None, sat: tuple[str, str] | None,
           sun: tuple[str, str] | None, closed: Sequence[str] = ()) -> Hours:
    out: Hours = {}
    if weekdays is not None:
        for day in ("mon", "tue", "wed", "thu", "fri"):
            out[day] = weekdays
    if sat is not None:
        out["sat"] = sat
    if sun is not None:
        out["sun"] = sun
    for day in closed:
        out.pop(day, None)
    return out


class _Site(msgspec.Struct, frozen=True):
    key: str
    name: str
    address: str
    postal_code: str
    city: str
    lat: float
    lon: float


class _Gtin:
    """Hands out GTIN-13s under one company prefix (7 digits + 5-digit item reference)."""

    def __init__(self, prefix: str) -> None:
        assert len(prefix) == 7 and prefix.isdigit()
        self._prefix = prefix
        self._next = 1

    def __call__(self) -> str:
        ref, self._next = self._next, self._next + 1
        if ref > 99_999:
            raise ValueError(f"company prefix {self._prefix} ran out of item references")
        return gtin13(f"{self._prefix}{ref:05d}")


_FIRST = ("Maya", "Jordan", "Priya", "Diego", "Hannah", "Kenji", "Amara", "Luis", "Sofia",
          "Malik", "Grace", "Theo", "Nadia", "Owen", "Leila", "Marcus", "Ines", "Ravi", "Chloe",
          "Andre", "Yuki", "Elena", "Sam", "Fatima", "Noah", "Zoe", "Tariq", "Lena", "Caleb",
          "Rosa", "Emeka", "Ava", "Mateo", "Hana", "Isaac", "Mei")
_LAST = ("Nguyen", "Okafor", "Larsen", "Patel", "Garcia", "Kim", "Haddad", "Brooks", "Silva",
         "Novak", "Reyes", "Tanaka", "Olsen", "Mensah", "Rossi", "Chen", "Walker", "Ibrahim",
         "Moreau", "Santos", "Kowalski", "Hughes", "Abebe", "Lindqvist", "Park", "Duarte")


def _staff(rng: random.Random, locations: list[Location]) -> list[Staff]:
    def name() -> str:
        return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"

    out: list[Staff] = []
    for loc in locations:
        if loc.kind == "store":
            out.append(Staff(f"c-{loc.id}", name(), "cashier", loc.id, CASHIER_PIN))
        out.append(Staff(f"m-{loc.id}", name(), "manager", loc.id, MANAGER_PIN))
    out.append(Staff("admin", name(), "admin", None, ADMIN_PIN))
    return out


def _scaled(n: int, scale: float, minimum: int) -> int:
    if scale <= 0:
        raise ValueError("scale must be > 0")
    return max(minimum, round(n * scale))


def _location(site: _Site, prefix: str, *, kind: Literal["store", "warehouse"], tz: str,
              hours: Hours, pickup: bool, lead_s: int, curbside: bool) -> Location:
    return Location(
        id=f"{prefix}-{site.key}", name=site.name, kind=kind, address=site.address,
        postal_code=site.postal_code, city=site.city, lat=site.lat, lon=site.lon, timezone=tz,
        pickup_enabled=pickup, pickup_lead_s=lead_s, opening_hours=hours, curbside=curbside,
    )


def _units(rng: random.Random, mean: float, zero_p: float) -> int:
    """A skewed shelf quantity: zero with probability `zero_p`, otherwise 1 + exponential."""
    if rng.random() < zero_p:
        return 0
    return 1 + int(rng.expovariate(1.0 / max(0.25, mean - 1.0)))


def _ordered(rows: list[StockRow], products: list[Product],
             locations: list[Location]) -> list[StockRow]:
    """Rows in catalog order (SKU order, then location order)."""
    sku_pos = {v.sku: i for i, v in enumerate(v for p in products for v in p.variants)}
    loc_pos = {loc.id: i for i, loc in enumerate(locations)}
    return sorted(rows, key=lambda r: (sku_pos[r[0]], loc_pos[r[1]]))
