"""Who the users with open streams follow: loaded once per user, kept current by follow events.

One set per user however many streams that user has open, dropped with the last one.
`ListFolloweeIds` gives the snapshot; `follow_changed` events from the users stream that
arrive while the snapshot is loading are replayed on top of it in stream order, so a
follow made during subscribe is never lost. A periodic reload bounds drift when the users
stream is not available.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from conduit_server.realtime.repository.profiles import Directory

log = logging.getLogger("conduit.realtime.follows")


@dataclass
class _Followees:
    ids: set[int] = field(default_factory=set)
    holders: int = 0
    # Follow changes seen while a snapshot is loading: (followee, following) in stream order.
    pending: list[tuple[int, bool]] | None = None
    loaded: asyncio.Future[None] | None = None


class FollowGraph:
    """Followee sets of the users who have streams open."""

    def __init__(self, directory: Directory) -> None:
        self._directory = directory
        self._users: dict[int, _Followees] = {}

    def __len__(self) -> int:
        return len(self._users)

    async def acquire(self, user_id: int) -> set[int]:
        """The live followee set of `user_id` (shared; updated in place). Pair with `release`."""
        entry = self._users.get(user_id)
        if entry is None:
            entry = self._users[user_id] = _Followees()
        entry.holders += 1
        try:
            if entry.loaded is None:
                entry.loaded = asyncio.get_running_loop().create_future()
                await self._load(user_id, entry)
            else:
                await asyncio.shield(entry.loaded)
        except BaseException:
            self.release(user_id)
            raise
        return entry.ids

    def release(self, user_id: int) -> None:
        entry = self._users.get(user_id)
        if entry is None:
            return
        entry.holders -= 1
        if entry.holders <= 0:
            del self._users[user_id]

    async def _load(self, user_id: int, entry: _Followees) -> None:
        entry.pending = []
        future = entry.loaded
        assert future is not None
        try:
            snapshot = await self._directory.followee_ids(user_id)
        except BaseException as error:
            entry.pending = None
            entry.loaded = None  # the next subscriber tries again
            if not future.done():
                future.set_exception(error if isinstance(error, Exception) else asyncio.CancelledError())
                future.exception()  # retrieved: nobody else may be waiting
            raise
        entry.ids.clear()
        entry.ids.update(snapshot)
        for followee, following in entry.pending:
            self._apply(entry, followee, following)
        entry.pending = None
        if not future.done():
            future.set_result(None)

    def follow_changed(self, follower_id: int, followee_id: int, following: bool) -> None:
        """A `follow_changed` event from the users stream."""
        entry = self._users.get(follower_id)
        if entry is None:
            return
        if entry.pending is not None:
            entry.pending.append((followee_id, following))
        self._apply(entry, followee_id, following)

    @staticmethod
    def _apply(entry: _Followees, followee_id: int, following: bool) -> None:
        if following:
            entry.ids.add(followee_id)
        else:
            entry.ids.discard(followee_id)

    async def refresh(self) -> None:
        """Reload every set from the users service (a safety net behind the events)."""
        for user_id, entry in list(self._users.items()):
            if entry.pending is not None or self._users.get(user_id) is not entry:
                continue
            entry.pending = []
            try:
                snapshot = await self._directory.followee_ids(user_id)
            except Exception as error:  # noqa: BLE001 - keep the current set; events still apply
                log.warning("followee refresh of user %s failed: %s", user_id, error)
                entry.pending = None
                continue
            changes, entry.pending = entry.pending, None
            entry.ids.clear()
            entry.ids.update(snapshot)
            for followee, following in changes:
                self._apply(entry, followee, following)
