"""Hypothesis: whatever path orders take, stock an order held is given back exactly once,
a cancelled order holds nothing, and per line fulfilled + cancelled <= ordered, returned <=
fulfilled. Orders race each other and offline sales over one small network."""

from __future__ import annotations

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from actors.orders import domain as od
from actors.orders.routing import RoutingConfig
from protocol.commands import HoldPlaceArgs
from tests.orders.order_sim import PRICES, SITES, World, carts

SKUS = sorted(PRICES)
LOCS = sorted(SITES)

cart = carts
destination = st.one_of(
    st.builds(lambda loc: {"pickup_location": loc}, st.sampled_from(LOCS)),
    st.just({"ship_to": {"address": "1 Main", "lat": 45.55, "lon": -122.7}}),
)
# Other customers' holds landing between routing and holding (a create may re-plan).
races = st.lists(
    st.tuples(st.sampled_from(SKUS), st.sampled_from(LOCS), st.integers(1, 4)), max_size=2
)
create = st.tuples(st.just("create"), cart, destination, races)
other = st.one_of(
    st.tuples(
        st.sampled_from(["order.pick", "order.ready", "order.pack", "order.cancel", "order.deliver"]),
        st.integers(0, 5),
    ),
    st.tuples(st.just("order.pickup"), st.integers(0, 5), st.integers(1, 3), st.integers(1, 4)),
    st.tuples(st.just("order.ship"), st.integers(0, 5)),
    st.tuples(
        st.just("order.return"),
        st.integers(0, 5),
        st.integers(1, 3),
        st.integers(1, 3),
        st.sampled_from(LOCS),
    ),
    st.tuples(st.just("sale"), st.sampled_from(SKUS), st.sampled_from(LOCS), st.integers(1, 6)),
    st.tuples(st.just("expire")),
    st.tuples(
        st.just("resolve"),
        st.integers(0, 5),
        st.sampled_from(["reroute", "cancel_line", "dismiss"]),
    ),
)
action = st.one_of(create, other)  # about half the actions create an order
stock = st.fixed_dictionaries({(sku, loc): st.integers(0, 10) for sku in SKUS for loc in LOCS})
policy = st.builds(
    od.OrderPolicy,
    routing=st.builds(
        RoutingConfig,
        rules=st.permutations(["fewest_shipments", "closest", "prefer_stores"]).map(tuple),
    ),
    on_hold_expiry=st.sampled_from(["cancel", "reroute"]),
    auto_reroute=st.booleans(),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stock=stock, actions=st.lists(action, min_size=8, max_size=40), pol=policy)
def test_order_invariants_hold_on_every_path(
    stock: dict[tuple[str, str], int], actions: list[tuple], pol: od.OrderPolicy
) -> None:  # type: ignore[type-arg]
    w = World(stock, pol)
    ids: list[str] = []

    def pick(i: int) -> str | None:
        return ids[i % len(ids)] if ids else None

    for act in actions:
        kind = act[0]
        if kind == "create":
            w.n += 1
            op = f"create-{w.n}"
            takes = act[3]

            def race(n: int, takes: list[tuple[str, str, int]] = takes) -> None:
                for sku, loc, qty in takes if n == 0 else []:
                    w.inv(sku, "hold.place", HoldPlaceArgs(sku=sku, location_id=loc, qty=qty))

            w.command("order.create", {"lines": act[1], **act[2]}, op_id=op, race=race)
            if od.order_id_for(op) in w.orders and w.orders[od.order_id_for(op)].status != "new":
                ids.append(od.order_id_for(op))
        elif kind == "sale":
            w.sale(act[1], act[2], act[3])
        elif kind == "expire":
            w.expire_all()
        elif (oid := pick(act[1])) is None:
            continue
        elif kind == "order.pickup":
            w.command(kind, {"order_id": oid, "lines": [{"line": act[2], "qty": act[3]}]})
        elif kind == "order.ship":
            w.command(kind, {"order_id": oid, "carrier": "ups", "tracking": "T"})
        elif kind == "order.return":
            w.command(
                kind,
                {
                    "order_id": oid,
                    "location_id": act[4],
                    "lines": [{"line": act[2], "qty": act[3]}],
                },
            )
        elif kind == "resolve":
            open_exc = [e for e in w.orders[oid].exceptions.values() if not e.resolution]
            if open_exc:
                w.command(
                    "order.resolve",
                    {"order_id": oid, "exception_id": open_exc[0].exception_id, "action": act[2]},
                )
        else:
            w.command(kind, {"order_id": oid})
        w.check()
    for oid in ids:
        event(f"status {w.orders[oid].status}")
        if any(a.state == "planned" and a.released for a in w.orders[oid].allocs.values()):
            event("re-planned")
        for e in w.orders[oid].exceptions.values():
            event(f"exception {e.kind} {e.resolution or 'open'}")
    # Cancel everything still open: nothing may stay promised afterwards.
    for oid in ids:
        if w.orders[oid].status in od.OPEN_STATUSES:
            d = w.command("order.cancel", {"order_id": oid})
            assert d.rejection is None, d.rejection
            assert w.promised_by(oid) == {}
    w.check()
    for sku, pool in w.pools.items():
        for loc, bal in pool.balances.items():
            assert bal.reserved >= 0 and bal.committed >= 0, (sku, loc)
