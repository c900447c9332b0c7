"""The dispatcher and the retention loop stop even when the database driver swallows a cancellation.

asyncpg and redis-py can turn a cancellation that lands while they connect into a connection error.
The loops retry connection errors, so one `cancel()` was not enough: a `make test` run hung 300 s
in the webhooks fixture's teardown. These queues do exactly what such a driver does."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from datetime import datetime
from typing import Any

from conduit_server.runtime.tasks import cancel_until_done
from conduit_server.webhooks.domain.delivery import Dispatcher
from conduit_server.webhooks.domain.ports import Claimed, Outcome, Queued
from conduit_server.webhooks.domain.retention import Retention
from conduit_server.webhooks.domain.schedule import RetrySchedule
from conduit_server.webhooks.domain.sealing import Sealer
from conduit_server.webhooks.domain.targets import Target, TargetPolicy


class SwallowingQueue:
    """Every call waits; the first cancellation of a call comes back as a connection error."""

    def __init__(self) -> None:
        self.calls = 0
        self.swallowed = 0
        self.entered = asyncio.Event()

    async def _wait_swallowing_once(self) -> None:
        self.calls += 1
        self.entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            if self.swallowed:
                raise
            self.swallowed += 1
            raise ConnectionError("connection was closed in the middle of operation") from None

    async def enqueue(self, events: Sequence[Queued]) -> int:
        raise NotImplementedError

    async def claim(self, worker: str, limit: int, lease_seconds: float) -> list[Claimed]:
        await self._wait_swallowing_once()
        return []

    async def record(self, claimed: Claimed, outcome: Outcome, retry_in_seconds: float | None) -> bool:
        raise NotImplementedError

    async def prune(self, before: datetime, batch: int) -> int:
        await self._wait_swallowing_once()
        return 0


class NoSender:
    async def post(self, target: Target, headers: dict[str, str], body: bytes) -> Outcome:
        raise NotImplementedError


async def _nowhere(host: str, port: int) -> Sequence[str]:
    raise NotImplementedError


async def _stops(stop: Coroutine[Any, Any, None]) -> bool:
    """Whether `stop` ends on its own. (Not `wait_for`: its timeout cancels the stop, and that cancel
    reaches the loop as a second one, which would hide the bug.)"""
    stopping = asyncio.create_task(stop)
    await asyncio.wait({stopping}, timeout=10)
    ended = stopping.done()
    await cancel_until_done(stopping)
    return ended


async def test_the_dispatcher_stops_when_its_first_cancellation_is_swallowed() -> None:
    queue = SwallowingQueue()
    dispatcher = Dispatcher(queue, NoSender(), TargetPolicy(), _nowhere, schedule=RetrySchedule((1.0,)),
                            sealer=Sealer("key"), worker="w", max_concurrent=2, timeout_seconds=1.0,
                            poll_seconds=0.001, claim_batch=2)
    dispatcher.start()
    await asyncio.wait_for(queue.entered.wait(), 5)
    assert await _stops(dispatcher.stop())
    assert queue.swallowed == 1


async def test_the_retention_loop_stops_when_its_first_cancellation_is_swallowed() -> None:
    queue = SwallowingQueue()
    retention = Retention(queue, retention_seconds=60, every_seconds=0.001, batch=10)
    retention.start()
    await asyncio.wait_for(queue.entered.wait(), 5)
    assert await _stops(retention.stop())
    assert queue.swallowed == 1
