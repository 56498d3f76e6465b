"""Apparel demo: Alder & Ash, 15 boutiques in the Portland, OR metro plus a DC."""

from __future__ import annotations

import random

from ..model import (
    Location,
    Product,
    Variant,
)
from ._common import (
    DemoData,
    Hours,
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

__all__ = ["build_apparel"]

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


def build_apparel(rng: random.Random, scale: float) -> DemoData:
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
