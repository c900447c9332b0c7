"""Authors as a caller sees them, with as few calls to the users service as correctness allows.

For anonymous callers, profiles (username, bio, image — the same for every
viewer) come from the in-process ProfileCache of the users client, evicted by
the users stream's `user_updated` events (staleness is the event lag, bounded
by the TTL when that stream is unavailable).

A signed-in caller must see their own profile edits and follows at once, so
their authors come from the users service's own directory in Redis (one MGET:
the profiles and the caller's followee set, both deleted by the users service
before it answers a change), and from a `BatchGetProfiles` call only when that
directory misses. The feed already holds the caller's fresh followee set.
See docs/decisions/0010-author-profiles.md.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping

from conduit.users.v1 import users_pb2
from conduit_server.articles.domain.records import Author, Caller
from conduit_server.users.client.cache import DirectoryCache
from conduit_server.users.client.calls import UsersClient
from conduit_server.users.client.profiles import ProfileCache

log = logging.getLogger("conduit.articles")


class Authors:
    """Profiles by user id for one caller; one users-service call per page at most."""

    def __init__(self, users: UsersClient, directory: DirectoryCache, profiles: ProfileCache) -> None:
        self._users = users
        self._directory = directory
        self.directory_hits = 0
        self.profiles = profiles

    async def get(self, author_ids: Iterable[int], caller: Caller, *,
                  followed: Collection[int] | None = None) -> dict[int, Author]:
        """Authors by id with `following` for the caller; `followed`, when given, is the caller's
        fresh followee set and answers `following` without asking the users service."""
        wanted = set(author_ids)
        if not wanted:
            return {}
        if caller.viewer_id and followed is None:
            found = await self._signed_in(wanted, caller)
        else:
            found = _authors(await self.profiles.get_many(wanted, caller.deadline), followed or ())
        unknown = wanted - found.keys()
        if unknown:
            log.warning("users service does not know authors %s", sorted(unknown))
        return found

    async def followee_ids(self, user_id: int, caller: Caller) -> list[int]:
        """Whom `user_id` follows, exact: from the users directory, else from the users service."""
        cached = (await self._directory.followees(user_id)).followees
        if cached is not None:
            self.directory_hits += 1
            return cached
        return await self._users.followee_ids(user_id, caller.deadline)

    async def _signed_in(self, wanted: set[int], caller: Caller) -> dict[int, Author]:
        ids = sorted(wanted)
        seen = await self._directory.lookup(ids, caller.viewer_id)
        if seen.followees is not None and len(seen.profiles) == len(ids):
            self.directory_hits += 1
            following = set(seen.followees)
            return {key: Author(profile["username"], profile["bio"], profile["image"], key in following)
                    for key, profile in seen.profiles.items()}
        return _authors(await self.profiles.for_viewer(wanted, caller.viewer_id, caller.deadline))


def _authors(profiles: Mapping[int, users_pb2.Profile], followed: Collection[int] = ()) -> dict[int, Author]:
    """`followed` (a fresh followee set) overrides `following`."""
    return {user_id: Author(profile.username, profile.bio, profile.image,
                            profile.following or user_id in followed)
            for user_id, profile in profiles.items()}
