"""Every error code the wire can carry, in one place.

Codes are stable: clients switch on them. Messages are for humans and may change.
"""

from __future__ import annotations

import enum

__all__ = ["CLOSE_CODES", "ErrorCode", "ProtocolError"]


class ErrorCode(enum.StrEnum):
    BAD_FRAME = "bad_frame"  # not decodable: malformed JSON/msgpack, not an object
    UNKNOWN_TYPE = "unknown_type"  # missing or unknown `type`
    INVALID_ARGS = "invalid_args"  # fields of the wrong type, out of range, or missing
    UNAUTHORIZED = "unauthorized"  # no hello yet, bad or expired token
    FORBIDDEN = "forbidden"  # authenticated, but the role may not do this
    UNKNOWN_TOPIC = "unknown_topic"  # topic name does not parse or names nothing
    NOT_FOUND = "not_found"  # unknown SKU, location, hold, order ...
    INSUFFICIENT_STOCK = "insufficient_stock"  # would promise more than is available
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"  # op_id reused with another payload
    RATE_LIMITED = "rate_limited"  # too many commands per second on this connection
    TOO_LARGE = "too_large"  # frame or body over the limit
    CONFLICT = "conflict"  # illegal state transition (e.g. ship a cancelled transfer)
    UNAVAILABLE = "unavailable"  # overloaded or shutting down: retry with the same op_id
    INTERNAL = "internal"  # a bug on our side: retry with the same op_id is safe


class ProtocolError(Exception):
    """A rejection with a stable code, raised anywhere and mapped to a frame at the edge."""

    def __init__(
        self, code: ErrorCode, message: str, details: dict[str, object] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}

    def __repr__(self) -> str:
        return f"ProtocolError({self.code.value!r}, {self.message!r})"


# WebSocket close codes (4000-4999 are application codes).
CLOSE_CODES: dict[str, int] = {
    "normal": 1000,
    "going_away": 1001,  # server shutting down: reconnect and resume
    "protocol_violation": 1008,  # policy violation: repeated bad frames / auth failure
    "too_large": 1009,
    "slow_consumer": 4001,  # fell too far behind: reconnect and resume
    "unauthorized": 4003,
    "rate_limited": 4029,
}
