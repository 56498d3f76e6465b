"""The GC policy: each tick frees the young cycles that died and freezes the survivors, so
automatic collections walk only young objects; cycles that die after being frozen are
collected by a full collection when the engine is quiet or the process grew a lot."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from engine.runtime import GcPolicy
from engine.runtime._gc import resident_bytes

MB = 1 << 20


class Node:
    """A reference cycle: only the cycle collector can free it."""

    def __init__(self, payload: bytes = b"") -> None:
        self.me = self
        self.payload = payload


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def _tracked(obj: object) -> bool:
    """Is `obj` in a collected generation (not the frozen one)?"""
    return any(o is obj for o in gc.get_objects())


def test_a_tick_frees_dead_young_cycles_and_freezes_survivors() -> None:
    policy = GcPolicy(young_threshold=5_000)
    policy.start()
    assert gc.get_threshold() == (5_000, 1_000, 1_000)
    kept = Node()
    dead = Node()
    dead_ref = weakref.ref(dead)
    del dead
    assert _tracked(kept)
    assert policy.tick(quiet=False) is False
    assert dead_ref() is None  # collected before the freeze, not frozen with the survivors
    assert not _tracked(kept)  # frozen: no automatic collection walks it again
    assert policy.full_collections == 1  # the one of start()


def test_a_cycle_frozen_alive_is_freed_by_the_quiet_full_collection() -> None:
    policy = GcPolicy(quiet_growth=32 * MB, full_growth=100.0, full_min_growth=1 << 40, quiet_ticks=1)
    policy.start()
    late = Node(b"\x01" * (48 * MB))  # resident: the process grew
    late_ref = weakref.ref(late)
    policy.tick(quiet=False)  # frozen while alive
    del late
    assert policy.tick(quiet=False) is False  # busy: no full collection for this growth
    gc.collect()
    assert late_ref() is not None  # dead, but in the frozen generation
    assert policy.tick(quiet=True) is True
    assert late_ref() is None
    assert policy.full_collections == 2
    assert policy.tick(quiet=True) is False  # no growth since: no more full collections
    assert policy.stats()["full_collections"] == 2


def test_under_load_a_full_collection_comes_once_the_process_grew_enough() -> None:
    before = resident_bytes()
    policy = GcPolicy(quiet_growth=1 << 40, full_growth=0.0, full_min_growth=64 * MB, quiet_ticks=1)
    policy.start()
    late = Node()
    late_ref = weakref.ref(late)
    policy.tick()
    del late
    grown = [Node(b"\x01" * (16 * MB))]
    assert policy.tick() is False
    assert late_ref() is not None
    grown += [Node(b"\x01" * (16 * MB)) for _ in range(4)]
    assert resident_bytes() - before >= 64 * MB
    assert policy.tick() is True
    assert late_ref() is None
    assert all(node.me is node for node in grown)  # the live ones are untouched


def test_ticks_before_start_do_nothing() -> None:
    policy = GcPolicy()
    frozen = gc.get_freeze_count()
    assert policy.tick(quiet=True) is False
    assert gc.get_freeze_count() == frozen


def test_quiet_full_collections_back_off_while_they_find_no_garbage() -> None:
    # Growth by live data (caches) made the engine pay ~0.6 s full collections at every lull
    # that found a few hundred unreachable objects: each unproductive one doubles the growth
    # the next quiet one waits for; a productive one resets it.
    policy = GcPolicy(quiet_growth=32 * MB, full_growth=100.0, full_min_growth=1 << 40,
                      quiet_ticks=1, productive_objects=1_000, max_quiet_growth=128 * MB)
    policy.start()
    live = [Node(b"\x01" * (40 * MB))]  # growth that is not garbage
    policy.tick(quiet=False)
    assert policy.tick(quiet=True) is True
    assert policy.last_full_freed < 1_000
    assert policy.quiet_growth == 64 * MB  # backed off
    live.append(Node(b"\x01" * (40 * MB)))  # 40 MB more: below the new threshold
    policy.tick(quiet=False)
    assert policy.tick(quiet=True) is False
    live.append(Node(b"\x01" * (40 * MB)))  # 80 MB since the last full collection
    policy.tick(quiet=False)
    assert policy.tick(quiet=True) is True
    assert policy.quiet_growth == 128 * MB  # and capped there
    # Now real garbage: cycles frozen alive, then dropped. The collection that frees them
    # resets the threshold.
    garbage = [Node() for _ in range(5_000)]
    refs = [weakref.ref(n) for n in garbage[:10]]
    policy.tick(quiet=False)  # frozen alive
    del garbage
    live.append(Node(b"\x01" * (130 * MB)))
    policy.tick(quiet=False)
    assert policy.tick(quiet=True) is True
    assert all(r() is None for r in refs)
    assert policy.last_full_freed >= 5_000
    assert policy.quiet_growth == 32 * MB
    assert policy.stats()["quiet_growth_mb"] == round(32 * MB / 1e6, 1)
    assert all(node.me is node for node in live)


def test_the_quiet_full_collection_waits_for_a_lull_not_a_pause() -> None:
    """A second of quiet between two bursts is not a lull: the quiet full collection needs
    `quiet_ticks` quiet ticks in a row, and any activity starts the count again."""
    policy = GcPolicy(quiet_growth=32 * MB, full_growth=100.0, full_min_growth=1 << 40, quiet_ticks=3)
    policy.start()
    grown = Node(b"\x01" * (48 * MB))  # resident: the process grew
    assert policy.tick(quiet=True) is False
    assert policy.tick(quiet=True) is False
    assert policy.tick(quiet=False) is False  # activity: the count starts again
    assert policy.tick(quiet=True) is False
    assert policy.tick(quiet=True) is False
    assert policy.tick(quiet=True) is True  # three quiet seconds in a row
    assert policy.full_collections == 2
    del grown
