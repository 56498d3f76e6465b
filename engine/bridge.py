"""The asyncio bridge: the ONE module of omnitill that imports asyncio.

asyncpg (the PostgreSQL journal) and redis.asyncio (the cluster layer) are asyncio libraries;
the engine is trio. Everything asyncio-flavoured is reached through `Bridge.run`::

    async with open_bridge() as bridge:                       # or ThreadBridge(), see below
        conn = await bridge.run(asyncpg.connect, dsn)
        n = await bridge.run(conn.fetchval, "SELECT 1")

`run(fn, *args)` calls `fn(*args)` ON THE ASYNCIO SIDE (so even the synchronous part of `fn`
runs in the asyncio loop's thread) and awaits the coroutine it returns from trio. Objects an
asyncio library hands back (connections, pools, pubsub objects) stay bound to that bridge's
loop: only ever use them through the same bridge. Keep crossings coarse -- one `run` per
transaction or per batch of messages, not per statement -- because a crossing, not the query,
is what costs (see docs/scale-out.md for the numbers).

Theory of operation
-------------------
Two implementations behind the one `Bridge` protocol (httpcore-style backends):

`ThreadBridge` (the default; chosen by measurement, docs/scale-out.md) runs a private asyncio
event loop in a dedicated daemon thread. `run` schedules task creation on that loop with
`call_soon_threadsafe`, then parks the trio task with `wait_task_rescheduled`. The asyncio
task's done-callback captures its outcome and hands it back with the trio token's
`run_sync_soon(reschedule, ...)` -- one cross-thread wake-up each way, no worker thread parked
per call, no polling.

Cancellation: trio's abort callback asks the loop to `task.cancel()` and answers
`Abort.FAILED`, i.e. the trio task keeps waiting until the asyncio task has really finished
unwinding (asyncpg has sent its cancel request, a transaction has rolled back). If the asyncio
task still completed normally (the cancel came too late) its result is returned, as trio's own
primitives do; if it ended with CancelledError the trio task raises `trio.Cancelled`. (This is
why the bridge does not wait on `asyncio.run_coroutine_threadsafe`'s concurrent future: that
future reports "cancelled" at once, before the asyncio task has finished its cleanup.)

`TrioAsyncioBridge` runs asyncio ON the trio thread through trio-asyncio: `run` is
`loop.run_aio_coroutine`, whose cancellation works the same way (cancel, then wait). Its loop
is an async context manager that must enter and exit in one task, so it exists only inside
`async with open_bridge("trio-asyncio")`.

Errors: exceptions raised by the asyncio code propagate unchanged (callers map driver errors at
their own seam, e.g. the journal maps asyncpg errors to JournalError). A CancelledError that
trio did not ask for (the loop is shutting down) and calls on a closed bridge raise
`BridgeClosed`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal, Protocol, TypeVar

import outcome
import trio

__all__ = [
    "Bridge",
    "BridgeClosed",
    "BridgeKind",
    "ThreadBridge",
    "TrioAsyncioBridge",
    "open_bridge",
]

T = TypeVar("T")
BridgeKind = Literal["thread", "trio-asyncio"]


class BridgeClosed(RuntimeError):
    """The bridge (its asyncio loop) is closed, or was closed under a running call."""


class Bridge(Protocol):
    """Run asyncio coroutine functions from trio."""

    @property
    def kind(self) -> BridgeKind: ...

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Call `fn(*args)` on the asyncio side and await its result from trio."""
        ...


