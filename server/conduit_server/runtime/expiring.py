"""A process-local cache of values by integer id, kept current by events.

Entries expire after `ttl_seconds` (the bound on staleness when events stop
arriving) and the least recently stored are dropped beyond `max_entries`.
`evict(id)` is called when an event says a value changed; `clear()` when events
may have been missed (a reader that lost its place).

The race that matters: a load that started before an eviction can finish after
it, carrying the old value. `generation()` is taken before loading and `store()`
refuses to keep anything loaded across an eviction, so an evicted value can
never come back from a load that was already in flight.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Generic, TypeVar

from conduit_server.runtime import metrics

V = TypeVar("V")


class ExpiringCache(Generic[V]):
    """Values by id for `ttl_seconds`, at most `max_entries`, evicted by events."""

    def __init__(self, *, ttl_seconds: float, max_entries: int,
                 clock: Callable[[], float] = time.monotonic, name: str = "") -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[int, tuple[float, V]] = OrderedDict()
        self._generation = 0
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

    def generation(self) -> int:
        """Take before loading; pass to `store`."""
        return self._generation

    def store(self, values: Mapping[int, V], generation: int) -> bool:
        """Keep `values` loaded since `generation`; refused (False) if anything was evicted meanwhile."""
        if generation != self._generation:
            return False
        expires = self._clock() + self._ttl
        for key, value in values.items():
            self._entries[key] = (expires, value)
            self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return True

    def evict(self, key: int) -> None:
        self._generation += 1
        self.evictions += 1
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()
