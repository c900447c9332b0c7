"""Stream entries as the outbox relay writes them: typed reads, decoding, de-duplication."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Sequence
from typing import cast

import redis.asyncio as aioredis

from conduit_server.realtime.domain.enrich import Entry
from conduit_server.realtime.domain.ids import StreamId

log = logging.getLogger("conduit.realtime")

# An entry as the byte-level client returns it: (id, {field: value}).
RawEntry = tuple[bytes, dict[bytes, bytes]]


class RecentIds:
    """The last `size` event ids, for dropping re-published events."""

    def __init__(self, size: int) -> None:
        self._order: deque[str] = deque()
        self._ids: set[str] = set()
        self._size = size

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def extend(self, newest_first: Sequence[RawEntry]) -> None:
        """Remember the event ids of entries read newest first (XREVRANGE)."""
        for _, fields in reversed(newest_first):
            if b"event_id" in fields:
                self.add(fields[b"event_id"].decode())

    def add(self, event_id: str) -> None:
        if event_id in self._ids:
            return
        self._order.append(event_id)
        self._ids.add(event_id)
        if len(self._order) > self._size:
            self._ids.discard(self._order.popleft())


async def xrange(redis: aioredis.Redis, stream: str, first: str, last: str, count: int) -> list[RawEntry]:
    """XRANGE with both ends inclusive, typed as the byte-level client returns it."""
    return cast("list[RawEntry]", await redis.xrange(stream, first, last, count=count))


async def xrevrange(redis: aioredis.Redis, stream: str, last: str, count: int) -> list[RawEntry]:
    """XREVRANGE from `last` (inclusive) backwards."""
    return cast("list[RawEntry]", await redis.xrevrange(stream, last, "-", count=count))


def decode_entries(raw: Iterable[RawEntry]) -> tuple[list[Entry], StreamId | None, int]:
    """Relay entries, the id of the last raw entry, and how many were not in the relay's layout."""
    entries: list[Entry] = []
    last: StreamId | None = None
    malformed = 0
    for raw_id, fields in raw:
        last = StreamId.parse(raw_id)
        try:
            entries.append(Entry.decode(raw_id, fields))
        except (KeyError, ValueError, UnicodeDecodeError):
            malformed += 1
            log.error("stream entry %s is not an outbox event; skipped", last)
    return entries, last, malformed


def drop_duplicates(entries: Sequence[Entry], recent: RecentIds) -> tuple[list[Entry], int]:
    """Entries whose event id is neither in `recent` nor earlier in the batch."""
    fresh: list[Entry] = []
    batch: set[str] = set()
    for entry in entries:
        if entry.event_id in recent or entry.event_id in batch:
            continue
        batch.add(entry.event_id)
        fresh.append(entry)
    return fresh, len(entries) - len(fresh)
