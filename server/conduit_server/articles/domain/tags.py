"""The tag list (cached)."""

from __future__ import annotations

from conduit_server.articles.repository import TagRepository
from conduit_server.articles.repository.cache import ArticleCache
from conduit_server.runtime.db import Database


class Tags:
    def __init__(self, database: Database, repository: TagRepository, cache: ArticleCache) -> None:
        self._database = database
        self._repository = repository
        self._cache = cache

    async def list(self) -> list[str]:
        """The most used tags (at most POPULAR_TAGS), most used first."""
        async def load() -> list[str]:
            async with self._database.read() as session:
                return await self._repository.names_by_use(session)

        return await self._cache.tags(load)
