"""Fixtures for the actor runtime tests."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

# Until pyproject sets `pythonpath = ["."]` for pytest, make the project importable.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from engine.runtime import Actor, Registry  # noqa: E402

StartRegistry = Callable[..., Awaitable[Registry]]


@pytest.fixture
def start_registry(nursery: trio.Nursery) -> StartRegistry:
    """Start a Registry in the test's nursery (cancelled when the test ends)."""

    async def start(factory: Callable[[str], Actor], **kwargs: Any) -> Registry:
        registry = Registry(factory, **kwargs)
        await nursery.start(registry.run)
        return registry

    return start
