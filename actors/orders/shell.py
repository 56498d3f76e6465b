"""The order actor: the effectful shell around the pure order domain.

Theory of operation
-------------------
One `OrderActor` per `order:{id}`; it handles its mailbox one command at a time (orders see
little contention; the SKU pools are where batching pays).

For a command: answer a known op_id from memory or the journal's op table; otherwise
`decide`. A decision without a saga is appended (events + the op record, one batch) and
answered. A decision that starts a saga is appended FIRST (the intent, with a durable
`saga` timer), then every step is sent to its SKU-pool actor through the registry (steps of
one allocation in order, allocations concurrently), `advance` turns the answers into
facts, and that is appended -- repeated until a `SagaFinished`, whose batch also carries the
op record and clears the timer. Inventory op_ids are derived from the order id and the
command's op_id, so re-sending a step after a crash is answered from the pool's op table.
When every allocation has one step (a create's holds), all steps are queued at once with a
reply callback (`Engine.try_ask`: no task, event or cancel scope per step); a step that
could not be queued or did not come back final goes through the retrying `ask` path.

Reading the stream: an activation reads its journal stream before the first message it
handles -- unless that message is a create. A create decides on the empty state and
appends its first batch at expected version 0 without reading: a stream at version 0 is a
create never answered (every answered create journaled an event), and if the stream does
exist (a retry after a restart or a passivation) the journal refuses the append with a
version conflict; the actor then reads the stream and handles the create as a retry (op
table, or the pending saga). So a new order costs no journal read.

Crash recovery: if the process dies mid-saga, the `saga` timer fires after the restart,
activates the order and the shell drives the pending saga to its end (finish or
compensate). A client retrying the same op_id meanwhile simply waits for that end.

If a step cannot be delivered (pool overloaded, timeout) after a few tries, the saga stays
pending, the asker gets `unavailable` (retry with the same op_id) and the timer retries.

Catch-up: the pools tell an order about an expired hold or a stock conflict with a
non-durable `try_tell` (a full mailbox or a crash loses it). So an open order, when its
actor reads its stream, asks each SKU pool it has allocations in how those promises stand
now (`PromiseQuery`) and turns what it missed into the same `order.flag` commands, with op_ids
derived from the pool's version (a repeat at the same version is answered from the op
table). Best effort: a pool that does not answer in time is asked again at the next start.

"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from actors.inventory.domain import INVENTORY_COMMAND_ARGS
from actors.inventory.shell import PromiseQuery, PromiseReport
from engine.commands import CommandMsg, Outcome, payload_hash
from engine.journal.base import Batch, OpRecord, Timer, VersionConflict
from engine.runtime import (
    Actor,
    ActorCrashed,
    ActorStopped,
    AskTimeout,
    Envelope,
    Overloaded,
    ReplyCallback,
    TimerFired,
)
from protocol import ErrorCode

from . import domain
from .events import Event, SagaFinished, SagaStarted, Step, decode_event, encode_event

if TYPE_CHECKING:
    from engine.journal.base import Journal
    from engine.runtime import Registry

__all__ = ["OrderActor", "OrderEnv", "OrderQuery", "load_order"]

log = logging.getLogger("omnitill.orders")

SAGA_TIMER = "saga"
SAGA_RETRY_S = 5.0
# An open order with nothing due keeps its timer row, parked here (9999-12-31): the timers
# table is then the index of open orders that start-up reads (`list_timers("order:")`)
# instead of every order stream ever written. It never fires; closing the order clears it.
PARKED_DUE = 253402300799.0
STEP_TRIES = 4
RECENT_OPS = 64
_outcome_enc = msgspec.msgpack.Encoder()
_outcome_dec = msgspec.msgpack.Decoder(Outcome)


class OrderQuery(msgspec.Struct, frozen=True):
    """Ask an order actor for `(version, state)` (read-your-writes)."""


class _StepsUndelivered(Exception):
    pass


class OrderEnv:
    """What order actors share with the engine."""

    def __init__(
        self,
        journal: Journal,
        registry: Registry,
        make_ctx: Callable[[str, str, float], domain.Ctx],
        on_commit: Callable[[domain.Order, list[Event]], None],
        on_timer: Callable[[float], None],
        ask_timeout_s: float = 5.0,
        ask: Callable[[str, Any, float], Awaitable[Any]] | None = None,
        try_ask: Callable[[str, Any, ReplyCallback], bool] | None = None,
    ) -> None:
        self.journal = journal
        self.registry = registry
        # Saga steps go through the engine's ask: on a cluster it runs the step on the node
        # that owns the SKU pool (forwarded if need be); on one node it is the registry.
        self.ask = ask or (lambda key, msg, timeout: registry.ask(key, msg, timeout=timeout))
        # Queue a step with a reply callback if its owner is local and has room (else False).
        self.try_ask = try_ask
        self.make_ctx = make_ctx  # (op_id, payload_hash, now) -> Ctx with fresh availability
        self.on_commit = on_commit  # after every committed append: views, topics, webhooks
        self.on_timer = on_timer
        self.ask_timeout_s = ask_timeout_s


def stream_of(order_id: str) -> str:
    return f"order:{order_id}"


async def load_order(journal: Journal, order_id: str) -> domain.Order:
    state = domain.initial(order_id)
    for stored in await journal.read(stream_of(order_id)):
        domain.evolve(state, decode_event(stored.data))
    return state


def _missed_notice(
    state: domain.Order, al: domain.Alloc, report: PromiseReport
) -> domain.FlagArgs | None:
    """The `order.flag` a pool notice would have sent for `al`, if the pool says one is due."""
    if state.status not in domain.OPEN_STATUSES:
        return None
    if al.state == "held" and report.holds.get(al.hold_id) in ("expired", "released"):
        # Its units are free again (expired, or released behind the order's back).
        return domain.FlagArgs("hold_expired", al.sku, al.location_id, al.hold_id)
    flagged_before = any(
        e.alloc_no == al.alloc_no and e.kind == "stock_conflict" for e in state.exceptions.values()
    )
    if flagged_before:
        return None  # open, or staff already decided (dismissed): do not raise it again
    if al.state == "held" and al.hold_id in report.uncovered_holds.get(al.location_id, []):
        return domain.FlagArgs("stock_conflict", al.sku, al.location_id, al.hold_id)
    if al.state == "committed" and state.order_id in report.uncovered_orders.get(al.location_id, []):
        return domain.FlagArgs("stock_conflict", al.sku, al.location_id, "")
    return None


def _outcome(decision: domain.Decision, state: domain.Order | None = None) -> Outcome:
    if decision.rejection is not None:
        r = decision.rejection
        return Outcome(ok=False, code=r.code.value, message=r.message, details=dict(r.details))
    result = dict(decision.result)
    if state is not None and state.version:
        result.update(order_id=state.order_id, status=state.status, version=state.version)
        if state.create_op and decision.result.get("created"):
            result["pickup_code"] = state.pickup_code if state.fulfilment == "pickup" else ""
    return Outcome(ok=True, result=result)


def _step_result(outcome: Any) -> domain.StepResult | None:
    """A pool's answer to a step as a fact for `advance`; None if it asks for a retry."""
    if not isinstance(outcome, Outcome) or (
        not outcome.ok
        and outcome.code in (ErrorCode.UNAVAILABLE.value, ErrorCode.INTERNAL.value)
    ):
        return None
    return domain.StepResult(
        outcome.ok,
        result=dict(outcome.result),
        code=outcome.code,
        message=outcome.message,
        details=dict(outcome.details),
    )


