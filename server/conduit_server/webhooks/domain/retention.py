"""Bounded storage: messages delivered or dead-lettered longer ago than the retention are deleted with
their attempts, in small batches, by a loop of its own beside the dispatcher (docs/decisions/0046).

Pending messages are never pruned, however old. A dead letter is kept for the whole retention after it
died (so its owner has that long to redeliver it); a redelivery makes it pending again and out of reach.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from conduit_server.runtime.tasks import cancel_until_done
from conduit_server.webhooks.domain.ports import PrunableQueue

log = logging.getLogger("conduit.webhooks.retention")


class Retention:
    """Prunes every `every_seconds`; any replica may run one (deletes skip rows others hold)."""

    def __init__(self, queue: PrunableQueue, *, retention_seconds: float, every_seconds: float, batch: int,
                 clock: Callable[[], float] = time.time) -> None:
        self._queue = queue
        self.retention_seconds = retention_seconds
        self._every = every_seconds
        self._batch = batch
        # Decides what "older than the retention" is (tests move it forward instead of waiting).
        self.clock = clock
        self.pruned = 0
        self._task: asyncio.Task[None] | None = None

    def cutoff(self) -> datetime:
        return datetime.fromtimestamp(self.clock() - self.retention_seconds, UTC)

    async def prune_once(self) -> int:
        removed = await self._queue.prune(self.cutoff(), self._batch)
        self.pruned += removed
        if removed:
            log.info("pruned %d webhook messages settled before %s", removed, self.cutoff().isoformat())
        return removed

    async def run(self) -> None:
        while True:
            try:
                await self.prune_once()
            except Exception as error:  # noqa: BLE001 - PostgreSQL away: try again next round
                log.warning("pruning webhook messages failed: %r", error)
            await asyncio.sleep(self._every)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="webhooks-retention")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_until_done(self._task)  # a cancellation the driver swallowed is repeated
            self._task = None
