"""Catalog data: locations, products and their variants, staff; catalog events; the read model.

Everything here is a frozen msgspec Struct validated in `__post_init__`, so a bad id, barcode or
opening-hours entry fails at construction and at decoding alike (msgspec turns the ValueError
into a ValidationError at the boundary). Ids follow the protocol's id shape (`[A-Za-z0-9]`
first, then `[A-Za-z0-9_.-]`, at most 64), so every SKU and location id can name a topic.

Units: a variant sells `"each"` or by weight in grams (`"g"`). For a weighed variant,
`price_cents` is the price of 1000 g (the price per kg), and stock and sale quantities are grams.

Barcodes are GTIN-13 with a valid check digit (a 12-digit UPC-A scan is the same GTIN with a
leading 0). Weighed items get in-store scale labels: `29` + 5-digit item code (the PLU, zero
padded) + 5-digit weight in grams + check digit; `scale_label`/`parse_scale_label` build and
read them, and `Catalog.by_barcode` resolves a label to its item.

`Catalog` is the in-memory read model, built by `apply`-ing catalog events in journal order.
"""

from __future__ import annotations

import hmac
import re
import zoneinfo
from typing import Literal

import msgspec

from .search import SearchIndex

__all__ = [
    "WEEKDAYS",
    "Catalog",
    "CatalogEvent",
    "Location",
    "LocationUpserted",
    "Product",
    "ProductUpserted",
    "Staff",
    "StaffUpserted",
    "Variant",
    "decode_catalog_event",
    "encode_catalog_event",
    "gtin13",
    "gtin_check_digit",
    "is_valid_gtin13",
    "parse_scale_label",
    "scale_label",
]

# Weekday keys of `Location.opening_hours`, in `datetime.weekday()` order.
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_HHMM_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")
_PIN_RE = re.compile(r"^\d{4,8}$")
_PLU_RE = re.compile(r"^\d{4,5}$")
_SCALE_PREFIX = "29"


def _check_id(kind: str, value: str) -> None:
    if not _ID_RE.match(value):
        raise ValueError(f"{kind} {value!r}: expected 1-64 chars of [A-Za-z0-9_.-], alnum first")


# --- GTIN ---------------------------------------------------------------------------------


def gtin_check_digit(body: str) -> str:
    """The GS1 mod-10 check digit for `body` (all digits but the last)."""
    if not body.isdigit():
        raise ValueError(f"GTIN body must be digits: {body!r}")
    # Weights alternate 3,1,3,... starting from the digit next to the check digit.
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str((10 - total % 10) % 10)


def gtin13(body12: str) -> str:
    """Complete a 12-digit body into a GTIN-13 by appending its check digit."""
    if len(body12) != 12:
        raise ValueError(f"GTIN-13 body must have 12 digits: {body12!r}")
    return body12 + gtin_check_digit(body12)


def is_valid_gtin13(code: str) -> bool:
    return len(code) == 13 and code.isdigit() and gtin_check_digit(code[:12]) == code[12]


def scale_label(item_code: str, grams: int) -> str:
    """The GTIN-13 a store scale prints for `grams` of the weighed item `item_code` (a PLU)."""
    if not _PLU_RE.match(item_code):
        raise ValueError(f"scale item code must be a 4-5 digit PLU: {item_code!r}")
    if not 0 <= grams <= 99_999:
        raise ValueError(f"a scale label carries 0..99999 g, got {grams}")
    return gtin13(f"{_SCALE_PREFIX}{int(item_code):05d}{grams:05d}")


def parse_scale_label(code: str) -> tuple[str, int] | None:
    """`(item code, grams)` of a scale label, or None if `code` is not one.

    The item code comes back as printed (5 digits, zero padded), e.g. "04011" for PLU 4011.
    """
    if not (code.startswith(_SCALE_PREFIX) and is_valid_gtin13(code)):
        return None
    return code[2:7], int(code[7:12])


# --- records ------------------------------------------------------------------------------


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


