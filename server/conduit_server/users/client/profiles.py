"""Public profiles of users cached in the calling process, evicted by the users stream.

Profiles (username, bio, image: the same for every viewer) change rarely; `user_updated` events
evict them at once, and the TTL bounds staleness while the stream is not followed. A gap in the
stream (start, Redis lost) clears them all. Loads declare their keys before calling the users
service, so an eviction refuses only the evicted key of a load in flight (runtime/expiring.py).
Profiles here carry `following` false: a viewer's own follows are never cached in-process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence

from google.protobuf.message import DecodeError

from conduit.users.v1 import events_pb2, users_pb2
from conduit_server.runtime.expiring import ExpiringCache
from conduit_server.runtime.tail import RawEntry
from conduit_server.users.client.calls import UsersClient

log = logging.getLogger("conduit.users.client")


def user_events(entries: Sequence[RawEntry]) -> list[events_pb2.UserEvent]:
    """The UserEvents of users-stream entries (entries without one are logged and skipped)."""
    events: list[events_pb2.UserEvent] = []
    for _, fields in entries:
        try:
            events.append(events_pb2.UserEvent.FromString(fields[b"payload"]))
        except (KeyError, DecodeError):
            log.error("users stream entry without a UserEvent payload; skipped")
    return events


class ProfileCache:
    """Profiles by user id for `ttl_seconds`, at most `max_entries`; one users call per batch of misses."""

    def __init__(self, users: UsersClient, *, ttl_seconds: float, max_entries: int,
                 clock: Callable[[], float] = time.monotonic, name: str = "") -> None:
        self._users = users
        # `name` labels its hits and misses in the metrics (conduit_cache_requests_total{cache=name}).
        self._entries: ExpiringCache[users_pb2.Profile] = ExpiringCache(
            ttl_seconds=ttl_seconds, max_entries=max_entries, clock=clock, name=name)

    @property
    def hits(self) -> int:
        return self._entries.hits

    @property
    def misses(self) -> int:
        return self._entries.misses

    @property
    def evictions(self) -> int:
        return self._entries.evictions

    async def get_many(self, user_ids: Iterable[int], deadline: float | None = None
                       ) -> dict[int, users_pb2.Profile]:
        """Profiles of `user_ids` as anybody sees them; users the users service does not know are absent."""
        found, missing = self._entries.get_many(set(user_ids))
        if missing:
            with self._entries.loading(missing) as load:
                fetched = await self._users.profiles(missing, 0, deadline)
                load.keep(fetched)
            found.update(fetched)
        return found

    async def for_viewer(self, user_ids: Iterable[int], viewer_id: int, deadline: float | None = None
                         ) -> dict[int, users_pb2.Profile]:
        """Profiles with `following` as `viewer_id` sees them, from the users service; kept for anybody."""
        wanted = set(user_ids)
        with self._entries.loading(wanted) as load:
            fetched = await self._users.profiles(wanted, viewer_id, deadline)
            load.keep({user_id: _as_anybody(profile) for user_id, profile in fetched.items()})
        return fetched

    def users_changed(self, entries: Sequence[RawEntry]) -> None:
        """Evict the profiles the users stream says changed."""
        for event in user_events(entries):
            if event.WhichOneof("payload") == "user_updated":
                self.evict(event.user_updated.user_id)

    def evict(self, user_id: int) -> None:
        self._entries.evict(user_id)

    def clear(self) -> None:
        self._entries.clear()


def _as_anybody(profile: users_pb2.Profile) -> users_pb2.Profile:
    if not profile.following:
        return profile
    copy = users_pb2.Profile()
    copy.CopyFrom(profile)
    copy.following = False
    return copy


__all__ = ["ProfileCache", "user_events"]
