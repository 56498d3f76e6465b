"""The hot-SKU baseline as a server: one transaction with a row lock per request, behind the
same wire protocol and the same lean WebSocket framing as omnitill (bench only).

    .venv/bin/python bench/peers/rowlock_server.py --port P --db shop.db [--workers 2]

This is what bench/hot_sku.py compares omnitill against end to end: the design mainstream
commerce platforms use for a reservation (read the stock row under a lock, check, update,
insert the hold, commit; one request, one transaction), served the way they serve it: over
the network, one request per hold. Everything else is held equal so only the concurrency
design differs:

* the same clients (bench/_wsraw.py), frames (`hello`, `command hold.place`, `ack`/`reject`
  with the op_id) and WebSocket framing code (engine/gateway/_wsframe.py);
* the same store and durability: SQLite in WAL mode with synchronous=FULL, the same machine;
* the op_id is the hold's primary key (idempotency, as omnitill's op table);
* its fastest shape in CPython: the transaction runs right on the event loop (no thread
  hand-off; a worker-thread pool pays the GIL convoy, see engine/journal/sqlite.py). With
  `--workers N`, N processes share the port (SO_REUSEPORT) like N app-server workers, and
  contend for SQLite's write lock (the "row lock": SQLite locks the database, which for one
  hot row is the same thing).
* no token check beyond reading the hello, no validation: everything it skips favours it.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import socket
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.gateway._wsframe import CLOSED, FrameReader, accept_key, encode_frames


class Command(msgspec.Struct):
    type: str
    name: str = ""
    op_id: str = ""
    args: dict[str, Any] = {}


_decode = msgspec.json.Decoder(Command)
_encode = msgspec.json.encode
WELCOME = _encode({"type": "welcome", "session": "rowlock", "server_version": "baseline",
                   "protocol": 1, "roles": ["admin"], "heartbeat_s": 20})


def setup(db_path: str, sku: str, location: str, stock: int) -> None:
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript("""
        CREATE TABLE IF NOT EXISTS stock (sku TEXT, location TEXT, on_hand INTEGER, reserved INTEGER,
                                          PRIMARY KEY (sku, location)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS holds (op_id TEXT PRIMARY KEY, sku TEXT, location TEXT,
                                          qty INTEGER, created REAL) WITHOUT ROWID;
    """)
    db.execute("INSERT OR REPLACE INTO stock VALUES (?, ?, ?, 0)", (sku, location, stock))
    db.commit()
    db.close()


class Shop:
    def __init__(self, db_path: str) -> None:
        self.db = sqlite3.connect(db_path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA synchronous=FULL")

    def hold(self, op_id: str, sku: str, location: str, qty: int) -> bytes:
        db = self.db
        db.execute("BEGIN IMMEDIATE")  # the write lock: taken before the read, like FOR UPDATE
        try:
            if db.execute("SELECT 1 FROM holds WHERE op_id = ?", (op_id,)).fetchone():
                db.execute("ROLLBACK")
                return _encode({"type": "ack", "op_id": op_id, "result": {"replayed": True}})
            row = db.execute("SELECT on_hand, reserved FROM stock WHERE sku = ? AND location = ?",
                             (sku, location)).fetchone()
            if row is None or row[0] - row[1] < qty:
                db.execute("ROLLBACK")
                return _encode({"type": "reject", "op_id": op_id, "code": "insufficient_stock",
                                "message": "not enough stock"})
            db.execute("UPDATE stock SET reserved = reserved + ? WHERE sku = ? AND location = ?",
                       (qty, sku, location))
            db.execute("INSERT INTO holds VALUES (?, ?, ?, ?, ?)", (op_id, sku, location, qty, time.time()))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return _encode({"type": "ack", "op_id": op_id, "result": {"available": row[0] - row[1] - qty}})


async def serve_one(stream: trio.SocketStream, shop: Shop) -> None:
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = await stream.receive_some(16384)
        if not data:
            return
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    key = ""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip().decode()
    await stream.send_all(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n")
    reader = FrameReader(1 << 20)
    if rest:
        reader.feed(rest)
    while True:
        replies: list[bytes] = []
        while (msg := reader.next_message()) is not None:
            if msg is CLOSED:
                return
            cmd = _decode.decode(msg)  # type: ignore[arg-type]
            if cmd.type == "hello":
                replies.append(WELCOME)
            elif cmd.type == "command" and cmd.name == "hold.place":
                a = cmd.args
                replies.append(shop.hold(cmd.op_id, a["sku"], a["location_id"], int(a.get("qty", 1))))
        if replies:  # everything answered from one read goes out in one write, as omnitill does
            await stream.send_all(encode_frames(replies, True))
        data = await stream.receive_some(65536)
        if not data:
            return
        reader.feed(data)


async def main_async(port: int, db_path: str) -> None:
    shop = Shop(db_path)
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    await sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    listener = trio.SocketListener(sock)

    async def handler(stream: trio.SocketStream) -> None:
        try:
            await serve_one(stream, shop)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    await trio.serve_listeners(handler, [listener])


def worker(port: int, db_path: str) -> None:
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        trio.run(main_async, port, db_path)
    except KeyboardInterrupt:
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--db", required=True, help="SQLite file (made by setup(); see bench/hot_sku.py)")
    ap.add_argument("--workers", type=int, default=1, help="processes sharing the port")
    args = ap.parse_args()
    if args.workers == 1:
        worker(args.port, args.db)
        return 0
    procs = [mp.Process(target=worker, args=(args.port, args.db), daemon=True)
             for _ in range(args.workers)]

    def stop(signum: int, frame: object) -> None:  # the bench stops us with SIGTERM
        for p in procs:
            p.terminate()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
