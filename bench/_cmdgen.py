"""The WebSocket command generator the throughput benchmarks share (hot SKU, orders, cluster).

`generate` runs inside one generator process: it opens `n_conns` raw WebSocket connections
(bench/_wsraw.py), says hello, waits for `start_at`, then keeps `depth` commands in flight per
connection until `duration` is up or `budget` commands were sent. Latency = command sent ->
its ack or reject. Each benchmark supplies only `make_command(op_id) -> (frame payload, note)`;
`note` comes back to `on_ack(note, result)` when that command is acknowledged.

op_ids: what our clients send (`uuid7`: time-ordered, protocol/op_ids.py) unless the
environment says BENCH_OP_IDS=uuid4 (random, as clients that use random UUIDs send) or
`counter` (run id + a counter per process). The benchmarks' --op-ids flag sets it.

`spawn` starts one such process per entry of a plan and `merge` adds their results up.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgspec
from _wsraw import Loop, WsConn, encode_frame, raise_nofile

from protocol.op_ids import new_op_id

__all__ = ["OP_IDS", "generate", "merge", "spawn"]

OP_IDS: dict[str, Callable[[], str] | None] = {
    "uuid7": new_op_id,
    "uuid4": lambda: uuid.uuid4().hex,
    "counter": None,
}


class Reply(msgspec.Struct):
    type: str
    op_id: str = ""
    code: str = ""
    result: dict[str, Any] = {}


_reply = msgspec.json.Decoder(Reply)
_replies = msgspec.json.Decoder(list[Reply])


def generate(
    *, wid: int, port: int, token: str, n_conns: int, depth: int, start_at: float,
    duration: float, budget: int | None, make_command: Callable[[str], tuple[bytes, Any]],
    on_ack: Callable[[Any, dict[str, Any]], None] | None = None, batch: bool = False,
) -> dict[str, Any]:
    raise_nofile()
    run_id = f"{os.getpid():x}{int(time.time() * 1000) % 100000:x}"
    loop = Loop()
    hello = encode_frame(msgspec.json.encode(
        {"type": "hello", "protocol": 1, "token": token, "client": "bench", "batch": batch}))
    lat = array("d")
    codes: Counter[str] = Counter()
    st = {"welcomed": 0, "sent": 0, "acks": 0, "inflight": 0, "closed": 0, "running": False}
    end = start_at + duration
    counter = iter(range(10**12))
    perf = time.perf_counter
    new_id = OP_IDS[os.environ.get("BENCH_OP_IDS", "uuid7")]

    def frame(c: WsConn) -> bytes:
        op = new_id() if new_id is not None else f"{run_id}w{wid}-{next(counter)}"
        payload, note = make_command(op)
        c.data[op] = (perf(), note)
        st["sent"] += 1
        st["inflight"] += 1
        return encode_frame(payload)

    def may_send() -> bool:
        if not st["running"] or time.time() >= end:
            return False
        return budget is None or st["sent"] < budget

    def on_open(c: WsConn) -> None:
        c.data = {}
        c.send_raw(hello)

    def on_text(c: WsConn, data: bytes) -> None:
        if b'"type":"delta"' in data[:40]:
            return  # live updates of an order the client created: not counted here
        if data[:1] == b"[":  # a batch frame
            for msg in _replies.decode(data):
                on_msg(c, msg)
        else:
            on_msg(c, _reply.decode(data))

    def on_msg(c: WsConn, msg: Reply) -> None:
        t = msg.type
        if t == "ack" or t == "reject":
            sent = c.data.pop(msg.op_id, None)
            if sent is None:
                return
            t0, note = sent
            lat.append(perf() - t0)
            st["inflight"] -= 1
            if t == "ack":
                st["acks"] += 1
                if on_ack is not None:
                    on_ack(note, msg.result)
            else:
                codes[msg.code] += 1
            if may_send():
                c.send_raw(frame(c))
        elif t == "welcome":
            st["welcomed"] += 1
        elif t == "error":
            codes["error:" + msg.code] += 1

    def on_close(c: WsConn, code: int) -> None:
        st["closed"] += 1
        codes[f"closed:{code}"] += 1

    conns = []
    for i in range(n_conns):
        conns.append(loop.connect("127.0.0.1", port, "/ws", on_open=on_open, on_text=on_text,
                                  on_close=on_close))
        if i % 100 == 99:
            loop.run(timeout=0.05)  # stay under the server's accept rate limit
    loop.run(until=lambda: st["welcomed"] + st["closed"] >= n_conns, timeout=30)
    loop.run(timeout=max(0.0, start_at - time.time()))
    st["running"] = True
    started = time.time()
    for c in conns:
        if not c.closed:
            c.send_raw(b"".join(frame(c) for _ in range(depth) if may_send()))

    def done() -> bool:
        if budget is None:
            return time.time() >= end
        return (st["sent"] >= budget or time.time() >= end) and st["inflight"] <= 0

    loop.run(until=done, timeout=duration + 60)
    finished = time.time()
    loop.run(until=lambda: st["inflight"] <= 0, timeout=15)
    for c in conns:
        c.close()
    return {"lat": lat.tobytes(), "acks": st["acks"], "sent": st["sent"], "codes": dict(codes),
            "seconds": finished - started, "welcomed": st["welcomed"]}


def spawn(target: Callable[..., None], args_per_worker: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Run `target(*args, pipe)` in one process per args tuple; their results, in order."""
    pipes, procs = [], []
    for args in args_per_worker:
        recv, send = mp.Pipe(duplex=False)
        p = mp.Process(target=target, args=(*args, send))
        p.start()
        pipes.append(recv)
        procs.append(p)
    results = [r.recv() for r in pipes]
    for p in procs:
        p.join()
    return results


def merge(results: list[dict[str, Any]]) -> tuple[array, Counter[str], int, float, int]:
    """(latencies, reject/error codes, acks, seconds of the longest worker, commands sent)."""
    lat = array("d")
    codes: Counter[str] = Counter()
    for r in results:
        lat.frombytes(r["lat"])
        codes.update(r["codes"])
    acks = sum(r["acks"] for r in results)
    seconds = max(r["seconds"] for r in results)
    return lat, codes, acks, seconds, sum(r["sent"] for r in results)
