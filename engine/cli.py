"""`omnitill` command line: serve, token, seed."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

import trio

from protocol import SERVER_VERSION

from .auth import ROLES, TokenSigner, load_or_create_secret
from .config import Config

__all__ = ["main"]

RETAILERS = ("apparel", "grocer", "electronics")


SERVE_ENV_HELP = """\
more settings, from the environment:
  OMNITILL_SECRET                    token signing secret (default: a file in the data dir)
  OMNITILL_WEBHOOK_URLS              webhook endpoints, comma-separated (none: no webhooks)
  OMNITILL_WEBHOOK_SECRET            HMAC-SHA256 key for Omnitill-Signature (required
                                     with URLs, at least 16 characters)
  OMNITILL_WEBHOOK_EVENTS            types to send (order.updated, stock.changed,
                                     stock.conflict; default all)
  OMNITILL_WEBHOOK_TIMEOUT_S         per attempt (default 5)
  OMNITILL_WEBHOOK_STOCK_INTERVAL_S  stock.changed at most this often (default 1)
  OMNITILL_ROUTING_RULES             ship routing rule order (default
                                     fewest_shipments,prefer_stores,closest)
  OMNITILL_IDLE_ORDER_ACTOR_S        order actors passivate after this idle time (default 5)
  OMNITILL_SQLITE_WRITER             inline (default), thread (slow disks) or process
                                     (a writer process beside the engine)
  OMNITILL_WS_FRONT                  lean (default) or hypercorn for /ws
see docs/orders.md, docs/architecture.md and docs/scale-out.md for the rest"""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the SQLite journal and the token secret live (env OMNITILL_DATA_DIR, default ./.data)",
    )
    p.add_argument(
        "--store",
        default=None,
        help="journal: 'sqlite' (default, file in the data dir), 'memory', or postgresql://... (env OMNITILL_STORE / DATABASE_URL)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omnitill",
        description="omnitill: real-time stock, pickup holds and registers for omnichannel retail.",
    )
    parser.add_argument("--version", action="version", version=f"omnitill {SERVER_VERSION}")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the engine (gateway, actors, journal)",
        description="Run the engine. With no options: SQLite in ./.data, one process, "
        "apparel demo data on first start, web clients on http://127.0.0.1:8000.",
        epilog=SERVE_ENV_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(serve)
    serve.add_argument("--host", default=None, help="bind address (env HOST, default 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=None, help="port (env PORT, default 8000; 0 = any free port)"
    )
    serve.add_argument(
        "--bus",
        default=None,
        help="'local' (default) or redis://... for several nodes (env OMNITILL_BUS / REDIS_URL)",
    )
    serve.add_argument(
        "--node-id", default=None, help="this node's name in a cluster (env OMNITILL_NODE_ID)"
    )
    serve.add_argument(
        "--demo",
        default=None,
        choices=[*RETAILERS, "none"],
        help="demo retailer seeded on first start (env OMNITILL_DEMO, default apparel; 'none' for an empty store)",
    )
    serve.add_argument(
        "--allowed-origin",
        action="append",
        default=None,
        metavar="ORIGIN",
        help="browser origin allowed to use /ws and /api (repeatable; env OMNITILL_ALLOWED_ORIGINS, comma-separated; default '*')",
    )
    serve.add_argument(
        "--log-level", default=None, help="DEBUG, INFO, WARNING (env OMNITILL_LOG_LEVEL)"
    )

    token = sub.add_parser(
        "token",
        help="mint a signed access token",
        description="Mint a token signed with this data dir's secret (or OMNITILL_SECRET).",
    )
    token.add_argument(
        "--data-dir", type=Path, default=None, help="data dir holding the secret (default ./.data)"
    )
    token.add_argument("--role", required=True, choices=ROLES, help="the token's role")
    token.add_argument("--location", default=None, help="scope the token to one location id")
    token.add_argument("--sub", default=None, help="who the token is for (default: the role)")
    token.add_argument(
        "--ttl", type=float, default=12 * 3600, help="lifetime in seconds (default 43200)"
    )

    seed = sub.add_parser(
        "seed",
        help="load demo data into the store",
        description="Load a demo retailer (catalog + opening stock) through the real "
        "command path. Safe to re-run: rows already loaded are skipped.",
    )
    _common(seed)
    seed.add_argument(
        "--retailer",
        default="apparel",
        choices=RETAILERS,
        help="apparel: 15 boutiques + DC; grocer: weighed goods, curbside; electronics: serial-tracked",
    )
    seed.add_argument(
        "--scale", type=float, default=1.0, help="multiply the catalog size (default 1.0)"
    )
    return parser


class ProgressBar:
    """A one-line progress bar on stderr (no dependency)."""

    def __init__(self, label: str, width: int = 30) -> None:
        self.label = label
        self.width = width
        self.started = time.monotonic()
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        frac = done / total if total else 1.0
        filled = int(frac * self.width)
        rate = done / max(now - self.started, 1e-6)
        sys.stderr.write(
            f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} ({rate:,.0f}/s)"
        )
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _config(args: argparse.Namespace, **extra: Any) -> Config:
    return Config.from_env(
        data_dir=getattr(args, "data_dir", None),
        store=getattr(args, "store", None),
        **extra,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import Engine

    cfg = _config(
        args,
        host=args.host,
        port=args.port,
        bus=args.bus,
        node_id=args.node_id,
        demo=args.demo,
        allowed_origins=args.allowed_origin,
        log_level=args.log_level,
    )

    refused: list[str] = []

    async def main() -> None:
        try:
            engine = Engine(cfg)
        except ValueError as exc:  # a setting it cannot run with: say which, no traceback
            refused.append(str(exc))
            return
        async with trio.open_nursery() as nursery:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                nursery.start_soon(engine.run)

                async for _sig in signals:
                    engine.stop()
                    break

    trio.run(main)
    if refused:
        print(f"omnitill serve: {refused[0]}", file=sys.stderr)
        return 2
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    cfg = _config(args)
    signer = TokenSigner(load_or_create_secret(cfg.data_dir))
    print(signer.mint(args.role, sub=args.sub or args.role, location=args.location, ttl_s=args.ttl))
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from .server import Engine

    cfg = _config(args)
    cfg.demo = None  # seed exactly what was asked, nothing on start-up

    async def main() -> None:
        engine = Engine(cfg)
        bar = ProgressBar(f"seeding {args.retailer}")

        async def work() -> None:
            rows = await engine.inventory.seed_demo(args.retailer, scale=args.scale, progress=bar)  # type: ignore[attr-defined]
            print(f"loaded {rows} stock rows", file=sys.stderr)

        await engine.run_offline(work)

    trio.run(main)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"serve": cmd_serve, "token": cmd_token, "seed": cmd_seed}[args.cmd]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
