"""Following another service's event stream from its end, for cache eviction.

`StreamTail` XREADs a Redis Stream (as the outbox relay writes it) from the
newest entry on and hands every batch to `on_entries`. Whenever it cannot be
sure it saw everything — at start, and after Redis failed — it calls `on_gap`
first, so a cache fed by it clears itself instead of trusting values whose
eviction it may have missed. It never ends on an error: it backs off and
starts again from the stream's end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, cast

import redis.asyncio as aioredis

from conduit_server.runtime.tasks import cancel_until_done

log = logging.getLogger("conduit.tail")

# An entry as the byte-level client returns it: (id, {field: value}).
RawEntry = tuple[bytes, dict[bytes, bytes]]


class StreamTail:
    """One task following `stream`; `start()` and `stop()` bracket it."""

    def __init__(self, redis: aioredis.Redis, stream: str, *, on_entries: Callable[[Sequence[RawEntry]], None],
                 on_gap: Callable[[], None], block_ms: int = 2_000, count: int = 500,
                 max_backoff_seconds: float = 5.0) -> None:
        # block_ms stays below redis-py's socket timeout, so a quiet stream is not an error.
        self._redis = redis
        self._stream = stream
        self._on_entries = on_entries
        self._on_gap = on_gap
        self._block_ms = block_ms
        self._count = count
        self._max_backoff = max_backoff_seconds
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self.following = asyncio.Event()  # set while reading without a gap
        self.entries_read = 0
        self.failures = 0

    async def _newest_id(self) -> str:
        newest = cast("list[RawEntry]", await self._redis.xrevrange(self._stream, "+", "-", count=1))
        return newest[0][0].decode() if newest else "0-0"

    async def _follow(self) -> None:
        position = await self._newest_id()
        # Cleared after reading the position: an eviction published before it is covered by the
        # clear, one published after it is read below; nothing falls in between.
        self._on_gap()
        self.following.set()
        while not self._stopped:
            response: Any = await self._redis.xread({self._stream: position}, count=self._count,
                                                    block=self._block_ms)
            for _, raw in response or ():
                entries = cast("list[RawEntry]", raw)
                if entries:
                    position = entries[-1][0].decode()
                    self.entries_read += len(entries)
                    self._on_entries(entries)

    async def run(self) -> None:
        backoff = 0.1
        while not self._stopped:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - Redis away: clear, back off, start again
                if self._stopped:  # a cancellation redis-py turned into an error
                    return
                if self.following.is_set():
                    backoff = 0.1  # it had been following: this is a new outage
                self.following.clear()
                self._on_gap()
                self.failures += 1
                log.warning("following %s failed, starting again in %.1fs: %r", self._stream, backoff, error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"tail-{self._stream}")

    async def stop(self) -> None:
        self._stopped = True
        if self._task is not None:
            await cancel_until_done(self._task)
            self._task = None
