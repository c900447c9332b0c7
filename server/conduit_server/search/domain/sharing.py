"""Search answers of the index shared for a moment (docs/decisions/0048-search-answers-shared.md).

`SharedSearches` wraps a backend: the same query (words, filters, page, fuzzy or not) asked again
within `ttl` seconds is answered from memory, and concurrent identical queries are one backend search.
Every write through the wrapper (the indexer's batches, a reindex's swap) forgets everything kept, and
a search that started before a write is never kept after it: on one replica, a search never answers
older than the index. Another replica's writes reach this one's answers within `ttl`.

What is shared is the index's part (hits, snippets, total, facets). Who sees what — `favorited`,
`following` — is asked per caller after it; `SharedViews` keeps only what every anonymous caller
sees alike (each article in the list shape, favorited and following false) until an event says it
changed. Its misses are asked together, one articles call at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from conduit_server.runtime.expiring import ExpiringCache
from conduit_server.runtime.flight import SharedResults
from conduit_server.search.domain.documents import Change, Document
from conduit_server.search.domain.ports import ArticleSource, IndexStats, SearchBackend, SnapshotBatch
from conduit_server.search.domain.query import BackendPage, SearchQuery


class SharedSearches:
    """A `SearchBackend` that shares the answers of the one it wraps."""

    def __init__(self, backend: SearchBackend, *, ttl: float, entries: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.backend = backend
        self.name = backend.name
        self.answers: SharedResults[tuple[SearchQuery, bool], BackendPage] = SharedResults(ttl, entries, clock=clock)

    async def search(self, query: SearchQuery, *, fuzzy: bool) -> BackendPage:
        page, _ = await self.answers.get((query, fuzzy), lambda: self.backend.search(query, fuzzy=fuzzy))
        return page

    async def apply(self, changes: Sequence[Change], target: str | None = None) -> int:
        try:
            return await self.backend.apply(changes, target)
        finally:
            if target is None:  # a rebuild's writes are not searched until its swap
                self.answers.forget()

    async def swap(self, target: str) -> None:
        try:
            await self.backend.swap(target)
        finally:
            self.answers.forget()

    async def refresh(self) -> None:
        try:
            await self.backend.refresh()
        finally:
            self.answers.forget()

    async def prepare(self) -> None:
        await self.backend.prepare()

    async def begin_rebuild(self) -> str:
        return await self.backend.begin_rebuild()

    async def discard(self, target: str) -> None:
        await self.backend.discard(target)

    async def documents(self) -> dict[int, Document]:
        return await self.backend.documents()

    async def stats(self) -> IndexStats:
        return await self.backend.stats()

    async def close(self) -> None:
        await self.backend.close()


AUTHOR_GRACE_SECONDS = 1.0


class SharedViews:
    """An `ArticleSource` for which anonymous callers (viewer 0) share views, per article.

    An anonymous view is kept until an event says its article or an author changed (`evict`, `clear`:
    the search process follows the articles and users streams), for `ttl` seconds at most, at most
    `entries` of them (least recently used dropped first). A load refuses the views evicted while it
    ran (runtime/expiring.py). The misses of concurrent anonymous callers are asked together: while
    one articles call is running, the ids asked meanwhile wait and go in the next one (at most
    `batch` ids per call), so under load many searches cost one call and when idle a search waits
    for nobody. Signed-in callers always ask, each with their own call.
    """

    def __init__(self, articles: ArticleSource, *, ttl: float, entries: int, batch: int = 100,
                 clock: Callable[[], float] = time.monotonic, name: str = "") -> None:
        self.articles = articles
        self.batch = batch
        self.clock = clock
        self.kept: ExpiringCache[Any] = ExpiringCache(ttl_seconds=ttl, max_entries=entries, clock=clock, name=name)
        self._keep_after = 0.0
        self._queued: dict[int, asyncio.Future[Any]] = {}  # asked, waiting for the next call
        self._asked: dict[int, asyncio.Future[Any]] = {}  # in the running call
        self._caller: asyncio.Task[None] | None = None

    def evict(self, article_id: int) -> None:
        """The article changed (edited, deleted, favorited or not)."""
        self.kept.evict(article_id)

    def clear(self) -> None:
        """Events may have been missed: nothing kept is trusted."""
        self.kept.clear()

    def author_changed(self) -> None:
        """A profile changed: it is in the views of all its author's articles. The articles service
        evicts its own copy when it reads the same event, possibly after this process did: views
        loaded in the next AUTHOR_GRACE_SECONDS go to their callers but are not kept."""
        self.kept.clear()
        self._keep_after = self.clock() + AUTHOR_GRACE_SECONDS

    async def views(self, article_ids: Sequence[int], viewer_id: int) -> Mapping[int, Any]:
        if viewer_id:
            return await self.articles.views(article_ids, viewer_id)
        found, missing = self.kept.get_many(dict.fromkeys(article_ids))
        if missing:
            waiting = {article_id: self._future(article_id) for article_id in missing}
            if self._caller is None:
                self._caller = asyncio.ensure_future(self._call_while_queued())
            # Waited for, never cancelled: a caller that goes away leaves them to the others.
            await asyncio.wait(waiting.values())
            for article_id, future in waiting.items():
                view = future.result()  # the call's error, if it failed
                if view is not None:
                    found[article_id] = view
        return found

    def _future(self, article_id: int) -> asyncio.Future[Any]:
        future = self._asked.get(article_id) or self._queued.get(article_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            # Retrieved here too: a failure whose every waiter went away logs no "never retrieved".
            future.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._queued[article_id] = future
        return future

    async def _call_while_queued(self) -> None:
        try:
            while self._queued:
                ids = list(self._queued)[:self.batch]
                self._asked = {article_id: self._queued.pop(article_id) for article_id in ids}
                with self.kept.loading(ids) as load:
                    try:
                        views = await self.articles.views(ids, 0)
                    except Exception as error:  # noqa: BLE001 - each waiter of this call gets it; the queue goes on
                        for future in self._asked.values():
                            future.set_exception(error)
                        continue
                    if self.clock() >= self._keep_after:
                        load.keep(views)  # an unknown id is not kept: asked again next time
                for article_id, future in self._asked.items():
                    future.set_result(views.get(article_id))
        finally:
            self._caller = None
            for future in (*self._asked.values(), *self._queued.values()):
                if not future.done():  # cancelled (the process stopping): nobody will answer these
                    future.cancel()
            self._asked, self._queued = {}, {}

    def snapshot(self) -> AsyncIterator[SnapshotBatch]:
        return self.articles.snapshot()


__all__ = ["SharedSearches", "SharedViews"]