async def _call(fn: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> T:
    return await fn(*args)


class ThreadBridge:
    """An asyncio loop in a dedicated thread. `start()` (sync) or `async with`; `aclose()`."""

    kind: BridgeKind = "thread"

    def __init__(self, *, name: str = "omnitill-asyncio") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self.calls = 0  # crossings made (for benchmarks and the ops dashboard)

    @property
    def running(self) -> bool:
        return self._loop is not None and not self._closed

    def start(self) -> None:
        """Start the loop thread (idempotent). Cheap: one thread, no trio task needed."""
        if self._closed:
            raise BridgeClosed("bridge is closed")
        if self._loop is not None:
            return
        # Built directly, not through the event loop policy: no global asyncio state is used,
        # and it still works when trio-asyncio (which patches the policy) is imported.
        loop = asyncio.SelectorEventLoop()
        ready = threading.Event()
        thread = threading.Thread(
            target=self._thread_main, args=(loop, ready), name=self._name, daemon=True
        )
        thread.start()
        ready.wait()
        self._loop, self._thread = loop, thread

    @staticmethod
    def _thread_main(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            # Like asyncio.run(): cancel what is left and let it unwind, then close.
            # A cancelled task may start new ones (asyncpg sends its cancel request from a
            # task of its own): repeat until nothing is left, a few rounds at most.
            for _ in range(5):
                tasks = asyncio.all_tasks(loop)
                if not tasks:
                    break
                for task in tasks:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def aclose(self) -> None:
        """Cancel what still runs on the loop, stop it and join its thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(thread.join)

    async def __aenter__(self) -> ThreadBridge:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        loop = self._loop
        if loop is None or self._closed:
            raise BridgeClosed("bridge is not running")
        token = trio.lowlevel.current_trio_token()
        trio_task = trio.lowlevel.current_task()
        holder: list[asyncio.Task[T]] = []
        raise_cancel: trio.lowlevel.RaiseCancelT | None = None

        def on_done(task: asyncio.Task[T]) -> None:  # asyncio thread
            result = outcome.capture(task.result)
            try:
                token.run_sync_soon(trio.lowlevel.reschedule, trio_task, result)
            except trio.RunFinishedError:  # trio is gone; nobody waits any more
                pass

        def create() -> None:  # asyncio thread
            task = loop.create_task(_call(fn, args))
            holder.append(task)
            task.add_done_callback(on_done)

        def cancel() -> None:  # asyncio thread; create() ran before (FIFO)
            if holder:
                holder[0].cancel()

        def abort(raise_cancel_fn: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
            nonlocal raise_cancel
            raise_cancel = raise_cancel_fn
            try:
                loop.call_soon_threadsafe(cancel)
            except RuntimeError:  # loop closed: on_done has fired or will never fire
                pass
            return trio.lowlevel.Abort.FAILED  # keep waiting until asyncio has unwound

        try:
            loop.call_soon_threadsafe(create)
        except RuntimeError as exc:
            raise BridgeClosed("bridge loop is closed") from exc
        self.calls += 1
        try:
            result: T = await trio.lowlevel.wait_task_rescheduled(abort)
        except asyncio.CancelledError as exc:
            if raise_cancel is not None:
                raise_cancel()  # trio's own Cancelled, so the right cancel scope catches it
            raise BridgeClosed("asyncio task cancelled: the bridge is shutting down") from exc
        return result


class TrioAsyncioBridge:
    """asyncio on the trio thread via trio-asyncio. Only exists inside `open_bridge(...)`."""

    kind: BridgeKind = "trio-asyncio"

    def __init__(self, loop: Any) -> None:
        self._loop = loop
        self._closed = False
        self.calls = 0

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        if self._closed:
            raise BridgeClosed("bridge is closed")
        self.calls += 1
        try:
            result: T = await self._loop.run_aio_coroutine(_call(fn, args))
        except asyncio.CancelledError as exc:  # trio-asyncio re-raises trio's own cancels
            raise BridgeClosed("asyncio task cancelled: the bridge is shutting down") from exc
        return result


@asynccontextmanager
async def open_bridge(kind: BridgeKind = "thread") -> AsyncIterator[Bridge]:
    """A bridge of `kind` for the duration of the block; closed (tasks cancelled) on exit."""
    if kind == "thread":
        async with ThreadBridge() as tb:
            yield tb
    elif kind == "trio-asyncio":
        import trio_asyncio

        async with trio_asyncio.open_loop() as loop:
            ta = TrioAsyncioBridge(loop)
            try:
                yield ta
            finally:
                ta._closed = True
    else:
        raise ValueError(f"unknown bridge kind {kind!r}: 'thread' or 'trio-asyncio'")
