"""The bus forgets topics nobody watches: after `idle_topic_s`, or the oldest beyond
`max_idle_topics`. Forgotten topics come back at the store's position without history, so a
resume gets a snapshot; topics on the bus's own counter are never forgotten."""

from __future__ import annotations

from engine.bus import LocalBus, Outbox
from protocol import Position

EPOCH = "journal-epoch"


class Clock:
    """The bus's time source, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_bus(clock: Clock, **kw: float) -> LocalBus:
    return LocalBus(clock=clock, **kw)  # type: ignore[arg-type]


def commit(bus: LocalBus, name: str, version: int) -> None:
    """What an actor does after a commit of one event: publish at the stream's version."""
    bus.publish(name, {"v": version}, epoch=EPOCH, from_seq=version, seq=version)


def test_unwatched_stored_topics_are_forgotten_after_the_idle_time() -> None:
    clock = Clock()
    bus = make_bus(clock, idle_topic_s=600.0)
    commit(bus, "order:a", 1)
    bus.publish("location:s1", {"x": 1})  # the bus's own counter: kept
    clock.now += 300
    bus.forget_idle()
    commit(bus, "order:b", 1)
    commit(bus, "order:b", 2)
    clock.now += 301
    assert bus.forget_idle() == 1
    assert sorted(bus.topics()) == ["location:s1", "order:b"]
    # Each publish touched order:b; once it too is unwatched for 600 s it goes.
    clock.now += 298
    assert bus.forget_idle() == 0
    clock.now += 2
    assert bus.forget_idle() == 1
    assert bus.topics() == ["location:s1"]
    assert bus.forgotten == 2
    assert bus.position("location:s1") == Position(bus.node_epoch, 1)


def test_subscribed_topics_stay_and_idle_time_counts_from_the_last_unsubscribe() -> None:
    clock = Clock()
    bus = make_bus(clock, idle_topic_s=60.0)
    commit(bus, "order:a", 1)
    box = Outbox()
    bus.subscribe("order:a", box)
    assert bus.idle_topics() == 0
    clock.now += 1000
    assert bus.forget_idle() == 0
    bus.unsubscribe("order:a", box)
    assert bus.idle_topics() == 1
    clock.now += 59
    assert bus.forget_idle() == 0
    clock.now += 2
    assert bus.forget_idle() == 1
    assert bus.topics() == []


def test_beyond_the_cap_the_least_recently_touched_go_first() -> None:
    clock = Clock()
    bus = make_bus(clock, max_idle_topics=3)
    box = Outbox()
    for i in range(3):
        commit(bus, f"order:{i}", 1)
    bus.subscribe("order:w", box)  # watched topics do not count against the cap
    bus.forget_idle()  # advances the bus clock
    commit(bus, "order:0", 2)  # touched: now the newest idle one
    commit(bus, "order:3", 1)  # a fourth idle topic: the oldest (order:1) is dropped at once
    assert sorted(bus.topics()) == ["order:0", "order:2", "order:3", "order:w"]
    commit(bus, "order:4", 1)
    assert sorted(bus.topics()) == ["order:0", "order:3", "order:4", "order:w"]
    assert bus.idle_topics() == 3 and bus.forgotten == 2
    # A lowered cap is enforced by the next sweep.
    bus.max_idle_topics = 1
    assert bus.forget_idle() == 2
    assert sorted(bus.topics()) == ["order:4", "order:w"]


def test_a_sweep_drops_a_bounded_number() -> None:
    clock = Clock()
    bus = make_bus(clock, idle_topic_s=10.0)
    for i in range(25):
        commit(bus, f"order:{i}", 1)
    clock.now += 11
    assert bus.forget_idle(limit=10) == 10
    assert bus.forget_idle(limit=10) == 10
    assert bus.forget_idle(limit=10) == 5
    assert bus.topics() == []


def test_resume_of_a_forgotten_topic_needs_a_snapshot_and_deltas_continue() -> None:
    clock = Clock()
    bus = make_bus(clock, idle_topic_s=60.0)
    for version in (1, 2, 3):
        commit(bus, "order:a", version)
    at_one = Position(EPOCH, 1)
    missed = bus.catch_up("order:a", at_one)
    assert missed is not None and missed is not True and missed.first_seq == 2
    clock.now += 61
    bus.forget_idle()
    assert bus.catch_up("order:a", at_one) is None  # unknown topic: snapshot
    # A subscribe prepares it again from the store (seq = stream version), history empty.
    bus.topic("order:a", epoch=EPOCH, seq=3)
    assert bus.catch_up("order:a", at_one) is None
    assert bus.catch_up("order:a", Position(EPOCH, 3)) is True
    box = Outbox()
    bus.subscribe("order:a", box)
    commit(bus, "order:a", 4)  # contiguous with the store's position
    assert bus.position("order:a") == Position(EPOCH, 4)
    assert bus.catch_up("order:a", Position(EPOCH, 3)) not in (None, True)


def test_prepared_but_unpublished_stored_topic_is_forgettable() -> None:
    clock = Clock()
    bus = make_bus(clock, idle_topic_s=5.0)
    box = Outbox()
    bus.topic("stock:S", epoch=EPOCH, seq=7)
    bus.subscribe("stock:S", box)
    bus.unsubscribe_all(box)
    clock.now += 6
    assert bus.forget_idle() == 1
    assert bus.position("stock:S") == Position(bus.node_epoch, 0)
