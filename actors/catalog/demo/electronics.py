"""Electronics demo: Voltline, 10 stores across Chicagoland plus a DC."""

from __future__ import annotations

import random

from ..model import (
    Product,
    Variant,
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

__all__ = ["build_electronics"]

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


def build_electronics(rng: random.Random, scale: float) -> DemoData:
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
