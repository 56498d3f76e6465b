"""The messages of the wire protocol, as msgspec Structs in one tagged union per direction.

Every frame carries exactly one message, tagged by its `type` field. State topics share one
model: a topic's state is a map `key -> value`; a snapshot carries the whole map and a delta
carries replaced values (`null` deletes the key). Because a delta's values are absolute, two
consecutive deltas of a topic can be merged (conflated) without loss: the merged delta covers
`from_seq..seq`.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "Ack",
    "ClientKind",
    "ClientMessage",
    "Command",
    "Delta",
    "Encoding",
    "Error",
    "Hello",
    "Ping",
    "Pong",
    "Position",
    "Reject",
    "Resumed",
    "ServerMessage",
    "Snapshot",
    "Subscribe",
    "Unsubscribe",
    "Welcome",
]

Encoding = Literal["json", "msgpack"]
ClientKind = Literal["register", "kiosk", "widget", "ops", "hub", "sdk", "bench"]


class Position(msgspec.Struct, frozen=True):
    """Where a subscriber is in a topic: `epoch` names the history, `seq` counts deltas."""

    epoch: str
    seq: int


# --- client to server -----------------------------------------------------------------


class Hello(msgspec.Struct, tag="hello", tag_field="type", frozen=True):
    protocol: int
    token: str
    client: ClientKind = "sdk"
    encoding: Encoding = "json"
    # Opt in to batched frames: the server may then put several messages in one frame as a
    # JSON array (or msgpack array), which cuts per-frame cost when many deltas are due.
    batch: bool = False


class Subscribe(msgspec.Struct, tag="subscribe", tag_field="type", frozen=True):
    topic: str
    resume: Position | None = None


class Unsubscribe(msgspec.Struct, tag="unsubscribe", tag_field="type", frozen=True):
    topic: str


class Command(msgspec.Struct, tag="command", tag_field="type", frozen=True):
    op_id: str
    name: str
    args: dict[str, Any] = {}


class Ping(msgspec.Struct, tag="ping", tag_field="type", frozen=True):
    nonce: int = 0


ClientMessage = Hello | Subscribe | Unsubscribe | Command | Ping


# --- server to client -----------------------------------------------------------------


class Welcome(msgspec.Struct, tag="welcome", tag_field="type", frozen=True):
    session: str
    server_version: str
    protocol: int
    roles: list[str]
    location: str | None = None
    heartbeat_s: float = 20.0


class Snapshot(msgspec.Struct, tag="snapshot", tag_field="type", frozen=True):
    topic: str
    epoch: str
    seq: int
    state: dict[str, Any]


class Delta(msgspec.Struct, tag="delta", tag_field="type", frozen=True, gc=False):
    # gc=False: plain data, never in a reference cycle; topic histories keep tens of
    # thousands of them, which the cycle collector then never walks (docs/architecture.md).
    topic: str
    epoch: str
    seq: int
    changes: dict[str, Any]
    # First seq this delta covers; equals `seq` unless several deltas were conflated.
    from_seq: int | None = None

    @property
    def first_seq(self) -> int:
        return self.seq if self.from_seq is None else self.from_seq


class Resumed(msgspec.Struct, tag="resumed", tag_field="type", frozen=True):
    """A resume inside the history window: the missed deltas (if any) follow as one delta."""

    topic: str
    epoch: str
    seq: int  # the position the subscriber will be at once the following delta is applied
    missed: int = 0  # number of seqs replayed from history (0 = it was already current)


class Ack(msgspec.Struct, tag="ack", tag_field="type", frozen=True):
    op_id: str
    result: dict[str, Any] = {}


class Reject(msgspec.Struct, tag="reject", tag_field="type", frozen=True):
    op_id: str
    code: str
    message: str
    details: dict[str, Any] = {}


class Error(msgspec.Struct, tag="error", tag_field="type", frozen=True):
    code: str
    message: str
    topic: str | None = None


class Pong(msgspec.Struct, tag="pong", tag_field="type", frozen=True):
    nonce: int = 0
    server_time: float = 0.0


ServerMessage = Welcome | Snapshot | Delta | Resumed | Ack | Reject | Error | Pong
