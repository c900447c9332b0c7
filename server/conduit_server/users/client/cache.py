"""The users directory in Redis: public profiles by id and followee ids by follower.

The users service owns it: it fills it from PostgreSQL and invalidates entries after the commit that
changes them (before answering the change). It is versioned cache-aside (runtime/cache.py): a fill
stores under the version its lookup saw, before it read the database, and an invalidation moves the
version on; so a fill that read the old rows and lands after the writer returned is stored under a
dead version and never served. A caller therefore reads its own profile edits and follows at once
(docs/decisions/0013-cache-discipline.md). Other services may `lookup` in it to skip a call to the
users service; a miss means "ask the users service", which fills it. Redis failures read as misses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import orjson
import redis.asyncio as aioredis

from conduit_server.runtime.cache import Cache


def directory_prefix(schema: str = "users") -> str:
    """Where the users service on `schema` keeps its directory (keys carry the schema, so two
    users services, e.g. test apps, can share one Redis)."""
    return f"conduit:{schema}:cache"


def _profile(user_id: int) -> str:
    return f"profile:{user_id}"


def _followees(user_id: int) -> str:
    return f"followees:{user_id}"


@dataclass
class DirectoryLookup:
    """What one lookup found, and the versions a fill of its misses must be stored under."""

    profiles: dict[int, dict[str, str]] = field(default_factory=dict)
    followees: list[int] | None = None
    versions: dict[str, str] = field(default_factory=dict)


class DirectoryCache:
    def __init__(self, redis: aioredis.Redis, *, prefix: str, ttl_seconds: float = 300.0) -> None:
        self._cache = Cache(redis, prefix, default_ttl_seconds=ttl_seconds)

    async def lookup(self, user_ids: Sequence[int], viewer_id: int | None) -> DirectoryLookup:
        """The cached profiles among `user_ids` and the viewer's cached followees (None: no viewer, or
        not cached), in ONE round trip."""
        names = [_profile(user_id) for user_id in user_ids]
        if viewer_id:
            names.append(_followees(viewer_id))
        found = await self._cache.lookup_many(names)
        if found is None:
            return DirectoryLookup()
        result = DirectoryLookup(versions={name: lookup.version for name, lookup in found.items()})
        for user_id in user_ids:
            value = found[_profile(user_id)].value
            if value is not None:
                result.profiles[user_id] = orjson.loads(value)
        if viewer_id and (followees := found[_followees(viewer_id)].value) is not None:
            result.followees = [int(followee) for followee in orjson.loads(followees)]
        return result

    async def followees(self, user_id: int) -> DirectoryLookup:
        """The cached followee ids of `user_id` (`.followees` None: not cached)."""
        return await self.lookup((), user_id)

    async def fill(self, seen: DirectoryLookup, *, profiles: Mapping[int, Mapping[str, str]] | None = None,
                   followees: Mapping[int, Sequence[int]] | None = None) -> None:
        """Store what was loaded after `seen` was looked up, under the versions `seen` carries."""
        entries = {name: (seen.versions[name], orjson.dumps(value)) for name, value in (
            *((_profile(user_id), dict(profile)) for user_id, profile in (profiles or {}).items()),
            *((_followees(user_id), list(ids)) for user_id, ids in (followees or {}).items()))
            if name in seen.versions}
        await self._cache.store_many(entries)

    async def invalidate(self, *, profiles: Iterable[int] = (), followees: Iterable[int] = ()) -> None:
        """After the commit: no fill that started before this call can be served afterwards."""
        await self._cache.invalidate([*map(_profile, profiles), *map(_followees, followees)])


__all__ = ["DirectoryCache", "DirectoryLookup", "directory_prefix"]
