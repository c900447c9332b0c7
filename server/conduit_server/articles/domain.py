"""The rules of articles, comments, favorites and tags. No protobuf here."""

from __future__ import annotations

from conduit_server.articles.repository import TagRepository
from conduit_server.runtime.db import Database


class Tags:
    def __init__(self, database: Database, repository: TagRepository) -> None:
        self._database = database
        self._repository = repository

    async def list(self) -> list[str]:
        async with self._database.read() as session:
            return await self._repository.names_by_use(session)
