"""Orders and fulfilment: one actor per order, routing, sagas against the SKU pools."""

from .domain import Order, advance, decide, evolve, initial, order_id_for, pickup_code_for
from .events import Event, decode_event, encode_event
from .routing import Destination, RoutePlan, RoutingConfig, Shortfall, Site, route

__all__ = [
    "Destination",
    "Event",
    "Order",
    "RoutePlan",
    "RoutingConfig",
    "Shortfall",
    "Site",
    "advance",
    "decide",
    "decode_event",
    "encode_event",
    "evolve",
    "initial",
    "order_id_for",
    "pickup_code_for",
    "route",
]