class Location(msgspec.Struct, frozen=True):
    """A store or warehouse.

    `opening_hours` maps a weekday key ("mon".."sun") to local `(open, close)` times "HH:MM"
    in `timezone`, with `open < close` ("24:00" closes at midnight); a day that is absent is
    closed. An empty map means open around the clock (typical of a warehouse).
    `pickup_lead_s` is how long staff need to pick an order for pickup.
    """

    id: str
    name: str
    kind: Literal["store", "warehouse"]
    address: str
    postal_code: str
    city: str
    lat: float
    lon: float
    timezone: str
    pickup_enabled: bool
    pickup_lead_s: int
    opening_hours: dict[str, tuple[str, str]]
    curbside: bool = False

    def __post_init__(self) -> None:
        _check_id("location id", self.id)
        if not (-90.0 <= self.lat <= 90.0 and -180.0 <= self.lon <= 180.0):
            raise ValueError(f"location {self.id}: lat/lon out of range")
        if self.pickup_lead_s < 0:
            raise ValueError(f"location {self.id}: pickup_lead_s must be >= 0")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"location {self.id}: unknown timezone {self.timezone!r}") from None
        for day, (start, end) in self.opening_hours.items():
            if day not in WEEKDAYS:
                raise ValueError(f"location {self.id}: weekday keys are {WEEKDAYS}, got {day!r}")
            if not (_HHMM_RE.match(start) and _HHMM_RE.match(end)):
                raise ValueError(f"location {self.id}: hours must be 'HH:MM', got {start}-{end}")
            if _minutes(start) >= _minutes(end):
                raise ValueError(f"location {self.id}: {day} opens {start} after closing {end}")

    @property
    def is_store(self) -> bool:
        return self.kind == "store"


class Variant(msgspec.Struct, frozen=True):
    """One sellable SKU. For `unit == "g"`, `price_cents` is per 1000 g."""

    sku: str
    barcode: str
    options: dict[str, str]
    price_cents: int
    unit: Literal["each", "g"] = "each"
    serial_tracked: bool = False
    plu: str | None = None

    def __post_init__(self) -> None:
        _check_id("sku", self.sku)
        if not is_valid_gtin13(self.barcode):
            raise ValueError(f"sku {self.sku}: barcode {self.barcode!r} is not a valid GTIN-13")
        if self.price_cents < 0:
            raise ValueError(f"sku {self.sku}: negative price")
        if self.plu is not None and not _PLU_RE.match(self.plu):
            raise ValueError(f"sku {self.sku}: PLU must be 4-5 digits, got {self.plu!r}")
        if self.serial_tracked and self.unit != "each":
            raise ValueError(f"sku {self.sku}: only 'each' items can be serial tracked")

    def describe(self) -> str:
        """Option values joined for display, e.g. "Navy / M"."""
        return " / ".join(self.options.values())


class Product(msgspec.Struct, frozen=True):
    """A product and its variants. `tags` are free-form merchandising flags
    ("perishable", "seasonal-drop", "warranty:24m", ...)."""

    id: str
    name: str
    brand: str
    category: str
    description: str
    variants: list[Variant]
    tags: list[str] = []

    def __post_init__(self) -> None:
        _check_id("product id", self.id)
        seen: set[str] = set()
        for v in self.variants:
            if v.sku in seen:
                raise ValueError(f"product {self.id}: duplicate sku {v.sku}")
            seen.add(v.sku)


class Staff(msgspec.Struct, frozen=True):
    """A person who can sign in to a register. `location_id` None means any location.
    PINs are for demo sign-in only; real deployments use the engine's auth."""

    user_id: str
    name: str
    role: Literal["cashier", "manager", "admin"]
    location_id: str | None
    pin: str

    def __post_init__(self) -> None:
        _check_id("user id", self.user_id)
        if not _PIN_RE.match(self.pin):
            raise ValueError(f"staff {self.user_id}: PIN must be 4-8 digits")


# --- events -------------------------------------------------------------------------------


class LocationUpserted(msgspec.Struct, tag="location.upserted", tag_field="type", frozen=True):
    location: Location


class ProductUpserted(msgspec.Struct, tag="product.upserted", tag_field="type", frozen=True):
    product: Product


class StaffUpserted(msgspec.Struct, tag="staff.upserted", tag_field="type", frozen=True):
    staff: Staff


CatalogEvent = LocationUpserted | ProductUpserted | StaffUpserted

_TAGS: dict[type[CatalogEvent], str] = {
    LocationUpserted: "location.upserted",
    ProductUpserted: "product.upserted",
    StaffUpserted: "staff.upserted",
}
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(CatalogEvent)


def encode_catalog_event(event: CatalogEvent) -> tuple[str, bytes]:
    """`(type tag, msgpack bytes)` as the journal stores them; the bytes carry the tag too."""
    return _TAGS[type(event)], _encoder.encode(event)


def decode_catalog_event(data: bytes) -> CatalogEvent:
    """Decode bytes made by `encode_catalog_event`; raises msgspec.ValidationError/DecodeError."""
    return _decoder.decode(data)


# --- read model ---------------------------------------------------------------------------


def _normalise_code(code: str) -> str:
    code = code.strip()
    if len(code) == 12 and code.isdigit():  # a UPC-A scan is the GTIN-13 with a leading 0
        return "0" + code
    return code


