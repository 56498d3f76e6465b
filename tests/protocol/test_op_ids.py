"""Time-ordered op_ids (protocol/op_ids.py) and the order ids derived from them."""

from __future__ import annotations

import time
import uuid

from hypothesis import given
from hypothesis import strategies as st

from actors.inventory.domain import derive_id
from actors.orders import order_id_for
from protocol.op_ids import new_op_id, op_id_millis


def test_new_op_ids_are_uuid7_hex_unique_and_start_with_the_clock() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_op_id() for _ in range(5000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    for op in ids:
        assert len(op) == 32 and op == op.lower()
        parsed = uuid.UUID(hex=op)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert before <= int(op[:12], 16) <= after
    # the clock prefix never goes back: consecutive ids sort by time (ties share a prefix)
    assert [op[:12] for op in ids] == sorted(op[:12] for op in ids)


def test_op_id_millis_reads_uuid7_only() -> None:
    op = new_op_id()
    assert op_id_millis(op) == op[:12]
    dashed = str(uuid.UUID(hex=op))
    assert op_id_millis(dashed) == op[:12]
    assert op_id_millis(dashed.upper()) == op[:12]
    assert op_id_millis(uuid.uuid4().hex) is None
    assert op_id_millis(str(uuid.uuid4())) is None
    for other in ("", "op-1", "x" * 32, op + "0", op[:-1], "g" + op[1:]):
        assert op_id_millis(other) is None


@given(st.text(max_size=64))
def test_op_id_millis_never_fails(op: str) -> None:
    millis = op_id_millis(op)
    assert millis is None or len(millis) == 12


def test_order_ids_from_uuid7_op_ids_are_time_ordered_and_stable() -> None:
    first, second = new_op_id(), None
    time.sleep(0.002)
    second = new_op_id()
    a, b = order_id_for(first), order_id_for(second)
    assert a == order_id_for(first)  # a retried create names the same order
    assert a.startswith("O" + first[:12].upper()) and len(a) == 29
    assert a < b  # created later, sorts later: the journal's order streams grow at one edge
    # any other op_id keeps the original derivation (orders created before this change)
    legacy = uuid.uuid4().hex
    assert order_id_for(legacy) == derive_id("O", legacy)
    assert order_id_for("web-checkout-17") == derive_id("O", "web-checkout-17")
