"""The articles and users services as the search domain sees them (ArticleSource, Directory), through
their shared clients."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from conduit_server.articles.client.records import ArticleRecordsClient
from conduit_server.search.domain.ports import SnapshotBatch
from conduit_server.search.events import document_of
from conduit_server.users.client.calls import UsersClient


class ArticlesSource:
    def __init__(self, records: ArticleRecordsClient) -> None:
        self.records = records

    async def snapshot(self) -> AsyncIterator[SnapshotBatch]:
        async for batch in self.records.snapshot():
            yield SnapshotBatch([document_of(record, batch.sequence) for record in batch.articles],
                                batch.total_count)

    async def views(self, article_ids: Sequence[int], viewer_id: int) -> Mapping[int, Any]:
        return await self.records.batch_get(article_ids, viewer_id)


class UsersDirectory:
    """Usernames to ids for the `author=` filter."""

    def __init__(self, users: UsersClient, *, timeout_seconds: float) -> None:
        self._users = users
        self._timeout = timeout_seconds

    async def user_id(self, username: str) -> int | None:
        found = await self._users.resolve([username], time.monotonic() + self._timeout)
        # Matched case-insensitively: the answer's key may differ in case from the question.
        return found.get(username, next(iter(found.values()), None))
