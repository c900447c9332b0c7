"""The indexer: a Redis Streams consumer group on the articles events, and the stream read by position.

At least once: entries are acknowledged only after their changes are written,
so a crash re-delivers them (to this consumer on restart, or to another one
through XAUTOCLAIM once they have been idle `claim_idle_ms`). Writes are
idempotent and versioned (documents.py), so re-delivery and reordering are
harmless. A lost group (Redis restarted without its data) is created again
from the start of whatever the stream still holds.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC
from typing import Any, cast

import redis.asyncio as aioredis
from google.protobuf.message import DecodeError
from redis.exceptions import ResponseError

from conduit.articles.v1 import events_pb2
from conduit_server.runtime import metrics
from conduit_server.runtime.consumers import GroupConsumer, GroupEntry
from conduit_server.search.domain.documents import Change, Document, Tombstone, latest
from conduit_server.search.domain.ports import SearchBackend

log = logging.getLogger("conduit.search.indexer")

GROUP = "search-indexer"
_EPOCH_MS = 1000


def document_of(record: events_pb2.ArticleRecord, version: int) -> Document:
    return Document(record.id, version, record.slug, record.title, record.description, record.body,
                    tuple(record.tag_list), record.author_id, record.created_at.ToDatetime(tzinfo=UTC))


def change_of(fields: dict[bytes, bytes]) -> Change | None:
    """The index change an outbox entry makes; None for events search does not index (comments,
    favorites: counts and flags are read live from the articles service)."""
    kind = fields.get(b"type", b"").decode()
    if kind not in ("article_created", "article_updated", "article_deleted"):
        return None
    version = int(fields[b"seq"])
    event = events_pb2.ArticleEvent.FromString(fields[b"payload"])
    if kind == "article_deleted":
        return Tombstone(event.article_deleted.article_id, version)
    holder = event.article_created if kind == "article_created" else event.article_updated
    return document_of(holder.article, version)


def changed_article_ids(entries: Sequence[tuple[bytes, dict[bytes, bytes]]]) -> set[int] | None:
    """The articles whose anonymous view the articles-stream entries change: edited, deleted,
    favorited or not (a new article has no view kept yet; comments are not in the list shape).
    None when one of those could not be read: every view may have changed."""
    changed: set[int] = set()
    for entry_id, fields in entries:
        if fields.get(b"type", b"").decode() not in ("article_updated", "article_deleted", "favorite_changed"):
            continue
        try:
            event = events_pb2.ArticleEvent.FromString(fields[b"payload"])
        except (KeyError, DecodeError) as error:
            log.error("unreadable event %s: %r; every kept view is dropped", entry_id.decode(), error)
            return None
        which = event.WhichOneof("payload")
        if which == "article_updated":
            changed.add(event.article_updated.article.id)
        elif which == "article_deleted":
            changed.add(event.article_deleted.article_id)
        elif which == "favorite_changed":
            changed.add(event.favorite_changed.article_id)
    return changed


def changes_of(entries: Sequence[GroupEntry]) -> list[Change]:
    """The changes of a batch; an entry that cannot be read is logged and skipped (never retried for ever)."""
    changes: list[Change] = []
    for entry_id, fields in entries:
        if fields is None:  # trimmed away while pending
            continue
        try:
            change = change_of(fields)
        except (KeyError, ValueError, DecodeError) as error:
            log.error("skipping unreadable event %s: %r", entry_id.decode(), error)
            continue
        if change is not None:
            changes.append(change)
    return changes


def entry_age_seconds(entry_id: bytes | str, now: float | None = None) -> float:
    """How long ago an entry was added (its id starts with the milliseconds of XADD)."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    added = int(text.split("-", 1)[0]) / _EPOCH_MS
    return max(0.0, (time.time() if now is None else now) - added)


class StreamLog:
    """The stream read by position, for a reindex's catch-up (EventLog)."""

    def __init__(self, redis: aioredis.Redis, stream: str, *, page: int = 500) -> None:
        self._redis = redis
        self._stream = stream
        self._page = page

    async def position(self) -> str:
        newest = cast("list[GroupEntry]", await self._redis.xrevrange(self._stream, "+", "-", count=1))
        return newest[0][0].decode() if newest else "0-0"

    async def changes_after(self, position: str) -> AsyncIterator[tuple[str, list[Change]]]:
        while True:
            entries = cast("list[GroupEntry]", await self._redis.xrange(self._stream, f"({position}", "+",
                                                                      count=self._page))
            if not entries:
                return
            position = entries[-1][0].decode()
            yield position, changes_of(entries)


