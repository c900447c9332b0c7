"""Reads of the retained stream history, for resuming a watch from a position (the live tail is the
hub's StreamFollower)."""

from __future__ import annotations

from typing import cast

import redis.asyncio as aioredis

from conduit_server.runtime.tail import RawEntry


async def xrange(redis: aioredis.Redis, stream: str, first: str, last: str, count: int) -> list[RawEntry]:
    """XRANGE with both ends inclusive, typed as the byte-level client returns it."""
    return cast("list[RawEntry]", await redis.xrange(stream, first, last, count=count))


async def xrevrange(redis: aioredis.Redis, stream: str, last: str, count: int) -> list[RawEntry]:
    """XREVRANGE from `last` (inclusive) backwards."""
    return cast("list[RawEntry]", await redis.xrevrange(stream, last, "-", count=count))
