"""The articles and users services as search sees them (ArticleSource, Directory): generated stubs
over internal channels, never another service's modules."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import grpc

from conduit.articles.v1 import articles_pb2, articles_pb2_grpc
from conduit_server.runtime.errors import Unavailable
from conduit_server.runtime.interceptors import INTERNAL_TOKEN_KEY
from conduit_server.search.domain.ports import SnapshotBatch
from conduit_server.search.events import document_of
from conduit_server.users.client.calls import UsersClient


class ArticlesClient:
    """`views` in one BatchGetArticles call; `snapshot` over the StreamArticleRecords stream."""

    def __init__(self, channel: grpc.aio.Channel, internal_token: str, *, timeout_seconds: float) -> None:
        self._records = articles_pb2_grpc.ArticleRecordsServiceStub(channel)
        # The channel's interceptor adds the token to unary calls only; the stream carries it itself.
        self._metadata = ((INTERNAL_TOKEN_KEY, internal_token),)
        self._timeout = timeout_seconds
        self.batch_get_calls = 0

    async def snapshot(self) -> AsyncIterator[SnapshotBatch]:
        call = self._records.StreamArticleRecords(articles_pb2.StreamArticleRecordsRequest(),
                                                  metadata=self._metadata)
        async for response in call:
            yield SnapshotBatch([document_of(record, response.sequence) for record in response.articles],
                                response.total_count)

    async def views(self, article_ids: Sequence[int], viewer_id: int) -> Mapping[int, Any]:
        self.batch_get_calls += 1
        request = articles_pb2.BatchGetArticlesRequest(article_ids=list(article_ids), viewer_id=viewer_id)
        try:
            response = await self._records.BatchGetArticles(request, timeout=self._timeout,
                                                            metadata=self._metadata)
        except grpc.aio.AioRpcError as error:
            raise Unavailable(f"the articles service failed: {error.code().name}",
                              reason="ARTICLES_UNAVAILABLE") from None
        return dict(response.articles)


class UsersDirectory:
    """Usernames to ids for the `author=` filter, through the users service's shared client."""

    def __init__(self, users: UsersClient, *, timeout_seconds: float) -> None:
        self._users = users
        self._timeout = timeout_seconds

    async def user_id(self, username: str) -> int | None:
        found = await self._users.resolve([username], time.monotonic() + self._timeout)
        # Matched case-insensitively: the answer's key may differ in case from the question.
        return found.get(username, next(iter(found.values()), None))
