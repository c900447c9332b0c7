"""The process-local, event-evicted cache: expiry, size bound, and no resurrection by in-flight loads."""

from __future__ import annotations

from conduit_server.runtime.expiring import ExpiringCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def put(cache: ExpiringCache[str], values: dict[int, str]) -> None:
    with cache.loading(values) as load:
        assert load.keep(values) == set(values)


def test_values_are_fresh_until_their_ttl() -> None:
    clock = Clock()
    cache: ExpiringCache[str] = ExpiringCache(ttl_seconds=10, max_entries=10, clock=clock)
    put(cache, {1: "a", 2: "b"})
    assert cache.get_many([1, 2, 3]) == ({1: "a", 2: "b"}, {3})
    clock.now = 10.0
    assert cache.get_many([1, 2]) == ({}, {1, 2})
    assert (cache.hits, cache.misses) == (2, 3)


def test_the_least_recently_stored_go_first_beyond_the_bound() -> None:
    cache: ExpiringCache[str] = ExpiringCache(ttl_seconds=10, max_entries=2)
    put(cache, {1: "a"})
    put(cache, {2: "b"})
    put(cache, {1: "a2"})  # 1 is now the most recent
    put(cache, {3: "c"})
    assert cache.get_many([1, 2, 3]) == ({1: "a2", 3: "c"}, {2})
    assert len(cache) == 2


def test_a_load_in_flight_across_an_eviction_does_not_keep_the_evicted_key() -> None:
    cache: ExpiringCache[str] = ExpiringCache(ttl_seconds=10, max_entries=10)
    put(cache, {1: "old"})
    with cache.loading([1, 2]) as load:  # a load starts, reading the old value of 1...
        cache.evict(1)  # ...the change's event arrives...
        assert load.keep({1: "old", 2: "b"}) == {2}  # ...and only 1 is refused
    assert cache.get_many([1, 2]) == ({2: "b"}, {1})
    put(cache, {1: "new"})
    assert cache.get_many([1]) == ({1: "new"}, set())


def test_an_eviction_does_not_discard_loads_of_other_keys() -> None:
    cache: ExpiringCache[str] = ExpiringCache(ttl_seconds=10, max_entries=100)
    # Under a steady flow of profile updates, every load overlaps some eviction: each must still fill.
    for user_id in range(1, 50):
        with cache.loading([user_id]) as load:
            cache.evict(user_id + 1000)  # another user's update arrives while this load is in flight
            assert load.keep({user_id: f"profile {user_id}"}) == {user_id}
    assert cache.get_many(range(1, 50)) == ({i: f"profile {i}" for i in range(1, 50)}, set())


def test_a_value_for_a_key_the_load_did_not_declare_is_not_kept() -> None:
    cache: ExpiringCache[str] = ExpiringCache(ttl_seconds=10, max_entries=10)
    with cache.loading([1]) as load:
        assert load.keep({1: "a", 2: "b"}) == {1}
    assert cache.get_many([2]) == ({}, {2})


def test_clear_drops_everything_and_refuses_loads_in_flight() -> None:
    cache: ExpiringCache[str] = ExpiringCache(ttl_seconds=10, max_entries=10)
    put(cache, {1: "a", 2: "b"})
    with cache.loading([3]) as load:
        cache.clear()
        assert load.keep({3: "c"}) == set()
    assert cache.get_many([1, 2, 3]) == ({}, {1, 2, 3})


def test_a_failed_load_leaves_nothing_registered() -> None:
    cache: ExpiringCache[str] = ExpiringCache(ttl_seconds=10, max_entries=10)
    try:
        with cache.loading([1]):
            raise ConnectionError("the users service is down")
    except ConnectionError:
        pass
    with cache.loading([1]) as load:
        assert load.keep({1: "a"}) == {1}
    assert cache.get_many([1]) == ({1: "a"}, set())
