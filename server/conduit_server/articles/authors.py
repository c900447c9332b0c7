"""Authors as a caller sees them, with as few calls to the users service as correctness allows.

Profiles (username, bio, image) are the same for every viewer: they are cached in
this process and evicted by the users stream's `user_updated` events (staleness
is the event lag, bounded by the TTL when that stream is unavailable).
`following` depends on the viewer and must show the caller's own follow at once,
so a signed-in caller's page always asks the users service — except when the
caller already proved which authors it follows (the feed).
See docs/decisions/0010-author-profiles.md.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Iterable, Sequence

from google.protobuf.message import DecodeError

from conduit.users.v1 import events_pb2 as user_events_pb2
from conduit_server.articles.records import Author, Caller
from conduit_server.articles.users_client import UsersClient
from conduit_server.runtime.expiring import ExpiringCache
from conduit_server.runtime.tail import RawEntry

log = logging.getLogger("conduit.articles")

PROFILE_TTL_SECONDS = 60.0
MAX_PROFILES = 20_000


class Authors:
    """Profiles by user id for one caller; one users-service call per page at most."""

    def __init__(self, users: UsersClient, *, ttl_seconds: float = PROFILE_TTL_SECONDS,
                 max_entries: int = MAX_PROFILES) -> None:
        self._users = users
        self.profiles: ExpiringCache[Author] = ExpiringCache(ttl_seconds=ttl_seconds, max_entries=max_entries)

    async def get(self, author_ids: Iterable[int], caller: Caller, *,
                  followed: Collection[int] | None = None) -> dict[int, Author]:
        """Authors by id with `following` for the caller; `followed`, when given, is the caller's
        fresh followee set and answers `following` without asking the users service."""
        wanted = set(author_ids)
        if not wanted:
            return {}
        if caller.viewer_id and followed is None:
            generation = self.profiles.generation()
            found = await self._users.profiles(wanted, caller.viewer_id, caller.deadline)
            self.profiles.store({key: dataclasses.replace(author, following=False)
                                 for key, author in found.items()}, generation)
        else:
            found, missing = self.profiles.get_many(wanted)
            if missing:
                generation = self.profiles.generation()
                loaded = await self._users.profiles(missing, 0, caller.deadline)
                self.profiles.store(loaded, generation)
                found.update(loaded)
            if followed:
                found = {key: dataclasses.replace(author, following=key in followed)
                         for key, author in found.items()}
        unknown = wanted - found.keys()
        if unknown:
            log.warning("users service does not know authors %s", sorted(unknown))
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
