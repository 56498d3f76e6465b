"""Deterministic demo data for the three retailer stories of the product brief.

- apparel (default): "Alder & Ash", 15 boutiques across the Portland, OR metro plus a
  distribution centre on Swan Island. Uneven stock on purpose: a deep DC, a deeper flagship,
  zeros and single units in the neighbourhood shops (last-unit stories), SKUs held only by the
  DC (endless aisle: ship-to-home or ship-to-store), a couple sold out everywhere, and a
  seasonal drop with a handful of units chain-wide (the overselling story). Safety stock on the
  drop and on the best-selling basics.
- grocer: "Pecan & Vine Market", 8 stores across Austin, TX plus a commissary. Produce, deli
  and bulk sold by weight (unit "g", PLU codes, price_cents per 1000 g; stock in grams),
  PLU items sold each, packaged goods with barcodes; perishables tagged "perishable".
  Curbside at most stores.
- electronics: "Voltline", 10 stores across Chicagoland plus a DC. Serial-tracked phones,
  laptops, tablets, watches, headphones and TVs (tagged with their warranty, e.g.
  "warranty:24m"), and accessories that are not serial tracked.

Everything comes from `random.Random(seed)` with a fixed iteration order (no set or hash
order), so a seed gives identical data in every process. `scale` multiplies the number of
products (the store network is fixed by the story). Stock rows only list positive quantities:
a (sku, location) pair without a row has none.

Demo staff: per location a cashier `c-{location}` (PIN 1234) and a manager `m-{location}`
(PIN 5678), plus `admin` (PIN 9999) for every location. Demo PINs only.
"""

from __future__ import annotations

import random

from ..model import CatalogEvent, LocationUpserted, ProductUpserted, StaffUpserted
from ._common import (
    ADMIN_PIN,
    CASHIER_PIN,
    MANAGER_PIN,
    RETAILERS,
    DemoData,
    Retailer,
)
from .apparel import build_apparel
from .electronics import build_electronics
from .grocer import build_grocer

__all__ = [
    "ADMIN_PIN",
    "CASHIER_PIN",
    "MANAGER_PIN",
    "RETAILERS",
    "DemoData",
    "Retailer",
    "build_demo",
    "demo_events",
    "demo_summary",
]


# --- entry points -------------------------------------------------------------------------


def build_demo(retailer: Retailer = "apparel", *, seed: int = 7, scale: float = 1.0) -> DemoData:
    """Build one retailer's demo data; the same arguments always give identical data."""
    rng = random.Random(f"omnitill-demo:{retailer}:{seed}")
    if retailer == "apparel":
        return build_apparel(rng, scale)
    if retailer == "grocer":
        return build_grocer(rng, scale)
    if retailer == "electronics":
        return build_electronics(rng, scale)
    raise ValueError(f"unknown demo retailer {retailer!r}; expected one of {RETAILERS}")


def demo_events(data: DemoData) -> list[CatalogEvent]:
    """The catalog events that load `data` into a journal: locations, products, staff."""
    events: list[CatalogEvent] = [LocationUpserted(loc) for loc in data.locations]
    events.extend(ProductUpserted(p) for p in data.products)
    events.extend(StaffUpserted(s) for s in data.staff)
    return events


def demo_summary(data: DemoData) -> str:
    """A few lines of counts for the CLI."""
    kinds = {loc.id: loc.kind for loc in data.locations}
    n_stores = sum(1 for k in kinds.values() if k == "store")
    variants = [v for p in data.products for v in p.variants]
    units = {v.sku: v.unit for v in variants}
    each = sum(q for sku, _, q in data.stock if units[sku] == "each")
    grams = sum(q for sku, _, q in data.stock if units[sku] == "g")
    at_store = {sku for sku, loc, _ in data.stock if kinds[loc] == "store"}
    stocked = {sku for sku, _, _ in data.stock}
    singles = sum(1 for sku, loc, q in data.stock if q == 1 and kinds[loc] == "store")
    lines = [
        f"{data.retailer or 'demo'}: {data.brand} ({data.metro})",
        f"  locations: {n_stores} stores + {len(kinds) - n_stores} warehouse(s), "
        f"{sum(1 for loc in data.locations if loc.pickup_enabled)} with pickup, "
        f"{sum(1 for loc in data.locations if loc.curbside)} with curbside",
        f"  catalog:   {len(data.products)} products, {len(variants)} SKUs "
        f"({sum(1 for v in variants if v.unit == 'g')} weighed, "
        f"{sum(1 for v in variants if v.serial_tracked)} serial tracked)",
        f"  stock:     {len(data.stock)} rows, {each} units"
        + (f" + {grams / 1000:.1f} kg by weight" if grams else "")
        + f"; {singles} single-unit store rows, "
        f"{sum(1 for sku in stocked if sku not in at_store)} SKUs only in a warehouse, "
        f"{sum(1 for v in variants if v.sku not in stocked)} sold out everywhere",
        f"  safety:    {len(data.safety_stock)} rows",
        f"  staff:     {len(data.staff)} (cashier PIN {CASHIER_PIN}, manager {MANAGER_PIN}, "
        f"admin {ADMIN_PIN})",
    ]
    return "\n".join(lines)
