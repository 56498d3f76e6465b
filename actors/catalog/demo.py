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
from collections.abc import Sequence
from typing import Literal

import msgspec

from .model import (
    CatalogEvent,
    Location,
    LocationUpserted,
    Product,
    ProductUpserted,
    Staff,
    StaffUpserted,
    Variant,
    gtin13,
    scale_label,
)

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


# --- apparel: Alder & Ash, Portland OR ----------------------------------------------------

_PDX_SITES: tuple[tuple[_Site, str], ...] = (
    # (site, tier) -- flagship / large / standard / small
    (_Site("pearl", "Alder & Ash Pearl District (Flagship)", "1025 NW Couch St", "97209",
           "Portland", 45.5236, -122.6820), "flagship"),
    (_Site("downtown", "Alder & Ash Downtown", "720 SW Alder St", "97205", "Portland",
           45.5195, -122.6800), "large"),
    (_Site("nob-hill", "Alder & Ash Nob Hill", "716 NW 23rd Ave", "97210", "Portland",
           45.5282, -122.6985), "large"),
    (_Site("hawthorne", "Alder & Ash Hawthorne", "3520 SE Hawthorne Blvd", "97214",
           "Portland", 45.5121, -122.6273), "standard"),
    (_Site("alberta", "Alder & Ash Alberta Arts", "1620 NE Alberta St", "97211", "Portland",
           45.5590, -122.6489), "standard"),
    (_Site("mississippi", "Alder & Ash Mississippi Ave", "3940 N Mississippi Ave", "97227",
           "Portland", 45.5517, -122.6756), "small"),
    (_Site("division", "Alder & Ash Division", "3350 SE Division St", "97202", "Portland",
           45.5048, -122.6299), "standard"),
    (_Site("sellwood", "Alder & Ash Sellwood", "8015 SE 13th Ave", "97202", "Portland",
           45.4655, -122.6532), "small"),
    (_Site("st-johns", "Alder & Ash St. Johns", "8630 N Lombard St", "97203", "Portland",
           45.5903, -122.7525), "small"),
    (_Site("lake-oswego", "Alder & Ash Lake Oswego", "355 N State St", "97034",
           "Lake Oswego", 45.4194, -122.6690), "large"),
    (_Site("beaverton", "Alder & Ash Beaverton", "12600 SW Broadway St", "97005",
           "Beaverton", 45.4871, -122.8037), "standard"),
    (_Site("orenco", "Alder & Ash Orenco Station", "1230 NE Orenco Station Pkwy", "97124",
           "Hillsboro", 45.5310, -122.9135), "standard"),
    (_Site("vancouver", "Alder & Ash Vancouver Uptown", "2101 Main St", "98660",
           "Vancouver", 45.6341, -122.6718), "standard"),
    (_Site("bridgeport", "Alder & Ash Bridgeport Village", "7455 SW Bridgeport Rd", "97224",
           "Tigard", 45.3975, -122.7505), "large"),
    (_Site("gresham", "Alder & Ash Gresham Station", "115 N Main Ave", "97030", "Gresham",
           45.4985, -122.4310), "small"),
)
_PDX_DC = _Site("dc", "Alder & Ash Distribution Centre", "5400 N Basin Ave", "97217",
                "Portland", 45.5700, -122.7130)

_PDX_HOURS: dict[str, Hours] = {
    "flagship": _hours(("10:00", "20:00"), ("10:00", "20:00"), ("11:00", "18:00")),
    "large": _hours(("10:00", "19:00"), ("10:00", "19:00"), ("11:00", "18:00")),
    "standard": _hours(("11:00", "19:00"), ("10:00", "19:00"), ("11:00", "17:00")),
    "small": _hours(("11:00", "18:00"), ("11:00", "18:00"), ("12:00", "17:00"),
                    closed=("mon",)),
}
# Stores with curbside; St. Johns is too small to offer pickup at all.
_PDX_CURBSIDE = ("pearl", "lake-oswego", "beaverton", "bridgeport", "orenco", "gresham")
_PDX_NO_PICKUP = ("st-johns",)

