"""The async Redis client of a process."""

from __future__ import annotations

import redis.asyncio as aioredis


def connect(url: str, *, max_connections: int = 64) -> aioredis.Redis:
    """A pooled client; bytes in, bytes out (callers decide on encodings)."""
    return aioredis.Redis.from_url(url, max_connections=max_connections, health_check_interval=30)
