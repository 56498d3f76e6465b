"""Topic names are part of the contract. This module parses and formats them (pure)."""

from __future__ import annotations

import re

import msgspec

from .errors import ErrorCode, ProtocolError

__all__ = [
    "LocationTopic",
    "NearTopic",
    "OpsTopic",
    "OrderTopic",
    "PromotionsTopic",
    "StockTopic",
    "Topic",
    "parse_topic",
]

_ID = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}"
_ID_RE = re.compile(rf"^{_ID}$")
_NEAR_RE = re.compile(rf"^({_ID}):(-?\d{{1,3}}(?:\.\d+)?),(-?\d{{1,3}}(?:\.\d+)?)$")


class StockTopic(msgspec.Struct, frozen=True):
    """`stock:{sku}`: the SKU's quantities at every location, keyed by location id."""

    sku: str

    @property
    def name(self) -> str:
        return f"stock:{self.sku}"


class LocationTopic(msgspec.Struct, frozen=True):
    """`location:{id}`: one location's stock (`sku:{sku}` keys) and pickup queue (`hold:{id}`)."""

    location_id: str

    @property
    def name(self) -> str:
        return f"location:{self.location_id}"


class NearTopic(msgspec.Struct, frozen=True):
    """`near:{sku}:{lat},{lon}`: the nearest pickup locations with stock, keyed by location."""

    sku: str
    lat: float
    lon: float

    @property
    def name(self) -> str:
        return f"near:{self.sku}:{self.lat:g},{self.lon:g}"


class OrderTopic(msgspec.Struct, frozen=True):
    order_id: str

    @property
    def name(self) -> str:
        return f"order:{self.order_id}"


class PromotionsTopic(msgspec.Struct, frozen=True):
    channel: str

    @property
    def name(self) -> str:
        return f"promotions:{self.channel}"


class OpsTopic(msgspec.Struct, frozen=True):
    """`ops:metrics`: live engine metrics for the ops dashboard (manager role)."""

    @property
    def name(self) -> str:
        return "ops:metrics"


Topic = StockTopic | LocationTopic | NearTopic | OrderTopic | PromotionsTopic | OpsTopic


def _unknown(name: str, why: str) -> ProtocolError:
    return ProtocolError(ErrorCode.UNKNOWN_TOPIC, f"unknown topic {name!r}: {why}")


def parse_topic(name: str) -> Topic:
    """Parse a topic name; raises ProtocolError(unknown_topic) with the reason."""
    if len(name) > 200:
        raise _unknown(name[:40] + "...", "name too long")
    kind, sep, rest = name.partition(":")
    if not sep:
        raise _unknown(name, "expected 'kind:...'")
    if kind == "stock" and _ID_RE.match(rest):
        return StockTopic(rest)
    if kind == "location" and _ID_RE.match(rest):
        return LocationTopic(rest)
    if kind == "order" and _ID_RE.match(rest):
        return OrderTopic(rest)
    if kind == "promotions" and _ID_RE.match(rest):
        return PromotionsTopic(rest)
    if kind == "ops" and rest == "metrics":
        return OpsTopic()
    if kind == "near":
        m = _NEAR_RE.match(rest)
        if m:
            lat, lon = float(m.group(2)), float(m.group(3))
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise _unknown(name, "latitude/longitude out of range")
            return NearTopic(m.group(1), lat, lon)
        raise _unknown(name, "expected near:{sku}:{lat},{lon}")
    raise _unknown(name, "kinds are stock, location, near, order, promotions, ops")
