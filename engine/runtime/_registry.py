"""The actor registry: activation on demand, mailboxes, per-key supervision, passivation.

THEORY OF OPERATION
===================

Every live key has one `_Entry`: a bounded trio memory channel (the mailbox) and one task in
the registry's nursery (`_actor_main`). The entry, not the actor instance, owns the mailbox,
so messages queued while an actor crashes and restarts stay queued.

One activation per key: `_resolve()` looks the key up and, if absent, creates the entry and
spawns its task, all without a checkpoint, so concurrent callers in trio's single thread
cannot both activate.

Passivation is the mirror image. An actor with an empty mailbox joins its kind's idle list
(kind = the key's part before the first ":"; oldest wait first) and blocks in `receive()`
with no timeout of its own; a message takes it off the list. One sweeper task (the body of
`run()`) sleeps until the oldest wait of any kind reaches that kind's idle timeout
(`idle_timeouts[kind]`, e.g. {"order": 5.0}: a finished order is rarely touched again, while
a SKU pool is; else `idle_timeout_s`), then checks that the actor is still blocked with
nothing queued or handed over, removes the entry and closes its inbox -- all without a
checkpoint in between, so a sender either got its message in before the check (the actor
stays) or resolves a brand-new entry afterwards. The closed inbox wakes the actor, which
runs `on_stop()`. That costs an actor no deadline per wait, and a passivation no
cancellation. A new entry for a key whose old instance is still running `on_stop()` waits
for it before its own `on_start()`, so at most one instance per key is ever live; messages
sent meanwhile queue in the new mailbox.

Supervision is one_for_one per key, inline in the actor task: if `on_start` or
`handle_batch` raises, the unanswered asks of that batch fail with `ActorCrashed`, the
instance is dropped, and after a full-jitter backoff a fresh instance from the factory
rebuilds its state. More than `max_restarts` crashes within `within_s` and the registry gives
up on that key only: queued and new asks fail with `ActorCrashed` for a cool-down of
`within_s`, after which the next `ref()` activates the key again.

Shutdown (`aclose`): refuse new messages, close every mailbox's send side so each actor
drains what is queued and then sees end-of-channel and runs `on_stop()`; at the deadline the
stragglers are cancelled and whatever is still queued fails with `ActorStopped`.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Literal

import trio

from ._actor import (
    Actor,
    ActorCrashed,
    ActorStopped,
    AskTimeout,
    Envelope,
    Overloaded,
    ReplyCallback,
    _Reply,
)
from ._supervisor import _backoff_delay, _RestartIntensity

__all__ = ["ActorRef", "Registry"]

log = logging.getLogger("omnitill.runtime")

_ON_STOP_TIMEOUT_S = 5.0


class _Entry:
    __slots__ = (
        "failed",
        "gone",
        "idle_since",
        "inbox",
        "key",
        "kind",
        "mailbox",
        "predecessor",
        "stopped",
    )

    def __init__(self, key: str, size: int, predecessor: _Entry | None) -> None:
        self.key = key
        self.kind = key.partition(":")[0]
        self.idle_since = 0.0  # when it last started waiting for a message (trio clock)
        self.mailbox, self.inbox = trio.open_memory_channel[Envelope](size)
        self.failed = False  # the registry gave up on this key (tombstone until cool-down ends)
        self.gone = False  # removed from the registry: resolve the key again
        self.predecessor = predecessor  # previous instance still stopping, if any
        self.stopped = trio.Event()  # no actor instance of this entry is live any more


class ActorRef:
    """A handle to the actor of one key; stays valid across passivation and restarts."""

    __slots__ = ("_entry", "_registry", "key")

    def __init__(self, registry: Registry, key: str, entry: _Entry) -> None:
        self._registry = registry
        self.key = key
        self._entry = entry

    def _current(self) -> _Entry:
        entry = self._entry
        if entry.gone:
            entry = self._entry = self._registry._resolve(self.key)
        return entry

    async def tell(self, msg: Any, *, timeout: float | None = None) -> None:
        """Queue `msg`, waiting for mailbox room; Overloaded if none within `timeout`."""
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        await self._enqueue(Envelope(msg), deadline)

    def try_tell(self, msg: Any) -> bool:
        """Queue `msg` if there is room right now; False if the mailbox is full."""
        entry = self._current()
        self._registry._check(entry)
        try:
            entry.mailbox.send_nowait(Envelope(msg))
        except trio.WouldBlock:
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise self._registry._dead(entry) from None
        return True

    async def ask(self, msg: Any, *, timeout: float = 5.0) -> Any:
        """Send `msg` and wait for the reply. The timeout covers queueing and answering.

        Raises Overloaded (mailbox full until the deadline), AskTimeout, ActorCrashed,
        ActorStopped, or whatever the actor passed to `Envelope.fail()`.
        """
        reply = _Reply()
        deadline = trio.current_time() + timeout
        await self._enqueue(Envelope(msg, reply), deadline)
        assert reply.event is not None
        with trio.move_on_at(deadline):
            await reply.event.wait()
        if not reply.done:
            # The envelope stays queued; a late answer fills a slot nobody reads.
            raise AskTimeout(f"actor {self.key!r} did not answer within {timeout}s")
        if reply.error is not None:
            raise reply.error
        return reply.value

    def try_ask(self, msg: Any, callback: ReplyCallback) -> bool:
        """Queue `msg` if there is room right now; the answer goes to `callback(value, error)`,
        called exactly once from the actor's task. False (nothing queued) if the mailbox is
        full or the key is between activations: use `ask` then. No timeout of its own: the
        actor answers every envelope, a crash or shutdown fails it (the caller may add one).
        Raises ActorCrashed/ActorStopped like `ask`."""
        entry = self._current()
        self._registry._check(entry)
        try:
            entry.mailbox.send_nowait(Envelope(msg, _Reply(callback)))
        except trio.WouldBlock:
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            if entry.gone and not entry.failed and not self._registry._closing:
                return False  # passivated under us: the slow path resolves a fresh entry
            raise self._registry._dead(entry) from None
        return True

    async def _enqueue(self, envelope: Envelope, deadline: float) -> None:
        registry = self._registry
        while True:
            entry = self._current()
            registry._check(entry)
            try:
                entry.mailbox.send_nowait(envelope)
                return
            except trio.WouldBlock:
                pass
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                if entry.gone and not entry.failed and not registry._closing:
                    continue  # passivated under us: resolve a fresh entry
                raise registry._dead(entry) from None
            try:
                with trio.move_on_at(deadline):
                    await entry.mailbox.send(envelope)
                    return
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                if entry.gone and not entry.failed and not registry._closing:
                    continue
                raise registry._dead(entry) from None
            raise Overloaded(f"mailbox of {self.key!r} stayed full")

    def __repr__(self) -> str:
        return f"<ActorRef {self.key!r}>"


class Registry:
    """Activates one actor per key on demand and supervises, passivates and stops them."""

    def __init__(
        self,
        factory: Callable[[str], Actor],
        *,
        mailbox_size: int = 1024,
        max_batch: int = 256,
        idle_timeout_s: float = 300.0,
        idle_timeouts: Mapping[str, float] | None = None,
        max_restarts: int = 5,
        within_s: float = 10.0,
        backoff_base_s: float = 0.05,
        backoff_max_s: float = 2.0,
    ) -> None:
        # Called after every batch an actor handled (the gateway writes the replies at once).
        self.after_batch: Callable[[], None] | None = None
        if mailbox_size < 1 or max_batch < 1:
            raise ValueError("mailbox_size and max_batch must be >= 1")
        self._factory = factory
        self.mailbox_size = mailbox_size
        self.max_batch = max_batch
        self.idle_timeout_s = idle_timeout_s
        # Key prefix ("order" for "order:42") -> idle seconds; other kinds use idle_timeout_s.
        self.idle_timeouts: dict[str, float] = dict(idle_timeouts or {})
        # kind -> entries blocked waiting for a message, oldest wait first (the sweeper's).
        self._idle: dict[str, OrderedDict[str, _Entry]] = {}
        self._sweep_at = math.inf  # when the sweeper wakes up next
        self._sweep_wake = trio.Event()
        self.max_restarts = max_restarts
        self.within_s = within_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._entries: dict[str, _Entry] = {}
        self._stopping: dict[str, _Entry] = {}  # passivated, on_stop() still running
        self._nursery: trio.Nursery | None = None
        self._closing = False
        self._close_event = trio.Event()
        self._finished = trio.Event()
        self._state: Literal["new", "running", "closed"] = "new"
        self._activations = 0
        self._passivations = 0
        self._restarts = 0
        self._crashes = 0
        self._gave_up = 0

    # -- public API ---------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Host the actors; start with `await nursery.start(registry.run)`."""
        if self._state != "new":
            raise RuntimeError("Registry.run() can only be called once")
        self._state = "running"
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await self._sweep_idle()
        finally:
            self._closing = True
            self._close_event.set()
            self._state = "closed"
            self._nursery = None
            self._finished.set()

    def ref(self, key: str) -> ActorRef:
        """A reference to the actor for `key`, activating it if needed."""
        return ActorRef(self, key, self._resolve(key))

    async def ask(self, key: str, msg: Any, *, timeout: float = 5.0) -> Any:
        return await self.ref(key).ask(msg, timeout=timeout)

    async def tell(self, key: str, msg: Any, *, timeout: float | None = None) -> None:
        await self.ref(key).tell(msg, timeout=timeout)

    def try_ask(self, key: str, msg: Any, callback: ReplyCallback) -> bool:
        return self.ref(key).try_ask(msg, callback)

    def active_keys(self) -> list[str]:
        return [k for k, e in self._entries.items() if not e.failed]

    def mailbox_depths(self) -> dict[str, int]:
        """Queued messages per active key (for metrics)."""
        return {
            k: e.mailbox.statistics().current_buffer_used
            for k, e in self._entries.items()
            if not e.failed
        }

    def stats(self) -> dict[str, int]:
        active = sum(1 for e in self._entries.values() if not e.failed)
        return {
            "active": active,
            "activations": self._activations,
            "passivations": self._passivations,
            "restarts": self._restarts,
            "crashes": self._crashes,
            "failed": len(self._entries) - active,
            "gave_up": self._gave_up,
        }

    async def aclose(self, *, deadline_s: float = 5.0) -> None:
        """Stop accepting, let actors drain their mailboxes and stop; cancel at the deadline."""
        if self._state == "new":
            self._state = "closed"
            self._closing = True
            self._finished.set()
            return
        if not self._closing:
            self._closing = True
            self._close_event.set()
            entries = [*self._entries.values(), *self._stopping.values()]
            for entry in entries:
                entry.mailbox.close()  # the actor drains what is queued, then sees the end
            with trio.move_on_after(deadline_s):
                for entry in entries:
                    await entry.stopped.wait()
            stragglers = [e.key for e in entries if not e.stopped.is_set()]
            if stragglers:
                log.warning("registry shutdown deadline: cancelling %s", stragglers)
            if self._nursery is not None:
                self._nursery.cancel_scope.cancel()
        await self._finished.wait()

    # -- activation ---------------------------------------------------------------------------

    def _resolve(self, key: str) -> _Entry:
        # No checkpoint in here: this is what makes activation exactly-once per key.
        if self._closing or self._nursery is None:
            raise ActorStopped("registry is not running")
        entry = self._entries.get(key)
        if entry is None:
            entry = _Entry(key, self.mailbox_size, self._stopping.pop(key, None))
            self._entries[key] = entry
            self._activations += 1
            self._nursery.start_soon(self._actor_main, entry, name=f"actor:{key}")
        return entry

    def _check(self, entry: _Entry) -> None:
        if self._closing:
            raise ActorStopped("registry is shut down")
        if entry.failed:
            raise ActorCrashed(f"actor {entry.key!r} keeps crashing; the registry gave up on it")

    def _dead(self, entry: _Entry) -> Exception:
        if entry.failed:
            return ActorCrashed(f"actor {entry.key!r} keeps crashing; the registry gave up on it")
        return ActorStopped(f"actor {entry.key!r} is stopped")

    def _remove(self, entry: _Entry) -> None:
        entry.gone = True
        if self._entries.get(entry.key) is entry:
            del self._entries[entry.key]

    # -- the actor task -----------------------------------------------------------------------

    async def _actor_main(self, entry: _Entry) -> None:
        try:
            if entry.predecessor is not None:
                await entry.predecessor.stopped.wait()
                entry.predecessor = None
            await self._supervise(entry)
        finally:
            entry.stopped.set()
            if self._stopping.get(entry.key) is entry:
                del self._stopping[entry.key]
            # Cancelled at the shutdown deadline (or run() was cancelled): nothing will read
            # the mailbox again, so answer what is queued instead of letting asks time out.
            self._fail_queued(entry, ActorStopped)

    async def _supervise(self, entry: _Entry) -> None:
        key = entry.key
        intensity: _RestartIntensity | None = None  # made at the first crash (a deque each)
        while True:
            outcome: Literal["passivated", "drained"] | None = None
            try:
                actor = self._factory(key)
                actor.key = key
                await actor.on_start()
                outcome = await self._serve(entry, actor)
            except Exception as exc:
                self._crashes += 1
                log.error("actor %r crashed", key, exc_info=exc)
            if outcome is None:
                # Crashed. Back off (or give up) outside the handler, so the exception and the
                # crashed instance's frames are not kept for the back-off or cool-down.
                now = trio.current_time()
                if intensity is None:
                    intensity = _RestartIntensity(self.max_restarts, self.within_s)
                if not intensity.record(now):
                    await self._give_up(entry)
                    return
                self._restarts += 1
                delay = _backoff_delay(
                    intensity.recent(now) - 1, self.backoff_base_s, self.backoff_max_s
                )
                with trio.move_on_after(delay):
                    await self._close_event.wait()  # at shutdown, restart now and drain
                continue
            if type(actor).on_stop is not Actor.on_stop:  # the default does nothing
                try:
                    # Bounded: a successor activation of this key waits for it to finish.
                    with trio.move_on_after(_ON_STOP_TIMEOUT_S) as scope:
                        await actor.on_stop()
                    if scope.cancelled_caught:
                        log.warning("actor %r: on_stop took over %.1fs", key, _ON_STOP_TIMEOUT_S)
                except Exception:
                    log.exception("actor %r: on_stop failed", key)
            if outcome == "passivated":
                self._passivations += 1
            else:
                self._remove(entry)
            return

    async def _serve(self, entry: _Entry, actor: Actor) -> Literal["passivated", "drained"]:
        inbox = entry.inbox
        max_batch = self.max_batch
        first: Envelope | None
        while True:
            try:
                first = inbox.receive_nowait()
            except trio.WouldBlock:
                first = None
            except trio.EndOfChannel:
                return "drained"
            if first is None:
                # Wait outside the `except` above: an actor idles here for a long time, and a
                # wait inside the handler would keep the WouldBlock, its traceback and frames
                # alive in the suspended coroutine all that time.
                idle = self._idle.get(entry.kind)
                if idle is None:
                    idle = self._idle[entry.kind] = OrderedDict()
                now = entry.idle_since = trio.current_time()
                idle[entry.key] = entry
                if now + self.idle_timeouts.get(entry.kind, self.idle_timeout_s) < self._sweep_at:
                    self._sweep_wake.set()
                try:
                    first = await inbox.receive()
                except trio.EndOfChannel:
                    return "drained"
                except trio.ClosedResourceError:
                    return "passivated"  # by the sweeper (_try_passivate)
                finally:
                    idle.pop(entry.key, None)
            batch = [first]
            while len(batch) < max_batch:
                try:
                    batch.append(inbox.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            await self._handle(entry, actor, batch)
            if self.after_batch is not None:
                self.after_batch()
            # handle_batch may never have checkpointed; don't starve other tasks.
            await trio.lowlevel.checkpoint()

    async def _sweep_idle(self) -> None:
        """Passivate actors idle for their kind's timeout; sleeps until the next is due."""
        while True:
            self._sweep_at = self._passivate_due(trio.current_time())
            with trio.move_on_at(self._sweep_at):
                await self._sweep_wake.wait()
            self._sweep_wake = trio.Event()

    def _passivate_due(self, now: float) -> float:
        """Passivate every actor whose idle time is up; when the next one will be."""
        next_due = math.inf
        for kind, idle in self._idle.items():
            timeout = self.idle_timeouts.get(kind, self.idle_timeout_s)
            while idle:
                entry = idle[next(iter(idle))]
                due = entry.idle_since + timeout
                if due > now:
                    next_due = min(next_due, due)
                    break
                del idle[entry.key]
                # If it cannot go (a message is on its way in), it rejoins when it next waits.
                self._try_passivate(entry)
        return next_due

    def _try_passivate(self, entry: _Entry) -> bool:
        # Atomic: no checkpoint between these checks and the removal. The actor must still
        # be blocked in receive(): a message handed straight to a waiting receiver is in
        # neither the buffer nor the send queue, but then nobody is waiting any more.
        stats = entry.inbox.statistics()
        if (
            stats.current_buffer_used
            or stats.tasks_waiting_send
            or stats.tasks_waiting_receive != 1
            or self._closing
            or entry.gone
        ):
            return False
        self._remove(entry)
        self._stopping[entry.key] = entry
        entry.inbox.close()  # wakes the actor with ClosedResourceError: it stops
        return True

    async def _handle(self, entry: _Entry, actor: Actor, batch: list[Envelope]) -> None:
        try:
            await actor.handle_batch(batch)
        except Exception as exc:
            for envelope in batch:
                if not envelope.answered:
                    error = ActorCrashed(f"actor {entry.key!r} crashed handling this message")
                    error.__cause__ = exc
                    envelope.fail(error)
            raise
        except BaseException:
            for envelope in batch:
                envelope.fail(ActorStopped(f"actor {entry.key!r} was cancelled"))
            raise
        unanswered = [e for e in batch if not e.answered]
        if unanswered:
            log.error("actor %r left %d asks unanswered", entry.key, len(unanswered))
            for envelope in unanswered:
                envelope.fail(ActorCrashed(f"actor {entry.key!r} did not answer this message"))

    async def _give_up(self, entry: _Entry) -> None:
        self._gave_up += 1
        log.error(
            "actor %r: more than %d crashes in %.1fs, giving up on this key for %.1fs",
            entry.key,
            self.max_restarts,
            self.within_s,
            self.within_s,
        )
        entry.failed = True
        self._fail_queued(entry, ActorCrashed)
        entry.inbox.close()  # senders blocked on a full mailbox get ActorCrashed too
        entry.stopped.set()
        # Tombstone: keep failing fast for a cool-down, then let the key activate afresh.
        with trio.move_on_after(self.within_s):
            await self._close_event.wait()
        self._remove(entry)

    def _fail_queued(self, entry: _Entry, error: type[Exception]) -> None:
        while True:
            try:
                envelope = entry.inbox.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return
            envelope.fail(error(f"actor {entry.key!r} is not running"))
