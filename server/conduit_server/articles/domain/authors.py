"""Authors as a caller sees them, with as few calls to the users service as correctness allows.

For anonymous callers, profiles (username, bio, image — the same for every
viewer) are cached in this process and evicted by the users stream's
`user_updated` events (staleness is the event lag, bounded by the TTL when that
stream is unavailable).

A signed-in caller must see their own profile edits and follows at once, so
their authors come from the users service's own directory in Redis (one MGET:
the profiles and the caller's followee set, both deleted by the users service
before it answers a change), and from a `BatchGetProfiles` call only when that
directory misses. The feed already holds the caller's fresh followee set.
See docs/decisions/0010-author-profiles.md.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence

from google.protobuf.message import DecodeError

from conduit.users.v1 import events_pb2 as user_events_pb2
from conduit.users.v1 import users_pb2
from conduit_server.articles.domain.records import Author, Caller
from conduit_server.runtime.expiring import ExpiringCache
from conduit_server.runtime.tail import RawEntry
from conduit_server.users.client.cache import DirectoryCache
from conduit_server.users.client.calls import UsersClient

log = logging.getLogger("conduit.articles")

PROFILE_TTL_SECONDS = 60.0
MAX_PROFILES = 20_000


class Authors:
    """Profiles by user id for one caller; one users-service call per page at most."""

    def __init__(self, users: UsersClient, directory: DirectoryCache, *,
                 ttl_seconds: float = PROFILE_TTL_SECONDS, max_entries: int = MAX_PROFILES) -> None:
        self._users = users
        self._directory = directory
        self.directory_hits = 0
        self.profiles: ExpiringCache[Author] = ExpiringCache(ttl_seconds=ttl_seconds, max_entries=max_entries,
                                                                  name="articles.author_profiles")

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
            found, missing = self.profiles.get_many(wanted)
            if missing:
                generation = self.profiles.generation()
                loaded = _authors(await self._users.profiles(missing, 0, caller.deadline))
                self.profiles.store(loaded, generation)
                found.update(loaded)
            if followed:
                found = {key: dataclasses.replace(author, following=key in followed)
                         for key, author in found.items()}
        unknown = wanted - found.keys()
        if unknown:
            log.warning("users service does not know authors %s", sorted(unknown))
        return found

    async def followee_ids(self, user_id: int, caller: Caller) -> list[int]:
        """Whom `user_id` follows, exact: from the users directory, else from the users service."""
        cached = await self._directory.followees(user_id)
        if cached is not None:
            self.directory_hits += 1
            return cached
        return await self._users.followee_ids(user_id, caller.deadline)

    async def _signed_in(self, wanted: set[int], caller: Caller) -> dict[int, Author]:
        ids = sorted(wanted)
        cached, followees = await self._directory.lookup(ids, caller.viewer_id)
        if followees is not None and len(cached) == len(ids):
            self.directory_hits += 1
            following = set(followees)
            return {key: Author(profile["username"], profile["bio"], profile["image"], key in following)
                    for key, profile in cached.items()}
        generation = self.profiles.generation()
        found = _authors(await self._users.profiles(wanted, caller.viewer_id, caller.deadline))
        self.profiles.store({key: dataclasses.replace(author, following=False) for key, author in found.items()},
                            generation)
        return found

    def users_changed(self, entries: Sequence[RawEntry]) -> None:
        """Evict the profiles the users stream says changed (fed by a StreamTail)."""
        for _, fields in entries:
            try:
                event = user_events_pb2.UserEvent.FromString(fields[b"payload"])
            except (KeyError, DecodeError):
                log.error("users stream entry without a UserEvent payload; skipped")
                continue
            if event.WhichOneof("payload") == "user_updated":
                self.profiles.evict(event.user_updated.user_id)


def _authors(profiles: Mapping[int, users_pb2.Profile]) -> dict[int, Author]:
    return {user_id: Author(profile.username, profile.bio, profile.image, profile.following)
            for user_id, profile in profiles.items()}
