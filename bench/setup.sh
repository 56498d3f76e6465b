#!/usr/bin/env bash
# Bench set-up: Python extras (peers, plotting, process stats, profiler) and the Node peer.
#   bash bench/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || python3 -m venv .venv
# pyproject's `bench` extra: python-socketio, uvicorn, matplotlib, psutil.
"$PY" -m pip install -q -e '.[bench]'
# uvicorn[standard] (uvloop, httptools, websockets) is what python-socketio's docs deploy on;
# py-spy profiles the server while a benchmark runs.
"$PY" -m pip install -q 'uvicorn[standard]>=0.30' 'py-spy>=0.3'
if command -v npm >/dev/null; then
  npm install --silent --no-audit --no-fund --prefix bench/peers
else
  echo "npm not found: the Node.js ws peer is skipped (apt-get install nodejs npm)" >&2
fi
# Many sockets per process: show the limits (each generator raises soft to hard itself).
echo "open files: soft $(ulimit -Sn), hard $(ulimit -Hn)"
