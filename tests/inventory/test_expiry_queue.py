"""The pool's expiry index (actors/inventory/expiry.py) against the state it indexes.

Property: whatever mix of holds placed, extended and removed, `earliest` is the minimum
`expires_at` of the state's active holds, and `pop_due` returns exactly the active holds due
at that time, each once. The state is the source of truth; the queue may hold stale entries.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from actors.inventory.expiry import ExpiryQueue
from actors.inventory.state import Hold, SkuPool

ops = st.lists(
    st.tuples(
        st.sampled_from(["place", "extend", "remove", "pop"]),
        st.integers(0, 7),  # hold number
        st.integers(0, 50),  # a time
    ),
    max_size=60,
)


def hold(n: int, expires_at: float) -> Hold:
    return Hold(f"H{n}", "loc", 1, 0.0, expires_at, 0.0)


@given(ops, st.booleans())
def test_queue_tracks_the_active_holds(script: list[tuple[str, int, int]], rebuild: bool) -> None:
    state = SkuPool(sku="S")
    queue = ExpiryQueue()
    for op, n, t in script:
        hid = f"H{n}"
        if op in ("place", "extend"):
            if op == "extend" and hid not in state.holds:
                continue
            state.holds[hid] = hold(n, float(t))
            queue.push(float(t), hid)
        elif op == "remove":
            state.holds.pop(hid, None)
        else:
            due = queue.pop_due(state, float(t))
            expected = sorted(
                (h for h in state.holds.values() if h.expires_at <= t),
                key=lambda h: (h.expires_at, h.hold_id),
            )
            assert due == [h.hold_id for h in expected]
            for h in due:  # the pool expires them
                del state.holds[h]
        if rebuild:  # an activation rebuilds the queue from the state alone
            queue = ExpiryQueue.of(state)
        want = min((h.expires_at for h in state.holds.values()), default=None)
        assert queue.earliest(state) == want
