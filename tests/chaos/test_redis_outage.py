"""Decision 0027: while Redis is down, rate limits fail open (the attempt goes through, uncounted), and
they count again once it is back — against a real redis-server stopped and started at the same socket."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bench.harness import Redis
from conduit_server.runtime.errors import RateLimited
from conduit_server.runtime.ratelimit import Limit, RateLimiter

ONE = Limit("chaos-test", max_hits=1, window_seconds=60)


async def test_a_limit_lets_attempts_through_while_redis_is_down_and_counts_again_after(tmp_path: Path) -> None:
    server = Redis(tmp_path / "redis")
    server.start()
    client = aioredis.Redis(unix_socket_path=str(server.socket))
    limiter = RateLimiter(client)
    try:
        await limiter.acquire([(ONE, "someone")], message="slow down")
        with pytest.raises(RateLimited):
            await limiter.acquire([(ONE, "someone")], message="slow down")
        server.stop()
        allowed = await limiter.acquire([(ONE, "someone")], message="slow down")
        assert allowed.keys == ()  # let through, nothing recorded
        server.start()
        with pytest.raises(RateLimited):  # the append-only file kept the window
            await limiter.acquire([(ONE, "someone")], message="slow down")
    finally:
        await client.aclose()
        server.stop()