class Indexer(GroupConsumer):
    """One consumer of the group; run as many as wanted (one per search process).

    `after_apply` is a fault-injection point for tests: it runs after a batch is
    written and before it is acknowledged.
    """

    activity = "indexing articles events"

    def __init__(self, redis: aioredis.Redis, stream: str, backend: SearchBackend, *, group: str = GROUP,
                 consumer: str = "", count: int = 200, block_ms: int = 1_000, claim_idle_ms: int = 30_000,
                 max_backoff_seconds: float = 5.0,
                 after_apply: Callable[[Sequence[GroupEntry]], Awaitable[None]] | None = None) -> None:
        super().__init__(redis, group=group, consumer=consumer, count=count, block_ms=block_ms,
                         claim_idle_ms=claim_idle_ms, max_backoff_seconds=max_backoff_seconds)
        self.stream = stream
        self._backend = backend
        self._after_apply = after_apply
        self.documents_indexed = 0

    async def ensure_group(self) -> None:
        """Create the group at the start of the stream (idempotent)."""
        with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
            await self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)

    async def _session(self) -> None:
        await self.ensure_group()
        await self._pending_of_mine()
        self.reading.set()
        claimed_at = 0.0
        while not self._stopped:
            if time.monotonic() - claimed_at >= self._claim_idle_ms / 1000 / 2:
                await self.claim_abandoned()
                claimed_at = time.monotonic()
            response: Any = await self._redis.xreadgroup(self.group, self.consumer, {self.stream: ">"},
                                                         count=self._count, block=self._block_ms)
            for _, raw in response or ():
                await self._handle(cast("list[GroupEntry]", raw))

    async def _pending_of_mine(self) -> None:
        """Entries delivered to this consumer name and never acknowledged (a restart under one name)."""
        while True:
            response: Any = await self._redis.xreadgroup(self.group, self.consumer, {self.stream: "0"},
                                                         count=self._count)
            entries = cast("list[GroupEntry]", response[0][1]) if response else []
            if not entries:
                return
            await self._handle(entries)

    async def claim_abandoned(self) -> int:
        """Take over entries another consumer read and left unacknowledged (it died); returns how many."""
        return await self._claim_abandoned(self.stream, self._handle)

    async def _handle(self, entries: Sequence[GroupEntry]) -> None:
        changes = latest(changes_of(entries))
        if changes:
            await self._backend.apply(changes)
        if self._after_apply is not None:
            await self._after_apply(entries)
        await self._redis.xack(self.stream, self.group, *[entry_id for entry_id, _ in entries])
        if entries:
            metrics.SEARCH_INDEX_LAG.labels("search").set(entry_age_seconds(entries[-1][0]))
        self.documents_indexed += len(changes)
        self.entries_acknowledged += len(entries)

    async def lag_seconds(self) -> float:
        """Age of the oldest event not yet indexed (pending or never delivered); 0 when caught up."""
        try:
            summary: Any = await self._redis.xpending(self.stream, self.group)
            groups: Any = await self._redis.xinfo_groups(self.stream)
        except ResponseError:  # no stream or no group yet: nothing was ever read, so all of it is behind
            oldest = cast("list[GroupEntry]", await self._redis.xrange(self.stream, "-", "+", count=1))
            return entry_age_seconds(oldest[0][0]) if oldest else 0.0
        if summary and summary.get("pending"):
            return entry_age_seconds(summary["min"])
        delivered = next((g["last-delivered-id"] for g in groups
                          if g["name"] in (self.group, self.group.encode())), b"0-0")
        delivered = delivered.decode() if isinstance(delivered, bytes) else str(delivered)
        following = cast("list[GroupEntry]", await self._redis.xrange(self.stream, f"({delivered}", "+", count=1))
        return entry_age_seconds(following[0][0]) if following else 0.0
