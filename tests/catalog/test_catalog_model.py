"""Catalog records, events and the read model."""

from __future__ import annotations

import msgspec
import pytest

from actors.catalog import (
    Catalog,
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


def _loc(**kw: object) -> Location:
    fields: dict[str, object] = dict(
        id="pdx-test", name="Test", kind="store", address="1 Main St", postal_code="97209",
        city="Portland", lat=45.5, lon=-122.6, timezone="America/Los_Angeles",
        pickup_enabled=True, pickup_lead_s=3600,
        opening_hours={"mon": ("09:00", "17:00"), "sat": ("10:00", "24:00")},
    )
    fields.update(kw)
    return Location(**fields)  # type: ignore[arg-type]


def _product(pid: str = "p-1", skus: tuple[str, ...] = ("A-1", "A-2"), start: int = 1) -> Product:
    return Product(
        id=pid, name="Oxford Button-Down", brand="Alder & Ash", category="Shirts",
        description="", variants=[
            Variant(sku=s, barcode=gtin13(f"086031200{start + i:03d}"),
                    options={"size": "M"}, price_cents=7800)
            for i, s in enumerate(skus)
        ],
    )


def test_gtin_check_digits_known_values() -> None:
    assert gtin_check_digit("400638133393") == "1"  # a widely published EAN-13
    assert is_valid_gtin13("4006381333931")
    assert not is_valid_gtin13("4006381333932")
    assert not is_valid_gtin13("400638133393")
    assert not is_valid_gtin13("400638133393X")
    assert gtin13("012345678901")[-1] == gtin_check_digit("012345678901")
    with pytest.raises(ValueError):
        gtin13("123")


def test_scale_label_round_trip() -> None:
    label = scale_label("4011", 1234)
    assert is_valid_gtin13(label) and label.startswith("2904011")
    assert parse_scale_label(label) == ("04011", 1234)
    assert parse_scale_label("4006381333931") is None
    assert parse_scale_label(label[:-1] + str((int(label[-1]) + 1) % 10)) is None
    with pytest.raises(ValueError):
        scale_label("4011", 100_000)


@pytest.mark.parametrize(
    "kw",
    [
        {"id": "bad id"},
        {"lat": 91.0},
        {"timezone": "Mars/Olympus_Mons"},
        {"pickup_lead_s": -1},
        {"opening_hours": {"monday": ("09:00", "17:00")}},
        {"opening_hours": {"mon": ("9:00", "17:00")}},
        {"opening_hours": {"mon": ("18:00", "17:00")}},
    ],
)
def test_location_rejects_bad_fields(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        _loc(**kw)


def test_records_validate_on_decode_too() -> None:
    raw = msgspec.json.encode(_loc())
    assert msgspec.json.decode(raw, type=Location) == _loc()
    bad = raw.replace(b'"America/Los_Angeles"', b'"Nowhere/Zone"')
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(bad, type=Location)


def test_variant_and_staff_validation() -> None:
    with pytest.raises(ValueError):
        Variant(sku="X-1", barcode="4006381333932", options={}, price_cents=100)
    with pytest.raises(ValueError):
        Variant(sku="X-1", barcode="4006381333931", options={}, price_cents=100, plu="12")
    with pytest.raises(ValueError):
        Variant(sku="X-1", barcode="4006381333931", options={}, price_cents=100, unit="g",
                serial_tracked=True)
    with pytest.raises(ValueError):
        _product(skus=("A-1", "A-1"))
    with pytest.raises(ValueError):
        Staff("c-1", "Sam", "cashier", None, "12a4")


def test_catalog_event_round_trip() -> None:
    events = [
        LocationUpserted(_loc()),
        ProductUpserted(_product()),
        StaffUpserted(Staff("c-pdx-test", "Sam Park", "cashier", "pdx-test", "1234")),
    ]
    for event in events:
        tag, data = encode_catalog_event(event)
        assert decode_catalog_event(data) == event
        assert msgspec.msgpack.decode(data)["type"] == tag
    assert [encode_catalog_event(e)[0] for e in events] == [
        "location.upserted", "product.upserted", "staff.upserted"]
    with pytest.raises(msgspec.ValidationError):
        decode_catalog_event(msgspec.msgpack.encode({"type": "product.deleted"}))


def test_catalog_upsert_replaces_and_drops_stale_skus() -> None:
    cat = Catalog.from_events([LocationUpserted(_loc()), ProductUpserted(_product())])
    assert cat.skus() == ["A-1", "A-2"]
    assert cat.location("pdx-test") == _loc()
    assert cat.location("nope") is None and cat.variant("nope") is None
    old_barcode = _product().variants[1].barcode
    cat.apply(ProductUpserted(_product(skus=("A-1", "A-3"), start=5)))
    assert cat.skus() == ["A-1", "A-3"]
    assert cat.variant("A-2") is None
    assert cat.by_barcode(old_barcode) is None
    assert [v.sku for _, v in cat.search("oxford")] == ["A-1", "A-3"]
    assert len(cat.products()) == 1


def test_conflicts_reports_foreign_skus_and_codes() -> None:
    cat = Catalog.from_events([ProductUpserted(_product())])
    assert cat.conflicts(_product()) == []
    clash = cat.conflicts(_product(pid="p-2", skus=("A-2", "B-9"), start=1))
    assert any("sku A-2" in c for c in clash)
    assert any("code" in c for c in clash)


def test_by_barcode_matches_gtin_upc_plu_and_scale_labels() -> None:
    banana = Variant(sku="PV-4011", barcode=scale_label("4011", 0), options={},
                     price_cents=152, unit="g", plu="4011")
    milk_code = gtin13("085001100001")
    milk = Variant(sku="PV-500-1", barcode=milk_code, options={"size": "1 gal"},
                   price_cents=699)
    cat = Catalog.from_events([
        ProductUpserted(Product("pv-1", "Bananas", "Pecan & Vine", "Produce", "", [banana])),
        ProductUpserted(Product("pv-2", "Whole Milk", "Hill Country", "Dairy", "", [milk])),
    ])

    def sku(code: str) -> str | None:
        hit = cat.by_barcode(code)
        return None if hit is None else hit[1].sku

    assert sku(milk_code) == "PV-500-1"
    assert sku(milk_code[1:]) == "PV-500-1"  # UPC-A as a US scanner sends it
    assert sku(" 4011 ") == "PV-4011"  # PLU typed at the register
    assert sku(scale_label("4011", 1270)) == "PV-4011"  # label printed by the scale
    assert sku(scale_label("4046", 500)) is None
    assert sku(milk_code[:-1] + str((int(milk_code[-1]) + 1) % 10)) is None


def test_staff_lookup_and_pin() -> None:
    member = Staff("m-pdx-test", "Ines Rossi", "manager", "pdx-test", "5678")
    cat = Catalog.from_events([StaffUpserted(member)])
    assert cat.staff("m-pdx-test") == member
    assert cat.verify_pin("m-pdx-test", "5678") == member
    assert cat.verify_pin("m-pdx-test", "1234") is None
    assert cat.verify_pin("nobody", "5678") is None
    assert cat.all_staff() == [member]
