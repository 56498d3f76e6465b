"""Distances, nearest locations, pickup readiness and `near=` resolution."""

from __future__ import annotations

import math
import zoneinfo
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.catalog import (
    WEEKDAYS,
    Catalog,
    Location,
    build_demo,
    demo_events,
    haversine_km,
    nearest,
    pickup_ready_at,
    resolve_near,
)
from actors.catalog.geo import EARTH_RADIUS_KM

lats = st.floats(min_value=-89.9, max_value=89.9, allow_nan=False)
lons = st.floats(min_value=-180.0, max_value=180.0, allow_nan=False)
points = st.tuples(lats, lons)


@given(points, points)
def test_haversine_symmetric_and_bounded(a: tuple[float, float], b: tuple[float, float]) -> None:
    d = haversine_km(*a, *b)
    assert d == pytest.approx(haversine_km(*b, *a), abs=1e-9)
    assert 0.0 <= d <= math.pi * EARTH_RADIUS_KM + 1e-6


@given(points)
def test_haversine_zero_on_identity(a: tuple[float, float]) -> None:
    assert haversine_km(*a, *a) == 0.0


@given(points, points, points)
def test_haversine_triangle_inequality(
    a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]
) -> None:
    assert haversine_km(*a, *c) <= haversine_km(*a, *b) + haversine_km(*b, *c) + 1e-6


def test_haversine_known_distances() -> None:
    assert haversine_km(0, 0, 1, 0) == pytest.approx(math.pi / 180 * EARTH_RADIUS_KM)
    # Portland, OR to Seattle, WA: about 234 km as the crow flies.
    assert haversine_km(45.5152, -122.6784, 47.6062, -122.3321) == pytest.approx(234, abs=3)


def _loc(i: int, lat: float, lon: float, *, store: bool = True,
         hours: dict[str, tuple[str, str]] | None = None, tz: str = "America/Los_Angeles",
         lead: int = 3600) -> Location:
    return Location(
        id=f"loc-{i}", name=f"Loc {i}", kind="store" if store else "warehouse",
        address="", postal_code=f"{97000 + i}", city="", lat=lat, lon=lon, timezone=tz,
        pickup_enabled=store, pickup_lead_s=lead,
        opening_hours={} if hours is None else hours,
    )


@given(st.lists(points, max_size=25), points, st.integers(min_value=-1, max_value=30))
def test_nearest_sorted_and_limited(
    pts: list[tuple[float, float]], origin: tuple[float, float], limit: int
) -> None:
    locs = [_loc(i, lat, lon, store=i % 3 != 0) for i, (lat, lon) in enumerate(pts)]
    got = nearest(locs, *origin, limit=limit)
    assert len(got) == min(max(limit, 0), len(locs))
    dists = [d for _, d in got]
    assert dists == sorted(dists)
    for loc, d in got:
        assert d == haversine_km(*origin, loc.lat, loc.lon)
    if got:  # nothing left out is nearer than the farthest returned
        chosen = {loc.id for loc, _ in got}
        assert all(haversine_km(*origin, loc.lat, loc.lon) >= dists[-1]
                   for loc in locs if loc.id not in chosen)
    stores = nearest(locs, *origin, limit=limit, predicate=lambda loc: loc.kind == "store")
    assert all(loc.kind == "store" for loc, _ in stores)


# --- pickup readiness -------------------------------------------------------------------

_slots = st.integers(min_value=6 * 4, max_value=23 * 4 + 3)  # quarter hours, 06:00..23:45


@st.composite
def _opening_hours(draw: st.DrawFn) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for day in draw(st.lists(st.sampled_from(WEEKDAYS), min_size=1, unique=True)):
        a = draw(_slots)
        b = draw(st.integers(min_value=a + 1, max_value=24 * 4))
        out[day] = (f"{a // 4:02d}:{a % 4 * 15:02d}", f"{b // 4:02d}:{b % 4 * 15:02d}"
                    if b < 96 else "24:00")
    return out


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


