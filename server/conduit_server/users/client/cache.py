"""The users directory in Redis: public profiles by id and followee ids by follower.

The users service owns it: it fills it from PostgreSQL and deletes entries
after the commit that changes them (before answering the change), so a caller
reads its own profile edits and follows at once. Entries carry a TTL, so a
reader that raced the deletion (read old rows, wrote after the delete) is
stale for one TTL at most. Other services may `lookup` in it to skip a call
to the users service — a miss means "ask the users service", which fills it
(docs/decisions/0010-author-profiles.md). Redis failures are logged and read
as misses: it is never a source of truth.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("conduit.directory")


def directory_prefix(schema: str = "users") -> str:
    """Where the users service on `schema` keeps its directory (keys carry the schema, so two
    users services, e.g. test apps, can share one Redis)."""
    return f"conduit:{schema}:cache"


class DirectoryCache:
    def __init__(self, redis: aioredis.Redis, *, prefix: str, ttl_seconds: int = 300) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_seconds

    def _profile_key(self, user_id: int) -> str:
        return f"{self._prefix}:profile:{user_id}"

    def _followees_key(self, user_id: int) -> str:
        return f"{self._prefix}:followees:{user_id}"

    async def profiles(self, user_ids: Sequence[int]) -> dict[int, dict[str, str]]:
        """The cached profiles among `user_ids` (misses are absent)."""
        found, _ = await self.lookup(user_ids, None)
        return found

    async def lookup(self, user_ids: Sequence[int], viewer_id: int | None
                     ) -> tuple[dict[int, dict[str, str]], list[int] | None]:
        """The cached profiles among `user_ids` and the viewer's cached followees, in ONE round trip
        (None: no viewer, or not cached)."""
        keys = [self._profile_key(user_id) for user_id in user_ids]
        if viewer_id:
            keys.append(self._followees_key(viewer_id))
        if not keys:
            return {}, None
        try:
            values = await self._redis.mget(keys)
        except RedisError as error:
            log.warning("directory cache read failed: %s", type(error).__name__)
            return {}, None
        followees = values.pop() if viewer_id else None
        found = {user_id: orjson.loads(value) for user_id, value in zip(user_ids, values, strict=True)
                 if value is not None}
        return found, None if followees is None else [int(followee) for followee in orjson.loads(followees)]

    async def store_profiles(self, profiles: Mapping[int, Mapping[str, str]]) -> None:
        if not profiles:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for user_id, profile in profiles.items():
                    pipe.set(self._profile_key(user_id), orjson.dumps(profile), ex=self._ttl)
                await pipe.execute()
        except RedisError as error:
            log.warning("profile cache write failed: %s", type(error).__name__)

    async def followees(self, user_id: int) -> list[int] | None:
        """The cached followee ids of `user_id` (None: not cached)."""
        _, followees = await self.lookup((), user_id)
        return followees

    async def store_followees(self, user_id: int, followee_ids: Sequence[int]) -> None:
        try:
            await self._redis.set(self._followees_key(user_id), orjson.dumps(list(followee_ids)),
                                  ex=self._ttl)
        except RedisError as error:
            log.warning("followee cache write failed: %s", type(error).__name__)

    async def invalidate(self, *, profiles: Iterable[int] = (), followees: Iterable[int] = ()) -> None:
        keys = [*map(self._profile_key, profiles), *map(self._followees_key, followees)]
        if not keys:
            return
        try:
            await self._redis.delete(*keys)
        except RedisError as error:
            # The TTL bounds the staleness this leaves behind.
            log.warning("cache invalidation failed: %s", type(error).__name__)


__all__ = ["DirectoryCache"]
