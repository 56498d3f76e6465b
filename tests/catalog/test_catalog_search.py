"""Catalog search: matching and ranking."""

from __future__ import annotations

import pytest

from actors.catalog import (
    Catalog,
    Product,
    ProductUpserted,
    Variant,
    build_demo,
    demo_events,
    gtin13,
)
from actors.catalog.search import SearchIndex


def _p(pid: str, name: str, brand: str, category: str, skus: list[tuple[str, str, str]],
       base: int) -> Product:
    return Product(pid, name, brand, category, "", [
        Variant(sku=sku, barcode=gtin13(f"0860312{base + i:05d}"),
                options={"colour": colour, "size": size}, price_cents=1000)
        for i, (sku, colour, size) in enumerate(skus)
    ])


@pytest.fixture(scope="module")
def small() -> Catalog:
    return Catalog.from_events([
        ProductUpserted(_p("p1", "Box Pleat Skirt", "Alder & Ash", "Bottoms",
                           [("SK-1-M", "Black", "M")], 1)),
        ProductUpserted(_p("p2", "Oxford Button-Down", "Alder & Ash", "Shirts",
                           [("OX-1-S", "Navy", "S"), ("OX-1-M", "Navy", "M"),
                            ("OX-1-L", "Navy", "L")], 10)),
        ProductUpserted(_p("p3", "Slim Selvedge Jean", "Alder & Ash", "Denim",
                           [("DN-1-M", "Indigo", "M")], 20)),
        ProductUpserted(_p("p4", "Merino Crew Sweater", "Fjell", "Knitwear",
                           [("MC-1-M", "Oxford Blue", "M")], 30)),
    ])


def _skus(cat: Catalog, q: str, limit: int = 20) -> list[str]:
    return [v.sku for _, v in cat.search(q, limit)]


def test_tokens_are_anded_and_case_insensitive(small: Catalog) -> None:
    assert _skus(small, "OXFORD navy") == ["OX-1-S", "OX-1-M", "OX-1-L"]
    assert _skus(small, "oxford indigo") == []
    assert _skus(small, "fjell") == ["MC-1-M"]
    assert _skus(small, "knitwear") == ["MC-1-M"]


def test_name_prefix_ranks_before_other_matches(small: Catalog) -> None:
    # "Oxford Blue" is a colour of the sweater; the Oxford shirt's name starts with the query.
    assert _skus(small, "oxford")[-1] == "MC-1-M"
    assert _skus(small, "oxford")[:3] == ["OX-1-S", "OX-1-M", "OX-1-L"]


def test_exact_code_ranks_first(small: Catalog) -> None:
    barcode = small.variant("OX-1-L")
    assert barcode is not None
    assert _skus(small, barcode[1].barcode) == ["OX-1-L"]
    assert _skus(small, "ox-1-m")[0] == "OX-1-M"
    assert _skus(small, "0860312")[0] == "SK-1-M"  # barcode prefix: substring match


def test_short_tokens_match_word_starts(small: Catalog) -> None:
    assert _skus(small, "oxford m")[0] == "OX-1-M"  # the size M word ranks first
    assert _skus(small, "im") == []  # a short token must start a word: not "Slim", "Denim"
    assert _skus(small, "sl")[0] == "DN-1-M"


def test_limit_and_empty_query(small: Catalog) -> None:
    assert _skus(small, "alder", limit=2) == ["SK-1-M", "OX-1-S"]
    assert _skus(small, "   ") == []
    assert _skus(small, "alder", limit=0) == []


def test_index_remove() -> None:
    idx = SearchIndex()
    idx.add("A", name="Tee", fields=("Tops",), codes=("A",))
    idx.add("B", name="Tee", fields=("Tops",), codes=("B",))
    idx.remove("A")
    idx.remove("missing")
    assert idx.search("tee") == ["B"] and len(idx) == 1


def test_search_the_apparel_demo() -> None:
    cat = Catalog.from_events(demo_events(build_demo("apparel")))
    sweater = next(p for p in cat.products() if p.name == "Merino Crew Sweater")
    for want in (sweater.variants[0], sweater.variants[-1]):
        query = f"merino crew {want.options['colour']} {want.options['size']}"
        assert cat.search(query)[0] == (sweater, want)
    some = cat.skus()[123]
    assert cat.search(some.lower())[0][1].sku == some
    assert all(p.name.lower().startswith("rain")
               for p, _ in cat.search("rain", limit=5))
