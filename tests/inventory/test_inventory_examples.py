"""Example tests of the SKU pool: each rejection, each quantity effect, views, codecs, timers."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest
from inventory_helpers import SKU, Pool

from actors.inventory import (
    INVENTORY_COMMAND_ARGS,
    Allocated,
    FulfilArgs,
    HoldCommitted,
    HoldExpired,
    HoldExtended,
    HoldPlaced,
    HoldReleased,
    Rejection,
    StockConflict,
    UncommitArgs,
    active_timers,
    decode_event,
    decode_state,
    derive_id,
    encode_event,
    encode_state,
    evolve,
    expire_due,
    hold_id_from_timer,
    location_changes,
    location_view,
    stock_changes,
    stock_view,
    timer_changes,
)
from protocol.commands import (
    COMMAND_ARGS,
    AdjustArgs,
    CountArgs,
    HoldCommitArgs,
    HoldExtendArgs,
    HoldPlaceArgs,
    HoldRefArgs,
    ReceiveArgs,
    ReturnArgs,
    SafetyStockArgs,
    SaleArgs,
    TransferCreateArgs,
    TransferRefArgs,
)
from protocol.errors import ErrorCode


def rejected(out: Any, code: ErrorCode) -> Rejection:
    assert isinstance(out, Rejection), out
    assert out.code == code, out
    return out


def bal(pool: Pool, loc: str = "A") -> dict[str, int]:
    return stock_view(pool.state)[loc]  # type: ignore[no-any-return]


@pytest.fixture
def pool() -> Pool:
    p = Pool()
    p.ok("stock.receive", ReceiveArgs(SKU, "A", 10))
    p.ok("stock.receive", ReceiveArgs(SKU, "W", 50))
    return p


def place(pool: Pool, qty: int, loc: str = "A", ttl: int = 600) -> str:
    hold_id = pool.ok("hold.place", HoldPlaceArgs(SKU, loc, qty, ttl_s=ttl))["hold_id"]
    assert isinstance(hold_id, str)
    return hold_id


# --- command coverage -------------------------------------------------------------------------


def test_every_protocol_stock_hold_transfer_command_is_handled() -> None:
    ours = {n for n in COMMAND_ARGS if n.split(".")[0] in ("stock", "hold", "transfer")}
    assert ours <= INVENTORY_COMMAND_ARGS.keys()
    assert {"stock.fulfil", "stock.uncommit"} <= INVENTORY_COMMAND_ARGS.keys()


def test_unknown_command_and_wrong_args_type(pool: Pool) -> None:
    rejected(pool.decide("order.place", ReceiveArgs(SKU, "A", 1)), ErrorCode.INVALID_ARGS)
    rejected(pool.decide("stock.receive", SaleArgs(SKU, "A", 1)), ErrorCode.INVALID_ARGS)


def test_command_for_another_sku_is_invalid(pool: Pool) -> None:
    rejected(pool.decide("stock.receive", ReceiveArgs("OTHER", "A", 1)), ErrorCode.INVALID_ARGS)


# --- quantities -------------------------------------------------------------------------------


def test_receive_sale_return_quantities(pool: Pool) -> None:
    r = pool.ok("stock.sale", SaleArgs(SKU, "A", 3, register_id="R1"))
    assert r == {"sku": SKU, "location_id": "A", "balance": bal(pool)}
    assert bal(pool)["on_hand"] == 7
    pool.ok("stock.return", ReturnArgs(SKU, "A", 2, disposition="unsellable"))
    pool.ok("stock.return", ReturnArgs(SKU, "A", 1))
    b = bal(pool)
    assert (b["on_hand"], b["unsellable"], b["available"]) == (10, 2, 8)


def test_safety_stock_reduces_available(pool: Pool) -> None:
    pool.ok("stock.set_safety", SafetyStockArgs(SKU, "A", 4))
    assert bal(pool)["available"] == 6
    rejected(pool.decide("hold.place", HoldPlaceArgs(SKU, "A", 7)), ErrorCode.INSUFFICIENT_STOCK)
    place(pool, 6)


def test_count_records_variance_and_clamps_unsellable(pool: Pool) -> None:
    pool.ok("stock.adjust", AdjustArgs(SKU, "A", 3, "damage"))  # 3 sellable units now damaged
    assert (bal(pool)["on_hand"], bal(pool)["unsellable"]) == (10, 3)
    pool.ok("stock.count", CountArgs(SKU, "A", 2))
    ev = pool.log[-1]
    assert ev.variance == -8 and ev.counted == 2  # type: ignore[union-attr]
    assert (bal(pool)["on_hand"], bal(pool)["unsellable"]) == (2, 2)


def test_damage_disposal_and_rejections(pool: Pool) -> None:
    pool.ok("stock.adjust", AdjustArgs(SKU, "A", 4, "damage"))
    pool.ok("stock.adjust", AdjustArgs(SKU, "A", -3, "damage"))  # dispose of 3 damaged units
    assert (bal(pool)["on_hand"], bal(pool)["unsellable"]) == (7, 1)
    r = rejected(
        pool.decide("stock.adjust", AdjustArgs(SKU, "A", -2, "damage")), ErrorCode.INVALID_ARGS
    )
    assert r.details["unsellable"] == 1
    rejected(pool.decide("stock.adjust", AdjustArgs(SKU, "A", 7, "damage")), ErrorCode.INVALID_ARGS)


def test_adjust_that_makes_on_hand_negative_is_rejected(pool: Pool) -> None:
    r = rejected(
        pool.decide("stock.adjust", AdjustArgs(SKU, "A", -11, "shrink")), ErrorCode.INVALID_ARGS
    )
    assert r.details == {"on_hand": 10, "location_id": "A"}
    rejected(pool.decide("stock.adjust", AdjustArgs(SKU, "A", 0, "found")), ErrorCode.INVALID_ARGS)
    pool.ok("stock.adjust", AdjustArgs(SKU, "A", -10, "shrink"))
    assert bal(pool)["on_hand"] == 0


def test_found_stock_may_raise_a_negative_on_hand(pool: Pool) -> None:
    pool.ok("stock.sale", SaleArgs(SKU, "A", 13, offline_at=pool.now - 60))
    assert bal(pool)["on_hand"] == -3
    pool.ok("stock.adjust", AdjustArgs(SKU, "A", 1, "found"))  # still negative, but better
    assert bal(pool)["on_hand"] == -2


def test_unknown_location_is_not_found(pool: Pool) -> None:
    for name, args in [
        ("stock.receive", ReceiveArgs(SKU, "Z", 1)),
        ("stock.sale", SaleArgs(SKU, "Z", 1)),
        ("stock.set_safety", SafetyStockArgs(SKU, "Z", 1)),
        ("hold.place", HoldPlaceArgs(SKU, "Z", 1)),
        ("transfer.create", TransferCreateArgs(SKU, "A", "Z", 1)),
        ("transfer.create", TransferCreateArgs(SKU, "Z", "A", 1)),
    ]:
        r = rejected(pool.decide(name, args), ErrorCode.NOT_FOUND)
        assert r.details["location_id"] == "Z"


# --- holds ------------------------------------------------------------------------------------


def test_place_hold_result_and_quantities(pool: Pool) -> None:
    r = pool.ok("hold.place", HoldPlaceArgs(SKU, "A", 4, ttl_s=600, customer_ref="c1"), op_id="x")
    assert r == {
        "hold_id": derive_id("H", "x"),
        "sku": SKU,
        "location_id": "A",
        "qty": 4,
        "expires_at": pool.now + 600,
        "ready_at": pool.now + 900,
        "available": 6,
    }
    assert bal(pool)["reserved"] == 4 and bal(pool)["available"] == 6


def test_hold_above_availability_is_insufficient_stock(pool: Pool) -> None:
    place(pool, 8)
    r = rejected(
        pool.decide("hold.place", HoldPlaceArgs(SKU, "A", 3)), ErrorCode.INSUFFICIENT_STOCK
    )
    assert r.details == {"available": 2, "location_id": "A", "requested": 3}


def test_hold_at_location_without_pickup_is_conflict(pool: Pool) -> None:
    rejected(pool.decide("hold.place", HoldPlaceArgs(SKU, "W", 1)), ErrorCode.CONFLICT)


def test_ship_allocation_is_allowed_where_pickup_is_not(pool: Pool) -> None:
    # The warehouse offers no pickup: a pickup hold is refused, a ship allocation is not.
    r = rejected(pool.decide("hold.place", HoldPlaceArgs(SKU, "W", 1)), ErrorCode.CONFLICT)
    assert r.details == {"location_id": "W", "purpose": "pickup"}
    r2 = pool.ok("hold.place", HoldPlaceArgs(SKU, "W", 5, purpose="ship"), op_id="s")
    assert r2["hold_id"] == derive_id("H", "s") and r2["available"] == 45
    # Ship allocations are never collected: ready at once, whatever the pickup lead time.
    r3 = pool.ok("hold.place", HoldPlaceArgs(SKU, "A", 1, purpose="ship"))
    assert r3["ready_at"] == pool.now
    assert bal(pool, "W")["reserved"] == 5


def test_ship_allocation_still_never_exceeds_available(pool: Pool) -> None:
    pool.ok("stock.set_safety", SafetyStockArgs(SKU, "W", 45))
    r = rejected(
        pool.decide("hold.place", HoldPlaceArgs(SKU, "W", 6, purpose="ship")),
        ErrorCode.INSUFFICIENT_STOCK,
    )
    assert r.details["available"] == 5
    pool.ok("hold.place", HoldPlaceArgs(SKU, "W", 5, purpose="ship"))
    assert bal(pool, "W")["available"] == 0


def test_place_and_commit_in_one_step(pool: Pool) -> None:
    out = pool.decide(
        "hold.place", HoldPlaceArgs(SKU, "W", 3, purpose="ship", commit_order_id="O9"), op_id="pc"
    )
    assert not isinstance(out, Rejection)
    events, result = out
    hold_id = derive_id("H", "pc")
    # One fact, not a hold and its commit: a ship allocation never waits for a customer.
    assert [type(e) for e in events] == [Allocated]
    assert (events[0].hold_id, events[0].order_id, events[0].qty) == (hold_id, "O9", 3)
    assert result["state"] == "committed" and result["order_id"] == "O9"
    pool.apply(events)
    assert (bal(pool, "W")["reserved"], bal(pool, "W")["committed"]) == (0, 3)
    assert hold_id not in pool.state.holds and pool.state.closed_holds[hold_id] == "committed"
    assert pool.state.commitments["O9@W"].qty == 3
    # Nothing can expire: the net timer change of the two events is "cleared".
    assert active_timers(pool.state) == []
    # It is an ordinary commitment from here on: fulfil (ship) or uncommit (cancel).
    pool.ok("stock.fulfil", FulfilArgs(SKU, "W", "O9", 2))
    pool.ok("stock.uncommit", UncommitArgs(SKU, "W", "O9"))
    assert bal(pool, "W") == {**bal(pool, "W"), "on_hand": 48, "committed": 0, "available": 48}
    # The same op_id again names the same hold, which is already used.
    again = pool.decide(
        "hold.place", HoldPlaceArgs(SKU, "W", 1, purpose="ship", commit_order_id="O9"), op_id="pc"
    )
    rejected(again, ErrorCode.CONFLICT)
    # A hold.* on the allocation's id answers as for a committed hold.
    r = rejected(pool.decide("hold.release", HoldRefArgs(hold_id)), ErrorCode.CONFLICT)
    assert r.details["state"] == "committed"


def test_journals_with_the_two_event_place_and_commit_replay_the_same(pool: Pool) -> None:
    """Journals written before `Allocated` carry HoldPlaced + HoldCommitted for a ship
    allocation: replaying them must give the state one `Allocated` gives."""
    base = copy.deepcopy(pool.state)
    out = pool.decide(
        "hold.place", HoldPlaceArgs(SKU, "W", 3, purpose="ship", commit_order_id="O9"), op_id="pc"
    )
    assert not isinstance(out, Rejection)
    (allocated,) = out[0]
    assert isinstance(allocated, Allocated)
    old_form = [
        HoldPlaced(allocated.hold_id, "W", 3, pool.now + 900, pool.now, pool.now, "order:O9"),
        HoldCommitted(allocated.hold_id, "W", 3, "O9"),
    ]
    new_state, old_state = copy.deepcopy(base), copy.deepcopy(base)
    evolve(new_state, allocated)
    for e in old_form:
        evolve(old_state, e)
    old_state.version -= 1  # one event more in the old form
    assert encode_state(old_state) == encode_state(new_state)


def test_expired_hold_names_its_customer(pool: Pool) -> None:
    hold_id = pool.ok("hold.place", HoldPlaceArgs(SKU, "A", 1, ttl_s=60, customer_ref="order:O1"))[
        "hold_id"
    ]
    assert expire_due(pool.state, hold_id, pool.now + 60) == [
        HoldExpired(hold_id, "A", 1, customer_ref="order:O1")
    ]


def test_unknown_released_expired_holds_are_not_found(pool: Pool) -> None:
    for name, args in [
        ("hold.extend", HoldExtendArgs("Hnope", 60)),
        ("hold.release", HoldRefArgs("Hnope")),
        ("hold.commit", HoldCommitArgs("Hnope", "O1")),
        ("hold.pickup", HoldRefArgs("Hnope")),
    ]:
        r = rejected(pool.decide(name, args), ErrorCode.NOT_FOUND)
        assert "state" not in r.details
    released = place(pool, 1)
    pool.ok("hold.release", HoldRefArgs(released))
    r = rejected(pool.decide("hold.release", HoldRefArgs(released)), ErrorCode.NOT_FOUND)
    assert r.details["state"] == "released"
    expired = place(pool, 1, ttl=60)
    pool.now += 60
    pool.apply(expire_due(pool.state, expired, pool.now))
    r = rejected(pool.decide("hold.extend", HoldExtendArgs(expired, 600)), ErrorCode.NOT_FOUND)
    assert r.details["state"] == "expired"


def test_overdue_hold_before_its_timer_fired(pool: Pool) -> None:
    hold_id = place(pool, 2, ttl=60)
    pool.now += 61  # the timer has not fired yet
    for name, args in [
        ("hold.extend", HoldExtendArgs(hold_id, 600)),
        ("hold.commit", HoldCommitArgs(hold_id, "O1")),
    ]:
        assert rejected(pool.decide(name, args), ErrorCode.NOT_FOUND).details["state"] == "expired"
    # Release (and a pickup at the counter) still work on an overdue hold.
    assert not isinstance(pool.decide("hold.pickup", HoldRefArgs(hold_id)), Rejection)
    pool.ok("hold.release", HoldRefArgs(hold_id))
    assert expire_due(pool.state, hold_id, pool.now) == []


def test_extend_never_shortens(pool: Pool) -> None:
    hold_id = place(pool, 1, ttl=3600)
    r = pool.ok("hold.extend", HoldExtendArgs(hold_id, 60))
    assert r["expires_at"] == pool.now + 3600
    pool.now += 100
    r = pool.ok("hold.extend", HoldExtendArgs(hold_id, 7200))
    assert r["expires_at"] == pool.now + 7200
    assert pool.state.holds[hold_id].expires_at == pool.now + 7200


def test_commit_fulfil_uncommit(pool: Pool) -> None:
    h1, h2 = place(pool, 2), place(pool, 3)
    pool.ok("hold.commit", HoldCommitArgs(h1, "O1"))
    pool.ok("hold.commit", HoldCommitArgs(h2, "O1"))
    assert (bal(pool)["reserved"], bal(pool)["committed"]) == (0, 5)
    rejected(pool.decide("hold.commit", HoldCommitArgs(h1, "O1")), ErrorCode.CONFLICT)
    rejected(pool.decide("hold.release", HoldRefArgs(h1)), ErrorCode.CONFLICT)
    rj = rejected(
        pool.decide("stock.fulfil", FulfilArgs(SKU, "A", "O1", 6)), ErrorCode.INVALID_ARGS
    )
    assert rj.details["committed"] == 5
    rejected(pool.decide("stock.fulfil", FulfilArgs(SKU, "A", "O2", 1)), ErrorCode.NOT_FOUND)
    r = pool.ok("stock.fulfil", FulfilArgs(SKU, "A", "O1", 4))
    assert r["order_id"] == "O1"
    assert (bal(pool)["on_hand"], bal(pool)["committed"], bal(pool)["available"]) == (6, 1, 5)
    pool.ok("stock.uncommit", UncommitArgs(SKU, "A", "O1"))
    assert bal(pool)["committed"] == 0 and pool.state.commitments == {}
    rejected(pool.decide("stock.uncommit", UncommitArgs(SKU, "A", "O1")), ErrorCode.NOT_FOUND)


def test_pickup_takes_stock_out(pool: Pool) -> None:
    hold_id = place(pool, 3)
    r = pool.ok("hold.pickup", HoldRefArgs(hold_id))
    assert r["state"] == "picked_up" and r["qty"] == 3
    assert (bal(pool)["on_hand"], bal(pool)["reserved"], bal(pool)["available"]) == (7, 0, 7)
    assert (
        rejected(pool.decide("hold.pickup", HoldRefArgs(hold_id)), ErrorCode.CONFLICT).details[
            "state"
        ]
        == "picked_up"
    )


# --- offline sales and conflicts ----------------------------------------------------------------


def test_sale_past_zero_is_accepted_and_reports_uncovered_promises(pool: Pool) -> None:
    h_old = place(pool, 3)
    h_new = place(pool, 4)
    pool.ok("hold.commit", HoldCommitArgs(place(pool, 2), "O1"))
    r = pool.ok("stock.sale", SaleArgs(SKU, "A", 6, register_id="R9", offline_at=pool.now - 300))
    b = r["balance"]
    assert (b["on_hand"], b["reserved"], b["committed"], b["available"]) == (4, 7, 2, -5)
    conflict = pool.log[-1]
    assert isinstance(conflict, StockConflict)
    # 4 sellable units: the order's 2 first, then the oldest hold (3) is only partly covered.
    assert conflict.shortfall == 5
    assert conflict.uncovered_order_ids == []
    assert conflict.uncovered_hold_ids == [h_old, h_new]
    assert r["conflict"]["type"] == "StockConflict"
    # Every promise is refused until stock is back; physical facts still go through.
    rejected(pool.decide("hold.place", HoldPlaceArgs(SKU, "A", 1)), ErrorCode.INSUFFICIENT_STOCK)
    rejected(
        pool.decide("transfer.create", TransferCreateArgs(SKU, "A", "B", 1)),
        ErrorCode.INSUFFICIENT_STOCK,
    )
    pool.ok("stock.sale", SaleArgs(SKU, "A", 10))
    assert bal(pool)["on_hand"] == -6
    pool.ok("stock.receive", ReceiveArgs(SKU, "A", 20))
    assert bal(pool)["available"] == 5
    place(pool, 5)


def test_no_conflict_without_uncovered_promises(pool: Pool) -> None:
    place(pool, 2)
    pool.ok("stock.sale", SaleArgs(SKU, "A", 8))  # leaves exactly the 2 held units
    assert not any(isinstance(e, StockConflict) for e in pool.log)
    pool.ok("stock.sale", SaleArgs(SKU, "B", 5))  # negative at B, but nothing promised there
    assert not any(isinstance(e, StockConflict) for e in pool.log)
    pool.ok("stock.adjust", AdjustArgs(SKU, "A", -1, "shrink"))
    assert isinstance(pool.log[-1], StockConflict) and pool.log[-1].cause == "stock.adjust"


# --- transfers --------------------------------------------------------------------------------


def test_transfer_lifecycle_with_loss(pool: Pool) -> None:
    r = pool.ok("transfer.create", TransferCreateArgs(SKU, "W", "A", 20), op_id="t1")
    tid = r["transfer_id"]
    assert tid == derive_id("T", "t1") and r["available"] == 30
    assert bal(pool, "W")["committed"] == 20
    rejected(pool.decide("transfer.receive", TransferRefArgs(tid)), ErrorCode.CONFLICT)
    rejected(pool.decide("transfer.ship", TransferRefArgs(tid, qty=5)), ErrorCode.INVALID_ARGS)
    pool.ok("transfer.ship", TransferRefArgs(tid))
    assert (bal(pool, "W")["on_hand"], bal(pool, "W")["committed"]) == (30, 0)
    assert bal(pool, "A")["incoming"] == 20
    rj = rejected(
        pool.decide("transfer.receive", TransferRefArgs(tid, qty=21)), ErrorCode.INVALID_ARGS
    )
    assert rj.details["shipped"] == 20
    rejected(pool.decide("transfer.cancel", TransferRefArgs(tid)), ErrorCode.CONFLICT)
    r = pool.ok("transfer.receive", TransferRefArgs(tid, qty=18))
    assert (r["received"], r["lost"]) == (18, 2)
    assert (bal(pool, "A")["on_hand"], bal(pool, "A")["incoming"]) == (28, 0)
    rj = rejected(pool.decide("transfer.receive", TransferRefArgs(tid)), ErrorCode.CONFLICT)
    assert rj.details["state"] == "received"


def test_transfer_rejections(pool: Pool) -> None:
    rejected(
        pool.decide("transfer.create", TransferCreateArgs(SKU, "A", "A", 1)), ErrorCode.INVALID_ARGS
    )
    r = rejected(
        pool.decide("transfer.create", TransferCreateArgs(SKU, "A", "W", 11)),
        ErrorCode.INSUFFICIENT_STOCK,
    )
    assert r.details == {"available": 10, "location_id": "A", "requested": 11}
    for name in ("transfer.ship", "transfer.receive", "transfer.cancel"):
        rejected(pool.decide(name, TransferRefArgs("Tnope")), ErrorCode.NOT_FOUND)
    tid = pool.ok("transfer.create", TransferCreateArgs(SKU, "A", "W", 4))["transfer_id"]
    pool.ok("transfer.cancel", TransferRefArgs(tid))
    assert bal(pool)["committed"] == 0
    r = rejected(pool.decide("transfer.ship", TransferRefArgs(tid)), ErrorCode.CONFLICT)
    assert r.details["state"] == "cancelled"


# --- determinism, codecs, timers, views --------------------------------------------------------


def test_same_op_id_gives_same_ids_and_events(pool: Pool) -> None:
    args = HoldPlaceArgs(SKU, "A", 1)
    assert pool.decide("hold.place", args, "same") == pool.decide("hold.place", args, "same")
    assert pool.decide("hold.place", args, "same") != pool.decide("hold.place", args, "other")
    pool.ok("hold.place", args, "same")
    rejected(pool.decide("hold.place", args, "same"), ErrorCode.CONFLICT)  # id already taken


def test_events_and_state_roundtrip(pool: Pool) -> None:
    hold_id = place(pool, 1)
    pool.ok("hold.commit", HoldCommitArgs(hold_id, "O1"))
    pool.ok("stock.sale", SaleArgs(SKU, "A", 12, offline_at=1.5))
    for e in pool.log:
        tag, data = encode_event(e)
        assert tag == type(e).__name__
        assert decode_event(data) == e
    assert decode_state(encode_state(pool.state)) == pool.state


def test_timers(pool: Pool) -> None:
    hold_id = place(pool, 1, ttl=60)
    placed = pool.log[-1]
    assert isinstance(placed, HoldPlaced)
    assert timer_changes(placed) == ([(f"hold:{hold_id}", pool.now + 60)], [])
    assert active_timers(pool.state) == [(f"hold:{hold_id}", pool.now + 60)]
    assert hold_id_from_timer(f"hold:{hold_id}") == hold_id
    assert hold_id_from_timer("order:x") is None
    assert timer_changes(HoldExtended(hold_id, "A", 5.0)) == ([(f"hold:{hold_id}", 5.0)], [])
    for ev in (
        HoldReleased(hold_id, "A", 1),
        HoldExpired(hold_id, "A", 1),
        HoldCommitted(hold_id, "A", 1, "O"),
    ):
        assert timer_changes(ev) == ([], [f"hold:{hold_id}"])
    assert expire_due(pool.state, hold_id, pool.now + 59) == []
    events = expire_due(pool.state, hold_id, pool.now + 60)
    assert events == [HoldExpired(hold_id, "A", 1)]
    pool.apply(events)
    assert expire_due(pool.state, hold_id, pool.now + 60) == []
    assert bal(pool)["reserved"] == 0 and active_timers(pool.state) == []


def test_views(pool: Pool) -> None:
    n = len(pool.log)
    hold_id = place(pool, 2)
    tid = pool.ok("transfer.create", TransferCreateArgs(SKU, "W", "B", 5))["transfer_id"]
    pool.ok("transfer.ship", TransferRefArgs(tid))
    new = pool.log[n:]
    assert stock_view(pool.state) == {
        "A": {
            "on_hand": 10,
            "reserved": 2,
            "committed": 0,
            "incoming": 0,
            "unsellable": 0,
            "safety_stock": 0,
            "available": 8,
        },
        "W": {
            "on_hand": 45,
            "reserved": 0,
            "committed": 0,
            "incoming": 0,
            "unsellable": 0,
            "safety_stock": 0,
            "available": 45,
        },
        "B": {
            "on_hand": 0,
            "reserved": 0,
            "committed": 0,
            "incoming": 5,
            "unsellable": 0,
            "safety_stock": 0,
            "available": 0,
        },
    }
    assert stock_changes(pool.state, new) == stock_view(pool.state)
    assert stock_changes(pool.state, new[:1]) == {"A": stock_view(pool.state)["A"]}
    changes = location_changes(pool.state, new)
    assert set(changes) == {"A", "W", "B"}
    hold = changes["A"][f"hold:{hold_id}"]
    assert hold["qty"] == 2 and hold["sku"] == SKU and hold["ready_at"] == pool.now + 900
    assert changes["B"] == {f"sku:{SKU}": stock_view(pool.state)["B"]}
    assert location_view(pool.state, "A") == changes["A"]
    # Gone holds are deleted with None, even when placed and released in the same batch.
    n = len(pool.log)
    h2 = place(pool, 1)
    pool.ok("hold.release", HoldRefArgs(h2))
    pool.ok("hold.commit", HoldCommitArgs(hold_id, "O1"))
    changes = location_changes(pool.state, pool.log[n:])
    assert changes["A"][f"hold:{h2}"] is None and changes["A"][f"hold:{hold_id}"] is None
    assert location_view(pool.state, "A") == {f"sku:{SKU}": stock_view(pool.state)["A"]}


def test_rejection_is_a_plain_struct() -> None:
    r = Rejection(ErrorCode.NOT_FOUND, "x")
    assert msgspec.to_builtins(r) == {"code": "not_found", "message": "x", "details": {}}
