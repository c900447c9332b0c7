"""Background tasks of a process: started with its app, stopped (for good) with it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("conduit.tasks")


async def cancel_until_done(task: asyncio.Task[None], *, every_seconds: float = 0.5) -> None:
    """Cancel `task` and wait for it, cancelling again until it ends: redis-py can swallow a
    cancellation that lands while it connects or reads (turning it into a connection error that
    a retry loop would survive), so one `cancel()` is not enough. Loops must also check a
    stopped flag before retrying."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=every_seconds)
    with contextlib.suppress(asyncio.CancelledError):
        task.result()


class BackgroundTasks:
    """Named tasks started with the app and stopped with it."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._tasks.append(asyncio.create_task(run(), name=name))

    async def stop(self) -> None:
        """Cancel every task and wait for it to end (see cancel_until_done); a task that had failed is logged."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            try:
                await cancel_until_done(task)
            except Exception:
                log.exception("background task %s had failed", task.get_name())
