"""The order state machine, driven against the real (pure) SKU-pool domain."""

from __future__ import annotations

from actors.orders import domain as od
from tests.orders.order_sim import World

STOCK = {("S1", "A"): 5, ("S2", "A"): 2, ("S1", "B"): 3, ("S2", "B"): 4, ("S3", "C"): 10}


def create(w: World, **kw: object) -> tuple[str, od.Decision]:
    args = {"lines": [{"sku": "S1", "qty": 2}, {"sku": "S2", "qty": 1}], "pickup_location": "A"}
    args.update(kw)
    w.n += 1
    op = f"create-{w.n}"
    d = w.command("order.create", args, op_id=op)
    return od.order_id_for(op), d


def test_bopis_happy_path() -> None:
    w = World(STOCK)
    oid, d = create(w)
    assert d.rejection is None, d.rejection
    o = w.orders[oid]
    assert o.status == "placed" and len(o.pickup_code) == 6 and o.pickup_code.isdigit()
    assert w.pools["S1"].balances["A"].reserved == 2
    for name in ("order.pick", "order.ready"):
        assert w.command(name, {"order_id": oid}).rejection is None
    assert o.status == "ready"
    d = w.command("order.pickup", {"order_id": oid, "pickup_code": o.pickup_code})
    assert d.rejection is None, d.rejection
    assert o.status == "picked_up"
    assert w.pools["S1"].balances["A"].on_hand == 3 and w.pools["S1"].balances["A"].reserved == 0
    w.check()


def test_create_is_deterministic_and_duplicate_skus_merge() -> None:
    w = World(STOCK)
    d = w.command(
        "order.create",
        {"lines": [{"sku": "S1", "qty": 1}, {"sku": "S1", "qty": 1}], "pickup_location": "A"},
        op_id="same-op",
    )
    oid = od.order_id_for("same-op")
    assert d.rejection is None and oid.startswith("O") and len(w.orders[oid].lines) == 1
    assert w.orders[oid].lines[0].qty == 2
    assert od.pickup_code_for("same-op") == w.orders[oid].pickup_code


def test_bad_input_is_rejected_with_clear_codes() -> None:
    w = World(STOCK)
    assert create(w, lines=[])[1].rejection.code == "invalid_args"  # type: ignore[union-attr]
    assert create(w, lines=[{"sku": "NOPE", "qty": 1}])[1].rejection.code == "not_found"  # type: ignore[union-attr]
    r = create(
        w,
        lines=[{"sku": "S1", "qty": 50}],
        pickup_location=None,
        ship_to={"address": "1 Main", "lat": 45.5, "lon": -122.6},
    )[1].rejection
    assert r is not None and r.code == "insufficient_stock"
    assert r.details["available"]["S1"] == {"A": 5, "B": 3}
    r = create(w, lines=[{"sku": "S3", "qty": 1}])[1].rejection
    assert r is not None and r.code == "insufficient_stock" and r.details["suggest"] == ["C"]
    oid, _ = create(w)
    r = w.command("order.ship", {"order_id": oid, "carrier": "ups", "tracking": "1Z"}).rejection
    assert r is not None and r.code == "conflict"
    r = w.command("order.deliver", {"order_id": oid}).rejection
    assert r is not None and r.code == "conflict" and "placed" in r.message
    r = w.command(
        "order.return", {"order_id": oid, "location_id": "B", "lines": [{"line": 1, "qty": 1}]}
    ).rejection
    assert r is not None and r.code == "conflict"
    r = w.command("order.pick", {"order_id": "Onope"}).rejection
    assert r is not None and r.code == "not_found"
    w.check()


def test_partial_pickup_then_cancel_rest() -> None:
    w = World(STOCK)
    oid, _ = create(w)
    d = w.command("order.pickup", {"order_id": oid, "lines": [{"line": 1, "qty": 1}]})
    assert d.rejection is None, d.rejection
    o = w.orders[oid]
    assert o.status == "partially_picked_up"
    bal = w.pools["S1"].balances["A"]
    assert (bal.on_hand, bal.reserved, bal.committed) == (4, 0, 1)
    r = w.command("order.pickup", {"order_id": oid, "lines": [{"line": 1, "qty": 5}]}).rejection
    assert r is not None and "only 1 left" in r.message
    assert w.command("order.cancel", {"order_id": oid}).rejection is None
    assert o.status == "picked_up" and o.lines[0].cancelled == 1 and o.lines[1].cancelled == 1
    assert w.pools["S1"].balances["A"].committed == 0 and w.pools["S2"].balances["A"].reserved == 0
    w.check()


