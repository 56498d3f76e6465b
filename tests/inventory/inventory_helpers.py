"""Small drivers shared by the inventory tests: run commands through decide + evolve."""

from __future__ import annotations

from typing import Any

import msgspec

from actors.inventory import (
    Ctx,
    Event,
    LocationInfo,
    Rejection,
    SkuPool,
    decide,
    evolve,
    initial,
)

SKU = "SKU-1"
LOCATIONS: dict[str, LocationInfo] = {
    "A": LocationInfo("A", "Store A", pickup_enabled=True, pickup_lead_s=900, kind="store"),
    "B": LocationInfo("B", "Store B", pickup_enabled=True, pickup_lead_s=0, kind="store"),
    "W": LocationInfo("W", "Warehouse", pickup_enabled=False, pickup_lead_s=0, kind="warehouse"),
}


class Pool:
    """A pool plus its event log; `run` decides and, when accepted, evolves."""

    def __init__(self, sku: str = SKU) -> None:
        self.state: SkuPool = initial(sku)
        self.log: list[Event] = []
        self.now = 1_000_000.0
        self._ops = 0

    def ctx(self, op_id: str | None = None) -> Ctx:
        if op_id is None:
            self._ops += 1
            op_id = f"op-{self._ops}"
        return Ctx(now=self.now, op_id=op_id, locations=LOCATIONS)

    def decide(
        self, name: str, args: msgspec.Struct, op_id: str | None = None
    ) -> tuple[list[Event], dict[str, Any]] | Rejection:
        return decide(self.state, name, args, self.ctx(op_id))

    def apply(self, events: list[Event]) -> None:
        for e in events:
            evolve(self.state, e)
            self.log.append(e)

    def run(self, name: str, args: msgspec.Struct, op_id: str | None = None) -> Any:
        """Decide and evolve; return the ack result or the Rejection."""
        out = self.decide(name, args, op_id)
        if isinstance(out, Rejection):
            return out
        events, result = out
        self.apply(events)
        return result

    def ok(self, name: str, args: msgspec.Struct, op_id: str | None = None) -> dict[str, Any]:
        out = self.run(name, args, op_id)
        assert not isinstance(out, Rejection), out
        assert isinstance(out, dict)
        return out
