"""Shared fixtures: a real engine on a free loopback port, with a small seeded demo store.

Seeding runs once per session into a template directory (a real SQLite journal and secret);
each test copies it, so every test gets its own store and still starts in ~100 ms.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from engine.config import Config
from engine.server import Engine

DEMO_SCALE = 0.1
SERVICES = {"PostgreSQL": ("127.0.0.1", 5432), "Redis": ("127.0.0.1", 6379)}


def pytest_configure(config: pytest.Config) -> None:
    """In CI the services must be there: say so at once instead of failing test by test."""
    if not os.environ.get("CI"):
        return
    missing = []
    for name, (host, port) in SERVICES.items():
        try:
            socket.create_connection((host, port), timeout=3).close()
        except OSError as exc:
            missing.append(f"{name} at {host}:{port} ({exc})")
    if missing:
        raise pytest.UsageError(
            "CI is set and these services are unreachable: " + "; ".join(missing)
            + ". scripts/test starts them (scripts/services.sh); the tests that need them "
            "must run, never skip."
        )


def _config(data_dir: Path, **kw: object) -> Config:
    cfg = Config(port=0, data_dir=data_dir, store="sqlite", demo="apparel", demo_scale=DEMO_SCALE,
                 log_level="WARNING")
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    template = tmp_path_factory.mktemp("seeded")

    async def seed() -> None:
        engine = Engine(_config(template))
        await engine.run_offline(engine.inventory.seed_demo_if_needed)  # type: ignore[attr-defined]

    trio.run(seed)
    return template


@pytest.fixture
def data_dir(tmp_path: Path, seeded_template: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(seeded_template, target)
    return target


@pytest.fixture
async def engine(data_dir: Path, nursery: trio.Nursery) -> AsyncIterator[Engine]:
    eng = Engine(_config(data_dir))
    await nursery.start(eng.run)
    yield eng
    eng.stop()


def ws_url(engine: Engine) -> str:
    return f"ws://127.0.0.1:{engine.bound_port}/ws"


def http_url(engine: Engine) -> str:
    return f"http://127.0.0.1:{engine.bound_port}"
