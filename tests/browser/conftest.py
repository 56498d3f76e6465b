"""Fixtures for the browser tests: a real engine process, a second origin, headless Chromium.

The engine runs as `.venv/bin/omnitill serve` in a subprocess on a free port with its own data
directory, so a test can stop it and start it again (same data dir, same port) while the pages
stay open. The widget's host page is served from a second origin by `python -m http.server`.
Chromium is Debian's (/usr/bin/chromium), driven by sync Playwright from plain test functions.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.harness import ROOT, Engine, free_port, static_server

WEB = ROOT / "clients" / "web"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    data = tmp_path / "data"
    data.mkdir()
    eng = Engine(free_port(), data, tmp_path / "engine.log")
    eng.start()
    try:
        yield eng
    finally:
        eng.stop()


@pytest.fixture
def second_origin(tmp_path: Path) -> Iterator[str]:
    """A different origin (another port) serving a copy of widget-demo.html, like a web shop."""
    shop = tmp_path / "shop"
    shop.mkdir()
    shutil.copy(WEB / "widget-demo.html", shop / "widget-demo.html")
    with static_server(shop, "/widget-demo.html") as url:
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
