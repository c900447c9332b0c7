"""Results shared for a moment: a bounded in-process TTL cache with one computation per key in flight.

Concurrent misses of one key are one computation (single flight): a burst of the same request does the
work once, in a task of its own, so a caller that goes away does not cancel it for the others waiting.
`forget()` drops every kept result and every computation started before it from sharing: a result
computed from data older than the forget is handed to its own waiters, never kept (the in-flight guard
of docs/decisions/0013-cache-discipline.md).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SharedResults(Generic[K, V]):
    """At most `entries` results, each for `ttl` seconds (least recently used dropped first); a result
    is kept only when `keepable(result)`."""

    def __init__(self, ttl: float, entries: int, *, keepable: Callable[[V], bool] = lambda _: True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.entries = entries
        self.clock = clock
        self._keepable = keepable
        self._kept: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._running: dict[K, asyncio.Future[V]] = {}
        self._generation = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._kept)

    def forget(self) -> None:
        """The data changed: nothing kept or being computed until now is shared from here on."""
        self._generation += 1
        self._kept.clear()
        self._running.clear()

    def _fresh(self, key: K) -> tuple[V] | None:
        kept = self._kept.get(key)
        if kept is None:
            return None
        expires, result = kept
        if self.clock() >= expires:
            del self._kept[key]
            return None
        self._kept.move_to_end(key)
        return (result,)

    async def get(self, key: K, compute: Callable[[], Awaitable[V]]) -> tuple[V, bool]:
        """(the result, whether it was shared): a fresh kept one, the one being computed for the same
        key, or a new computation."""
        fresh = self._fresh(key)
        if fresh is not None:
            self.hits += 1
            return fresh[0], True
        self.misses += 1
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(self._compute(key, compute, self._generation))
            # Retrieved here too, so a computation whose every caller went away logs no "never retrieved".
            running.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._running[key] = running
        return await asyncio.shield(running), False

    async def _compute(self, key: K, compute: Callable[[], Awaitable[V]], generation: int) -> V:
        try:
            result = await compute()
        finally:
            if generation == self._generation:
                del self._running[key]
        if generation == self._generation and self._keepable(result):
            self._kept[key] = (self.clock() + self.ttl, result)
            self._kept.move_to_end(key)
            while len(self._kept) > self.entries:
                self._kept.popitem(last=False)
        return result


__all__ = ["SharedResults"]
