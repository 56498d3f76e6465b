"""Encoding and decoding of frames. JSON text frames by default, msgpack binary on request.

Decoding maps every failure to a ProtocolError with a stable code, so the gateway never has to
look at msgspec's exceptions.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from .errors import ErrorCode, ProtocolError
from .messages import ClientMessage, Encoding, ServerMessage

__all__ = [
    "decode_args",
    "decode_client",
    "decode_server",
    "encode",
    "encode_json",
    "encode_msgpack",
]

_json_client = msgspec.json.Decoder(ClientMessage)
_msgpack_client = msgspec.msgpack.Decoder(ClientMessage)
_json_server = msgspec.json.Decoder(ServerMessage)
_msgpack_server = msgspec.msgpack.Decoder(ServerMessage)
_json_enc = msgspec.json.Encoder()
_msgpack_enc = msgspec.msgpack.Encoder()

T = TypeVar("T")


def encode_json(msg: Any) -> bytes:
    return _json_enc.encode(msg)


def encode_msgpack(msg: Any) -> bytes:
    return _msgpack_enc.encode(msg)


def encode(msg: Any, encoding: Encoding) -> bytes:
    return _json_enc.encode(msg) if encoding == "json" else _msgpack_enc.encode(msg)


def _classify(exc: msgspec.ValidationError) -> ProtocolError:
    text = str(exc)
    if "`$.type`" in text or "missing required field `type`" in text:
        return ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown or missing message type: {text}")
    if text.startswith("Expected `object`") and " - at `" not in text:  # frame is not an object
        return ProtocolError(ErrorCode.BAD_FRAME, f"a frame must be one JSON/msgpack object: {text}")
    return ProtocolError(ErrorCode.INVALID_ARGS, text)


def decode_client(data: bytes | str, encoding: Encoding = "json") -> ClientMessage:
    """Decode one client frame. Text frames are always JSON; binary frames follow `encoding`."""
    try:
        if isinstance(data, str) or encoding == "json":
            return _json_client.decode(data)
        return _msgpack_client.decode(data)
    except msgspec.ValidationError as exc:
        raise _classify(exc) from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"malformed frame: {exc}") from None


def decode_server(data: bytes | str) -> ServerMessage:
    if isinstance(data, str):
        return _json_server.decode(data)
    if data[:1] in (b"{", b"["):
        return _json_server.decode(data)
    return _msgpack_server.decode(data)


def decode_args(args: dict[str, Any], type_: type[T]) -> T:
    """Validate a command's args dict into its Struct; failures become `invalid_args`."""
    try:
        return msgspec.convert(args, type_, strict=True)
    except msgspec.ValidationError as exc:
        raise ProtocolError(ErrorCode.INVALID_ARGS, f"invalid args: {exc}") from None