def test_ship_split_cart_commit_ship_deliver_return() -> None:
    w = World(STOCK)
    oid, d = create(
        w,
        lines=[{"sku": "S1", "qty": 7}, {"sku": "S3", "qty": 1}],
        pickup_location=None,
        ship_to={"address": "1 Main", "lat": 45.52, "lon": -122.68},
    )
    assert d.rejection is None, d.rejection
    o = w.orders[oid]
    assert {(a.sku, a.location_id, a.qty, a.state) for a in o.allocs.values()} == {
        ("S1", "A", 5, "committed"),
        ("S1", "B", 2, "committed"),
        ("S3", "C", 1, "committed"),
    }
    assert (
        w.command("order.ship", {"order_id": oid, "carrier": "ups", "tracking": "1Z9"}).rejection
        is None
    )
    assert o.status == "shipped" and o.tracking == "1Z9"
    assert w.pools["S1"].balances["A"].on_hand == 0 and w.pools["S1"].balances["B"].on_hand == 1
    assert w.command("order.deliver", {"order_id": oid}).rejection is None
    d = w.command(
        "order.return",
        {
            "order_id": oid,
            "location_id": "B",
            "lines": [{"line": 1, "qty": 2, "reason": "damaged"}, {"line": 1, "qty": 1}],
        },
    )
    assert d.rejection is None, d.rejection
    assert d.result["refund_due_cents"] == 3000 and o.refund_due_cents == 3000
    bal = w.pools["S1"].balances["B"]
    assert (bal.on_hand, bal.unsellable) == (4, 2)
    r = w.command(
        "order.return", {"order_id": oid, "location_id": "A", "lines": [{"line": 1, "qty": 5}]}
    ).rejection
    assert r is not None and r.code == "conflict" and r.details["returnable"] == 4
    w.check()


def test_packing_a_ship_order_keeps_it_open_until_it_ships_or_is_cancelled() -> None:
    w = World(STOCK)
    ship_to = {"address": "1 Main", "lat": 45.52, "lon": -122.68}
    oid, d = create(w, lines=[{"sku": "S3", "qty": 1}], pickup_location=None, ship_to=ship_to)
    assert d.rejection is None, d.rejection
    o = w.orders[oid]
    assert w.command("order.pick", {"order_id": oid}).rejection is None
    assert w.command("order.pack", {"order_id": oid, "parcels": 2}).rejection is None
    assert (o.status, o.parcels, o.weight_g) == ("packed", 2, 0) and o.status in od.OPEN_STATUSES
    assert w.command("order.pack", {"order_id": oid, "weight_g": 900}).rejection is None  # re-pack
    assert (o.parcels, o.weight_g) == (1, 900) and "packed" in o.times
    assert w.command("order.pick", {"order_id": oid}).rejection.code == "conflict"  # type: ignore[union-attr]
    # A packed order can still be cancelled: its stock goes back.
    committed = w.pools["S3"].balances["C"].committed
    assert w.command("order.cancel", {"order_id": oid}).rejection is None
    assert o.status == "cancelled" and w.pools["S3"].balances["C"].committed == committed - 1
    # Pickup orders are made ready, not packed.
    pid, _ = create(w, lines=[{"sku": "S1", "qty": 1}], pickup_location="A")
    r = w.command("order.pack", {"order_id": pid}).rejection
    assert r is not None and r.code == "conflict" and "only ship orders" in r.message
    w.check()


def test_returning_the_collected_line_keeps_a_partial_pickup_open() -> None:
    """Found by the lifecycle property: a partial pickup whose collected line came back was
    marked "returned" (closed) while its other line still waited at the counter, so that
    hold's later expiry was ignored and the pool and the order disagreed."""
    w = World(STOCK)
    oid, d = create(w)
    assert d.rejection is None, d.rejection
    o = w.orders[oid]
    assert w.command("order.pickup", {"order_id": oid, "lines": [{"line": 1, "qty": 2}]}).rejection is None
    assert o.status == "partially_picked_up"
    d = w.command(
        "order.return", {"order_id": oid, "location_id": "B", "lines": [{"line": 1, "qty": 2}]}
    )
    assert d.rejection is None, d.rejection
    assert o.status == "partially_picked_up"  # line 2 is still held for the customer
    w.check()
    w.expire_all()  # the open hold expires: the order hears of it (it is still open)
    w.check()
    assert o.status != "returned"
    # Everything collected and everything brought back: that closes an order as "returned".
    oid2, _ = create(w)
    o2 = w.orders[oid2]
    assert w.command("order.pickup", {"order_id": oid2, "pickup_code": o2.pickup_code}).rejection is None
    lines = [{"line": 1, "qty": 2}, {"line": 2, "qty": 1}]
    d = w.command("order.return", {"order_id": oid2, "location_id": "A", "lines": lines})
    assert d.rejection is None, d.rejection
    assert o2.status == "returned"
    w.check()


