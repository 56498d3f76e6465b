"""`omnitill serve` with experimental hot-path patches applied, to measure a proposed engine change
before anyone edits the engine (bench only; never used by the product).

    .venv/bin/python bench/_patched_serve.py --patch batch,gcfreeze serve --data-dir D --port P

Patches:
  batch     Connection.writer sends everything one drain returned as ONE text frame holding a JSON
            array of messages (`[{...},{...}]`) instead of one frame per message; a single
            message still goes out alone. Cuts hypercorn/wsproto/trio per-frame work and socket
            writes by the batch size under load. Needs clients that accept an array frame.
  bytes     skip the bytes->str decode per frame (sends binary frames carrying JSON).
  gcfreeze  gc.freeze() once start-up is done (the catalog, read models and actor states move
            to the permanent generation, so collections stop re-scanning them).
  gctune    gcfreeze, plus gc.set_threshold(50_000, 20, 100) and a gc.freeze() every 10 s, so
            the long-lived per-connection objects (tasks, wsproto/hypercorn state, outboxes)
            leave the generations that every young collection walks.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def patch_batch(binary: bool = False) -> None:
    from engine.gateway import _ws

    async def writer(self: _ws.Connection) -> None:
        send = self._send
        outbox = self.outbox
        metrics = self.engine.metrics
        while True:
            await outbox.wait()
            if outbox.closed:
                return
            frames = outbox.drain()
            if outbox.encoding == "json":
                payload = frames[0] if len(frames) == 1 else b"[" + b",".join(frames) + b"]"
                if binary:
                    await send({"type": "websocket.send", "bytes": payload})
                else:
                    await send({"type": "websocket.send", "text": payload.decode()})
            else:
                for frame in frames:
                    await send({"type": "websocket.send", "bytes": frame})
            self.last_progress = time.monotonic()
            metrics.frames_out += len(frames)

    _ws.Connection.writer = writer  # type: ignore[method-assign]


def patch_bytes() -> None:
    from engine.gateway import _ws

    async def writer(self: _ws.Connection) -> None:
        send = self._send
        outbox = self.outbox
        metrics = self.engine.metrics
        while True:
            await outbox.wait()
            if outbox.closed:
                return
            frames = outbox.drain()
            for frame in frames:
                await send({"type": "websocket.send", "bytes": frame})
                self.last_progress = time.monotonic()
            metrics.frames_out += len(frames)

    _ws.Connection.writer = writer  # type: ignore[method-assign]


def patch_gcfreeze() -> None:
    from engine import server

    original = server.Engine.__init__

    def init(self: server.Engine, config: object) -> None:
        original(self, config)  # type: ignore[arg-type]

        async def freeze() -> None:
            gc.collect()
            gc.freeze()

        self.startup_hooks.append(freeze)

    server.Engine.__init__ = init  # type: ignore[method-assign]


def patch_gctune() -> None:
    from engine import server

    original = server.Engine.__init__

    def init(self: server.Engine, config: object) -> None:
        original(self, config)  # type: ignore[arg-type]

        async def tune() -> None:
            import trio

            gc.collect()
            gc.freeze()
            gc.set_threshold(50_000, 20, 100)

            async def refreeze() -> None:
                while True:
                    await trio.sleep(10)
                    gc.freeze()

            # The registry's nursery is not ours: piggy-back on a system task.
            trio.lowlevel.spawn_system_task(refreeze)

        self.startup_hooks.append(tune)

    server.Engine.__init__ = init  # type: ignore[method-assign]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patch", default="")
    args, rest = ap.parse_known_args()
    patches = [p for p in args.patch.split(",") if p]
    if "batch" in patches:
        patch_batch(binary="bytes" in patches)
    elif "bytes" in patches:
        patch_bytes()
    if "gctune" in patches:
        patch_gctune()
    elif "gcfreeze" in patches:
        patch_gcfreeze()
    from engine.cli import main as cli_main

    return cli_main(rest)


if __name__ == "__main__":
    sys.exit(main())
