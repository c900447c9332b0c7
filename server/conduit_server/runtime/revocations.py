"""Revocation of a user's access tokens, checked by every service (docs/decisions/0012-browser-sessions.md).

Browser sessions get long access tokens (RealWorld clients never refresh), so a token must be
revocable before it expires. The users service records, per user, the moment (milliseconds)
before which every access token of that user is void: on a password change, on "sign out of
all sessions" and when a role is revoked. Every service's verifier reads it from Redis on each
authenticated call, after its verified-token cache, so a revocation takes effect at once
everywhere and a cached verification never outlives it.

Tokens carry their issue time in milliseconds (`iat_ms`): a token minted before the revocation is
void; the token the same call returns (minted after it) is not. The record lives as long as the
longest token (then every token it could void has expired anyway).
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from conduit_server.runtime.errors import Unavailable
from conduit_server.runtime.tokens import Principal

log = logging.getLogger("conduit.revocations")


def revocations_prefix(schema: str = "users") -> str:
    """Where the users service on `schema` keeps the records (like its directory)."""
    return f"conduit:{schema}:revoked-before"


class Revocations:
    def __init__(self, redis: aioredis.Redis, *, prefix: str, ttl_seconds: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_seconds

    def _key(self, user_id: int) -> str:
        return f"{self._prefix}:{user_id}"

    async def revoke_all(self, user_id: int, *, at_ms: int | None = None) -> int:
        """Void every access token of `user_id` issued before now (or `at_ms`); returns the moment."""
        moment = at_ms if at_ms is not None else time.time_ns() // 1_000_000
        try:
            # Never moves back: a late write of an older moment keeps the newer one.
            await self._redis.eval(_SET_MAX, 1, self._key(user_id), moment, self._ttl)
        except RedisError as error:
            raise Unavailable("sessions could not be revoked; try again", reason="REVOCATION_UNAVAILABLE") \
                from error
        return moment

    async def is_revoked(self, principal: Principal) -> bool:
        """Whether the user's tokens issued when `principal`'s was are void."""
        if principal.user_id is None:
            return False  # service accounts: short tokens, revoked with the account
        try:
            value = await self._redis.get(self._key(principal.user_id))
        except RedisError as error:
            # Fails open, like every other use of Redis in the mesh: a slow or absent Redis must not
            # sign every user out (docs/decisions/0012). The signature and expiry still hold.
            log.warning("revocation check skipped: %s", type(error).__name__)
            return False
        return value is not None and principal.issued_at_ms < int(value)


_SET_MAX = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local wanted = tonumber(ARGV[1])
if wanted > current then current = wanted end
redis.call('SET', KEYS[1], current, 'EX', ARGV[2])
return current
"""

__all__ = ["Revocations", "revocations_prefix"]
