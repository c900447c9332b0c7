"""Stopping background tasks that talk to Redis."""

from __future__ import annotations

import asyncio
import contextlib


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
