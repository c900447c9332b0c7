"""Rate limits in Redis: sliding-window logs checked and recorded atomically by one Lua script.

A `Limit` allows `max_hits` within any window of `window_seconds`. Each limited
subject (an IP, an account, a pair of them) is a sorted set of hit timestamps;
the script trims what fell out of the window, refuses when any of the given
sets is full (answering how long until the oldest blocking hit expires), and
otherwise records the hit in all of them. Because check and record happen in
one script, a burst of concurrent attempts cannot overshoot a limit.

A recorded hit can be taken back (`release`): a login that succeeds does not
count against its account. Windows slide, so nobody is ever locked out for
longer than one window after the last counted hit.

Timestamps come from the Redis server's clock, so replicas with skewed clocks
agree, unless a clock is given (tests move time by hand instead of sleeping).
Subjects are hashed into the key: no email or IP is stored in Redis.

When Redis cannot be reached, a hit is let through and logged (fail open,
decision 0029): logins, registrations and writes keep working through a cache
outage; the limits come back with Redis.

`WriteLimit` is the per-user budget of writes (creates, updates, deletes,
comments, favorites, follows) the services check before each write.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from conduit_server.runtime.errors import RateLimited

log = logging.getLogger("conduit.ratelimit")

# KEYS: one sorted set per limit. ARGV: member, the time in ms (0: the server's), then max_hits and
# window (ms) per key. Returns 0 when the hit was recorded, else the milliseconds until it would be allowed.
_ACQUIRE = """
local now = tonumber(ARGV[2])
if now == 0 then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
local member = ARGV[1]
local wait = 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i + 1])
  local window = tonumber(ARGV[2 * i + 2])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count >= limit then
    -- Once the hit at rank count-limit leaves the window, one more hit fits.
    local blocking = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    local remaining = tonumber(blocking[2]) + window - now
    if remaining > wait then wait = remaining end
  end
end
if wait > 0 then return math.max(1, wait) end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, tonumber(ARGV[2 * i + 2]))
end
return 0
"""


@dataclass(frozen=True)
class Limit:
    """At most `max_hits` hits within any `window_seconds`."""

    name: str
    max_hits: int
    window_seconds: float

    def __post_init__(self) -> None:
        if self.max_hits < 1 or self.window_seconds <= 0:
            raise ValueError("a limit needs max_hits >= 1 and a positive window")


@dataclass(frozen=True)
class Attempt:
    """A hit recorded under one or more limits; `RateLimiter.release` takes it back."""

    keys: tuple[str, ...]
    member: str


class RateLimiter:
    """Checks and records hits against several limits at once."""

    def __init__(self, redis: aioredis.Redis, *, prefix: str = "conduit:ratelimit",
                 clock: Callable[[], float] | None = None) -> None:
        self._redis = redis
        self._prefix = prefix
        self._clock = clock  # seconds; None: the Redis server's TIME
        self._script = redis.register_script(_ACQUIRE)

    def key(self, limit: Limit, subject: str) -> str:
        digest = hashlib.sha256(subject.encode("utf-8")).hexdigest()[:32]
        return f"{self._prefix}:{limit.name}:{digest}"

    async def acquire(self, checks: Sequence[tuple[Limit, str]], *, message: str) -> Attempt:
        """Record one hit for every (limit, subject); raise RateLimited when any limit is reached.

        Redis being unavailable lets the hit through (logged): a cache outage must
        not take logins or writes down with it.
        """
        keys = tuple(self.key(limit, subject) for limit, subject in checks)
        member = uuid.uuid4().hex
        now_ms = max(1, round(self._clock() * 1000)) if self._clock is not None else 0
        args: list[str | int] = [member, now_ms]
        for limit, _ in checks:
            args += [limit.max_hits, max(1, round(limit.window_seconds * 1000))]
        try:
            wait_ms = int(await self._script(keys=list(keys), args=args))
        except RedisError as error:
            log.warning("rate limiter unavailable, allowing the attempt: %s", type(error).__name__)
            return Attempt((), member)
        if wait_ms > 0:
            names = ",".join(limit.name for limit, _ in checks)
            raise RateLimited(message, wait_ms / 1000, metadata={"limits": names})
        return Attempt(keys, member)

    async def release(self, attempt: Attempt) -> None:
        """Take a recorded hit back (it no longer counts against any of its limits)."""
        if not attempt.keys:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in attempt.keys:
                    pipe.zrem(key, attempt.member)
                await pipe.execute()
        except RedisError as error:
            log.warning("rate limiter unavailable, hit not released: %s", type(error).__name__)

    async def reset(self, limit: Limit, subject: str) -> None:
        """Forget every hit of one subject under one limit (operators, tests)."""
        await self._redis.delete(self.key(limit, subject))


class WriteLimit:
    """At most `limit.max_hits` writes per authenticated user within any `limit.window_seconds`;
    the next is refused with RESOURCE_EXHAUSTED and a RetryInfo (HTTP 429 with Retry-After)."""

    def __init__(self, limiter: RateLimiter, limit: Limit) -> None:
        self._limiter = limiter
        self.limit = limit

    @classmethod
    def per_minute(cls, limiter: RateLimiter, writes: int) -> WriteLimit:
        return cls(limiter, Limit("writes-user", writes, 60.0))

    async def check(self, user_id: int) -> None:
        """Count one write of `user_id`; raise RateLimited when the budget is spent."""
        await self._limiter.acquire([(self.limit, str(user_id))],
                                    message="too many writes: slow down and try again later")


__all__ = ["Attempt", "Limit", "RateLimiter", "WriteLimit"]
