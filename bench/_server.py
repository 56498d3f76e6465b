"""Start and stop `omnitill serve` (and the peer servers) as subprocesses; tiny REST helpers.

The benchmarks always measure a real server process on a fresh data dir, never an engine
inside the load generator's own process (that would share its GIL and its event loop).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["ROOT", "OmnitillServer", "PeerServer", "free_port", "hist_quantiles", "load_info",
           "machine_info"]

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_info() -> dict[str, Any]:
    one, five, fifteen = os.getloadavg()
    return {"loadavg_1m": round(one, 2), "loadavg_5m": round(five, 2), "loadavg_15m": round(fifteen, 2),
            "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}


def machine_info() -> dict[str, Any]:
    import platform

    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


def hist_quantiles(before: list[tuple[float, int]], after: list[tuple[float, int]],
                   qs: tuple[float, ...] = (0.5, 0.99)) -> dict[str, float]:
    """Quantiles (ms, bucket upper bounds) of what a cumulative histogram counted in between."""
    counts = [(le, a - b) for (le, a), (_, b) in zip(after, before, strict=True)]
    total = counts[-1][1] if counts else 0
    out: dict[str, float] = {}
    for q in qs:
        le = next((le for le, c in counts if total and c >= q * total), float("nan"))
        out[f"p{round(q * 100)}_ms"] = round(le * 1000, 2)
    return out


def _wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on port {port} after {timeout}s")


class OmnitillServer:
    """`omnitill serve` on a fresh data dir (apparel demo seeded on first start)."""

    def __init__(self, *, data_dir: Path | None = None, port: int | None = None, demo: str = "apparel",
                 patches: str = "", env: dict[str, str] | None = None) -> None:
        self.patches = patches  # experimental hot-path patches (bench/_patched_serve.py)
        self.env = env or {}
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="omnitill-bench-"))
        self.port = port or free_port()
        self.demo = demo
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = self.data_dir / "server.log"
        self.token = ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> None:
        env = {**os.environ, "OMNITILL_LOG_LEVEL": "WARNING", **self.env}  # self.env wins
        cmd = [str(VENV_BIN / "omnitill"), "serve", "--data-dir", str(self.data_dir),
               "--port", str(self.port), "--demo", self.demo]
        if self.patches:
            cmd[:2] = [str(VENV_BIN / "python"), str(ROOT / "bench" / "_patched_serve.py"),
                       "--patch", self.patches, "serve"]
        self.proc = subprocess.Popen(cmd, env=env, stdout=open(self._log, "ab"), stderr=subprocess.STDOUT,
                                     preexec_fn=_raise_nofile_child)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"omnitill serve exited: {self._log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        else:
            raise TimeoutError("omnitill did not become ready")
        if not self.token:
            self.token = subprocess.run(
                [str(VENV_BIN / "omnitill"), "token", "--data-dir", str(self.data_dir), "--role", "admin",
                 "--ttl", "86400"], capture_output=True, text=True, check=True,
            ).stdout.strip()

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def cleanup(self) -> None:
        self.stop()
        if self._log.exists():  # keep the last server log for post-mortems
            shutil.copy(self._log, Path(tempfile.gettempdir()) / "omnitill-bench-last-server.log")
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # --- REST ---------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{method} {path}: {exc.code} {exc.read()[:300]!r}") from None

    def skus(self, n: int) -> list[str]:
        items = self.request("GET", "/api/v1/products?query=AA&limit=200")["items"]
        skus = [i["sku"] for i in items]
        if len(skus) < n:
            raise RuntimeError(f"only {len(skus)} SKUs in the demo catalog, wanted {n}")
        return skus[:n]

    def histogram(self, name: str) -> list[tuple[float, int]]:
        """A cumulative Prometheus histogram from /metrics: [(upper bound s, count)]."""
        req = urllib.request.Request(f"{self.url}/metrics", headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read().decode()
        out = []
        for line in text.splitlines():
            if line.startswith(f"{name}_bucket"):
                le = line.split('le="', 1)[1].split('"', 1)[0]
                out.append((float("inf") if le == "+Inf" else float(le), int(float(line.rsplit(" ", 1)[1]))))
        return out

    def balance(self, sku: str, location: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/stock/{sku}")["locations"].get(location, {})

    def receive(self, sku: str, location: str, qty: int, op_id: str) -> dict[str, Any]:
        return self.request("POST", f"/api/v1/stock/{sku}/{location}/receive", {"op_id": op_id, "qty": qty})


class PeerServer:
    """A peer server (Node `ws`, python-socketio) started from a command line."""

    def __init__(self, name: str, cmd: list[str], port: int, cwd: Path | None = None) -> None:
        self.name, self.cmd, self.port, self.cwd = name, cmd, port, cwd
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> None:
        self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, stdout=subprocess.DEVNULL,
                                     stderr=open(Path(tempfile.gettempdir()) / f"bench-{self.name}.log", "ab"),
                                     preexec_fn=_raise_nofile_child)
        _wait_port(self.port, timeout, self.proc)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _raise_nofile_child() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


if __name__ == "__main__":  # manual smoke test
    s = OmnitillServer()
    s.start()
    print(s.url, s.skus(3), file=sys.stderr)
    s.cleanup()
