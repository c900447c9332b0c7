"""The process-local, event-evicted cache: expiry, size bound, and no resurrection by in-flight loads."""

from __future__ import annotations

from conduit_server.runtime.expiring import ExpiringCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_values_are_fresh_until_their_ttl() -> None:
    clock = Clock()
    cache: ExpiringCache[str] = ExpiringCache(ttl_seconds=10, max_entries=10, clock=clock)
    assert cache.store({1: "a", 2: "b"}, cache.generation())
    assert cache.get_many([1, 2, 3]) == ({1: "a", 2: "b"}, {3})
    clock.now = 10.0
    assert cache.get_many([1, 2]) == ({}, {1, 2})
    assert (cache.hits, cache.misses) == (2, 3)


def test_the_least_recently_stored_go_first_beyond_the_bound() -> None:
    cache: ExpiringCache[str] = ExpiringCache(ttl_seconds=10, max_entries=2)
    cache.store({1: "a"}, cache.generation())
    cache.store({2: "b"}, cache.generation())
    cache.store({1: "a2"}, cache.generation())  # 1 is now the most recent
    cache.store({3: "c"}, cache.generation())
    assert cache.get_many([1, 2, 3]) == ({1: "a2", 3: "c"}, {2})
    assert len(cache) == 2


def test_a_load_in_flight_across_an_eviction_is_not_kept() -> None:
    cache: ExpiringCache[str] = ExpiringCache(ttl_seconds=10, max_entries=10)
    cache.store({1: "old"}, cache.generation())
    generation = cache.generation()  # a load starts, reading the old value...
    cache.evict(1)  # ...the change's event arrives...
    assert not cache.store({1: "old"}, generation)  # ...and the load's result is refused
    assert cache.get_many([1]) == ({}, {1})
    assert cache.store({1: "new"}, cache.generation())
    assert cache.get_many([1]) == ({1: "new"}, set())


def test_clear_drops_everything_and_refuses_loads_in_flight() -> None:
    cache: ExpiringCache[str] = ExpiringCache(ttl_seconds=10, max_entries=10)
    cache.store({1: "a", 2: "b"}, cache.generation())
    generation = cache.generation()
    cache.clear()
    assert not cache.store({3: "c"}, generation)
    assert cache.get_many([1, 2, 3]) == ({}, {1, 2, 3})
