"""Processes for the chaos tests: `omnitill serve` nodes and a private redis-server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import trio

__all__ = ["Node", "PrivateRedis", "free_port", "percentile"]

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _wait_tcp(port: int, timeout: float) -> None:
    with trio.fail_after(timeout):
        while True:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                await trio.sleep(0.02)
                continue
            await stream.aclose()
            return


class PrivateRedis:
    """A redis-server of our own on a free port: restarting it disturbs no other test."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: trio.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is not installed (CI requires it)"
        self.proc = await trio.lowlevel.open_process(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
        )
        await _wait_tcp(self.port, 5)

    async def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()  # our own process, by its handle
            await self.proc.wait()
            self.proc = None


class Node:
    """One `omnitill serve` process, configured through environment variables (Procfile
    style): OMNITILL_STORE, OMNITILL_BUS, OMNITILL_NODE_ID, PORT."""

    def __init__(self, name: str, env: dict[str, str], data_dir: Path, log_dir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.env = {**os.environ, **env, "OMNITILL_NODE_ID": name, "PORT": str(self.port),
                    "OMNITILL_DATA_DIR": str(data_dir), "OMNITILL_DEMO": "none"}
        self.log = log_dir / f"{name}.log"
        self.proc: trio.Process | None = None
        self.starts = 0

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 30.0) -> None:
        with self.log.open("ab") as log:
            self.proc = await trio.lowlevel.open_process(
                [sys.executable, "-m", "engine.cli", "serve"],
                env=self.env, cwd=str(ROOT), stdout=log, stderr=subprocess.STDOUT,
            )
        self.starts += 1
        async with httpx.AsyncClient() as http:
            with trio.fail_after(timeout):
                while True:
                    assert self.proc.returncode is None, f"{self.name} exited: see {self.log}"
                    try:
                        r = await http.get(f"{self.http}/readyz", timeout=1.0)
                        if r.status_code == 200:
                            return
                    except httpx.HTTPError:
                        pass
                    await trio.sleep(0.05)

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)  # our own child, by its id

    async def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            await self.proc.wait()
            self.proc = None

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            with trio.move_on_after(10):
                await self.proc.wait()
            await self.kill()
