"""The actor contract: the message envelope, the `Actor` base class and the runtime's errors.

An `Envelope` carries one message into an actor's mailbox. A `tell` envelope wants no reply;
an `ask` envelope carries a one-shot reply slot that the actor fills with `respond()` or
`fail()`. The slot is plain memory: if the asker gave up (timeout, cancellation) a late answer
lands in a slot nobody reads and is garbage-collected with the envelope -- nothing leaks and
nothing blocks.

A reply slot can also carry a callback instead of an event (`ActorRef.try_ask`): the actor's
`respond()`/`fail()` then calls it directly, in the actor's task. The gateway uses that for
WebSocket commands, so a command costs no task, no event and no cancel scope of its own.
A callback must be quick and must not raise (it runs inside the actor's batch).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import trio

__all__ = [
    "Actor",
    "ActorCrashed",
    "ActorStopped",
    "AskTimeout",
    "Envelope",
    "Overloaded",
    "ReplyCallback",
]

log = logging.getLogger("omnitill.runtime")

# Called once with (value, None) or (None, error) when an ask is answered.
ReplyCallback = Callable[[Any, BaseException | None], None]


class Overloaded(Exception):
    """The mailbox stayed full past the tell/ask timeout (push-back: retry later or shed load)."""


class AskTimeout(Exception):
    """The message was queued but no reply came in time."""


class ActorCrashed(Exception):
    """The actor raised while handling this message, or the registry gave up on its key."""


class ActorStopped(Exception):
    """The actor or the whole registry is shut down (or not running yet)."""


class _Reply:
    """One-shot reply slot shared by an asker and its envelope."""

    __slots__ = ("callback", "done", "error", "event", "value")

    def __init__(self, callback: ReplyCallback | None = None) -> None:
        self.callback = callback
        self.event: trio.Event | None = None if callback is not None else trio.Event()
        self.done = False
        self.value: Any = None
        self.error: BaseException | None = None

    def settle(self) -> None:
        if self.callback is None:
            assert self.event is not None
            self.event.set()
            return
        try:
            self.callback(self.value, self.error)
        except Exception:  # never let an asker's bug crash the actor that answered it
            log.exception("reply callback failed")


class Envelope:
    """A message in a mailbox, plus (for asks) the means to answer it exactly once."""

    __slots__ = ("_reply", "msg")

    def __init__(self, msg: Any, reply: _Reply | None = None) -> None:
        self.msg = msg
        self._reply = reply

    @property
    def wants_reply(self) -> bool:
        """True for an ask, False for a tell."""
        return self._reply is not None

    @property
    def answered(self) -> bool:
        """True once nothing more is owed: the ask was answered, or it is a tell."""
        return self._reply is None or self._reply.done

    def respond(self, value: Any) -> None:
        """Give the asker `value`. No-op for a tell or if already answered."""
        reply = self._reply
        if reply is None or reply.done:
            return
        reply.done = True
        reply.value = value
        reply.settle()

    def fail(self, exc: BaseException) -> None:
        """Make the asker's `ask()` raise `exc`. No-op for a tell or if already answered."""
        reply = self._reply
        if reply is None or reply.done:
            return
        reply.done = True
        reply.error = exc
        reply.settle()

    def __repr__(self) -> str:
        kind = "ask" if self._reply is not None else "tell"
        return f"<Envelope {kind} {self.msg!r}>"


class Actor:
    """Base class of the actor shells the registry runs, one live instance per key.

    The registry sets `key`, then calls `on_start()` (rebuild state, e.g. from the journal),
    then `handle_batch()` for every batch taken from the mailbox, and `on_stop()` when the
    actor passivates or the registry shuts down. After a crash the instance is dropped (no
    `on_stop`) and a fresh one from the factory goes through `on_start()` again.
    """

    key: str

    async def on_start(self) -> None:
        """Rebuild state. Called at activation and after every restart."""

    async def handle_batch(self, batch: list[Envelope]) -> None:
        """Handle a batch of messages, answering every envelope that wants a reply."""
        raise NotImplementedError

    async def on_stop(self) -> None:
        """Passivation or shutdown (best effort; not called after a crash)."""
