"""One codec for every domain's journaled events: a msgspec tagged union in msgpack.

The journal stores `(type tag, bytes)`; the bytes carry the tag too, so decoding needs only
the union type.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec

__all__ = ["EventCodec"]

E = TypeVar("E")


class EventCodec(Generic[E]):
    def __init__(self, union: Any) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder: msgspec.msgpack.Decoder[E] = msgspec.msgpack.Decoder(union)

    def encode(self, event: E) -> tuple[str, bytes]:
        """`(type tag, msgpack bytes)`, the shape the journal stores."""
        tag = type(event).__struct_config__.tag  # type: ignore[attr-defined]
        assert isinstance(tag, str)
        return tag, self._encoder.encode(event)

    def decode(self, data: bytes) -> E:
        return self._decoder.decode(data)
