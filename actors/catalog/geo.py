"""Geography and opening hours: distances, nearest locations, pickup readiness (pure).

`pickup_ready_at` works in absolute time (POSIX seconds) but reads opening hours in the
location's own timezone via zoneinfo, so daylight-saving days come out right: it walks the
location's opening intervals from today onward and returns the first moment, at least
`lead_s` after both `now` and the interval's opening, that still falls before closing.
"""

from __future__ import annotations

import math
import re
import zoneinfo
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta

from .model import WEEKDAYS, Catalog, Location

__all__ = [
    "EARTH_RADIUS_KM",
    "haversine_km",
    "nearest",
    "opening_intervals",
    "pickup_ready_at",
    "resolve_near",
]

EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius
_HORIZON_DAYS = 15  # a schedule with no fitting interval in two weeks never has one


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points given in degrees."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, max(0.0, h))))


def nearest(
    locations: Iterable[Location],
    lat: float,
    lon: float,
    *,
    limit: int = 5,
    predicate: Callable[[Location], bool] | None = None,
) -> list[tuple[Location, float]]:
    """Up to `limit` locations (those passing `predicate`) with their distance in km, nearest
    first; equal distances are ordered by location id."""
    if limit <= 0:
        return []
    found = [
        (loc, haversine_km(lat, lon, loc.lat, loc.lon))
        for loc in locations
        if predicate is None or predicate(loc)
    ]
    found.sort(key=lambda pair: (pair[1], pair[0].id))
    return found[:limit]


def _local(day: date, hhmm: str, tz: zoneinfo.ZoneInfo) -> float:
    if hhmm == "24:00":
        return datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=tz).timestamp()
    h, m = hhmm.split(":")
    return datetime.combine(day, time(int(h), int(m)), tzinfo=tz).timestamp()


def opening_intervals(location: Location, start: float, days: int) -> list[tuple[float, float]]:
    """The location's opening intervals `(open, close)` in POSIX seconds, for `days` local
    days beginning with the local day of `start` (intervals may have closed before `start`).
    A location without opening hours is one interval covering the whole span."""
    tz = zoneinfo.ZoneInfo(location.timezone)
    first = datetime.fromtimestamp(start, tz).date()
    if not location.opening_hours:
        return [(_local(first, "00:00", tz), _local(first + timedelta(days=days), "00:00", tz))]
    out: list[tuple[float, float]] = []
    for i in range(days):
        day = first + timedelta(days=i)
        hours = location.opening_hours.get(WEEKDAYS[day.weekday()])
        if hours is not None:
            out.append((_local(day, hours[0], tz), _local(day, hours[1], tz)))
    return out


def pickup_ready_at(location: Location, now: float, lead_s: float | None = None) -> float:
    """The earliest time a pickup placed at `now` can be ready, in POSIX seconds.

    Staff need `lead_s` (default: the location's `pickup_lead_s`) of opening time in one go:
    if the store is open and the work finishes before closing, that is `now + lead_s`;
    otherwise it is the next opening that leaves enough time before its closing, plus
    `lead_s`. The result is never before `now + lead_s` and always strictly inside opening
    hours. Raises ValueError if no opening interval is long enough. (Whether the location
    offers pickup at all is the caller's check: `location.pickup_enabled`.)
    """
    lead = float(location.pickup_lead_s if lead_s is None else lead_s)
    if lead < 0:
        raise ValueError("lead_s must be >= 0")
    if not location.opening_hours:
        return now + lead
    for opens, closes in opening_intervals(location, now, _HORIZON_DAYS):
        ready = max(now, opens) + lead
        if ready < closes:
            return ready
    raise ValueError(f"location {location.id}: no opening interval fits a {lead:.0f}s lead time")


_LATLON_RE = re.compile(r"^\s*(-?\d{1,3}(?:\.\d+)?)\s*,\s*(-?\d{1,3}(?:\.\d+)?)\s*$")


def _postal_key(code: str) -> str:
    return "".join(code.split()).upper()


def resolve_near(query: str, catalog: Catalog) -> tuple[float, float] | None:
    """Coordinates for a widget's `near=` value: "lat,lon", or a postal code of one of the
    catalog's locations (stores preferred; a US ZIP+4 matches its 5-digit ZIP). None if
    the value is neither."""
    m = _LATLON_RE.match(query)
    if m:
        lat, lon = float(m.group(1)), float(m.group(2))
        if -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0:
            return lat, lon
        return None
    key = _postal_key(query)
    if not key:
        return None
    keys = {key}
    if re.fullmatch(r"\d{5}-\d{4}", key):
        keys.add(key[:5])
    matches = [loc for loc in catalog.locations() if _postal_key(loc.postal_code) in keys]
    if not matches:
        return None
    best = min(matches, key=lambda loc: (loc.kind != "store", loc.id))
    return best.lat, best.lon