# (name, category, price in dollars, one_size)
_APPAREL: tuple[tuple[str, str, int, bool], ...] = (
    ("Cascade Drop Rain Parka", "Outerwear", 268, False),  # the seasonal drop: keep first
    ("Everyday Organic Tee", "Tops", 32, False),
    ("Pocket Crew Tee", "Tops", 38, False),
    ("Slub Linen Tee", "Tops", 48, False),
    ("Cropped Boxy Tee", "Tops", 36, False),
    ("Ribbed Tank", "Tops", 28, False),
    ("Waffle Henley", "Tops", 58, False),
    ("Relaxed Fleece Hoodie", "Tops", 88, False),
    ("Quarter-Zip Pullover", "Tops", 98, False),
    ("Merino Crew Sweater", "Knitwear", 128, False),
    ("Fisherman Cable Knit", "Knitwear", 158, False),
    ("Cotton Cardigan", "Knitwear", 98, False),
    ("Alpaca Blend Turtleneck", "Knitwear", 148, False),
    ("Oxford Button-Down", "Shirts", 78, False),
    ("Flannel Overshirt", "Shirts", 88, False),
    ("Chambray Work Shirt", "Shirts", 78, False),
    ("Camp Collar Shirt", "Shirts", 68, False),
    ("Poplin Popover Shirt", "Shirts", 72, False),
    ("Slim Selvedge Jean", "Denim", 148, False),
    ("Straight Leg Jean", "Denim", 128, False),
    ("High Rise Wide Jean", "Denim", 138, False),
    ("Denim Chore Jacket", "Denim", 168, False),
    ("Wide Leg Trouser", "Bottoms", 118, False),
    ("Utility Chino", "Bottoms", 88, False),
    ("Canvas Work Pant", "Bottoms", 98, False),
    ("Corduroy Trouser", "Bottoms", 108, False),
    ("Pleated Midi Skirt", "Bottoms", 98, False),
    ("Trail Short", "Bottoms", 58, False),
    ("Jogger Sweatpant", "Bottoms", 78, False),
    ("Rain Shell Jacket", "Outerwear", 198, False),
    ("Waxed Canvas Jacket", "Outerwear", 248, False),
    ("Sherpa Trucker Jacket", "Outerwear", 178, False),
    ("Packable Down Vest", "Outerwear", 138, False),
    ("Wool Chore Coat", "Outerwear", 298, False),
    ("Quilted Liner Jacket", "Outerwear", 158, False),
    ("Insulated Hooded Parka", "Outerwear", 348, False),
    ("Linen Wrap Dress", "Dresses", 128, False),
    ("Smocked Midi Dress", "Dresses", 118, False),
    ("Pocket T-Shirt Dress", "Dresses", 68, False),
    ("Knit Sweater Dress", "Dresses", 148, False),
    ("Ribbed Merino Beanie", "Accessories", 38, True),
    ("Waxed Canvas Tote", "Accessories", 78, True),
    ("Lambswool Scarf", "Accessories", 58, True),
    ("Bucket Hat", "Accessories", 42, True),
    ("Six-Panel Wool Cap", "Accessories", 44, True),
    ("Leather Belt", "Accessories", 68, True),
    ("Crew Sock 3-Pack", "Accessories", 24, True),
    ("Canvas Weekender Bag", "Accessories", 168, True),
)
_APPAREL_EXTRA_ADJ = ("Heritage", "Coastal", "Ridge", "Harbor", "Timber", "Field", "Summit",
                      "Meadow", "Basalt", "Willamette", "Fog", "Cedar")
_APPAREL_EXTRA_NOUN = (("Tee", "Tops", 36), ("Sweater", "Knitwear", 118),
                       ("Shirt", "Shirts", 78), ("Trouser", "Bottoms", 98),
                       ("Jacket", "Outerwear", 188), ("Dress", "Dresses", 108))
_COLOURS: tuple[tuple[str, str], ...] = (
    ("Black", "BLK"), ("Ecru", "ECR"), ("Heather Grey", "HGY"), ("Navy", "NVY"),
    ("Forest", "FOR"), ("Rust", "RST"), ("Indigo", "IND"), ("Oat", "OAT"), ("Olive", "OLV"),
    ("Charcoal", "CHR"), ("Clay", "CLY"), ("Moss", "MOS"), ("Slate Blue", "SLB"),
    ("Bone", "BON"),
)
_SIZES = ("XS", "S", "M", "L", "XL")
_SIZE_DEPTH = {"XS": 0.55, "S": 0.9, "M": 1.25, "L": 1.1, "XL": 0.7, "OS": 1.0}
_MATERIALS = {
    "Tops": ("organic cotton jersey", "slub cotton", "brushed cotton fleece", "linen"),
    "Knitwear": ("responsibly sourced merino", "lambswool", "alpaca blend", "organic cotton"),
    "Shirts": ("cotton oxford cloth", "brushed flannel", "chambray", "poplin"),
    "Denim": ("13 oz selvedge denim", "organic stretch denim", "rigid denim"),
    "Bottoms": ("cotton twill", "washed canvas", "fine wale corduroy", "wool blend"),
    "Outerwear": ("recycled nylon ripstop", "waxed cotton canvas", "boiled wool",
                  "water-resistant shell"),
    "Dresses": ("linen", "cotton gauze", "jersey", "merino rib"),
    "Accessories": ("merino", "waxed canvas", "lambswool", "full-grain leather"),
}
_TIER_STOCK = {  # (mean units per SKU, probability of zero)
    "flagship": (9.0, 0.04),
    "large": (5.5, 0.12),
    "standard": (3.6, 0.22),
    "small": (2.4, 0.38),
}


