"""One open stream: what it selects, its bounded queue, and the position it can resume from.

The hub offers every event to the watchers it may concern, synchronously and without
ever waiting: a watcher whose queue is full is ended (RESOURCE_EXHAUSTED with the id of
the last event handed to its stream), never silently skipped. The stream's generator
takes from the queue at the client's pace.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Callable, Set
from typing import Protocol

from conduit_server.realtime.domain.enrich import ARTICLE_CREATED, Prepared
from conduit_server.realtime.domain.ids import StreamId
from conduit_server.runtime.errors import ConduitError


class Selector(Protocol):
    """Decides whether an event concerns a stream, and in which personalised form."""

    def select(self, event: Prepared) -> bytes | None: ...


class FeedSelector:
    """WatchFeed: new articles by the authors the caller follows (`following` is then true)."""

    def __init__(self, followees: Set[int]) -> None:
        self._followees = followees

    def select(self, event: Prepared) -> bytes | None:
        if event.kind != ARTICLE_CREATED or event.author_id not in self._followees:
            return None
        return event.payload(True)


class ArticlesSelector:
    """WatchArticles: new articles, optionally only with a tag or by a username."""

    def __init__(self, tag: str, author: str, followees: Set[int] | None) -> None:
        self._tag = tag
        self._author = author
        self._followees = followees

    def select(self, event: Prepared) -> bytes | None:
        if event.kind != ARTICLE_CREATED:
            return None
        if (self._tag and self._tag not in event.tags) or (self._author and event.username != self._author):
            return None
        return event.payload(self._followees is not None and event.author_id in self._followees)


class ArticleSelector:
    """WatchArticle: one article's edits, deletion, comments and favorite count, across renames.

    The article is found by slug until its first event reveals its id; from then on the id
    decides, and `slug` follows `ArticleUpdated.previous_slug` → new slug.
    """

    def __init__(self, slug: str, followees: Set[int] | None) -> None:
        self.slug = slug
        self.article_id = 0
        self._followees = followees

    def select(self, event: Prepared) -> bytes | None:
        if event.kind == ARTICLE_CREATED:
            return None
        if self.article_id:
            if event.article_id != self.article_id:
                return None
        elif self.slug not in (event.slug, event.previous_slug):
            return None
        self.article_id = event.article_id
        self.slug = event.slug
        followees = self._followees
        return event.payload(followees is not None and event.author_id in followees)


class Offer(enum.Enum):
    SKIPPED = "skipped"
    QUEUED = "queued"
    FINAL = "final"  # queued, and the stream ends after it (the article was deleted)
    OVERFLOW = "overflow"


# A message ready to send: its id, its bytes, whether the stream ends after it.
Item = tuple[StreamId, bytes, bool]


class Watcher:
    """The server side of one stream."""

    def __init__(self, method: str, selector: Selector, *, max_queued: int,
                 resume_after: StreamId | None = None, client: str = "") -> None:
        self.method = method
        self.client = client  # whom the per-client cap counts it for (auth.client_key)
        self.selector = selector
        self.max_queued = max_queued
        # Id of the last event handed to the stream (set before the hand-over: it is on its way).
        self.last_sent = resume_after
        # The hub's position when it last offered events: nothing up to it is still unseen.
        self.seen: StreamId | None = None
        self.live = False
        self.done = False  # FINAL queued or closed: the hub offers nothing more
        # The queue: ids and bytes of the queued messages, in two deques of objects every stream shares
        # (no per-stream allocation per event: queued tuples outliving young GC generations would
        # have the collector scan the whole heap every few seconds under load).
        self._ids: deque[StreamId] = deque()
        self._payloads: deque[bytes] = deque()
        self._final: StreamId | None = None  # the queued event the stream ends after
        # Resolved by offer/close while the stream waits (one future and one timer per idle wait:
        # this is the hot path of every delivery, so no wait_for task).
        self._waiter: asyncio.Future[None] | None = None
        self._error: ConduitError | None = None

    @property
    def queued(self) -> int:
        return len(self._payloads)

    def offer(self, event: Prepared) -> Offer:
        """Queue `event` if it concerns this stream; never waits."""
        if self.done or (self.last_sent is not None and event.id <= self.last_sent):
            return Offer.SKIPPED
        payload = self.selector.select(event)
        if payload is None:
            return Offer.SKIPPED
        if len(self._payloads) >= self.max_queued:
            return Offer.OVERFLOW
        self._ids.append(event.id)
        self._payloads.append(payload)
        self._wake()
        if event.final:
            self._final = event.id
            self.done = True
            return Offer.FINAL
        return Offer.QUEUED

    def position(self) -> StreamId | None:
        """Where a client resuming now would continue without gap or duplicate."""
        if self.live and not self._payloads and self.seen is not None and (
                self.last_sent is None or self.seen > self.last_sent):
            return self.seen
        return self.last_sent

    def close(self, error: Callable[[StreamId | None], ConduitError]) -> None:
        """End the stream with `error(position)`; queued events are dropped (they stay in Redis)."""
        if self._error is not None:
            return
        self._error = error(self.position())
        self.done = True
        self._ids.clear()
        self._payloads.clear()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None:
            _resolve(self._waiter)

    def raise_if_closed(self) -> None:
        if self._error is not None:
            raise self._error

    async def wait(self, idle_seconds: float) -> bool:
        """True once a message is queued; False after `idle_seconds` of silence; raises once closed."""
        if self._error is None and not self._payloads:
            loop = asyncio.get_running_loop()
            self._waiter = waiter = loop.create_future()
            timer = loop.call_later(idle_seconds, _resolve, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        if self._error is not None:
            raise self._error
        return bool(self._payloads)

    def take(self, limit: int) -> tuple[list[bytes], StreamId, bool]:
        """The first 1 to `limit` queued messages (after `wait` said there is one): their bytes, the
        last one's id, whether the stream ends after it."""
        ids, payloads = self._ids, self._payloads
        count = min(limit, len(payloads))
        taken = [payloads.popleft() for _ in range(count)]
        for _ in range(count - 1):
            ids.popleft()
        last = ids.popleft()
        return taken, last, last == self._final


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
