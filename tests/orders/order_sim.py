"""Drive the pure order domain against the pure inventory domain (no trio, no I/O).

`World` plays the shell: it decides a command, evolves the events, runs every saga step
through the real SKU-pool `decide`/`evolve` (idempotent by op_id, as the journal makes it)
and advances the saga until it finishes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from hypothesis import strategies as st

from actors.inventory import domain as inv
from actors.inventory.events import StockConflict
from actors.orders import domain as od
from actors.orders.routing import Site
from protocol.commands import ReceiveArgs, SaleArgs
from protocol.orders import ORDER_COMMAND_ARGS

SITES: dict[str, Site] = {
    "A": Site("A", 45.52, -122.68, "store", pickup_enabled=True),
    "B": Site("B", 45.50, -122.60, "store", pickup_enabled=True),
    "C": Site("C", 45.60, -122.80, "store", pickup_enabled=True),
}
INV_LOCATIONS = {
    k: inv.LocationInfo(k, k, pickup_enabled=s.pickup_enabled) for k, s in SITES.items()
}
PRICES = {"S1": 1000, "S2": 2500, "S3": 500}

# A cart for the property tests: 1-3 lines over the world's SKUs.
carts = st.lists(
    st.fixed_dictionaries({"sku": st.sampled_from(sorted(PRICES)), "qty": st.integers(1, 4)}),
    min_size=1,
    max_size=3,
)


class World:
    def __init__(
        self, stock: dict[tuple[str, str], int], policy: od.OrderPolicy | None = None
    ) -> None:
        self.now = 1_000_000.0
        self.pools: dict[str, inv.SkuPool] = {sku: inv.initial(sku) for sku in PRICES}
        self.ops: dict[str, od.StepResult] = {}
        self.orders: dict[str, od.Order] = {}
        self.policy = policy or od.OrderPolicy()
        self.released: dict[str, int] = {}  # hold_id -> times released/expired/picked/committed
        self.n = 0
        self.conflicts: list[tuple[str, StockConflict]] = []
        for (sku, loc), qty in stock.items():
            self.inv(sku, "stock.receive", ReceiveArgs(sku=sku, location_id=loc, qty=qty))

    # --- inventory ------------------------------------------------------------------------

    def inv(
        self, sku: str, name: str, args: msgspec.Struct, op_id: str | None = None
    ) -> od.StepResult:
        if op_id is None:
            self.n += 1
            op_id = f"w{self.n}"
        if op_id in self.ops:
            return self.ops[op_id]
        pool = self.pools[sku]
        d = inv.decide(
            pool, name, args, inv.Ctx(now=self.now, op_id=op_id, locations=INV_LOCATIONS)
        )
        if isinstance(d, inv.Rejection):
            res = od.StepResult(False, code=d.code.value, message=d.message, details=d.details)
        else:
            events, result = d
            for e in events:
                hold_id = getattr(e, "hold_id", None)
                if (
                    hold_id
                    and type(e).__name__ != "HoldPlaced"
                    and type(e).__name__ != "HoldExtended"
                ):
                    self.released[hold_id] = self.released.get(hold_id, 0) + 1
                inv.evolve(pool, e)
                if isinstance(e, StockConflict):
                    self.conflicts.append((sku, e))
            res = od.StepResult(True, result=result)
        self.ops[op_id] = res
        return res

    def availability(self) -> dict[str, dict[str, int]]:
        return {
            sku: {loc: b.available for loc, b in p.balances.items()}
            for sku, p in self.pools.items()
        }

    def ctx(self, op_id: str) -> od.Ctx:
        return od.Ctx(
            now=self.now,
            op_id=op_id,
            payload_hash="h",
            sites=SITES,
            curbside=frozenset({"A"}),
            availability=self.availability(),
            prices=PRICES,
            policy=self.policy,
        )

    # --- orders ---------------------------------------------------------------------------

    def command(
        self,
        name: str,
        args: dict[str, Any],
        op_id: str | None = None,
        order_id: str | None = None,
        race: Callable[[int], None] | None = None,
    ) -> od.Decision:
        """Decide, then run the saga to its end. `race(round)` runs before each round of
        steps: what it does to the pools lands after the order looked at availability (a
        racing order, or a read model a moment behind)."""
        if op_id is None:
            self.n += 1
            op_id = f"c{self.n}"
        if name == "order.create":
            order_id = od.order_id_for(op_id)
            typed: msgspec.Struct = msgspec.convert(args, ORDER_COMMAND_ARGS[name])
        elif name == "order.flag":
            typed = msgspec.convert(args, od.FlagArgs)
        else:
            order_id = order_id or args["order_id"]
            typed = msgspec.convert(args, ORDER_COMMAND_ARGS[name])
        assert order_id is not None
        state = self.orders.setdefault(order_id, od.initial(order_id))
        decision = od.decide(state, name, typed, self.ctx(op_id))
        final = decision
        self._apply(state, decision)
        rounds = 0
        while state.pending is not None:
            if race is not None:
                race(rounds)
            rounds += 1
            results = [
                self.inv(
                    s.sku,
                    s.name,
                    msgspec.convert(s.args, inv.INVENTORY_COMMAND_ARGS[s.name]),
                    s.op_id,
                )
                for s in state.pending.steps
            ]
            final = od.advance(state, results, self.ctx(op_id))
            if not final.events:
                raise AssertionError(f"saga stuck: {results}")
            self._apply(state, final)
        return final

    def _apply(self, state: od.Order, d: od.Decision) -> None:
        for e in d.events:
            od.evolve(state, e)

    def expire_all(self) -> list[od.Decision]:
        """Advance the clock past every hold and expire them; tell the orders."""
        self.now += 15 * 24 * 3600
        out = []
        for sku, pool in self.pools.items():
            for hold_id in list(pool.holds):
                for e in inv.expire_due(pool, hold_id, self.now):
                    self.released[hold_id] = self.released.get(hold_id, 0) + 1
                    inv.evolve(pool, e)
                    h = e
                    ref = None
                    for o in self.orders.values():
                        if any(a.hold_id == hold_id for a in o.allocs.values()):
                            ref = o.order_id
                    if ref:
                        out.append(
                            self.command(
                                "order.flag",
                                {
                                    "kind": "hold_expired",
                                    "sku": sku,
                                    "location_id": h.location_id,
                                    "hold_id": hold_id,
                                },
                                order_id=ref,
                            )
                        )
        return out

    def sale(self, sku: str, loc: str, qty: int) -> None:
        self.conflicts = []
        self.inv(
            sku, "stock.sale", SaleArgs(sku=sku, location_id=loc, qty=qty, offline_at=self.now)
        )
        for csku, c in self.conflicts:
            refs = {self.pools[csku].holds[h].customer_ref: h for h in c.uncovered_hold_ids}
            for ref, hold_id in refs.items():
                self.command(
                    "order.flag",
                    {
                        "kind": "stock_conflict",
                        "sku": csku,
                        "location_id": c.location_id,
                        "hold_id": hold_id,
                    },
                    order_id=ref.removeprefix("order:"),
                )

    # --- invariants -----------------------------------------------------------------------

    def promised_by(self, order_id: str) -> dict[tuple[str, str], int]:
        """What the pools still promise this order, per (sku, location)."""
        out: dict[tuple[str, str], int] = {}
        for sku, pool in self.pools.items():
            for h in pool.holds.values():
                if h.customer_ref == f"order:{order_id}":
                    out[(sku, h.location_id)] = out.get((sku, h.location_id), 0) + h.qty
            for c in pool.commitments.values():
                if c.order_id == order_id:
                    out[(sku, c.location_id)] = out.get((sku, c.location_id), 0) + c.qty
        return out

    def outstanding_of(self, order: od.Order) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for a in order.allocs.values():
            if a.outstanding and a.state != "planned":
                out[(a.sku, a.location_id)] = out.get((a.sku, a.location_id), 0) + a.outstanding
        return out

    def check(self) -> None:
        for hold_id, n in self.released.items():
            assert n == 1, f"hold {hold_id} ended {n} times"
        for oid, order in self.orders.items():
            if order.pending is not None:
                continue
            assert self.promised_by(oid) == self.outstanding_of(order), (oid, order.status)
            if order.status in ("cancelled", "rejected"):
                assert self.promised_by(oid) == {}
                assert all(a.outstanding == 0 for a in order.allocs.values())
            for line in order.lines:
                fulfilled, _out, _ret = od.line_totals(order, line.line_no)
                assert fulfilled + line.cancelled <= line.qty
                assert line.returned <= fulfilled
                assert fulfilled + line.cancelled + _out == line.qty or order.status == "rejected"