@settings(max_examples=150)
@given(
    _opening_hours(),
    st.sampled_from(["America/Los_Angeles", "America/Chicago", "Europe/Berlin",
                     "Australia/Sydney", "Asia/Kolkata"]),
    st.floats(min_value=1_700_000_000, max_value=1_830_000_000),  # 2023..2027: DST changes
    st.integers(min_value=0, max_value=6 * 3600),
)
def test_pickup_ready_inside_hours_and_after_lead(
    hours: dict[str, tuple[str, str]], tz: str, now: float, lead: int
) -> None:
    loc = _loc(0, 45.5, -122.6, hours=hours, tz=tz, lead=lead)
    longest = max(_minutes(c) - _minutes(o) for o, c in hours.values()) * 60
    try:
        ready = pickup_ready_at(loc, now, lead)
    except ValueError:
        assert longest <= lead  # only when no opening interval can fit the work
        return
    assert ready >= now + lead
    local = datetime.fromtimestamp(ready, zoneinfo.ZoneInfo(tz))
    day = WEEKDAYS[local.weekday()]
    assert day in hours, f"ready on a closed day: {local}"
    opens, closes = hours[day]
    t = local.hour * 60 + local.minute + local.second / 60 + local.microsecond / 6e7
    assert _minutes(opens) + lead / 60 - 1e-6 <= t < _minutes(closes)
    assert ready - now < 8 * 86400  # a weekly schedule always fits within a week


def _ts(text: str, tz: str = "America/Los_Angeles") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zoneinfo.ZoneInfo(tz)).timestamp()


def test_pickup_ready_examples() -> None:
    hours = {d: ("10:00", "19:00") for d in WEEKDAYS if d != "mon"}
    loc = _loc(1, 45.5, -122.6, hours=hours, lead=3600)
    # 2025-03-04 is a Tuesday. Open, and the hour fits: ready in an hour.
    assert pickup_ready_at(loc, _ts("2025-03-04T12:00")) == _ts("2025-03-04T13:00")
    # Too close to closing: ready an hour after tomorrow's opening.
    assert pickup_ready_at(loc, _ts("2025-03-04T18:30")) == _ts("2025-03-05T11:00")
    # Before opening: an hour after today's opening.
    assert pickup_ready_at(loc, _ts("2025-03-04T07:00")) == _ts("2025-03-04T11:00")
    # Sunday evening -> closed Monday -> Tuesday 11:00.
    assert pickup_ready_at(loc, _ts("2025-03-09T19:30")) == _ts("2025-03-11T11:00")
    # An explicit lead overrides the location's.
    assert pickup_ready_at(loc, _ts("2025-03-04T12:00"), 0) == _ts("2025-03-04T12:00")
    # Spring forward (2025-03-09, Sunday): local hours still hold on the DST day.
    assert pickup_ready_at(loc, _ts("2025-03-09T01:00")) == _ts("2025-03-09T11:00")
    # No hours at all: open around the clock.
    assert pickup_ready_at(_loc(2, 45.5, -122.6), 1000.0) == 4600.0
    with pytest.raises(ValueError):
        pickup_ready_at(loc, 0.0, 10 * 3600)


# --- near= resolution -------------------------------------------------------------------


def test_resolve_near() -> None:
    cat = Catalog.from_events(demo_events(build_demo("apparel")))
    pearl = cat.location("pdx-pearl")
    assert pearl is not None
    assert resolve_near("97209", cat) == (pearl.lat, pearl.lon)
    assert resolve_near(" 97209-1234 ", cat) == (pearl.lat, pearl.lon)
    assert resolve_near("45.52,-122.68", cat) == (45.52, -122.68)
    assert resolve_near(" -33.9 , 151.2 ", cat) == (-33.9, 151.2)
    assert resolve_near("95.0,10", cat) is None
    assert resolve_near("10001", cat) is None
    assert resolve_near("", cat) is None
    # 97217 is the DC's ZIP only; it still resolves.
    dc = cat.location("pdx-dc")
    assert dc is not None and resolve_near("97217", cat) == (dc.lat, dc.lon)
    # 97202 has two stores: the lowest id wins, deterministically.
    two = sorted((loc for loc in cat.stores() if loc.postal_code == "97202"),
                 key=lambda loc: loc.id)
    assert len(two) == 2 and resolve_near("97202", cat) == (two[0].lat, two[0].lon)
