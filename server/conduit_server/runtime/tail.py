"""The one follower of event streams: XREAD over one or more Redis Streams, in one task.

`StreamFollower` starts from the streams' ends (or where `start()` says), hands every batch to
`on_entries(stream, entries)` in the order the streams were given, and moves a stream's position
only once its handler returned: a handler that raises (a service away) gets the same batch again
after a backoff, so nothing is skipped. Whenever a reader cannot be sure it saw everything — at
start, and after a failure — `on_gap()` runs first, so a cache fed by it clears itself instead of
trusting values whose eviction it may have missed. It never ends on an error.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

import redis.asyncio as aioredis

from conduit_server.runtime.tasks import cancel_until_done

log = logging.getLogger("conduit.tail")

# An entry as the byte-level client returns it: (id, {field: value}).
RawEntry = tuple[bytes, dict[bytes, bytes]]
Handler = Callable[[str, Sequence[RawEntry]], Awaitable[None] | None]


async def newest_ids(redis: aioredis.Redis, streams: Sequence[str]) -> dict[str, str]:
    """The id of the newest entry of each stream ("0-0" for an empty one): where following starts."""
    positions: dict[str, str] = {}
    for stream in streams:
        newest = cast("list[RawEntry]", await redis.xrevrange(stream, "+", "-", count=1))
        positions[stream] = newest[0][0].decode() if newest else "0-0"
    return positions


class StreamFollower:
    """One task following `streams`; `start()` and `stop()` bracket it."""

    def __init__(self, redis: aioredis.Redis, streams: Sequence[str], *, on_entries: Handler,
                 on_gap: Callable[[], None] | None = None,
                 start: Callable[[], Awaitable[Mapping[str, str]]] | None = None,
                 block_ms: int = 2_000, count: int = 500, retry_initial_seconds: float = 0.1,
                 retry_max_seconds: float = 5.0) -> None:
        # block_ms stays below redis-py's socket timeout, so a quiet stream is not an error.
        self._redis = redis
        self._streams = list(streams)
        self._on_entries = on_entries
        self._on_gap = on_gap
        self._start = start
        self._block_ms = block_ms
        self._count = count
        self._retry_initial = retry_initial_seconds
        self._retry_max = retry_max_seconds
        self._positions: dict[str, str] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self.following = asyncio.Event()  # set while reading without a gap
        self.entries_read = 0
        self.failures = 0

    async def run(self) -> None:
        delay = self._retry_initial
        while not self._stopped:
            try:
                if self._positions is None:
                    start = self._start() if self._start else newest_ids(self._redis, self._streams)
                    self._positions = dict(await start)
                    # After reading the positions: an eviction published before them is covered by
                    # this, one published after them is read below; nothing falls in between.
                    self._gap()
                self.following.set()
                await self._read_once(self._positions)
                delay = self._retry_initial
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - Redis or a handler's service away: retry the batch
                if self._stopped:  # a cancellation redis-py turned into an error
                    return
                self.failures += 1
                self.following.clear()
                self._gap()
                log.warning("following %s failed at %s, retrying in %.1fs: %r", ", ".join(self._streams),
                            self._positions, delay, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)

    def _gap(self) -> None:
        if self._on_gap is not None:
            self._on_gap()

    async def _read_once(self, positions: dict[str, str]) -> None:
        streams: dict[Any, Any] = dict(positions)
        response: Any = await self._redis.xread(streams, count=self._count, block=self._block_ms)
        by_stream = {name.decode() if isinstance(name, bytes) else str(name): cast("list[RawEntry]", raw)
                     for name, raw in response or ()}
        for stream in self._streams:
            entries = by_stream.get(stream)
            if not entries:
                continue
            handled = self._on_entries(stream, entries)
            if inspect.isawaitable(handled):
                await handled
            positions[stream] = entries[-1][0].decode()
            self.entries_read += len(entries)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"follow-{'+'.join(self._streams)}")

    async def stop(self) -> None:
        self._stopped = True
        if self._task is not None:
            await cancel_until_done(self._task)
            self._task = None


__all__ = ["RawEntry", "StreamFollower", "newest_ids"]
