"""Search answers of the index shared for a moment (docs/decisions/0048-search-answers-shared.md).

`SharedSearches` wraps a backend: the same query (words, filters, page, fuzzy or not) asked again
within `ttl` seconds is answered from memory, and concurrent identical queries are one backend search.
Every write through the wrapper (the indexer's batches, a reindex's swap) forgets everything kept, and
a search that started before a write is never kept after it: on one replica, a search never answers
older than the index. Another replica's writes reach this one's answers within `ttl`.

What is shared is the index's part only (hits, snippets, total, facets): who sees what — `favorited`,
`following` — is asked per caller after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from conduit_server.runtime.flight import SharedResults
from conduit_server.search.domain.documents import Change, Document
from conduit_server.search.domain.ports import IndexStats, SearchBackend
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
