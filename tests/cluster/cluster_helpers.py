"""Helpers shared by the cluster tests."""

from __future__ import annotations

from collections.abc import Callable

import trio

__all__ = ["eventually"]


async def eventually(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait (bounded) until pred() holds; polls, because the other side is another process."""
    with trio.fail_after(timeout):
        while not pred():
            await trio.sleep(0.01)
