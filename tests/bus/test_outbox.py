"""The per-connection outbox: bounded memory, lazy conflation, shared encodings.

Property: whatever contiguous deltas are offered for a topic, one drain yields ONE delta for
it whose changes equal applying them all in order, covering first..last seq; pending deltas
never exceed one entry per topic; every subscriber that drains the same run gets the same
bytes (encoded once)."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from engine.bus import DeltaFrame, Outbox
from engine.bus._outbox import MAX_RUN
from protocol import Delta

EPOCH = "e" * 32


def delta(topic: str, seq: int, changes: dict[str, Any], from_seq: int | None = None) -> DeltaFrame:
    return DeltaFrame(Delta(topic=topic, epoch=EPOCH, seq=seq, changes=changes, from_seq=from_seq))


def decoded(frames: list[bytes]) -> list[dict[str, Any]]:
    return [msgspec.json.decode(f) for f in frames]


changes_lists = st.lists(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(0, 9), min_size=1),
    min_size=1,
    max_size=40,
)


@given(changes_lists)
def test_a_run_drains_as_one_merged_delta(changes: list[dict[str, int]]) -> None:
    box = Outbox()
    box.subscribed.add("stock:S")
    expected: dict[str, int] = {}
    for seq, c in enumerate(changes, start=1):
        box.offer_delta(delta("stock:S", seq, c))
        expected.update(c)
        assert len(box) == 1  # one pending entry per topic, however many deltas
    (frame,) = decoded(box.drain())
    assert frame["changes"] == expected
    assert frame["seq"] == len(changes)
    if len(changes) > 1:
        assert frame["from_seq"] == 1
    assert box.conflated == len(changes) - 1
    assert box.drain() == []


def test_subscribers_draining_the_same_run_share_the_bytes() -> None:
    published = [delta("stock:S", s, {"a": s}) for s in (1, 2, 3)]
    boxes = [Outbox() for _ in range(3)]
    for frame in published:
        for box in boxes:
            box.offer_delta(frame)
    out = [box.drain()[0] for box in boxes]
    assert out[0] is out[1] is out[2]  # merged and encoded once for all three


def test_long_runs_fold_and_holes_are_not_merged() -> None:
    box = Outbox()
    for s in range(1, MAX_RUN + 5):
        box.offer_delta(delta("stock:S", s, {"a": s}))
    assert len(box) == 1
    # A hole upstream (seq jumps): the newer delta replaces the run, the client sees the gap.
    box.offer_delta(delta("stock:S", MAX_RUN + 10, {"a": 99}))
    (frame,) = decoded(box.drain())
    assert (frame["seq"], frame["changes"]) == (MAX_RUN + 10, {"a": 99})
    assert frame.get("from_seq") in (None, MAX_RUN + 10)


def test_snapshot_floor_trims_a_pending_run() -> None:
    box = Outbox()
    for s in (5, 6, 7):
        box.offer_delta(delta("stock:S", s, {"a": s, f"k{s}": s}))
    box.set_snapshot_floor("stock:S", EPOCH, 6)  # the snapshot covers up to 6
    (frame,) = decoded(box.drain())
    assert frame["from_seq"] == 7 and frame["seq"] == 7
    box.offer_delta(delta("stock:S", 8, {"a": 8}))
    box.set_snapshot_floor("stock:S", EPOCH, 8)
    assert box.drain() == []


def test_notify_says_urgent_for_replies_only() -> None:
    calls: list[bool] = []
    box = Outbox(notify=calls.append)
    box.offer_delta(delta("stock:S", 1, {"a": 1}))
    box.offer_delta(delta("stock:S", 2, {"a": 2}))  # conflated: no second notification
    box.send_encoded(b'{"type":"ack"}')
    assert calls == [False, True]
