"""The SKU-pool actor: the thin, effectful shell around the pure inventory domain.

Theory of operation
-------------------
The runtime hands `handle_batch` every command waiting in the mailbox (up to max_batch). The
shell decides them one after another against the evolving in-memory state, so the 5th hold
in a batch sees the units the first four took; then it appends all resulting events, the op
records that make each command idempotent, and the hold-expiry timers in ONE journal batch
(the journal may merge it with other actors' batches into one transaction: group commit).
Only after the commit does it update the read models, publish deltas and answer the askers
(invariant 2: ack means durable).

If the append fails (a stale owner lost the race, or an op_id was stored by someone else)
the in-memory state is thrown away, rebuilt from the journal and the whole batch decided
again: decisions are pure, so re-deciding is safe.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from engine.commands import CommandMsg, Outcome
from engine.journal.base import Batch, Journal, OpRecord, Timer, VersionConflict
from engine.journal.base import Snapshot as JournalSnapshot
from engine.runtime import Actor, Envelope, TimerFired
from protocol import ErrorCode

from . import domain, views
from .events import (
    Allocated,
    Event,
    HoldCommitted,
    HoldExpired,
    HoldExtended,
    HoldPickedUp,
    HoldPlaced,
    HoldReleased,
    TransferCancelled,
    TransferCreated,
    TransferReceived,
    decode_event,
    encode_event,
)
from .expiry import POOL_TIMER, ExpiryQueue

if TYPE_CHECKING:
    from engine.bus import LocalBus

    from .projection import InventoryViews, NearViews

__all__ = ["InventoryEnv", "PromiseQuery", "PromiseReport", "SkuPoolActor", "StockQuery"]

log = logging.getLogger("omnitill.inventory")

_HOLD_ENDS = (HoldReleased, HoldExpired, HoldCommitted, HoldPickedUp)
_TRANSFER_ENDS = (TransferReceived, TransferCancelled)
SNAPSHOT_EVERY = 2000  # events between state snapshots (bounds replay time on activation)
RECENT_OPS = 4096  # op outcomes remembered in memory per actor (the journal keeps them all)
_outcome_enc = msgspec.msgpack.Encoder()
_outcome_dec = msgspec.msgpack.Decoder(Outcome)


class StockQuery(msgspec.Struct, frozen=True):
    """Ask the actor for its state (read-your-writes consistent)."""


class PromiseQuery(msgspec.Struct, frozen=True):
    """How do these promises stand now? For a reader that may have missed a HoldExpired or
    StockConflict notice (an order reconciling its allocations when it starts)."""

    hold_ids: tuple[str, ...] = ()
    location_ids: tuple[str, ...] = ()


class PromiseReport(msgspec.Struct, frozen=True):
    version: int
    # hold id -> "active", or its final state ("expired", "released", "committed", ...),
    # or "" when the pool no longer remembers it
    holds: dict[str, str]
    uncovered_holds: dict[str, list[str]]  # location id -> hold ids without sellable cover
    uncovered_orders: dict[str, list[str]]  # location id -> order ids without sellable cover


def promise_report(state: domain.SkuPool, q: PromiseQuery) -> PromiseReport:
    holds = {
        h: "active" if h in state.holds else state.closed_holds.get(h, "") for h in q.hold_ids
    }
    uncovered_holds: dict[str, list[str]] = {}
    uncovered_orders: dict[str, list[str]] = {}
    for loc in q.location_ids:
        uncovered_holds[loc], uncovered_orders[loc] = domain.uncovered(state, loc)
    return PromiseReport(state.version, holds, uncovered_holds, uncovered_orders)


class InventoryEnv:
    """What SKU-pool actors share: the journal, the bus, read models and the catalog."""

    def __init__(
        self,
        journal: Journal,
        bus: LocalBus,
        views: InventoryViews,
        near: NearViews,
        locations: Callable[[], Mapping[str, domain.LocationInfo]],
        on_commit: Callable[[float], None],
        on_timer: Callable[[float], None],
    ) -> None:
        self.journal = journal
        self.bus = bus
        self.views = views
        self.near = near
        self.locations = locations
        self.on_commit = on_commit  # journal latency observer (seconds)
        self.on_timer = on_timer  # a timer was set for due_at: wake the timer service
        # Called after every commit with (sku, committed events): other domains follow stock
        # facts here (orders turn StockConflict / HoldExpired into order exceptions). Must not
        # block: a listener that needs to do I/O hands the events to its own task.
        self.listeners: list[Callable[[str, list[Event]], None]] = []


def stream_of(sku: str) -> str:
    return f"sku:{sku}"


async def load_pool(journal: Journal, sku: str) -> domain.SkuPool:
    stream = stream_of(sku)
    snap = await journal.load_snapshot(stream)
    state = domain.decode_state(snap.state) if snap is not None else domain.initial(sku)
    while True:
        events = await journal.read(stream, state.version + 1, 2000)
        if not events:
            return state
        for stored in events:
            state = domain.evolve(state, decode_event(stored.data))


class SkuPoolActor(Actor):
    def __init__(self, env: InventoryEnv, sku: str) -> None:
        self.env = env
        self.sku = sku
        self.stream = stream_of(sku)
        self.state = domain.initial(sku)
        self.recent: OrderedDict[str, tuple[str, Outcome]] = OrderedDict()
        self.since_snapshot = 0
        # Hold expiry: one journal timer per pool (see expiry.py). `timer_due` is the due
        # time of the stored pool timer as far as this activation knows (None: unknown/none).
        self.expiries = ExpiryQueue()
        self.timer_due: float | None = None

    async def on_start(self) -> None:
        self.state = await load_pool(self.env.journal, self.sku)
        self.expiries = ExpiryQueue.of(self.state)
        self.timer_due = None  # the first append re-arms it if holds need it

    # --- batch ----------------------------------------------------------------------------

    async def handle_batch(self, batch: list[Envelope]) -> None:
        # Optimistic idempotency: retries of recent ops are answered from memory; an op_id this
        # actor has not seen (e.g. a retry after a restart) is caught by the journal's unique
        # op table, which fails the append -- then we reload, look the ops up and re-decide.
        # That keeps a journal read off the hot path of every batch.
        commands = [e for e in batch if isinstance(e.msg, CommandMsg)]
        stored: dict[str, OpRecord] = {}
        for attempt in range(4):
            try:
                await self._decide_and_commit(batch, stored)
                return
            except VersionConflict as exc:
                log.info("%s: %s (attempt %d): reloading", self.stream, exc, attempt + 1)
                self.state = await load_pool(self.env.journal, self.sku)
                self.expiries = ExpiryQueue.of(self.state)
                stored = await self.env.journal.lookup_ops([e.msg.op_id for e in commands])
        for envelope in batch:
            envelope.fail(RuntimeError(f"{self.stream}: could not commit after retries"))

    async def _decide_and_commit(self, batch: list[Envelope], stored: dict[str, OpRecord]) -> None:
        state = self.state
        before = state.version
        events: list[Event] = []
        ops: list[OpRecord] = []
        answers: list[tuple[Envelope, Any]] = []
        in_batch: dict[str, tuple[str, Outcome]] = {}
        timers_cleared: list[str] = []
        fired = False  # a timer fired in this batch: the pool timer must be re-armed
        locations = self.env.locations()
        now = time.time()
        replay: list[Event] = []  # events evolved into `state` (to undo on failure: reload)

        for envelope in batch:
            msg = envelope.msg
            if isinstance(msg, CommandMsg):
                known = in_batch.get(msg.op_id) or self.recent.get(msg.op_id)
                if known is None and msg.op_id in stored:
                    rec = stored[msg.op_id]
                    known = (rec.payload_hash, _outcome_dec.decode(rec.result))
                if known is not None:
                    answers.append((envelope, _same_payload(known, msg)))
                    continue
                ctx = domain.Ctx(now=msg.now, op_id=msg.op_id, locations=locations)
                decision = domain.decide(state, msg.name, msg.args, ctx)
                if isinstance(decision, domain.Rejection):
                    outcome = Outcome(
                        ok=False,
                        code=ErrorCode(decision.code).value,
                        message=decision.message,
                        details=dict(decision.details),
                    )
                else:
                    new_events, result = decision
                    for event in new_events:
                        state = domain.evolve(state, event)
                        replay.append(event)
                    events.extend(new_events)
                    outcome = Outcome(ok=True, result=result)
                in_batch[msg.op_id] = (msg.payload_hash, outcome)
                ops.append(
                    OpRecord(
                        op_id=msg.op_id,
                        stream=self.stream,
                        payload_hash=msg.payload_hash,
                        ok=outcome.ok,
                        result=_outcome_enc.encode(outcome),
                    )
                )
                answers.append((envelope, outcome))
            elif isinstance(msg, TimerFired):
                # The pool timer (or a per-hold timer of an older journal): expire every
                # hold that is due; the pool timer is re-armed below.
                fired = True
                if msg.timer_id != POOL_TIMER:
                    timers_cleared.append(msg.timer_id)
                for hold_id in self.expiries.pop_due(state, now):
                    for event in domain.expire_due(state, hold_id, now):
                        state = domain.evolve(state, event)
                        replay.append(event)
                        events.append(event)
                answers.append((envelope, None))
            else:
                answers.append((envelope, msg))  # queries are answered after the commit

        # The pool timer: moved earlier at once when a new hold expires sooner; re-armed at
        # the real earliest expiry (or cleared) after it fired; otherwise left alone.
        for event in events:
            if isinstance(event, HoldPlaced | HoldExtended):
                self.expiries.push(event.expires_at, event.hold_id)
        timers_set: list[Timer] = []
        earliest = self.expiries.earliest(state)
        timer_due = self.timer_due
        if earliest is None:
            if fired or (timer_due is not None and events):
                timers_cleared.append(POOL_TIMER)
                timer_due = None
        elif fired or timer_due is None or earliest < timer_due:
            timer_due = earliest
            timers_set.append(
                Timer(
                    timer_id=POOL_TIMER,
                    actor_key=f"sku:{self.sku}",
                    due_at=earliest,
                    payload=b"",
                )
            )

        if events or ops or timers_cleared or timers_set:
            append = Batch(
                stream=self.stream,
                expected_version=before,
                events=[encode_event(e) for e in events],
                ops=ops,
                timers_set=timers_set,
                timers_cleared=[(f"sku:{self.sku}", t) for t in timers_cleared],
            )
            started = time.perf_counter()
            try:
                appended = await self.env.journal.append(append)
            except BaseException:
                # `state` may hold uncommitted events: rebuild from the journal before reuse.
                self.state = domain.initial(self.sku)
                self.expiries = ExpiryQueue()
                self.state = await load_pool(self.env.journal, self.sku)
                self.expiries = ExpiryQueue.of(self.state)
                raise
            self.env.on_commit(time.perf_counter() - started)
            if appended.version != state.version:
                # The domain counts versions itself; they must agree with the journal.
                log.error("%s: version mismatch %s != %s", self.stream, appended.version, state.version)
        self.state = state
        self.timer_due = timer_due

        for op_id, known in in_batch.items():
            self.recent[op_id] = known
        while len(self.recent) > RECENT_OPS:
            self.recent.popitem(last=False)
        if timers_set:
            self.env.on_timer(min(t.due_at for t in timers_set))
        if events:
            self._publish(before, events)
            self.since_snapshot += len(events)
            # Amortized: a snapshot re-encodes every open hold, so a pool with many holds
            # snapshots less often (O(1) snapshot work per event, whatever the pool's size).
            if self.since_snapshot >= max(SNAPSHOT_EVERY, 2 * len(state.holds)):
                self.since_snapshot = 0
                await self.env.journal.save_snapshot(
                    JournalSnapshot(self.stream, state.version, domain.encode_state(state))
                )

        for envelope, answer in answers:
            if isinstance(answer, StockQuery):
                envelope.respond((state.version, views.stock_view(state)))
            elif isinstance(answer, PromiseQuery):
                envelope.respond(promise_report(state, answer))
            else:
                envelope.respond(answer)

    def _publish(self, before: int, events: list[Event]) -> None:
        env = self.env
        state = self.state
        stock = views.stock_changes(state, events)
        by_location = views.location_changes(state, events)
        for event in events:
            if isinstance(event, HoldPlaced):
                env.views.remember_ref(event.hold_id, self.sku, (event.location_id,))
            elif isinstance(event, TransferCreated):
                env.views.remember_ref(
                    event.transfer_id, self.sku, (event.from_location, event.to_location)
                )
            elif isinstance(event, _HOLD_ENDS):
                env.views.close_ref(event.hold_id)
            elif type(event) is Allocated:
                env.views.remember_closed_ref(event.hold_id, self.sku, (event.location_id,))
            elif isinstance(event, _TRANSFER_ENDS):
                env.views.close_ref(event.transfer_id)
        env.views.apply(self.sku, state.version, stock, by_location)
        epoch = env.journal.epoch
        env.bus.publish(
            f"stock:{self.sku}", stock, epoch=epoch, from_seq=before + 1, seq=state.version
        )
        for name, changes in env.near.changes_for(self.sku):
            env.bus.publish(name, changes, epoch=epoch, from_seq=before + 1, seq=state.version)
        for location_id, changes in by_location.items():
            env.bus.publish(f"location:{location_id}", changes)
        for listener in env.listeners:
            listener(self.sku, events)


def _same_payload(known: tuple[str, Outcome], msg: CommandMsg) -> Outcome:
    payload_hash, outcome = known
    if payload_hash != msg.payload_hash:
        return Outcome(
            ok=False,
            code=ErrorCode.IDEMPOTENCY_CONFLICT.value,
            message=f"op_id {msg.op_id!r} was already used for a different command",
            details={"op_id": msg.op_id},
        )
    return outcome
