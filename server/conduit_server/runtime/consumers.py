"""A consumer of a Redis Streams consumer group, run as a background task until it is stopped.

The subclass's `_session()` creates its group(s), finishes the entries this consumer name left
unacknowledged, then reads; it acknowledges an entry only after handling it (at least once). Any failure
ends the session and a new one starts after a back-off (0.1 s, doubling up to `max_backoff_seconds`,
back to 0.1 s once a session had been reading): Redis or the store being away is waited out, never
given up on. A group that vanished (Redis restarted without its data: NOGROUP) is created again at
once by the next session.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from conduit_server.runtime.tasks import cancel_until_done

log = logging.getLogger("conduit.consumers")

#: An entry as XREADGROUP and XAUTOCLAIM give it: its fields are None when it was trimmed away while pending.
GroupEntry = tuple[bytes, dict[bytes, bytes] | None]


class GroupConsumer:
    """What every group consumer shares: its name, its task, its retry loop, claiming abandoned entries."""

    #: Names the task and the retry log line ("<activity> failed, retrying").
    activity = "consuming events"

    def __init__(self, redis: aioredis.Redis, *, group: str, consumer: str = "", count: int = 200,
                 block_ms: int = 1_000, claim_idle_ms: int = 30_000, max_backoff_seconds: float = 5.0) -> None:
        self._redis = redis
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self._count = count
        self._block_ms = block_ms
        self._claim_idle_ms = claim_idle_ms
        self._max_backoff = max_backoff_seconds
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self.reading = asyncio.Event()  # set while the group is read without error
        self.entries_acknowledged = 0
        self.failures = 0

    async def _session(self) -> None:
        raise NotImplementedError

    async def _claim_abandoned(self, stream: str, handle: Callable[[Sequence[GroupEntry]], Awaitable[None]]) -> int:
        """Take over entries another consumer read and left unacknowledged for `claim_idle_ms` (it
        died), handling each page; returns how many."""
        start, claimed = "0-0", 0
        while True:
            answer: Any = await self._redis.xautoclaim(stream, self.group, self.consumer,
                                                       min_idle_time=self._claim_idle_ms, start_id=start,
                                                       count=self._count)
            entries = [entry for entry in answer[1] if entry]
            if entries:
                log.info("%s: claimed %d abandoned events of %s", self.group, len(entries), stream)
                await handle(cast("list[GroupEntry]", entries))
                claimed += len(entries)
            start = answer[0].decode() if isinstance(answer[0], bytes) else str(answer[0])
            if start == "0-0":
                return claimed

    async def run(self) -> None:
        backoff = 0.1
        while not self._stopped:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - Redis or the store away: back off, never give up
                if self._stopped:
                    return
                if isinstance(error, ResponseError) and "NOGROUP" in str(error):
                    log.warning("consumer group %s vanished (Redis lost its data?); creating it again", self.group)
                    continue
                if self.reading.is_set():
                    backoff = 0.1
                self.reading.clear()
                self.failures += 1
                log.warning("%s failed, retrying in %.1fs: %r", self.activity, backoff, error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)

    def start(self) -> None:
        self._stopped = False
        self._task = asyncio.create_task(self.run(), name=f"{self.group}-{self.consumer}")

    async def stop(self) -> None:
        self._stopped = True
        if self._task is not None:
            await cancel_until_done(self._task)
            self._task = None

    def kill(self) -> None:
        """Stop at once, wherever it is (tests: a crash mid-batch)."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()


__all__ = ["GroupConsumer", "GroupEntry"]