def test_cancel_releases_everything_and_is_final() -> None:
    w = World(STOCK)
    oid, _ = create(w)
    assert w.command("order.cancel", {"order_id": oid, "reason": "changed mind"}).rejection is None
    assert w.orders[oid].status == "cancelled"
    assert w.promised_by(oid) == {}
    r = w.command("order.cancel", {"order_id": oid}).rejection
    assert r is not None and r.code == "conflict" and "cancelled" in r.message
    w.check()


def test_curbside_only_where_offered() -> None:
    w = World(STOCK)
    oid, _ = create(w)
    assert w.command("order.arrived", {"order_id": oid, "bay": "4"}).rejection is None
    assert w.orders[oid].bay == "4"
    oid2, _ = create(w, pickup_location="B")
    r = w.command("order.arrived", {"order_id": oid2, "bay": "1"}).rejection
    assert r is not None and "curbside" in r.message


def test_offline_sale_conflict_reroutes_or_flags() -> None:
    w = World({("S1", "A"): 2, ("S1", "B"): 2})
    oid, _ = create(w, lines=[{"sku": "S1", "qty": 2}])
    w.sale("S1", "A", 2)  # sold offline at A: the hold is uncovered
    o = w.orders[oid]
    exc = next(iter(o.exceptions.values()))
    assert exc.kind == "stock_conflict" and exc.resolution == "rerouted"
    assert {a.location_id for a in o.allocs.values() if a.outstanding} == {"B"}
    w.check()
    w.sale("S1", "B", 2)  # nowhere left: flagged for staff
    open_exc = [e for e in o.exceptions.values() if not e.resolution]
    assert len(open_exc) == 1 and open_exc[0].location_id == "B"
    r = w.command("order.ready", {"order_id": oid}).rejection
    assert r is not None and "exceptions" in r.message
    d = w.command(
        "order.resolve",
        {"order_id": oid, "exception_id": open_exc[0].exception_id, "action": "cancel_line"},
    )
    assert d.rejection is None and o.status == "cancelled"
    w.check()


def test_hold_expiry_cancels_by_default_and_reroutes_when_configured() -> None:
    w = World(STOCK)
    oid, _ = create(w)
    w.expire_all()
    assert w.orders[oid].status == "cancelled"
    w.check()
    w2 = World(STOCK, od.OrderPolicy(on_hold_expiry="reroute"))
    oid2, _ = create(w2)
    w2.expire_all()
    o = w2.orders[oid2]
    assert o.status == "placed" and all(
        a.state == "held" for a in o.allocs.values() if a.outstanding
    )
    w2.check()


def test_failed_hold_compensates_all_or_nothing() -> None:
    w = World(STOCK)
    # Availability says A has the cart, but a competing hold lands between routing and holding.
    oid = od.order_id_for("race")
    state = w.orders.setdefault(oid, od.initial(oid))
    import msgspec

    from protocol.orders import OrderCreateArgs

    args = msgspec.convert(
        {"lines": [{"sku": "S1", "qty": 2}, {"sku": "S2", "qty": 2}], "pickup_location": "A"},
        OrderCreateArgs,
    )
    d = od.decide(state, "order.create", args, w.ctx("race"))
    for e in d.events:
        od.evolve(state, e)
    from protocol.commands import HoldPlaceArgs

    assert w.inv("S2", "hold.place", HoldPlaceArgs(sku="S2", location_id="A", qty=1)).ok
    from actors.inventory import domain as inv

    while state.pending is not None:
        results = [
            w.inv(
                s.sku, s.name, msgspec.convert(s.args, inv.INVENTORY_COMMAND_ARGS[s.name]), s.op_id
            )
            for s in state.pending.steps
        ]
        d = od.advance(state, results, w.ctx("race"))
        for e in d.events:
            od.evolve(state, e)
    assert state.status == "rejected" and d.rejection is not None
    assert d.rejection.code == "insufficient_stock"
    assert d.rejection.details["available"]["S2"] == {"A": 1, "B": 4}
    assert w.pools["S1"].balances["A"].reserved == 0
    w.check()
