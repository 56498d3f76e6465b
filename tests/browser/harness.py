"""Harness for the browser tests: the engine as a subprocess that can stop and start in place."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["BIN", "ROOT", "Engine", "free_port", "http_json"]

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_json(url: str, *, method: str = "GET", body: Any = None, token: str | None = None) -> Any:
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    with urllib.request.urlopen(req, timeout=10) as res:
        return json.loads(res.read())


class Engine:
    """One `omnitill serve` process that can be stopped and started again in place."""

    def __init__(self, port: int, data_dir: Path, log: Path) -> None:
        self.port = port
        self.data_dir = data_dir
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{port}"

    def start(self, timeout: float = 30.0) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [BIN / "omnitill", "serve", "--port", str(self.port), "--data-dir", self.data_dir],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"engine exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if http_json(self.url + "/healthz").get("status") == "ok":
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"engine did not become healthy in {timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def get(self, path: str, token: str | None = None) -> Any:
        return http_json(self.url + path, token=token)

    def post(self, path: str, body: Any, token: str | None = None) -> Any:
        return http_json(self.url + path, method="POST", body=body, token=token)

    def mint_token(self, role: str, location: str | None, ttl: int) -> str:
        cmd = [str(BIN / "omnitill"), "token", "--role", role, "--ttl", str(ttl)]
        cmd += ["--data-dir", str(self.data_dir)]
        if location:
            cmd += ["--location", location]
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=30, check=True)
        return out.stdout.strip().splitlines()[-1].strip()


@contextlib.contextmanager
def static_server(directory: Path, probe: str) -> Iterator[str]:
    """`python -m http.server` on a free port (another origin); yields its URL once `probe`
    answers, and stops the process it started on exit."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "-d", directory],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + probe, timeout=2).close()
            break
        except OSError:
            time.sleep(0.1)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=5)
