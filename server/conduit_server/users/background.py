"""The long-running tasks of the users process (outbox relay, signing-key reload)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("conduit.users")


class BackgroundTasks:
    """Named tasks started with the app and stopped with it."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._tasks.append(asyncio.create_task(run(), name=name))

    async def stop(self) -> None:
        """Cancel every task and wait for it to end.

        Cancels again until each task is done: on Python 3.11, `asyncio.wait_for`
        swallows a cancellation that arrives as its inner future completes
        (fixed in 3.12), and a loop built on it would otherwise run on forever.
        """
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
            if not task.cancelled() and (error := task.exception()) is not None:
                log.error("background task %s had failed", task.get_name(), exc_info=error)


__all__ = ["BackgroundTasks"]