class Catalog:
    """The catalog read model: apply events in journal order, then look things up.

    Upserts replace by id. When a product drops a variant, its SKU disappears from every index;
    if two products claim the same SKU (or barcode), the later upsert wins the lookups --
    `conflicts()` lets a command handler refuse such an upsert before it is journaled.
    """

    def __init__(self) -> None:
        self._locations: dict[str, Location] = {}
        self._products: dict[str, Product] = {}
        self._staff: dict[str, Staff] = {}
        self._skus: dict[str, tuple[Product, Variant]] = {}
        self._codes: dict[str, str] = {}  # barcode / PLU -> sku
        self._index = SearchIndex()

    @classmethod
    def from_events(cls, events: list[CatalogEvent]) -> Catalog:
        catalog = cls()
        for event in events:
            catalog.apply(event)
        return catalog

    def apply(self, event: CatalogEvent) -> None:
        if isinstance(event, LocationUpserted):
            self._locations[event.location.id] = event.location
        elif isinstance(event, ProductUpserted):
            self._upsert_product(event.product)
        else:
            self._staff[event.staff.user_id] = event.staff

    def _upsert_product(self, product: Product) -> None:
        old = self._products.get(product.id)
        if old is not None:
            for v in old.variants:
                current = self._skus.get(v.sku)
                if current is not None and current[0] is old:
                    del self._skus[v.sku]
                    self._index.remove(v.sku)
                for code in (v.barcode, v.plu):
                    if code is not None and self._codes.get(code) == v.sku:
                        del self._codes[code]
        self._products[product.id] = product
        for v in product.variants:
            self._skus[v.sku] = (product, v)
            self._codes[v.barcode] = v.sku
            if v.plu is not None:
                self._codes[v.plu] = v.sku
            self._index.add(
                v.sku,
                name=product.name,
                fields=(product.brand, product.category, *v.options.values()),
                codes=(v.sku, v.barcode, *((v.plu,) if v.plu else ())),
            )

    def conflicts(self, product: Product) -> list[str]:
        """Why upserting `product` would clash with another product's SKUs or codes ([] = ok)."""
        problems: list[str] = []
        for v in product.variants:
            owner = self._skus.get(v.sku)
            if owner is not None and owner[0].id != product.id:
                problems.append(f"sku {v.sku} belongs to product {owner[0].id}")
            for code in (v.barcode, v.plu):
                if code is None:
                    continue
                other = self._codes.get(code)
                if other is not None and self._skus[other][0].id != product.id:
                    problems.append(f"code {code} of {v.sku} is used by sku {other}")
        return problems

    # -- lookups --

    def location(self, location_id: str) -> Location | None:
        return self._locations.get(location_id)

    def locations(self) -> list[Location]:
        return list(self._locations.values())

    def stores(self) -> list[Location]:
        return [loc for loc in self._locations.values() if loc.kind == "store"]

    def product(self, product_id: str) -> Product | None:
        return self._products.get(product_id)

    def products(self) -> list[Product]:
        return list(self._products.values())

    def variant(self, sku: str) -> tuple[Product, Variant] | None:
        return self._skus.get(sku)

    def skus(self) -> list[str]:
        return list(self._skus)

    def by_barcode(self, code: str) -> tuple[Product, Variant] | None:
        """Resolve a scan or a typed code: a GTIN-13 (or 12-digit UPC-A), a PLU, or a scale
        label (the label's weight is not returned: read it with `parse_scale_label`)."""
        code = _normalise_code(code)
        sku = self._codes.get(code)
        label = parse_scale_label(code) if sku is None else None
        if label is not None:
            item = label[0]
            # The item's own barcode is its zero-weight label; else match the bare PLU.
            for candidate in (scale_label(item, 0), item.lstrip("0"), item):
                sku = self._codes.get(candidate)
                if sku is not None:
                    break
        return None if sku is None else self._skus.get(sku)

    def search(self, query: str, limit: int = 20) -> list[tuple[Product, Variant]]:
        """Variants matching every whitespace-separated token of `query` (case-insensitive)
        in product name, brand, category, option values, SKU, barcode or PLU. Ranked: exact
        SKU/barcode/PLU first, then names starting with the query, then the rest."""
        return [self._skus[sku] for sku in self._index.search(query, limit)]

    def staff(self, user_id: str) -> Staff | None:
        return self._staff.get(user_id)

    def all_staff(self) -> list[Staff]:
        return list(self._staff.values())

    def verify_pin(self, user_id: str, pin: str) -> Staff | None:
        """The staff member if `pin` is theirs (constant-time compare), else None."""
        member = self._staff.get(user_id)
        if member is None or not hmac.compare_digest(member.pin.encode(), pin.encode()):
            return None
        return member
