"""Signed, expiring tokens and the role/permission policy.

A token is `base64url(msgpack(claims)) + "." + base64url(HMAC-SHA256(secret, payload))`. The
secret comes from OMNITILL_SECRET; the embedded default generates one and keeps it in the data
dir (mode 0600). Claims are small on purpose: every connection carries one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from typing import Literal

import msgspec

from protocol import ErrorCode, ProtocolError
from protocol.topics import (
    LocationTopic,
    NearTopic,
    OpsTopic,
    OrderTopic,
    PromotionsTopic,
    StockTopic,
    Topic,
)

__all__ = [
    "ROLES",
    "Claims",
    "Role",
    "TokenSigner",
    "check_command",
    "check_topic",
    "load_or_create_secret",
]

Role = Literal["storefront", "kiosk", "cashier", "manager", "admin", "hub"]
ROLES: tuple[Role, ...] = ("storefront", "kiosk", "cashier", "manager", "admin", "hub")


class Claims(msgspec.Struct, frozen=True, array_like=True):
    sub: str  # who: user id, device id, or "public"
    role: Role
    exp: float  # unix seconds
    loc: str | None = None  # location scope; None = all locations
    name: str = ""


_claims_decoder = msgspec.msgpack.Decoder(Claims)
_enc = msgspec.msgpack.Encoder()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("token secret must be at least 16 bytes")
        self._secret = secret

    def mint(
        self,
        role: Role,
        *,
        sub: str = "anonymous",
        location: str | None = None,
        ttl_s: float = 12 * 3600,
        name: str = "",
    ) -> str:
        claims = Claims(sub=sub, role=role, exp=time.time() + ttl_s, loc=location, name=name)
        payload = _enc.encode(claims)
        sig = hmac.new(self._secret, payload, hashlib.sha256).digest()
        return f"{_b64(payload)}.{_b64(sig)}"

    def verify(self, token: str, *, now: float | None = None) -> Claims:
        """Return the claims or raise ProtocolError(unauthorized) saying why."""
        try:
            payload_b64, sig_b64 = token.split(".", 1)
            payload, sig = _unb64(payload_b64), _unb64(sig_b64)
        except (ValueError, TypeError):
            raise ProtocolError(ErrorCode.UNAUTHORIZED, "malformed token") from None
        good = hmac.new(self._secret, payload, hashlib.sha256).digest()
        if not hmac.compare_digest(good, sig):
            raise ProtocolError(ErrorCode.UNAUTHORIZED, "token signature is not valid")
        try:
            claims = _claims_decoder.decode(payload)
        except msgspec.MsgspecError:
            raise ProtocolError(ErrorCode.UNAUTHORIZED, "token payload is not valid") from None
        if claims.exp < (time.time() if now is None else now):
            raise ProtocolError(ErrorCode.UNAUTHORIZED, "token expired: sign in again")
        return claims


def load_or_create_secret(data_dir: Path) -> bytes:
    """OMNITILL_SECRET wins; otherwise a generated secret kept in the data dir."""
    env = os.environ.get("OMNITILL_SECRET")
    if env:
        return env.encode()
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_bytes().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secret)
    return secret


# --- policy ---------------------------------------------------------------------------

_STAFF: frozenset[Role] = frozenset({"cashier", "manager", "admin"})
_READ_STOCK: frozenset[Role] = frozenset(ROLES)

# Which roles may run which command. Location-scoped tokens may only act on their location
# (checked by check_command against the command's location ids).
_COMMAND_ROLES: dict[str, frozenset[Role]] = {
    "stock.receive": frozenset({"manager", "admin", "hub"}),
    "stock.adjust": frozenset({"manager", "admin"}),
    "stock.count": frozenset({"cashier", "manager", "admin", "hub"}),
    "stock.sale": frozenset({"cashier", "manager", "admin", "hub"}),
    "stock.return": frozenset({"cashier", "manager", "admin", "hub"}),
    "stock.set_safety": frozenset({"manager", "admin"}),
    "hold.place": frozenset({"kiosk", "cashier", "manager", "admin"}),
    "hold.extend": frozenset({"cashier", "manager", "admin"}),
    "hold.release": frozenset({"kiosk", "cashier", "manager", "admin"}),
    "hold.commit": frozenset({"cashier", "manager", "admin"}),
    "hold.pickup": frozenset({"cashier", "manager", "admin"}),
    "stock.fulfil": frozenset({"cashier", "manager", "admin"}),
    "stock.uncommit": frozenset({"cashier", "manager", "admin"}),
    "transfer.create": frozenset({"manager", "admin"}),
    "transfer.ship": frozenset({"cashier", "manager", "admin"}),
    "transfer.receive": frozenset({"cashier", "manager", "admin"}),
    "transfer.cancel": frozenset({"manager", "admin"}),
    # Orders (actors/orders). A web shop creates orders with a storefront token; a customer
    # may say "I'm here" (curbside) from their phone.
    "order.create": frozenset({"storefront", "kiosk", "cashier", "manager", "admin"}),
    "order.pay": frozenset({"cashier", "manager", "admin", "hub"}),
    "order.pick": frozenset({"cashier", "manager", "admin"}),
    "order.ready": frozenset({"cashier", "manager", "admin"}),
    "order.arrived": frozenset({"storefront", "kiosk", "cashier", "manager", "admin"}),
    "order.pickup": frozenset({"cashier", "manager", "admin"}),
    "order.pack": frozenset({"cashier", "manager", "admin"}),
    "order.ship": frozenset({"cashier", "manager", "admin"}),
    "order.deliver": frozenset({"manager", "admin"}),
    "order.cancel": frozenset({"cashier", "manager", "admin"}),
    "order.return": frozenset({"cashier", "manager", "admin"}),
    "order.resolve": frozenset({"cashier", "manager", "admin"}),
}

# Commands where a location-scoped token may name another location (endless aisle: a cashier
# or kiosk places a hold at a nearby store for a customer standing here).
_CROSS_LOCATION_OK: frozenset[str] = frozenset({"hold.place", "transfer.receive"})


# Commands a public (storefront) token may run only on its own order: the customer token
# minted at order creation has the subject "order:{id}"; the widget's public token does not.
_OWN_ORDER_ONLY: frozenset[str] = frozenset({"order.arrived"})


def check_command(
    claims: Claims, name: str, location_ids: tuple[str, ...] = (), order_id: str | None = None
) -> None:
    roles = _COMMAND_ROLES.get(name)
    if roles is None:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown command {name!r}")
    if claims.role not in roles:
        raise ProtocolError(
            ErrorCode.FORBIDDEN, f"role {claims.role!r} may not run {name!r}", {"command": name}
        )
    if claims.role == "storefront" and name in _OWN_ORDER_ONLY and claims.sub != f"order:{order_id}":
        raise ProtocolError(
            ErrorCode.FORBIDDEN,
            f"{name!r} needs this order's own customer token",
            {"command": name, "order_id": order_id},
        )
    if claims.loc is not None and name not in _CROSS_LOCATION_OK:
        for loc in location_ids:
            if loc != claims.loc:
                raise ProtocolError(
                    ErrorCode.FORBIDDEN,
                    f"this token is scoped to location {claims.loc!r}, not {loc!r}",
                    {"command": name, "location_id": loc},
                )


def check_topic(claims: Claims, topic: Topic) -> None:
    """Per-topic read access. Storefront (public) sees only public availability."""
    role = claims.role
    if isinstance(topic, StockTopic | NearTopic | PromotionsTopic):
        if role in _READ_STOCK:
            return
    elif isinstance(topic, LocationTopic):
        # The pickup queue carries customer references: staff, kiosks and hubs only, and a
        # location-scoped token sees its own store's queue.
        if role in _STAFF | {"kiosk", "hub"} and (
            claims.loc is None or claims.loc == topic.location_id or role in ("manager", "admin")
        ):
            return
    elif isinstance(topic, OrderTopic):
        if role in _STAFF | {"kiosk", "hub"} or claims.sub == f"order:{topic.order_id}":
            return
    elif isinstance(topic, OpsTopic):
        if role in ("manager", "admin"):
            return
    raise ProtocolError(ErrorCode.FORBIDDEN, f"role {role!r} may not read {topic.name!r}")
