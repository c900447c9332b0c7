"""A process-local cache of values by integer id, kept current by events.

Entries expire after `ttl_seconds` (the bound on staleness when events stop
arriving) and the least recently stored are dropped beyond `max_entries`.
`evict(id)` is called when an event says a value changed; `clear()` when events
may have been missed (a reader that lost its place).

The race that matters: a load that started before an eviction can finish after
it, carrying the old value. A load declares its keys (`with cache.loading(keys)
as load`) before it reads, and `load.keep(values)` refuses exactly the keys
evicted meanwhile: an evicted value never comes back from a load already in
flight, and an eviction of one key costs no other load anything, so a steady
flow of events cannot keep the cache empty (docs/decisions/0013-cache-discipline.md).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Generic, TypeVar

from conduit_server.runtime import metrics

V = TypeVar("V")


class Load(Generic[V]):
    """One load in flight: the keys it reads, and those evicted since it started."""

    def __init__(self, cache: ExpiringCache[V], keys: Iterable[int]) -> None:
        self.keys = frozenset(keys)
        self.evicted: set[int] = set()
        self._cache = cache

    def keep(self, values: Mapping[int, V]) -> set[int]:
        """Store the loaded values of this load's keys that no event evicted meanwhile; the kept keys."""
        kept = {key for key in values if key in self.keys and key not in self.evicted}
        self._cache._put({key: values[key] for key in kept})
        return kept


class ExpiringCache(Generic[V]):
    """Values by id for `ttl_seconds`, at most `max_entries`, evicted by events."""

    def __init__(self, *, ttl_seconds: float, max_entries: int,
                 clock: Callable[[], float] = time.monotonic, name: str = "") -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[int, tuple[float, V]] = OrderedDict()
        self._loads: list[Load[V]] = []
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        if name:  # hits and misses as conduit_cache_requests_total{cache=name}
            metrics.track_cache(name, self)

    def __len__(self) -> int:
        return len(self._entries)

    def get_many(self, ids: Iterable[int]) -> tuple[dict[int, V], set[int]]:
        """The fresh values among `ids`, and the ids to load."""
        now = self._clock()
        found: dict[int, V] = {}
        missing: set[int] = set()
        for key in ids:
            entry = self._entries.get(key)
            if entry is not None and entry[0] > now:
                found[key] = entry[1]
            else:
                missing.add(key)
        self.hits += len(found)
        self.misses += len(missing)
        return found, missing

    @contextmanager
    def loading(self, keys: Iterable[int]) -> Iterator[Load[V]]:
        """Enter before reading the source of `keys`; keep what was read with `load.keep(values)`."""
        load = Load(self, keys)
        self._loads.append(load)
        try:
            yield load
        finally:
            self._loads.remove(load)

    def _put(self, values: Mapping[int, V]) -> None:
        expires = self._clock() + self._ttl
        for key, value in values.items():
            self._entries[key] = (expires, value)
            self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def evict(self, key: int) -> None:
        self.evictions += 1
        self._entries.pop(key, None)
        for load in self._loads:
            if key in load.keys:
                load.evicted.add(key)

    def clear(self) -> None:
        self._entries.clear()
        for load in self._loads:
            load.evicted.update(load.keys)
