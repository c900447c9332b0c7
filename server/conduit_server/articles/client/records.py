"""Calls to the articles service's ArticleRecordsService (internal): a consistent snapshot of every
article, and articles by id in the list shape as one viewer sees them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import grpc

from conduit.articles.v1 import articles_pb2, articles_pb2_grpc
from conduit_server.runtime.errors import Unavailable
from conduit_server.runtime.interceptors import INTERNAL_TOKEN_KEY


class ArticleRecordsClient:
    """`calls` counts BatchGetArticles calls (tests check that a search page costs exactly one)."""

    def __init__(self, channel: grpc.aio.Channel, internal_token: str, *, timeout_seconds: float) -> None:
        self._stub = articles_pb2_grpc.ArticleRecordsServiceStub(channel)
        # The internal channel's interceptor covers unary calls only; the stream carries the token itself.
        self._metadata = ((INTERNAL_TOKEN_KEY, internal_token),)
        self._timeout = timeout_seconds
        self.batch_get_calls = 0

    async def snapshot(self) -> AsyncIterator[articles_pb2.StreamArticleRecordsResponse]:
        """Every article in id order from one snapshot; each batch carries the outbox sequence it reflects."""
        async for response in self._stub.StreamArticleRecords(articles_pb2.StreamArticleRecordsRequest(),
                                                              metadata=self._metadata):
            yield response

    async def batch_get(self, article_ids: Sequence[int], viewer_id: int) -> dict[int, articles_pb2.ArticleSummary]:
        """The articles among `article_ids` (at most 100) in ONE call; unknown ids are absent."""
        self.batch_get_calls += 1
        request = articles_pb2.BatchGetArticlesRequest(article_ids=list(article_ids), viewer_id=viewer_id)
        try:
            response = await self._stub.BatchGetArticles(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as error:
            raise Unavailable(f"the articles service failed: {error.code().name}",
                              reason="ARTICLES_UNAVAILABLE") from None
        return dict(response.articles)