class OrderActor(Actor):
    def __init__(self, env: OrderEnv, order_id: str) -> None:
        self.env = env
        self.order_id = order_id
        self.stream = stream_of(order_id)
        self.state = domain.initial(order_id)
        self.recent: OrderedDict[str, tuple[str, Outcome]] = OrderedDict()
        self.loaded = False  # self.state is the journal's (else: not read yet)

    async def on_start(self) -> None:
        # Nothing read yet: the first message decides (see `_ensure_loaded`). A create -- the
        # first message of almost every order actor -- skips the read (`_create_unread`).
        # Also called again by a cluster owner whose lease lapsed: forget what we knew. (A
        # fresh actor's state is `initial` already: one Order less per new order.)
        if self.loaded or self.state.version:
            self.state = domain.initial(self.order_id)
        self.loaded = False

    async def _ensure_loaded(self) -> None:
        """Rebuild the state from the journal (once per activation), then catch up."""
        if self.loaded:
            return
        self.state = await load_order(self.env.journal, self.order_id)
        self.loaded = True
        if self.state.status in domain.OPEN_STATUSES and self.state.pending is None:
            try:
                await self.catch_up()
            except (_StepsUndelivered, VersionConflict) as exc:
                log.warning("%s: catch-up deferred: %s", self.stream, exc)

    async def catch_up(self) -> int:
        """Repair missed pool notices (see the module docstring); the number of flags run."""
        by_sku: dict[str, list[domain.Alloc]] = {}
        for al in self.state.allocs.values():
            if al.outstanding > 0 and al.state in ("held", "committed"):
                by_sku.setdefault(al.sku, []).append(al)
        reports: dict[str, PromiseReport] = {}

        async def ask(sku: str, allocs: list[domain.Alloc]) -> None:
            q = PromiseQuery(
                hold_ids=tuple(a.hold_id for a in allocs if a.state == "held"),
                location_ids=tuple(sorted({a.location_id for a in allocs})),
            )
            try:
                report = await self.env.registry.ask(
                    f"sku:{sku}", q, timeout=self.env.ask_timeout_s
                )
            except (Overloaded, AskTimeout, ActorCrashed, ActorStopped) as exc:
                log.info("%s: catch-up: %s did not answer (%r)", self.stream, sku, exc)
                return
            if isinstance(report, PromiseReport):
                reports[sku] = report

        async with trio.open_nursery() as nursery:
            for sku, allocs in by_sku.items():
                nursery.start_soon(ask, sku, allocs)
        flagged = 0
        for sku, allocs in by_sku.items():
            report = reports.get(sku)
            if report is None:
                continue
            for al in allocs:
                args = _missed_notice(self.state, al, report)
                if args is None:
                    continue
                op_id = (
                    f"{self.order_id}:catchup:{args.kind}:{sku}:{report.version}:"
                    f"{args.hold_id or args.location_id}"
                )
                msg = CommandMsg(
                    op_id=op_id,
                    name="order.flag",
                    args=args,
                    payload_hash=payload_hash("order.flag", args),
                    now=time.time(),
                    actor="catch-up",
                )
                await self._command(msg)
                flagged += 1
        if flagged:
            log.info("%s: catch-up ran %d missed pool notice(s)", self.stream, flagged)
        return flagged

    async def handle_batch(self, batch: list[Envelope]) -> None:
        for envelope in batch:
            msg = envelope.msg
            try:
                if not self.loaded and not (
                    isinstance(msg, CommandMsg) and msg.name == "order.create"
                ):
                    await self._ensure_loaded()
                if isinstance(msg, CommandMsg):
                    envelope.respond(await self._command(msg))
                elif isinstance(msg, TimerFired):
                    await self._on_timer()
                    envelope.respond(None)
                elif isinstance(msg, OrderQuery):
                    envelope.respond((self.state.version, self.state))
                else:
                    envelope.respond(None)
            except _StepsUndelivered as exc:
                envelope.respond(
                    Outcome(
                        ok=False,
                        code=ErrorCode.UNAVAILABLE.value,
                        message=f"{exc}: retry with the same op_id",
                    )
                )
            except VersionConflict:
                # Another writer moved the stream (should not happen: one owner): reload.
                self.state = await load_order(self.env.journal, self.order_id)
                self.loaded = True
                envelope.respond(
                    Outcome(
                        ok=False,
                        code=ErrorCode.UNAVAILABLE.value,
                        message="order reloaded: retry with the same op_id",
                    )
                )

    # --- commands -------------------------------------------------------------------------

    async def _known(self, msg: CommandMsg) -> Outcome | None:
        known = self.recent.get(msg.op_id)
        if known is None and msg.name == "order.create" and self.state.version == 0:
            return None  # every answered create left an event: nothing to look up
        if known is None:
            rec = (await self.env.journal.lookup_ops([msg.op_id])).get(msg.op_id)
            if rec is not None:
                known = (rec.payload_hash, _outcome_dec.decode(rec.result))
        if known is None:
            return None
        if known[0] != msg.payload_hash:
            return Outcome(
                ok=False,
                code=ErrorCode.IDEMPOTENCY_CONFLICT.value,
                message=f"op_id {msg.op_id!r} was already used for a different command",
                details={"op_id": msg.op_id},
            )
        return known[1]

    async def _create_unread(self, msg: CommandMsg) -> Outcome | None:
        """A create reaching an actor that has not read its stream: decide on the empty state
        and append at expected version 0 without reading first. An order stream at version 0
        is a never-answered create (`domain.decide`), and the journal's expected-version check
        refuses the append if the stream exists (a retried create after a restart or a
        passivation): then None, and the caller reads the stream and runs the create again,
        which answers it from the op table or finishes its pending saga."""
        ctx = self.env.make_ctx(msg.op_id, msg.payload_hash, msg.now)
        decision = domain.decide(self.state, msg.name, msg.args, ctx)
        if not decision.events:
            return None  # nothing to journal: answer from the real state
        saga = any(isinstance(e, SagaStarted) for e in decision.events)
        try:
            if not saga:
                outcome = await self._append(
                    decision.events, op=(msg.op_id, msg.payload_hash, decision)
                )
                self.loaded = True
                return outcome
            await self._append(decision.events)
        except VersionConflict:
            return None  # `_append` left the state unread: `_ensure_loaded` reads it
        self.loaded = True
        return await self._drive(msg.now)

    async def _command(self, msg: CommandMsg) -> Outcome:
        if not self.loaded:
            if msg.name == "order.create":
                outcome = await self._create_unread(msg)
                if outcome is not None:
                    return outcome
            await self._ensure_loaded()
        known = await self._known(msg)
        if known is not None:
            return known
        pending = self.state.pending
        if pending is not None:
            final = await self._drive(msg.now)
            if pending.op_id == msg.op_id:
                if pending.payload_hash != msg.payload_hash:
                    return Outcome(
                        ok=False,
                        code=ErrorCode.IDEMPOTENCY_CONFLICT.value,
                        message=f"op_id {msg.op_id!r} was already used",
                    )
                return final
        ctx = self.env.make_ctx(msg.op_id, msg.payload_hash, msg.now)
        decision = domain.decide(self.state, msg.name, msg.args, ctx)
        if decision.rejection is not None and decision.rejection.code == ErrorCode.UNAVAILABLE:
            return _outcome(decision)
        saga = any(isinstance(e, SagaStarted) for e in decision.events)
        if not saga:
            return await self._append(decision.events, op=(msg.op_id, msg.payload_hash, decision))
        await self._append(decision.events)
        return await self._drive(msg.now)

    async def _on_timer(self) -> None:
        if self.state.pending is None:
            await self._append([], clear_timer=True)
            return
        try:
            await self._drive(time.time())
        except _StepsUndelivered:
            log.warning("%s: saga steps still undeliverable; the timer retries", self.stream)

    # --- sagas ----------------------------------------------------------------------------

    async def _drive(self, now: float) -> Outcome:
        """Run the pending saga to its end; the final outcome (also stored as the op record)."""
        outcome = Outcome(ok=True, result={"order_id": self.order_id})
        while (pending := self.state.pending) is not None:
            results = await self._run_steps(pending.steps)
            ctx = self.env.make_ctx(pending.op_id, pending.payload_hash, time.time())
            decision = domain.advance(self.state, results, ctx)
            if not decision.events:
                raise _StepsUndelivered("inventory refused a release; the saga will retry")
            finished = any(isinstance(e, SagaFinished) for e in decision.events)
            if finished:
                outcome = await self._append(
                    decision.events,
                    op=(pending.op_id, pending.payload_hash, decision),
                    clear_timer=True,
                )
            else:
                await self._append(decision.events)
        return outcome

    async def _run_steps(self, steps: list[Step]) -> list[domain.StepResult]:
        results: list[domain.StepResult | None] = [None] * len(steps)
        chains: dict[tuple[int, int], list[int]] = {}
        for i, step in enumerate(steps):
            # alloc 0 steps (returns) are independent of each other
            key = (step.alloc_no, 0) if step.alloc_no else (0, i)
            chains.setdefault(key, []).append(i)
        undelivered: list[str] = []

        async def run_chain(indexes: list[int]) -> None:
            for pos, i in enumerate(indexes):
                res = await self._ask_step(steps[i])
                if res is None:
                    undelivered.append(steps[i].op_id)
                    return
                results[i] = res
                if not res.ok:
                    for j in indexes[pos + 1 :]:
                        results[j] = domain.StepResult(
                            False,
                            code=ErrorCode.CONFLICT.value,
                            message="skipped: an earlier step failed",
                        )
                    return

        if self.env.try_ask is not None and len(chains) == len(steps):
            # Every chain is one step (a create's holds, a cancel's releases): one attempt
            # for all at once without a task each; what that leaves open takes the slow path.
            for i, res in enumerate(await self._ask_at_once(steps)):
                results[i] = res
            chains = {k: ix for k, ix in chains.items() if results[ix[0]] is None}
        if len(chains) == 1:
            await run_chain(next(iter(chains.values())))
        elif chains:
            async with trio.open_nursery() as nursery:
                for indexes in chains.values():
                    nursery.start_soon(run_chain, indexes)
        if undelivered:
            raise _StepsUndelivered(f"inventory busy ({len(undelivered)} step(s) undelivered)")
        return [r for r in results if r is not None]

    def _step_msg(self, step: Step) -> CommandMsg:
        args = msgspec.convert(step.args, INVENTORY_COMMAND_ARGS[step.name])
        return CommandMsg(
            op_id=step.op_id,
            name=step.name,
            args=args,
            payload_hash=payload_hash(step.name, args),
            now=time.time(),
            actor=self.stream,
        )

    async def _ask_at_once(self, steps: list[Step]) -> list[domain.StepResult | None]:
        """One attempt at every step, all queued at once with a reply callback (no task, no
        cancel scope per step). None where the step must be tried again: not queued (full
        mailbox, a cluster), failed, unavailable, or no answer within the ask timeout."""
        try_ask = self.env.try_ask
        assert try_ask is not None
        outcomes: list[Any] = [None] * len(steps)
        waiting = 0
        all_in = trio.Event()

        def answered_to(i: int) -> Callable[[Any, BaseException | None], None]:
            def answered(value: Any, error: BaseException | None) -> None:
                nonlocal waiting
                outcomes[i] = value if error is None else None
                waiting -= 1
                if waiting == 0:
                    all_in.set()

            return answered

        for i, step in enumerate(steps):
            waiting += 1
            try:
                queued = try_ask(f"sku:{step.sku}", self._step_msg(step), answered_to(i))
            except (ActorCrashed, ActorStopped):
                queued = False
            if not queued:
                waiting -= 1
        if waiting:
            with trio.move_on_after(self.env.ask_timeout_s):
                await all_in.wait()
        # A late answer after the timeout lands in `outcomes` unread: the step is re-sent
        # with the same op_id, which the pool answers from its op table.
        return [_step_result(o) for o in outcomes]

    async def _ask_step(self, step: Step) -> domain.StepResult | None:
        msg = self._step_msg(step)
        for attempt in range(STEP_TRIES):
            try:
                outcome = await self.env.ask(f"sku:{step.sku}", msg, self.env.ask_timeout_s)
            except (Overloaded, AskTimeout, ActorCrashed, ActorStopped) as exc:
                log.info(
                    "%s: step %s failed (%r), attempt %d", self.stream, step.op_id, exc, attempt
                )
                await trio.sleep(0.05 * 2**attempt)
                continue
            if not isinstance(outcome, Outcome):
                return None
            res = _step_result(outcome)
            if res is None:
                await trio.sleep(0.05 * 2**attempt)
                continue
            return res
        return None

    # --- journal --------------------------------------------------------------------------

    async def _append(
        self,
        events: list[Event],
        *,
        op: tuple[str, str, domain.Decision] | None = None,
        clear_timer: bool = False,
    ) -> Outcome:
        """Evolve, then journal `events` (+ the op record, + timer changes) in one batch.

        The outcome is computed on the evolved state (so it can say the new status); if the
        append fails the state is rebuilt from the journal before the error propagates.
        """
        state = self.state
        before = state.version
        was_open = state.status == "new" or state.status in domain.OPEN_STATUSES
        for e in events:
            domain.evolve(state, e)
        outcome = _outcome(op[2], state) if op is not None else Outcome(ok=True)
        ops: list[OpRecord] = []
        if op is not None:
            ops.append(
                OpRecord(
                    op_id=op[0],
                    stream=self.stream,
                    payload_hash=op[1],
                    ok=outcome.ok,
                    result=_outcome_enc.encode(outcome),
                )
            )
        # One timer row per order: due soon while a saga runs (crash recovery), parked while
        # the order is open with nothing due, gone once it is closed.
        timers_set: list[Timer] = []
        timers_cleared: list[tuple[str, str]] = []
        is_open = state.status in domain.OPEN_STATUSES
        if any(isinstance(e, SagaStarted) for e in events) and not clear_timer:
            due = time.time() + SAGA_RETRY_S
            timers_set.append(
                Timer(timer_id=SAGA_TIMER, actor_key=self.stream, due_at=due, payload=b"saga")
            )
        elif clear_timer and is_open:
            timers_set.append(
                Timer(timer_id=SAGA_TIMER, actor_key=self.stream, due_at=PARKED_DUE, payload=b"open")
            )
        elif clear_timer or (was_open and not is_open and events and state.pending is None):
            timers_cleared.append((self.stream, SAGA_TIMER))
        if not events and not ops and not clear_timer:
            return outcome
        batch = Batch(
            stream=self.stream,
            expected_version=before,
            events=[encode_event(e) for e in events],
            ops=ops,
            timers_set=timers_set,
            timers_cleared=timers_cleared,
        )
        try:
            await self.env.journal.append(batch)
        except BaseException:
            if not self.loaded:  # nothing was read: the next message reads the stream
                self.state = domain.initial(self.order_id)
                raise
            with trio.CancelScope(shield=True):
                self.state = await load_order(self.env.journal, self.order_id)
            raise
        if op is not None:
            self.recent[op[0]] = (op[1], outcome)
            while len(self.recent) > RECENT_OPS:
                self.recent.popitem(last=False)
        if timers_set and timers_set[0].due_at < PARKED_DUE:
            self.env.on_timer(timers_set[0].due_at)
        if events:
            self.env.on_commit(state, events)
        return outcome
