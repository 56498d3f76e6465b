"""Command dispatch: one path for WebSocket `command` frames and REST calls.

decode args -> check role and location scope -> route to the owning actor by key -> ask with a
timeout -> map the outcome to an ack result or a ProtocolError. Domains register a CommandSpec
per command name; the dispatcher knows nothing about stock or orders.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from protocol import ErrorCode, ProtocolError, decode_args

from .auth import Claims, check_command
from .metrics import Metrics
from .runtime import ActorCrashed, ActorStopped, AskTimeout, Overloaded

__all__ = ["CommandMsg", "CommandSpec", "Dispatcher", "Outcome", "RouteMiss"]

_enc = msgspec.msgpack.Encoder(order="sorted")


class RouteMiss(Exception):
    """Routing found nothing yet; the read models may be behind (cluster): await, then retry."""


class CommandMsg(msgspec.Struct, frozen=True):
    """What an actor receives for a command (already validated and authorized)."""

    op_id: str
    name: str
    args: Any  # the command's args Struct
    payload_hash: str
    now: float
    actor: str  # claims.sub, for the audit trail


class Outcome(msgspec.Struct, frozen=True, gc=False):
    """An actor's answer to a CommandMsg; stored in the journal's op table for retries.

    gc=False: plain data that can never be part of a reference cycle, and SKU pools keep
    thousands of them (recent op outcomes): untracked, the cycle collector never walks them."""

    ok: bool
    result: dict[str, Any] = {}
    code: str = ""
    message: str = ""
    details: dict[str, Any] = {}


class CommandSpec(msgspec.Struct, frozen=True):
    name: str
    args_type: type
    # Actor key that owns this command, e.g. "sku:ABC". May raise ProtocolError(not_found).
    route: Callable[[Any], str]
    # Location ids the command touches (for location-scoped tokens).
    locations: Callable[[Any], tuple[str, ...]] = lambda _args: ()
    # Optional extra validation against read models (unknown SKU/location -> not_found).
    validate: Callable[[Any], None] | None = None
    # Routing that needs the op_id too (an order's id is derived from its create op_id).
    route_op: Callable[[Any, str], str] | None = None


def payload_hash(name: str, args: object) -> str:
    return hashlib.blake2b(name.encode() + _enc.encode(args), digest_size=12).hexdigest()


class Dispatcher:
    def __init__(
        self,
        ask: Callable[[str, Any, float], Awaitable[Any]],
        metrics: Metrics,
        *,
        timeout_s: float = 5.0,
    ) -> None:
        self._ask = ask
        self._metrics = metrics
        self._timeout = timeout_s
        self._specs: dict[str, CommandSpec] = {}
        # Cluster: when an id-only command's route is not found (a hold placed through another
        # node moments ago), wait for this node's read models to catch up, then route again.
        self.on_route_miss: Callable[[], Awaitable[None]] | None = None

    def register(self, spec: CommandSpec) -> None:
        self._specs[spec.name] = spec

    def names(self) -> list[str]:
        return sorted(self._specs)

    def spec(self, name: str) -> CommandSpec:
        spec = self._specs.get(name)
        if spec is None:
            raise ProtocolError(
                ErrorCode.UNKNOWN_TYPE,
                f"unknown command {name!r}",
                {"known": self.names()},
            )
        return spec

    def prepare(
        self,
        claims: Claims,
        op_id: str,
        name: str,
        raw_args: dict[str, Any],
        *,
        may_miss: bool = True,
    ) -> tuple[str, CommandMsg]:
        """The synchronous half of a command: decode, authorize, validate, route.

        Returns (actor key, message) or raises ProtocolError (the reject); raises RouteMiss when
        routing needs the read models to catch up first (cluster), which only `execute` awaits.
        """
        if not op_id or len(op_id) > 128:
            raise ProtocolError(ErrorCode.INVALID_ARGS, "op_id must be 1..128 characters")
        spec = self.spec(name)
        args: Any = decode_args(raw_args, spec.args_type)
        check_command(claims, name, spec.locations(args), getattr(args, "order_id", None))
        if spec.validate is not None:
            spec.validate(args)
        try:
            key = spec.route_op(args, op_id) if spec.route_op else spec.route(args)
        except ProtocolError as exc:
            if exc.code != ErrorCode.NOT_FOUND or self.on_route_miss is None or not may_miss:
                raise
            raise RouteMiss from exc
        return key, CommandMsg(
            op_id=op_id,
            name=name,
            args=args,
            payload_hash=payload_hash(name, args),
            now=time.time(),
            actor=claims.sub,
        )

    def finish(self, outcome: Any, error: BaseException | None, started: float) -> dict[str, Any]:
        """Map an actor's answer (or the ask's failure) to the ack result, or raise the
        ProtocolError of the reject. Counts the command and its latency."""
        self._metrics.commands += 1
        self._metrics.command_latency.observe(time.perf_counter() - started)
        try:
            if error is not None:
                if isinstance(error, (Overloaded, AskTimeout)):
                    raise ProtocolError(
                        ErrorCode.UNAVAILABLE,
                        "busy: retry with the same op_id (a retry never applies a command twice)",
                    ) from None
                if isinstance(error, (ActorCrashed, ActorStopped)):
                    raise ProtocolError(
                        ErrorCode.INTERNAL,
                        "the owner of this command restarted: retry with the same op_id",
                    ) from None
                raise error
            if not isinstance(outcome, Outcome):
                raise ProtocolError(ErrorCode.INTERNAL, "unexpected actor reply")
            if not outcome.ok:
                raise ProtocolError(ErrorCode(outcome.code), outcome.message, outcome.details)
            return outcome.result
        except ProtocolError as exc:
            self._metrics.rejects[exc.code.value] += 1
            raise

    def rejected(self, exc: ProtocolError, started: float) -> None:
        """Count a command refused before it reached an actor."""
        self._metrics.commands += 1
        self._metrics.rejects[exc.code.value] += 1
        self._metrics.command_latency.observe(time.perf_counter() - started)

    async def execute(
        self, claims: Claims, op_id: str, name: str, raw_args: dict[str, Any]
    ) -> dict[str, Any]:
        """Run one command; returns the ack result or raises ProtocolError (the reject)."""
        started = time.perf_counter()
        try:
            try:
                key, msg = self.prepare(claims, op_id, name, raw_args)
            except RouteMiss:
                assert self.on_route_miss is not None
                await self.on_route_miss()
                # A second miss is the client's not_found.
                key, msg = self.prepare(claims, op_id, name, raw_args, may_miss=False)
        except ProtocolError as exc:
            self.rejected(exc, started)
            raise
        return await self.ask_prepared(key, msg, started)

    async def ask_prepared(self, key: str, msg: CommandMsg, started: float) -> dict[str, Any]:
        """The asynchronous half: ask the owner (with the timeout) and map its answer."""
        try:
            outcome = await self._ask(key, msg, self._timeout)
        except (Overloaded, AskTimeout, ActorCrashed, ActorStopped) as exc:
            return self.finish(None, exc, started)
        return self.finish(outcome, None, started)
