"""gRPC servicers of conduit.articles.v1: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

from typing import Any

from conduit.articles.v1 import articles_pb2, articles_pb2_grpc
from conduit_server.articles.domain import Tags


class TagsApi(articles_pb2_grpc.TagsServiceServicer):
    def __init__(self, tags: Tags) -> None:
        self._tags = tags

    async def ListTags(self, request: articles_pb2.ListTagsRequest, context: Any
                       ) -> articles_pb2.ListTagsResponse:
        return articles_pb2.ListTagsResponse(tags=await self._tags.list())


class ArticlesApi(articles_pb2_grpc.ArticlesServiceServicer):
    """Filled in by the Articles issue; unimplemented methods answer UNIMPLEMENTED."""


class CommentsApi(articles_pb2_grpc.CommentsServiceServicer):
    """Filled in by the Articles issue; unimplemented methods answer UNIMPLEMENTED."""
