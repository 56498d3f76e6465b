"""Journal fixtures: every test that asks for `journal` (or `backend`) runs once per store."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

# Until pyproject sets `pythonpath = ["."]` for pytest, make the project importable.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from journal_backends import BACKENDS, Backend  # noqa: E402

from engine.journal import Journal  # noqa: E402


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return BACKENDS[request.param](tmp_path)


@pytest.fixture
async def journal(backend: Backend, nursery: trio.Nursery) -> AsyncIterator[Journal]:
    j = await backend.start(nursery)
    yield j
    await j.close()
