"""The catalog domain: locations, products and variants, staff; search, geo and demo data.

Pure code (no trio, no I/O). The catalog is a read model built from catalog events
(`LocationUpserted`, `ProductUpserted`, `StaffUpserted`) kept in the journal.
"""

from .demo import DemoData, build_demo, demo_events, demo_summary
from .geo import haversine_km, nearest, opening_intervals, pickup_ready_at, resolve_near
from .model import (
    WEEKDAYS,
    Catalog,
    CatalogEvent,
    Location,
    LocationUpserted,
    Product,
    ProductUpserted,
    Staff,
    StaffUpserted,
    Variant,
    decode_catalog_event,
    encode_catalog_event,
    gtin13,
    gtin_check_digit,
    is_valid_gtin13,
    parse_scale_label,
    scale_label,
)
from .search import SearchIndex

__all__ = [
    "WEEKDAYS",
    "Catalog",
    "CatalogEvent",
    "DemoData",
    "Location",
    "LocationUpserted",
    "Product",
    "ProductUpserted",
    "SearchIndex",
    "Staff",
    "StaffUpserted",
    "Variant",
    "build_demo",
    "decode_catalog_event",
    "demo_events",
    "demo_summary",
    "encode_catalog_event",
    "gtin13",
    "gtin_check_digit",
    "haversine_km",
    "is_valid_gtin13",
    "nearest",
    "opening_intervals",
    "parse_scale_label",
    "pickup_ready_at",
    "resolve_near",
    "scale_label",
]
