"""Search answers of the index shared for a moment (docs/decisions/0048-search-answers-shared.md).

`SharedSearches` wraps a backend: the same query (words, filters, page, fuzzy or not) asked again
within `ttl` seconds is answered from memory, and concurrent identical queries are one backend search.
Every write through the wrapper (the indexer's batches, a reindex's swap) forgets everything kept, and
a search that started before a write is never kept after it: on one replica, a search never answers
older than the index. Another replica's writes reach this one's answers within `ttl`.

What is shared is the index's part (hits, snippets, total, facets). Who sees what — `favorited`,
`following` — is asked per caller after it; `SharedViews` shares only what every anonymous caller
sees alike (the articles in the list shape, favorited and following false), for the same `ttl`: an
anonymous reader may see counts that old, as REST's public answers may be cached for longer.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

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


__all__ = ["SharedSearches"]


class SharedViews:
    """An `ArticleSource` whose views for anonymous callers (viewer 0) are shared for `ttl` seconds: the same
    hits asked again, or by concurrent callers, are one articles call. Signed-in callers always ask."""

    def __init__(self, articles: ArticleSource, *, ttl: float, entries: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.articles = articles
        self.anonymous: SharedResults[tuple[int, ...], Mapping[int, Any]] = SharedResults(ttl, entries, clock=clock)

    async def views(self, article_ids: Sequence[int], viewer_id: int) -> Mapping[int, Any]:
        if viewer_id:
            return await self.articles.views(article_ids, viewer_id)
        ids = tuple(article_ids)
        found, _ = await self.anonymous.get(ids, lambda: self.articles.views(ids, 0))
        return found

    def snapshot(self) -> AsyncIterator[SnapshotBatch]:
        return self.articles.snapshot()
