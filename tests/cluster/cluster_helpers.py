"""Helpers shared by the cluster tests."""

from __future__ import annotations

import os
from collections.abc import Callable

import trio

__all__ = ["PG_DSN", "REDIS_URL", "PrivateRedis", "eventually"]

# Here, not in conftest.py: `from conftest import ...` picks whichever conftest module was
# imported first when several test folders run in one process (xdist workers).
PG_DSN = os.environ.get("OMNITILL_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("OMNITILL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def eventually(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait (bounded) until pred() holds; polls, because the other side is another process."""
    with trio.fail_after(timeout):
        while not pred():
            await trio.sleep(0.01)


class PrivateRedis:
    """A redis-server of our own on a free port, so a test can stop and restart it."""

    def __init__(self, workdir: str) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.workdir = workdir
        self.proc: trio.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        import shutil
        import subprocess

        exe = shutil.which("redis-server")
        assert exe, "redis-server is not installed (CI requires it)"
        self.proc = await trio.lowlevel.open_process(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.workdir],
            stdout=subprocess.DEVNULL,
        )
        with trio.fail_after(5):
            while True:
                try:
                    stream = await trio.open_tcp_stream("127.0.0.1", self.port)
                except OSError:
                    await trio.sleep(0.02)
                    continue
                await stream.aclose()
                return

    async def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()  # the process this test started, by its handle
            await self.proc.wait()
            self.proc = None
