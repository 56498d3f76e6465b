"""Grocer demo: Pecan & Vine Market, 8 stores in Austin, TX plus a commissary."""

from __future__ import annotations

import random
from typing import Literal

from ..model import (
    Product,
    Variant,
    scale_label,
)
from ._common import (
    DemoData,
    StockRow,
    _Gtin,
    _hours,
    _location,
    _ordered,
    _scaled,
    _Site,
    _staff,
    _units,
)

__all__ = ["build_grocer"]

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


def build_grocer(rng: random.Random, scale: float) -> DemoData:
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
