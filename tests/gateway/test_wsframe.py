"""The sans-I/O frame codec (engine/gateway/_wsframe.py): pure, so properties are cheap."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.gateway._wsframe import CLOSED, FrameError, FrameReader, close_frame, encode_frames
from tests.gateway.rawframes import client_frame


def read_all(reader: FrameReader) -> list[object]:
    out: list[object] = []
    while (msg := reader.next_message()) is not None:
        out.append(msg)
        if msg is CLOSED:
            break
    return out


def fragments(payload: bytes, opcode: int, cuts: list[int]) -> bytes:
    """`payload` as one message split at `cuts` (a first frame, then continuations)."""
    points = sorted({c % (len(payload) + 1) for c in cuts})
    pieces = [payload[a:b] for a, b in zip([0, *points], [*points, len(payload)], strict=True)]
    out = b""
    for i, piece in enumerate(pieces):
        out += client_frame(piece, opcode if i == 0 else 0x0, fin=i == len(pieces) - 1)
        if i % 2:
            out += client_frame(b"p%d" % i, 0x9)  # pings between fragments are allowed
    return out


messages = st.lists(
    st.one_of(st.text(max_size=300).map(lambda s: s), st.binary(max_size=70_000)), max_size=6
)


@settings(max_examples=60, deadline=None)
@given(msgs=messages, cuts=st.lists(st.integers(0, 80_000), max_size=4),
       chunk=st.integers(1, 5000))
def test_any_chunking_and_fragmenting_gives_the_same_messages(
    msgs: list[str | bytes], cuts: list[int], chunk: int
) -> None:
    wire = b""
    for msg in msgs:
        if isinstance(msg, str):
            wire += fragments(msg.encode(), 0x1, cuts)
        else:
            wire += fragments(msg, 0x2, cuts)
    reader = FrameReader(1 << 20)
    got: list[object] = []
    for i in range(0, len(wire), chunk):
        reader.feed(wire[i : i + chunk])
        got.extend(read_all(reader))
    assert got == msgs
    pongs = reader.pending_ctrl or []
    assert len(pongs) <= 1 and all(p[0] == 0x8A for p in pongs)  # the latest ping's pong only


def test_encode_frames_header_sizes() -> None:
    for n, head in ((0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)):
        data = encode_frames([b"x" * n], True)
        assert len(data) == head + n and data[0] == 0x81 and not data[1] & 0x80
    two = encode_frames([b"a", b"bc"], False)
    assert two == b"\x82\x01a\x82\x02bc"


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        pytest.param(client_frame(b"x", masked=False), 1002, id="unmasked"),
        pytest.param(client_frame(b"x", rsv=0x40), 1002, id="rsv1"),
        pytest.param(client_frame(b"x", 0x3), 1002, id="reserved-opcode"),
        pytest.param(client_frame(b"x", 0x0), 1002, id="lone-continuation"),
        pytest.param(client_frame(b"x", 0x1, fin=False) + client_frame(b"y"), 1002, id="new-message-mid-fragment"),
        pytest.param(client_frame(b"x", 0x9, fin=False), 1002, id="fragmented-control"),
        pytest.param(client_frame(b"x" * 126, 0x9), 1002, id="long-control"),
        pytest.param(client_frame(b"\x03", 0x8), 1002, id="one-byte-close"),
        pytest.param(client_frame((999).to_bytes(2, "big"), 0x8), 1002, id="bad-close-code"),
        pytest.param(client_frame(b"\xc3\x28"), 1007, id="bad-utf8"),
        pytest.param(client_frame(b"", length=2_000_000)[:14], 1009, id="too-long"),
        pytest.param(client_frame(b"x" * 600, fin=False) + client_frame(b"x" * 600, 0x0, fin=False), 1009,
                     id="too-long-in-fragments"),
        pytest.param(client_frame(b"x", fin=False) + client_frame(b"", 0x0, fin=False) * 1100, 1009,
                     id="too-many-fragments"),
    ],
)
def test_protocol_errors(wire: bytes, code: int) -> None:
    reader = FrameReader(1000 if code == 1009 and len(wire) > 100 else 1 << 20)
    reader.feed(wire)
    with pytest.raises(FrameError) as info:
        read_all(reader)
    assert info.value.code == code


def test_a_big_frame_trickling_in_is_not_copied_per_segment() -> None:
    payload = b"y" * 300_000
    wire = client_frame(payload, 0x2)
    reader = FrameReader(1 << 20)
    for i in range(0, len(wire), 1000):
        reader.feed(wire[i : i + 1000])
        if i + 1000 < len(wire):
            assert reader.next_message() is None
    assert reader.next_message() == payload
    assert reader.next_message() is None and reader._buf == b""


def test_close_frames() -> None:
    reader = FrameReader(1 << 20)
    reader.feed(client_frame(b"", 0x8))
    assert reader.next_message() is CLOSED and reader.peer_close == 1005
    reader = FrameReader(1 << 20)
    reader.feed(client_frame((4001).to_bytes(2, "big") + "müde".encode(), 0x8))
    assert reader.next_message() is CLOSED and reader.peer_close == 4001
    assert close_frame(1001, "bye") == b"\x88\x05\x03\xe9bye"


def test_a_ping_flood_keeps_only_the_latest_pong() -> None:
    reader = FrameReader(1 << 20)
    reader.feed(b"".join(client_frame(b"n%d" % i, 0x9) for i in range(500)))
    assert reader.next_message() is None
    assert reader.pending_ctrl == [b"\x8a\x04n499"]
