"""Property tests: random command sequences through decide/evolve, invariants after every step.

The invariants, stated precisely:

1. Promise check. A promise (HoldPlaced, TransferCreated) is only ever decided when its qty is
   <= the location's `available` just before it; so a promise never takes `available` below 0.
   If `available < 0` at a location, the last decision that lowered it there was NOT a
   promise (it was a physical fact or a safety-stock change), and every promise there is
   rejected with insufficient_stock until stock is back.
2. Shortfall. `shortfall = max(0, reserved + committed - max(0, on_hand - unsellable))` only
   grows through physical facts, and a decision that grows it carries a StockConflict for that
   location stating the new shortfall. A sale is never rejected at a known location.
3. Conservation. Over all locations:
     sum(on_hand) + in_transit
       == received + returned (any disposition) + sum(Adjusted.delta) + sum(Counted.variance)
          - sold - picked_up - fulfilled - lost_in_transit
   where in_transit = qty of shipped, not yet received transfers (== sum(incoming)). A shadow
   model fed only from the commands' args agrees with on_hand per location.
4. Bookkeeping. reserved == sum of active holds; committed == order commitments + created
   transfers from there; incoming == shipped transfers to there; none of them negative.
5. Expiry exactly once: expire_due on an expired hold yields [], and no hold ever has more
   than one terminal event (released / expired / committed / picked up).
6. Replay: decoding the msgpack event log and evolving from initial() rebuilds an identical
   state; the durable timers implied by timer_changes equal active_timers(state); applying
   every stock_changes / location_changes delta reproduces stock_view / location_view.
7. Determinism: deciding the same command with the same ctx twice gives identical output and
   does not touch the state.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import msgspec
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from inventory_helpers import LOCATIONS, SKU, Pool

from actors.inventory import (
    Adjusted,
    CommitmentFulfilled,
    Counted,
    Event,
    FulfilArgs,
    HoldCommitted,
    HoldExpired,
    HoldPickedUp,
    HoldPlaced,
    HoldReleased,
    Received,
    Rejection,
    Returned,
    Sold,
    StockConflict,
    TransferCreated,
    TransferReceived,
    UncommitArgs,
    active_timers,
    decide,
    decode_event,
    encode_event,
    encode_state,
    evolve,
    expire_due,
    initial,
    location_changes,
    location_view,
    stock_changes,
    stock_view,
    timer_changes,
)
from protocol.commands import (
    AdjustArgs,
    CountArgs,
    HoldCommitArgs,
    HoldExtendArgs,
    HoldPlaceArgs,
    HoldRefArgs,
    ReceiveArgs,
    ReturnArgs,
    ReturnDisposition,
    SafetyStockArgs,
    SaleArgs,
    TransferCreateArgs,
    TransferRefArgs,
)
from protocol.errors import ErrorCode

KNOWN = sorted(LOCATIONS)
ANY_LOC = st.sampled_from([*KNOWN, "Z"])  # Z is unknown
LOC = st.sampled_from(KNOWN)
PICKUP_LOC = st.sampled_from(["A", "A", "A", "B", "B", "W", "Z"])  # W: no pickup; Z: unknown
QTY = st.integers(1, 6)
PROMISES = ("hold.place", "transfer.create")
TERMINAL = (HoldReleased, HoldExpired, HoldCommitted, HoldPickedUp)


class InventoryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.pool = Pool()
        self.hold_ids: list[str] = ["Hbogus"]
        self.transfer_ids: list[str] = ["Tbogus"]
        self.shadow_on_hand: Counter[str] = Counter()
        self.timers: dict[str, float] = {}
        self.stock_topic: dict[str, Any] = {}
        self.location_topics: dict[str, dict[str, Any]] = {}
        self.lowered_by: dict[str, str] = {}  # location -> last command that lowered available

    # --- the one path every command takes ---------------------------------------------------

    def step(self, name: str, args: msgspec.Struct) -> dict[str, Any] | Rejection:
        pool = self.pool
        ctx = pool.ctx()
        frozen = encode_state(pool.state)
        out = decide(pool.state, name, args, ctx)
        assert decide(pool.state, name, args, ctx) == out  # 7: deterministic
        assert encode_state(pool.state) == frozen  # 7: decide never mutates
        if isinstance(out, Rejection):
            return out
        events, result = out
        before = {loc: msgspec.structs.replace(b) for loc, b in pool.state.balances.items()}
        for e in events:
            if isinstance(e, HoldPlaced | TransferCreated):  # 1: promise within available
                loc = e.location_id if isinstance(e, HoldPlaced) else e.from_location
                assert e.qty <= (before[loc].available if loc in before else 0)
        self.apply(events, name)
        for loc, after in pool.state.balances.items():  # 2: shortfall only through facts
            old = before.get(loc)
            old_shortfall = old.shortfall if old else 0
            if after.shortfall > old_shortfall:
                assert name not in PROMISES and name != "stock.set_safety", name
                conflicts = [e for e in events if isinstance(e, StockConflict)]
                assert [(c.location_id, c.shortfall) for c in conflicts] == [(loc, after.shortfall)]
            if after.available < (old.available if old else 0):
                self.lowered_by[loc] = name
        return result

    def apply(self, events: list[Event], name: str) -> None:
        self.pool.apply(events)
        state = self.pool.state
        for e in events:
            to_set, to_clear = timer_changes(e)
            self.timers.update(to_set)
            for t in to_clear:
                self.timers.pop(t, None)
        for topic, changes in [("stock", stock_changes(state, events))]:
            assert topic == "stock"
            self.stock_topic.update(changes)
        for loc, changes in location_changes(state, events).items():
            view = self.location_topics.setdefault(loc, {})
            for key, value in changes.items():
                if value is None:
                    view.pop(key, None)
                else:
                    view[key] = value

    def available(self, loc: str) -> int:
        b = self.pool.state.balances.get(loc)
        return b.available if b else 0

    @initialize(qty=st.integers(0, 12))
    def stock_up(self, qty: int) -> None:
        for loc in KNOWN:
            if qty:
                self.receive(loc, qty)

    # --- physical facts -------------------------------------------------------------------

    @rule(loc=ANY_LOC, qty=st.integers(1, 12))
    def receive(self, loc: str, qty: int) -> None:
        out = self.step("stock.receive", ReceiveArgs(SKU, loc, qty))
        assert isinstance(out, Rejection) == (loc == "Z")
        if loc != "Z":
            self.shadow_on_hand[loc] += qty

    @rule(loc=LOC, qty=st.integers(1, 10), offline=st.booleans())
    def sale(self, loc: str, qty: int, offline: bool) -> None:
        args = SaleArgs(SKU, loc, qty, register_id="R1", offline_at=0.0 if offline else None)
        out = self.step("stock.sale", args)
        assert not isinstance(out, Rejection), out  # physical facts win: never rejected
        self.shadow_on_hand[loc] -= qty

    @rule(loc=LOC, qty=QTY, disposition=st.sampled_from(["sellable", "unsellable"]))
    def give_back(self, loc: str, qty: int, disposition: ReturnDisposition) -> None:
        self.step("stock.return", ReturnArgs(SKU, loc, qty, disposition=disposition))
        self.shadow_on_hand[loc] += qty

    @rule(
        loc=LOC,
        delta=st.integers(-8, 8),
        reason=st.sampled_from(["damage", "shrink", "found", "correction", "count"]),
    )
    def adjust(self, loc: str, delta: int, reason: str) -> None:
        b = self.pool.state.balances.get(loc)
        on_hand = b.on_hand if b else 0
        out = self.step("stock.adjust", AdjustArgs(SKU, loc, delta, reason))  # type: ignore[arg-type]
        if delta < 0 and reason != "damage" and on_hand + delta < 0:
            assert isinstance(out, Rejection) and out.code == ErrorCode.INVALID_ARGS
        if not isinstance(out, Rejection):
            self.shadow_on_hand[loc] += delta if (reason != "damage" or delta < 0) else 0

    @rule(loc=LOC, counted=st.integers(0, 15))
    def count(self, loc: str, counted: int) -> None:
        assert not isinstance(self.step("stock.count", CountArgs(SKU, loc, counted)), Rejection)
        self.shadow_on_hand[loc] = counted
        assert self.pool.state.balances[loc].unsellable <= counted

    @rule(loc=LOC, safety=st.integers(0, 3))
    def set_safety(self, loc: str, safety: int) -> None:
        assert not isinstance(
            self.step("stock.set_safety", SafetyStockArgs(SKU, loc, safety)), Rejection
        )

    # --- holds ----------------------------------------------------------------------------

    @rule(loc=PICKUP_LOC, qty=QTY, ttl=st.integers(10, 3000))
    def place_hold(self, loc: str, qty: int, ttl: int) -> None:
        available = self.available(loc)
        out = self.step("hold.place", HoldPlaceArgs(SKU, loc, qty, ttl_s=ttl))
        if loc == "Z":
            assert isinstance(out, Rejection) and out.code == ErrorCode.NOT_FOUND
        elif not LOCATIONS[loc].pickup_enabled:
            assert isinstance(out, Rejection) and out.code == ErrorCode.CONFLICT
        elif qty > available:  # includes every hold while available < 0
            assert isinstance(out, Rejection) and out.code == ErrorCode.INSUFFICIENT_STOCK
            assert out.details["available"] == max(available, 0)
        else:
            assert not isinstance(out, Rejection), out
            assert out["available"] == available - qty >= 0
            self.hold_ids.append(out["hold_id"])

    @precondition(lambda self: len(self.hold_ids) > 1)
    @rule(
        data=st.data(),
        action=st.sampled_from(["extend", "release", "commit", "pickup"]),
        ttl=st.integers(10, 3000),
        order=st.sampled_from(["O1", "O2"]),
    )
    def hold_action(self, data: st.DataObject, action: str, ttl: int, order: str) -> None:
        """Act on a hold: usually a live one, sometimes a finished or unknown one."""
        live_ids = sorted(self.pool.state.holds)
        pick_live = bool(live_ids) and data.draw(st.booleans())
        hold_id = data.draw(st.sampled_from(live_ids if pick_live else self.hold_ids))
        hold = self.pool.state.holds.get(hold_id)
        # Read before deciding: evolve mutates the live Hold.
        due = hold is not None and self.pool.now >= hold.expires_at
        final = self.pool.state.closed_holds.get(hold_id)
        if action == "extend":
            out = self.step("hold.extend", HoldExtendArgs(hold_id, ttl))
        elif action == "release":
            out = self.step("hold.release", HoldRefArgs(hold_id))
        elif action == "commit":
            out = self.step("hold.commit", HoldCommitArgs(hold_id, order))
        else:
            out = self.step("hold.pickup", HoldRefArgs(hold_id))
        if hold is None:
            assert isinstance(out, Rejection)
            conflict = final in ("committed", "picked_up")
            assert out.code == (ErrorCode.CONFLICT if conflict else ErrorCode.NOT_FOUND)
            if final is not None:
                assert out.details["state"] == final
        elif due and action in ("extend", "commit"):
            assert isinstance(out, Rejection) and out.details["state"] == "expired"
        else:
            assert not isinstance(out, Rejection), out
            if action == "pickup":
                self.shadow_on_hand[hold.location_id] -= hold.qty

    @precondition(lambda self: bool(self.pool.state.commitments))
    @rule(data=st.data(), qty=st.one_of(st.none(), QTY), fulfil=st.booleans())
    def settle_commitment(self, data: st.DataObject, qty: int | None, fulfil: bool) -> None:
        key = data.draw(st.sampled_from([*sorted(self.pool.state.commitments), "O9@A"]))
        order_id, loc = key.split("@")
        c = self.pool.state.commitments.get(key)
        committed = c.qty if c else 0  # read before: evolve mutates the live Commitment
        if fulfil:
            out = self.step("stock.fulfil", FulfilArgs(SKU, loc, order_id, qty or 1))
            if not isinstance(out, Rejection):
                self.shadow_on_hand[loc] -= qty or 1
        else:
            out = self.step("stock.uncommit", UncommitArgs(SKU, loc, order_id, qty))
        ok = c is not None and (qty is None or qty <= committed)
        assert isinstance(out, Rejection) != ok

    # The lifecycle rules run twice as often as the others: they need prior steps to matter.
    @precondition(lambda self: len(self.hold_ids) > 1)
    @rule(
        data=st.data(),
        action=st.sampled_from(["extend", "release", "commit", "pickup"]),
        ttl=st.integers(10, 3000),
        order=st.sampled_from(["O1", "O2"]),
    )
    def hold_action_again(self, data: st.DataObject, action: str, ttl: int, order: str) -> None:
        self.hold_action(data, action, ttl, order)

    # --- transfers ------------------------------------------------------------------------

    @rule(src=ANY_LOC, dst=ANY_LOC, qty=QTY)
    def create_transfer(self, src: str, dst: str, qty: int) -> None:
        available = self.available(src)
        out = self.step("transfer.create", TransferCreateArgs(SKU, src, dst, qty))
        if src == dst:
            assert isinstance(out, Rejection) and out.code == ErrorCode.INVALID_ARGS
        elif "Z" in (src, dst):
            assert isinstance(out, Rejection) and out.code == ErrorCode.NOT_FOUND
        elif qty > available:
            assert isinstance(out, Rejection) and out.code == ErrorCode.INSUFFICIENT_STOCK
        else:
            assert not isinstance(out, Rejection), out
            self.transfer_ids.append(out["transfer_id"])

    @precondition(lambda self: len(self.transfer_ids) > 1)
    @rule(
        data=st.data(),
        action=st.sampled_from(["ship", "ship", "receive", "receive", "cancel"]),
        qty=st.one_of(st.none(), QTY),
    )
    def transfer_action(self, data: st.DataObject, action: str, qty: int | None) -> None:
        open_ids = sorted(self.pool.state.transfers)
        pick_open = bool(open_ids) and data.draw(st.booleans())
        tid = data.draw(st.sampled_from(open_ids if pick_open else self.transfer_ids))
        t = self.pool.state.transfers.get(tid)
        status = t.status if t else None  # read before: evolve mutates the live Transfer
        if action == "ship":
            out = self.step("transfer.ship", TransferRefArgs(tid))
            ok = status == "created"
        elif action == "cancel":
            out = self.step("transfer.cancel", TransferRefArgs(tid))
            ok = status == "created"
        else:
            out = self.step("transfer.receive", TransferRefArgs(tid, qty=qty))
            ok = status == "shipped" and t is not None and (qty is None or qty <= t.qty)
            if status == "shipped" and t is not None and qty is not None and qty > t.qty:
                assert isinstance(out, Rejection) and out.code == ErrorCode.INVALID_ARGS
        assert isinstance(out, Rejection) != ok
        if isinstance(out, Rejection):
            expected = ErrorCode.NOT_FOUND if t is None and tid == "Tbogus" else None
            assert expected is None or out.code == expected
        elif t is not None and action == "ship":
            self.shadow_on_hand[t.from_location] -= t.qty
        elif t is not None and action == "receive":
            self.shadow_on_hand[t.to_location] += t.qty if qty is None else qty

    @precondition(lambda self: len(self.transfer_ids) > 1)
    @rule(
        data=st.data(),
        action=st.sampled_from(["ship", "receive"]),
        qty=st.one_of(st.none(), QTY),
    )
    def transfer_action_again(self, data: st.DataObject, action: str, qty: int | None) -> None:
        self.transfer_action(data, action, qty)

    # --- time -----------------------------------------------------------------------------

    @rule(dt=st.integers(0, 1500))
    def advance(self, dt: int) -> None:
        self.pool.now += dt

    @precondition(lambda self: bool(self.timers))
    @rule(data=st.data())
    def fire_timer(self, data: st.DataObject) -> None:
        """A timer fires (maybe early, maybe again): expiry happens exactly once, when due."""
        timer_id = data.draw(st.sampled_from(sorted(self.timers)))
        hold_id = timer_id.removeprefix("hold:")
        hold = self.pool.state.holds.get(hold_id)
        events = expire_due(self.pool.state, hold_id, self.pool.now)
        due = hold is not None and self.pool.now >= hold.expires_at
        assert len(events) == (1 if due else 0)
        self.apply(events, "timer")
        assert expire_due(self.pool.state, hold_id, self.pool.now) == []

    # --- invariants -----------------------------------------------------------------------

    @invariant()
    def bookkeeping(self) -> None:
        state = self.pool.state
        for loc, b in state.balances.items():
            holds = sum(h.qty for h in state.holds.values() if h.location_id == loc)
            orders = sum(c.qty for c in state.commitments.values() if c.location_id == loc)
            created = sum(
                t.qty
                for t in state.transfers.values()
                if t.from_location == loc and t.status == "created"
            )
            shipped = sum(
                t.qty
                for t in state.transfers.values()
                if t.to_location == loc and t.status == "shipped"
            )
            assert (b.reserved, b.committed, b.incoming) == (holds, orders + created, shipped)
            assert min(b.reserved, b.committed, b.incoming, b.unsellable, b.safety_stock) >= 0
            if b.available < 0:  # 1: only facts (or safety stock) overtake promises
                assert self.lowered_by.get(loc) not in PROMISES

    @invariant()
    def conservation(self) -> None:
        state = self.pool.state
        total = Counter[str]()
        for e in self.pool.log:
            match e:
                case Received() | Returned():
                    total["in"] += e.qty
                case Adjusted():
                    total["in"] += e.delta
                case Counted():
                    total["in"] += e.variance
                case Sold() | HoldPickedUp() | CommitmentFulfilled():
                    total["out"] += e.qty
                case TransferReceived():
                    total["out"] += e.shipped - e.received
        on_hand = sum(b.on_hand for b in state.balances.values())
        in_transit = sum(t.qty for t in state.transfers.values() if t.status == "shipped")
        assert in_transit == sum(b.incoming for b in state.balances.values())
        assert on_hand + in_transit == total["in"] - total["out"]
        for loc in KNOWN:
            b = state.balances.get(loc)
            assert (b.on_hand if b else 0) == self.shadow_on_hand[loc]

    @invariant()
    def holds_end_once(self) -> None:
        ends = Counter(e.hold_id for e in self.pool.log if isinstance(e, TERMINAL))
        assert all(n == 1 for n in ends.values())
        assert not set(ends) & set(self.pool.state.holds)

    @invariant()
    def replay_and_projections(self) -> None:
        state = self.pool.state
        replayed = initial(SKU)
        for e in self.pool.log:
            tag, data = encode_event(e)
            decoded = decode_event(data)
            assert type(decoded).__name__ == tag
            replayed = evolve(replayed, decoded)
        assert encode_state(replayed) == encode_state(state)
        assert replayed.version == len(self.pool.log)
        assert self.timers == dict(active_timers(state))
        assert self.stock_topic == stock_view(state)
        for loc in set(self.location_topics) | set(state.balances):
            assert self.location_topics.get(loc, {}) == location_view(state, loc)


InventoryMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestInventoryMachine = InventoryMachine.TestCase
