"""`omnitill serve` with experimental hot-path patches applied, to measure a proposed engine change
before anyone edits the engine (bench only; never used by the product).

    .venv/bin/python bench/_patched_serve.py --patch gctune serve --data-dir D --port P

(Batched frames, measured here first as a writer patch, are now in the engine as the opt-in
`hello.batch`; the bench clients opt in unless the system is labelled `omnitill:nobatch`.)

Patches:
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


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
    if "gctune" in patches:
        patch_gctune()
    elif "gcfreeze" in patches:
        patch_gcfreeze()
    from engine.cli import main as cli_main

    return cli_main(rest)


if __name__ == "__main__":
    sys.exit(main())
