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
    "decode_client_frame",
    "decode_server",
    "decode_server_frame",
    "encode",
    "encode_json",
    "encode_msgpack",
    "join_frames",
]

_json_client = msgspec.json.Decoder(ClientMessage)
_msgpack_client = msgspec.msgpack.Decoder(ClientMessage)
_json_server = msgspec.json.Decoder(ServerMessage)
_msgpack_server = msgspec.msgpack.Decoder(ServerMessage)
_json_raw_list = msgspec.json.Decoder(list[msgspec.Raw])
_msgpack_raw_list = msgspec.msgpack.Decoder(list[msgspec.Raw])
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


MAX_BATCH = 256


def decode_client_frame(
    data: bytes | str, encoding: Encoding = "json", *, allow_batch: bool = False
) -> list[ClientMessage | ProtocolError]:
    """Decode a frame into its messages. A batch (array) frame is accepted only from clients
    that said `batch: true` in hello; each element is decoded on its own, so one bad message
    in a batch gets its own error and does not poison the others."""
    if allow_batch and _looks_like_array(data, encoding):
        try:
            if isinstance(data, str) or encoding == "json":
                items = _json_raw_list.decode(data)
            else:
                items = _msgpack_raw_list.decode(data)
        except msgspec.DecodeError as exc:
            return [ProtocolError(ErrorCode.BAD_FRAME, f"malformed frame: {exc}")]
        except msgspec.ValidationError as exc:
            return [ProtocolError(ErrorCode.BAD_FRAME, f"malformed batch: {exc}")]
        if len(items) > MAX_BATCH:
            return [ProtocolError(ErrorCode.TOO_LARGE, f"a batch holds at most {MAX_BATCH} messages")]
        out: list[ClientMessage | ProtocolError] = []
        for item in items:
            try:
                out.append(decode_client(bytes(item), "json" if isinstance(data, str) else encoding))
            except ProtocolError as exc:
                out.append(exc)
        return out
    try:
        return [decode_client(data, encoding)]
    except ProtocolError as exc:
        return [exc]


def _looks_like_array(data: bytes | str, encoding: Encoding) -> bool:
    if isinstance(data, str):
        return data.lstrip()[:1] == "["
    if encoding == "json":
        return data.lstrip()[:1] == b"["
    return bool(data) and (0x90 <= data[0] <= 0x9F or data[0] in (0xDC, 0xDD))


def join_frames(frames: list[bytes], encoding: Encoding) -> bytes:
    """Several encoded messages as one batch frame (a JSON or msgpack array)."""
    if encoding == "json":
        return b"[" + b",".join(frames) + b"]"
    n = len(frames)
    if n < 16:
        header = bytes([0x90 | n])
    elif n < 1 << 16:
        header = b"\xdc" + n.to_bytes(2, "big")
    else:
        header = b"\xdd" + n.to_bytes(4, "big")
    return header + b"".join(frames)


_json_server_list = msgspec.json.Decoder(list[ServerMessage])
_msgpack_server_list = msgspec.msgpack.Decoder(list[ServerMessage])


def decode_server_frame(data: bytes | str) -> list[ServerMessage]:
    """Decode a server frame: one message, or a batch of them."""
    if isinstance(data, str) or data[:1] in (b"{", b"["):
        if (data[:1] == "[") if isinstance(data, str) else (data[:1] == b"["):
            return _json_server_list.decode(data)
        return [_json_server.decode(data)]
    if 0x90 <= data[0] <= 0x9F or data[0] in (0xDC, 0xDD):
        return _msgpack_server_list.decode(data)
    return [_msgpack_server.decode(data)]
