"""GET /api/tags and GET /api/ping through gRPC against real PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC

import grpc
from sqlalchemy import text

from conduit.articles.v1 import articles_pb2, articles_pb2_grpc
from conduit_server.articles.app import ArticlesApp


async def test_no_articles_means_no_tags(articles_channel: grpc.aio.Channel) -> None:
    stub = articles_pb2_grpc.TagsServiceStub(articles_channel)
    assert list((await stub.ListTags(articles_pb2.ListTagsRequest())).tags) == []


async def test_tags_in_use_are_listed_most_used_first(articles_app: ArticlesApp,
                                                      articles_channel: grpc.aio.Channel) -> None:
    async with articles_app.database.transaction() as session:
        await session.execute(text(
            "INSERT INTO articles (slug, title, description, body, author_id) VALUES "
            "('a', 'A', 'd', 'b', 1), ('b', 'B', 'd', 'b', 1)"))
        await session.execute(text("INSERT INTO tags (name) VALUES ('python'), ('grpc'), ('unused')"))
        await session.execute(text(
            "INSERT INTO article_tags (article_id, tag_id, position) VALUES (1, 1, 0), (2, 1, 0), (2, 2, 1)"))
    stub = articles_pb2_grpc.TagsServiceStub(articles_channel)
    answer = await stub.ListTags(articles_pb2.ListTagsRequest())
    assert list(answer.tags) == ["python", "grpc"]


async def test_ping_answers_with_the_server_time_without_a_token(articles_channel: grpc.aio.Channel) -> None:
    before = time.time()
    answer = await articles_pb2_grpc.PingServiceStub(articles_channel).Ping(articles_pb2.PingRequest())
    assert before - 1 <= answer.server_time.ToDatetime(UTC).timestamp() <= time.time() + 1
