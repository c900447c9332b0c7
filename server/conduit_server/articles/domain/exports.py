"""Reads for other services of the mesh: a consistent snapshot of every article, and pages by id."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from conduit_server.articles.domain.records import ArticleView, Caller, StoredArticle
from conduit_server.articles.domain.views import Views
from conduit_server.articles.repository import ArticleRepository
from conduit_server.runtime.db import Database

SNAPSHOT_BATCH = 500
MAX_BATCH_GET = 100


@dataclass(frozen=True)
class SnapshotBatch:
    """The next articles of a snapshot; `position` is the outbox id the whole snapshot reflects."""

    articles: list[StoredArticle]
    position: int
    total: int


class Exports:
    def __init__(self, database: Database, articles: ArticleRepository, views: Views) -> None:
        self._database = database
        self._articles = articles
        self._views = views

    async def snapshot(self, batch_size: int = 0) -> AsyncIterator[SnapshotBatch]:
        """Every article in id order from ONE snapshot, with the outbox position it reflects.

        Always yields at least one batch (possibly empty), so the reader learns the position.
        """
        batch_size = batch_size or SNAPSHOT_BATCH
        async with self._database.read() as session:
            position = await self._articles.settled_outbox_position(session)
        async with self._database.snapshot() as session:
            total = await self._articles.count(session)
            after, first = 0, True
            while True:
                batch = await self._articles.after(session, after, batch_size)
                if batch or first:
                    yield SnapshotBatch(batch, position, total)
                first = False
                if len(batch) < batch_size:
                    return
                after = batch[-1].id

    async def batch_get(self, caller: Caller, article_ids: Sequence[int]) -> dict[int, ArticleView]:
        """The articles among `article_ids` as the caller sees them: one statement, one users call."""
        ids = list(dict.fromkeys(article_ids))[:MAX_BATCH_GET]
        async with self._database.read() as session:
            found = await self._articles.by_ids(session, ids)
            favorited = await self._articles.favorited_ids(session, caller.viewer_id, [a.id for a in found])
        views = await self._views.articles(found, caller, favorited)
        return {view.article.id: view for view in views}