def _apparel(rng: random.Random, scale: float) -> DemoData:
    tz = "America/Los_Angeles"
    tiers: dict[str, str] = {}
    locations: list[Location] = []
    for site, tier in _PDX_SITES:
        loc = _location(
            site, "pdx", kind="store", tz=tz, hours=_PDX_HOURS[tier],
            pickup=site.key not in _PDX_NO_PICKUP,
            lead_s=1800 if tier == "flagship" else rng.choice((3600, 3600, 5400, 7200)),
            curbside=site.key in _PDX_CURBSIDE,
        )
        tiers[loc.id] = tier
        locations.append(loc)
    dc = _location(_PDX_DC, "pdx", kind="warehouse", tz=tz, hours={}, pickup=False,
                   lead_s=0, curbside=False)
    locations.append(dc)
    stores = locations[:-1]

    specs = list(_APPAREL)
    wanted = _scaled(len(specs), scale, minimum=4)
    if wanted < len(specs):
        specs = specs[:wanted]
    k = 0
    while len(specs) < wanted:
        adj = _APPAREL_EXTRA_ADJ[k % len(_APPAREL_EXTRA_ADJ)]
        noun, cat, price = _APPAREL_EXTRA_NOUN[(k // len(_APPAREL_EXTRA_ADJ)) %
                                               len(_APPAREL_EXTRA_NOUN)]
        series = k // (len(_APPAREL_EXTRA_ADJ) * len(_APPAREL_EXTRA_NOUN))
        specs.append((f"{adj} {noun}" + (f" No. {series + 1}" if series else ""), cat, price,
                      False))
        k += 1

    gtin = _Gtin("0860312")
    products: list[Product] = []
    for i, (name, category, dollars, one_size) in enumerate(specs):
        code = 101 + i
        n_colours = 2 if i == 0 else rng.choice((2, 3, 3, 4))
        colours = rng.sample(_COLOURS, 1 if one_size and rng.random() < 0.3 else n_colours)
        sizes = ("OS",) if one_size else _SIZES
        variants = [
            Variant(sku=f"AA{code}-{ccode}-{size}", barcode=gtin(),
                    options={"colour": colour, "size": size}, price_cents=dollars * 100)
            for colour, ccode in colours for size in sizes
        ]
        material = rng.choice(_MATERIALS[category])
        tags = ["seasonal-drop", "limited"] if i == 0 else []
        desc = (f"Our {name.lower()} in {material}, designed in Portland."
                + (" Limited seasonal drop: once it's gone, it's gone." if i == 0 else ""))
        products.append(Product(id=f"aa-{code}", name=name, brand="Alder & Ash",
                                category=category, description=desc, variants=variants,
                                tags=tags))

    drop, regular = products[0], products[1:]
    regular_skus = [v.sku for p in regular for v in p.variants]
    # Endless-aisle SKUs: only the DC has them; a couple more are sold out everywhere.
    dc_only = set(rng.sample(regular_skus, max(1, len(regular_skus) // 25)))
    sold_out = set(rng.sample([s for s in regular_skus if s not in dc_only],
                              min(2, max(0, len(regular_skus) - len(dc_only)))))

    stock: list[StockRow] = []
    safety: list[StockRow] = []
    flagship = stores[0].id
    for p in regular:
        popularity = rng.uniform(0.6, 1.4)
        for v in p.variants:
            if v.sku in sold_out:
                continue
            depth = _SIZE_DEPTH[v.options["size"]] * popularity
            if v.sku not in dc_only:
                for loc in stores:
                    mean, zero_p = _TIER_STOCK[tiers[loc.id]]
                    qty = _units(rng, mean * depth, zero_p)
                    if qty:
                        stock.append((v.sku, loc.id, qty))
            stock.append((v.sku, dc.id, max(1, round(rng.uniform(20, 80) * depth))))
    # The seasonal drop: a unit or two in a few stores, a few more in the DC.
    for v in drop.variants:
        for loc in stores:
            if loc.id == flagship:
                stock.append((v.sku, loc.id, 2))
                safety.append((v.sku, loc.id, 1))
            elif rng.random() < 0.15:
                stock.append((v.sku, loc.id, 1))
        dc_qty = rng.randint(0, 2)
        if dc_qty:
            stock.append((v.sku, dc.id, dc_qty))
    # Safety stock on the best sellers (the first basics) where the rack is deep enough.
    on_hand = {(sku, loc): qty for sku, loc, qty in stock}
    for p in regular[:3]:
        for v in p.variants:
            if v.options["size"] not in ("M", "L"):
                continue
            for loc in stores:
                if tiers[loc.id] in ("flagship", "large") and on_hand.get((v.sku, loc.id), 0) >= 3:
                    safety.append((v.sku, loc.id, 2))
            if on_hand.get((v.sku, dc.id), 0) >= 10:
                safety.append((v.sku, dc.id, 5))

    return DemoData(locations=locations, products=products, staff=_staff(rng, locations),
                    stock=_ordered(stock, products, locations),
                    safety_stock=_ordered(safety, products, locations), retailer="apparel",
                    brand="Alder & Ash", metro="Portland, OR")


def _ordered(rows: list[StockRow], products: list[Product],
             locations: list[Location]) -> list[StockRow]:
    """Rows in catalog order (SKU order, then location order)."""
    sku_pos = {v.sku: i for i, v in enumerate(v for p in products for v in p.variants)}
    loc_pos = {loc.id: i for i, loc in enumerate(locations)}
    return sorted(rows, key=lambda r: (sku_pos[r[0]], loc_pos[r[1]]))


# --- grocer: Pecan & Vine Market, Austin TX -----------------------------------------------

_ATX_SITES: tuple[tuple[_Site, bool], ...] = (  # (site, curbside)
    (_Site("soco", "Pecan & Vine South Congress", "1600 S Congress Ave", "78704", "Austin",
           30.2480, -97.7501), True),
    (_Site("clarksville", "Pecan & Vine Clarksville", "1209 W 6th St", "78703", "Austin",
           30.2735, -97.7580), True),
    (_Site("mueller", "Pecan & Vine Mueller", "1801 Aldrich St", "78723", "Austin",
           30.2980, -97.7050), True),
    (_Site("hyde-park", "Pecan & Vine Hyde Park", "4301 Duval St", "78751", "Austin",
           30.3070, -97.7265), False),
    (_Site("east", "Pecan & Vine East Cesar Chavez", "1100 E Cesar Chavez St", "78702",
           "Austin", 30.2593, -97.7325), True),
    (_Site("domain", "Pecan & Vine The Domain", "11601 Alterra Pkwy", "78758", "Austin",
           30.4020, -97.7250), True),
    (_Site("cedar-park", "Pecan & Vine Cedar Park", "1335 E Whitestone Blvd", "78613",
           "Cedar Park", 30.5270, -97.8070), True),
    (_Site("circle-c", "Pecan & Vine Circle C", "5701 W Slaughter Ln", "78749", "Austin",
           30.2000, -97.8700), False),
)
_ATX_HUB = _Site("commissary", "Pecan & Vine Commissary", "2400 E St Elmo Rd", "78744",
                 "Austin", 30.2110, -97.7380)

# Weighed (price per kg in dollars) and PLU-each items: (name, category, plu, price, unit, tags)
_GROCER_LOOSE: tuple[tuple[str, str, str, float, Literal["each", "g"], tuple[str, ...]], ...] = (
    ("Bananas", "Produce", "4011", 1.52, "g", ("perishable",)),
    ("Organic Bananas", "Produce", "94011", 1.96, "g", ("perishable", "organic")),
    ("Honeycrisp Apples", "Produce", "3283", 6.59, "g", ("perishable",)),
    ("Gala Apples", "Produce", "4133", 4.39, "g", ("perishable",)),
    ("Fuji Apples", "Produce", "4131", 4.39, "g", ("perishable",)),
    ("Granny Smith Apples", "Produce", "4139", 4.39, "g", ("perishable",)),
    ("Russet Potatoes", "Produce", "4072", 2.18, "g", ("perishable",)),
    ("Yellow Onions", "Produce", "4093", 2.84, "g", ("perishable",)),
    ("Red Onions", "Produce", "4082", 3.28, "g", ("perishable",)),
    ("Roma Tomatoes", "Produce", "4087", 4.37, "g", ("perishable",)),
    ("Tomatoes on the Vine", "Produce", "4664", 6.59, "g", ("perishable",)),
    ("Ginger Root", "Produce", "4612", 8.80, "g", ("perishable",)),
    ("Loose Carrots", "Produce", "4562", 2.60, "g", ("perishable",)),
    ("Broccoli Crowns", "Produce", "3082", 5.49, "g", ("perishable",)),
    ("Red Bell Peppers", "Produce", "4088", 8.79, "g", ("perishable",)),
    ("Hass Avocado, Large", "Produce", "4225", 1.79, "each", ("perishable",)),
    ("Lemons", "Produce", "4053", 0.69, "each", ("perishable",)),
    ("Limes", "Produce", "4048", 0.39, "each", ("perishable",)),
    ("Garlic", "Produce", "4608", 0.79, "each", ("perishable",)),
    ("Texas Wagyu Ribeye", "Butcher", "21001", 66.10, "g", ("perishable",)),
    ("Wild Gulf Shrimp", "Seafood", "21002", 28.64, "g", ("perishable",)),
    ("Smoked Brisket", "Deli", "21003", 48.50, "g", ("perishable", "prepared")),
    ("Atlantic Salmon Fillet", "Seafood", "21004", 30.84, "g", ("perishable",)),
    ("Aged Gouda", "Cheese", "22001", 39.68, "g", ("perishable",)),
    ("Manchego", "Cheese", "22002", 44.09, "g", ("perishable",)),
    ("Triple Cream Brie", "Cheese", "22003", 35.27, "g", ("perishable",)),
    ("Olive Bar", "Deli", "23001", 22.02, "g", ("perishable", "prepared")),
    ("Chicken Salad", "Deli", "23002", 24.23, "g", ("perishable", "prepared")),
    ("Bulk Rolled Oats", "Bulk", "24001", 5.49, "g", ("organic",)),
    ("Bulk Raw Almonds", "Bulk", "24002", 19.80, "g", ()),
    ("House Blend Coffee Beans", "Bulk", "24003", 30.86, "g", ()),
)
# Packaged goods: (name, brand, category, [(size, price in dollars)], tags)
_GROCER_PACKED: tuple[tuple[str, str, str, tuple[tuple[str, float], ...], tuple[str, ...]],
                      ...] = (
    ("Whole Milk", "Hill Country Dairies", "Dairy", (("1/2 gal", 4.49), ("1 gal", 6.99)),
     ("perishable",)),
    ("Pasture-Raised Eggs", "Bluebonnet Farms", "Dairy", (("12 ct", 6.99), ("18 ct", 9.49)),
     ("perishable",)),
    ("Plain Greek Yogurt", "Hill Country Dairies", "Dairy", (("170 g", 1.79), ("907 g", 6.49)),
     ("perishable",)),
    ("Country Sourdough Loaf", "Pecan & Vine Bakehouse", "Bakery", (("800 g", 7.50),),
     ("perishable",)),
    ("Flour Tortillas", "Barton Springs Tortilleria", "Bakery", (("10 ct", 4.99),),
     ("perishable",)),
    ("Breakfast Tacos, Migas", "Pecan & Vine Kitchen", "Prepared", (("2 ct", 7.99),),
     ("perishable", "prepared")),
    ("Ginger Lemon Kombucha", "Live Oak Kombucha", "Beverages", (("16 oz", 3.99),),
     ("perishable",)),
    ("Cold Brew Coffee", "Eastside Roasters", "Beverages", (("32 oz", 8.99),), ()),
    ("Grapefruit Sparkling Water", "Springline", "Beverages", (("12 x 12 oz", 6.49),), ()),
    ("Extra Virgin Olive Oil", "Hill Country Olive Co.", "Pantry",
     (("500 ml", 14.99), ("1 l", 24.99)), ()),
    ("Stone-Ground Tortilla Chips", "Barton Creek Chips", "Pantry", (("12 oz", 4.99),), ()),
    ("Salsa Verde", "Pecan & Vine Kitchen", "Pantry", (("16 oz", 5.99),), ()),
    ("Bronze-Cut Rigatoni", "Casa Rinaldi", "Pantry", (("500 g", 4.29),), ()),
    ("72% Dark Chocolate Bar", "Lamar Cacao", "Pantry", (("85 g", 4.99),), ()),
    ("Wildflower Honey", "Bluebonnet Farms", "Pantry", (("12 oz", 11.99),), ()),
    ("Queso Blanco Dip", "Pecan & Vine Kitchen", "Prepared", (("16 oz", 8.49),),
     ("perishable", "prepared")),
)
_GROCER_PREFIXES = ("0850011", "0850027", "0850033", "0850049", "0850054", "0850061",
                    "0850078", "0850082", "0850095", "0850103", "0850117", "0850124")


def _grocer(rng: random.Random, scale: float) -> DemoData:
    tz = "America/Chicago"
    locations = [
        _location(site, "atx", kind="store", tz=tz,
                  hours=_hours(("07:00", "22:00"), ("07:00", "22:00"), ("08:00", "21:00"))
                  if i % 3 else _hours(("08:00", "21:00"), ("08:00", "21:00"),
                                       ("09:00", "20:00")),
                  pickup=True, lead_s=rng.choice((3600, 5400, 7200)), curbside=curbside)
        for i, (site, curbside) in enumerate(_ATX_SITES)
    ]
    hub = _location(_ATX_HUB, "atx", kind="warehouse", tz=tz, hours={}, pickup=False,
                    lead_s=0, curbside=False)
    locations.append(hub)
    stores = locations[:-1]

    loose = list(_GROCER_LOOSE)
    packed = list(_GROCER_PACKED)
    n_loose = min(len(loose), _scaled(len(loose), scale, minimum=3))
    n_packed = _scaled(len(packed), scale, minimum=2)
    loose = loose[:n_loose]
    base_packed = packed
    packed = list(base_packed[:n_packed])
    for k in range(n_packed - len(base_packed)):
        name, brand, cat, sizes, tags = base_packed[k % len(base_packed)]
        packed.append((f"{name} No. {k // len(base_packed) + 2}", brand, cat, sizes, tags))

    products: list[Product] = []
    for i, (name, cat, plu, price, unit, tags) in enumerate(loose):
        variant = Variant(sku=f"PV-{plu}", barcode=scale_label(plu, 0), options={},
                          price_cents=round(price * 100), unit=unit, plu=plu)
        how = "Sold by weight; price per kg." if unit == "g" else "Sold each."
        products.append(Product(id=f"pv-{100 + i}", name=name, brand="Pecan & Vine",
                                category=cat, description=f"{name}. {how}",
                                variants=[variant], tags=list(tags)))
    brand_gtin: dict[str, _Gtin] = {}
    for i, (name, brand, cat, sizes, tags) in enumerate(packed):
        if brand not in brand_gtin:  # each brand numbers its goods under its own prefix
            n = len(brand_gtin)
            brand_gtin[brand] = _Gtin(_GROCER_PREFIXES[n] if n < len(_GROCER_PREFIXES)
                                      else f"0851{n:03d}")
        code = 500 + i
        variants = [
            Variant(sku=f"PV-{code}-{j + 1}", barcode=brand_gtin[brand](),
                    options={"size": size}, price_cents=round(dollars * 100))
            for j, (size, dollars) in enumerate(sizes)
        ]
        products.append(Product(id=f"pv-{code}", name=name, brand=brand, category=cat,
                                description=f"{brand} {name.lower()}.", variants=variants,
                                tags=list(tags)))

    stock: list[StockRow] = []
    safety: list[StockRow] = []
    for p in products:
        for v in p.variants:
            weighed = v.unit == "g"
            for loc in stores:
                if weighed:
                    # Grams on hand: mostly a few kg, sometimes nearly out.
                    grams = 0 if rng.random() < 0.08 else rng.choice(
                        (rng.randint(150, 900), *(rng.randint(2_000, 40_000),) * 4))
                    if grams:
                        stock.append((v.sku, loc.id, grams))
                else:
                    qty = _units(rng, 14.0 if v.plu else 9.0, 0.1)
                    if qty:
                        stock.append((v.sku, loc.id, qty))
            if "prepared" not in p.tags:  # prepared food is made in store, not at the hub
                hub_qty = rng.randint(50_000, 400_000) if weighed else rng.randint(40, 300)
                stock.append((v.sku, hub.id, hub_qty))
    on_hand = {(sku, loc): qty for sku, loc, qty in stock}
    for p in products[:3]:  # keep a buffer of the busiest produce for walk-in shoppers
        v = p.variants[0]
        for loc in stores:
            if on_hand.get((v.sku, loc.id), 0) >= 3_000:
                safety.append((v.sku, loc.id, 1_500))

    return DemoData(locations=locations, products=products, staff=_staff(rng, locations),
                    stock=_ordered(stock, products, locations),
                    safety_stock=_ordered(safety, products, locations), retailer="grocer",
                    brand="Pecan & Vine Market", metro="Austin, TX")


# --- electronics: Voltline, Chicagoland ---------------------------------------------------

_CHI_SITES: tuple[_Site, ...] = (
    _Site("loop", "Voltline State Street", "108 N State St", "60602", "Chicago", 41.8835,
          -87.6278),
    _Site("lincoln-park", "Voltline Lincoln Park", "1800 N Clybourn Ave", "60614", "Chicago",
          41.9136, -87.6555),
    _Site("wicker-park", "Voltline Wicker Park", "1520 N Milwaukee Ave", "60622", "Chicago",
          41.9090, -87.6760),
    _Site("hyde-park", "Voltline Hyde Park", "1450 E 53rd St", "60615", "Chicago", 41.7995,
          -87.5897),
    _Site("evanston", "Voltline Evanston", "1700 Sherman Ave", "60201", "Evanston", 42.0470,
          -87.6820),
    _Site("oak-park", "Voltline Oak Park", "1100 Lake St", "60301", "Oak Park", 41.8880,
          -87.8030),
    _Site("schaumburg", "Voltline Schaumburg", "1400 E Golf Rd", "60173", "Schaumburg",
          42.0490, -88.0420),
    _Site("naperville", "Voltline Naperville", "44 W Jefferson Ave", "60540", "Naperville",
          41.7730, -88.1490),
    _Site("skokie", "Voltline Old Orchard", "4999 Old Orchard Center", "60077", "Skokie",
          42.0580, -87.7490),
    _Site("orland-park", "Voltline Orland Park", "15300 S La Grange Rd", "60462",
          "Orland Park", 41.6140, -87.8530),
)
_CHI_DC = _Site("dc", "Voltline Distribution Center", "1500 Touhy Ave", "60007",
                "Elk Grove Village", 42.0080, -87.9700)

# (name, brand, category, option axes, base price, serial tracked, warranty months)
_Axis = tuple[str, tuple[tuple[str, int], ...]]  # (option name, ((value, price delta), ...))
_ELECTRONICS: tuple[tuple[str, str, str, tuple[_Axis, ...], int, bool, int], ...] = (
    ("Nimbus X5 Smartphone", "Nimbus", "Phones",
     (("storage", (("128 GB", 0), ("256 GB", 100), ("512 GB", 300))),
      ("colour", (("Graphite", 0), ("Glacier", 0), ("Sage", 0)))), 799, True, 24),
    ("Nimbus X5 Pro Smartphone", "Nimbus", "Phones",
     (("storage", (("256 GB", 0), ("512 GB", 200), ("1 TB", 400))),
      ("colour", (("Obsidian", 0), ("Titanium", 0)))), 1099, True, 24),
    ("Kestrel 9a Smartphone", "Kestrel", "Phones",
     (("storage", (("128 GB", 0),)), ("colour", (("Coral", 0), ("Ink", 0), ("Mist", 0)))),
     449, True, 12),
    ("Kestrel Fold 2", "Kestrel", "Phones",
     (("storage", (("512 GB", 0),)), ("colour", (("Onyx", 0), ("Moonstone", 0)))),
     1799, True, 24),
    ("Aeroline 14 Laptop", "Aeroline", "Laptops",
     (("config", (("16 GB / 512 GB", 0), ("32 GB / 1 TB", 400))),
      ("colour", (("Silver", 0), ("Space Grey", 0)))), 1299, True, 24),
    ("Aeroline 16 Pro Laptop", "Aeroline", "Laptops",
     (("config", (("32 GB / 1 TB", 0), ("64 GB / 2 TB", 800))),
      ("colour", (("Space Grey", 0),))), 2499, True, 24),
    ("Brightcore Slim 13 Laptop", "Brightcore", "Laptops",
     (("config", (("8 GB / 256 GB", 0), ("16 GB / 512 GB", 250))),
      ("colour", (("Arctic", 0), ("Carbon", 0)))), 749, True, 12),
    ("Brightcore Creator 15 Laptop", "Brightcore", "Laptops",
     (("config", (("32 GB / 1 TB", 0),)), ("colour", (("Carbon", 0),))), 1899, True, 24),
    ("Nimbus Tab 11", "Nimbus", "Tablets",
     (("connectivity", (("Wi-Fi", 0), ("5G", 150))), ("storage", (("128 GB", 0),
                                                                 ("256 GB", 100)))),
     599, True, 12),
    ("Nimbus Watch 4", "Nimbus", "Wearables",
     (("case", (("41 mm", 0), ("45 mm", 30))), ("colour", (("Midnight", 0), ("Starlight", 0),
                                                          ("Sage", 0)))), 399, True, 12),
    ("Tidal Wave ANC Headphones", "Tidal Audio", "Audio",
     (("colour", (("Black", 0), ("Sand", 0), ("Navy", 0))),), 349, True, 12),
    ("Tidal Buds 3", "Tidal Audio", "Audio",
     (("colour", (("Black", 0), ("White", 0))),), 179, True, 12),
    ("Lumen QLED TV", "Lumen", "TV & Home Theater",
     (("screen", (('55"', 0), ('65"', 400), ('75"', 900))),), 899, True, 24),
    ("Lumen Soundbar 5.1", "Lumen", "TV & Home Theater", (), 499, True, 12),
    ("Arcadia One Console", "Arcadia", "Gaming",
     (("edition", (("Standard", 0), ("Digital", -100))),), 499, True, 12),
    ("USB-C to USB-C Cable", "Voltline Basics", "Accessories",
     (("length", (("1 m", 0), ("2 m", 5))),), 19, False, 0),
    ("65W GaN Charger", "Voltline Basics", "Accessories", (), 49, False, 0),
    ("Nimbus X5 Clear Case", "Voltline Basics", "Accessories", (), 29, False, 0),
    ("Nimbus X5 Leather Case", "Nimbus", "Accessories",
     (("colour", (("Saddle", 0), ("Black", 0), ("Forest", 0))),), 59, False, 0),
    ("Tempered Glass Screen Protector", "Voltline Basics", "Accessories",
     (("fits", (("Nimbus X5", 0), ("Nimbus X5 Pro", 0), ("Kestrel 9a", 0))),), 24, False, 0),
    ("Laptop Sleeve", "Voltline Basics", "Accessories",
     (("size", (('14"', 0), ('16"', 10))),), 39, False, 0),
    ("Wireless Ergonomic Mouse", "Brightcore", "Accessories", (), 79, False, 0),
    ("Low-Profile Mechanical Keyboard", "Brightcore", "Accessories",
     (("layout", (("US", 0),)),), 129, False, 0),
    ("Power Bank", "Voltline Basics", "Accessories",
     (("capacity", (("10,000 mAh", 0), ("20,000 mAh", 20))),), 39, False, 0),
    ("HDMI 2.1 Cable", "Voltline Basics", "Accessories",
     (("length", (("2 m", 0), ("3 m", 8))),), 29, False, 0),
)
_ELECTRONICS_PREFIXES = {"Nimbus": "0840102", "Kestrel": "0840219", "Aeroline": "0840344",
                         "Brightcore": "0840457", "Tidal Audio": "0840561", "Lumen": "0840673",
                         "Arcadia": "0840788", "Voltline Basics": "0840890"}


def _combos(axes: tuple[_Axis, ...]) -> list[tuple[dict[str, str], int, str]]:
    """Every combination of option values: (options, price delta, SKU suffix)."""
    out: list[tuple[dict[str, str], int, str]] = [({}, 0, "")]
    for axis, values in axes:
        out = [({**opts, axis: value}, delta + d, f"{suffix}-{j + 1}")
               for opts, delta, suffix in out for j, (value, d) in enumerate(values)]
    return out


def _electronics(rng: random.Random, scale: float) -> DemoData:
    tz = "America/Chicago"
    hours = _hours(("10:00", "21:00"), ("10:00", "21:00"), ("11:00", "19:00"))
    locations = [
        _location(site, "chi", kind="store", tz=tz,
                  hours=hours if i % 4 else _hours(("09:00", "21:00"), ("09:00", "21:00"),
                                                   ("10:00", "20:00")),
                  pickup=True, lead_s=rng.choice((900, 1800, 1800, 3600)), curbside=i % 3 == 0)
        for i, site in enumerate(_CHI_SITES)
    ]
    dc = _location(_CHI_DC, "chi", kind="warehouse", tz=tz, hours={}, pickup=False, lead_s=0,
                   curbside=False)
    locations.append(dc)
    stores = locations[:-1]

    specs = list(_ELECTRONICS)
    wanted = _scaled(len(specs), scale, minimum=4)
    base = specs
    specs = list(base[:wanted])
    for k in range(wanted - len(base)):
        spec = base[k % len(base)]
        specs.append((f"{spec[0]} (Gen {k // len(base) + 2})", *spec[1:]))

    gtins = {brand: _Gtin(prefix) for brand, prefix in _ELECTRONICS_PREFIXES.items()}
    products: list[Product] = []
    for i, (name, brand, cat, axes, dollars, serial, warranty) in enumerate(specs):
        code = 201 + i
        variants = [
            Variant(sku=f"VL{code}{suffix}", barcode=gtins[brand](), options=opts,
                    price_cents=(dollars + delta) * 100 + 99, serial_tracked=serial)
            for opts, delta, suffix in _combos(axes)
        ]
        tags = [f"warranty:{warranty}m"] if warranty else []
        desc = (f"{brand} {name}. " + (f"{warranty}-month manufacturer warranty; serial "
                                       "recorded at sale." if serial else "Accessory."))
        products.append(Product(id=f"vl-{code}", name=name, brand=brand, category=cat,
                                description=desc, variants=variants, tags=tags))

    # One colourway of the flagship phone just launched: only the DC has it so far.
    launch = products[0].variants[-1].sku
    stock: list[StockRow] = []
    for p in products:
        for v in p.variants:
            accessory = not v.serial_tracked
            mean = 12.0 if accessory else (3.0 if p.category in ("Phones", "Audio") else 2.0)
            if v.sku != launch:
                for loc in stores:
                    qty = _units(rng, mean, 0.08 if accessory else 0.3)
                    if qty:
                        stock.append((v.sku, loc.id, qty))
            stock.append((v.sku, dc.id, rng.randint(60, 400) if accessory
                          else rng.randint(15, 150)))
    on_hand = {(sku, loc): qty for sku, loc, qty in stock}
    safety = [(v.sku, loc.id, 1) for v in products[0].variants for loc in stores
              if on_hand.get((v.sku, loc.id), 0) >= 3]  # keep a demo unit on the floor

    return DemoData(locations=locations, products=products, staff=_staff(rng, locations),
                    stock=_ordered(stock, products, locations),
                    safety_stock=_ordered(safety, products, locations),
                    retailer="electronics", brand="Voltline", metro="Chicago, IL")


# --- entry points -------------------------------------------------------------------------


def build_demo(retailer: Retailer = "apparel", *, seed: int = 7, scale: float = 1.0) -> DemoData:
    """Build one retailer's demo data; the same arguments always give identical data."""
    rng = random.Random(f"omnitill-demo:{retailer}:{seed}")
    if retailer == "apparel":
        return _apparel(rng, scale)
    if retailer == "grocer":
        return _grocer(rng, scale)
    if retailer == "electronics":
        return _electronics(rng, scale)
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
