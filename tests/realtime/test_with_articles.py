"""End to end with the real articles service: what its API does shows up on the watches at once,
shaped exactly as its API returns it (the JSON that REST clients get)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest_asyncio
import redis.asyncio as aioredis

from conduit.articles.v1 import articles_pb2, articles_pb2_grpc
from conduit.realtime.v1 import realtime_pb2
from conduit.users.v1 import users_pb2
from conduit_server.articles.app import ArticlesApp
from conduit_server.runtime import channels, outbox
from conduit_server.runtime.db import Database
from conduit_server.runtime.server import GrpcServer
from tests.fixtures.users import INTERNAL_TOKEN, UsersServer, settings_for, unique_name
from tests.realtime.support import Realtime, config_for, rest_json, running_realtime


@pytest_asyncio.fixture(loop_scope="session")
async def articles(postgres_url: str, redis_url: str, users_server: UsersServer
                   ) -> AsyncIterator[tuple[ArticlesApp, grpc.aio.Channel]]:
    """The articles service on a schema of its own, its relay publishing to a stream of this test."""
    settings = settings_for(postgres_url, redis_url)
    users_channel = channels.internal_channel(users_server.address, INTERNAL_TOKEN)
    app = ArticlesApp(settings, Database(postgres_url, "articles_realtime"), aioredis.Redis.from_url(redis_url),
                      users_channel)
    app.relay = outbox.OutboxRelay(app.database, app.redis, f"test:realtime:articles:{uuid.uuid4().hex[:8]}")
    server = GrpcServer(app, host="127.0.0.1", port=0, verifier=users_server.app.verifier,
                        internal_token=INTERNAL_TOKEN, grace_seconds=1.0)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield app, channel
    await channel.close(None)
    await server.stop()
    await users_channel.close(None)


@pytest_asyncio.fixture(loop_scope="session")
async def realtime(articles: tuple[ArticlesApp, grpc.aio.Channel], redis_url: str,
                   users_server: UsersServer) -> AsyncIterator[Realtime]:
    app, _ = articles
    async with running_realtime(redis_url, users_server, config_for(app.relay.stream)) as running:
        yield running
    await aioredis.Redis.from_url(redis_url).delete(app.relay.stream)


async def test_article_changes_made_through_the_api_reach_the_watches_in_the_api_shape(
        articles: tuple[ArticlesApp, grpc.aio.Channel], realtime: Realtime, users_server: UsersServer) -> None:
    _, channel = articles
    article_api = articles_pb2_grpc.ArticlesServiceStub(channel)
    comment_api = articles_pb2_grpc.CommentsServiceStub(channel)
    author = unique_name("author")
    _, author_token = await users_server.register(author)
    _, reader_token = await users_server.register(unique_name("reader"))
    as_author, as_reader = users_server.auth(author_token), users_server.auth(reader_token)
    await users_server.profiles.FollowProfile(users_pb2.FollowProfileRequest(username=author), metadata=as_reader)
    everyone = realtime.watch_articles(author=author)
    reader_feed = realtime.watch_feed(metadata=as_reader)
    for watch in (everyone, reader_feed):
        await watch.joined()

    created = (await article_api.CreateArticle(articles_pb2.CreateArticleRequest(article=articles_pb2.NewArticle(
        title=f"Streams {uuid.uuid4().hex[:6]}", description="live", body="# hello", tag_list=["grpc", "sse"])),
        metadata=as_author)).article

    announced = await everyone.next(within=2)
    assert announced.type == realtime_pb2.EVENT_TYPE_ARTICLE_CREATED
    anonymous_get = (await article_api.GetArticle(articles_pb2.GetArticleRequest(slug=created.slug))).article
    assert rest_json(announced.article) == rest_json(anonymous_get)
    in_feed = await reader_feed.next(within=2)
    reader_get = (await article_api.GetArticle(articles_pb2.GetArticleRequest(slug=created.slug),
                                               metadata=as_reader)).article
    assert rest_json(in_feed.article) == rest_json(reader_get)  # author.following: true for the follower

    watch = realtime.watch_article(created.slug)
    await watch.joined()
    started = time.monotonic()
    added = (await comment_api.CreateComment(articles_pb2.CreateCommentRequest(
        slug=created.slug, comment=articles_pb2.NewComment(body="First!")), metadata=as_reader)).comment
    event = await watch.next(within=1.0)
    latency = time.monotonic() - started
    assert latency < 1.0
    assert event.type == realtime_pb2.EVENT_TYPE_COMMENT_ADDED
    # Same JSON keys as the REST response, at every level, and the same values for this viewer.
    streamed, answered = rest_json(event.comment), rest_json(added)
    contract = {field.json_name for field in articles_pb2.Comment.DESCRIPTOR.fields}
    assert streamed.keys() == answered.keys() == contract
    assert streamed["author"].keys() == answered["author"].keys() == {
        field.json_name for field in users_pb2.Profile.DESCRIPTOR.fields}
    assert streamed == answered

    await article_api.FavoriteArticle(articles_pb2.FavoriteArticleRequest(slug=created.slug), metadata=as_reader)
    favorites = await watch.next(within=1.0)
    assert favorites.type == realtime_pb2.EVENT_TYPE_FAVORITES_CHANGED
    assert (favorites.favorites.slug, favorites.favorites.favorites_count) == (created.slug, 1)

    renamed = (await article_api.UpdateArticle(articles_pb2.UpdateArticleRequest(
        slug=created.slug, article=articles_pb2.UpdateArticle(title=f"Renamed {uuid.uuid4().hex[:6]}")),
        metadata=as_author)).article
    edit = await watch.next(within=1.0)
    assert edit.type == realtime_pb2.EVENT_TYPE_ARTICLE_UPDATED
    assert rest_json(edit.article) == rest_json(
        (await article_api.GetArticle(articles_pb2.GetArticleRequest(slug=renamed.slug))).article)

    await comment_api.DeleteComment(articles_pb2.DeleteCommentRequest(slug=renamed.slug, id=added.id),
                                    metadata=as_reader)
    uncomment = await watch.next(within=1.0)
    assert (uncomment.type, uncomment.deletion.comment_id) == (realtime_pb2.EVENT_TYPE_COMMENT_DELETED, added.id)

    await article_api.DeleteArticle(articles_pb2.DeleteArticleRequest(slug=renamed.slug), metadata=as_author)
    gone = await watch.next(within=1.0)
    assert (gone.type, gone.deletion.slug) == (realtime_pb2.EVENT_TYPE_ARTICLE_DELETED, renamed.slug)
    assert await watch.message() is None  # and the stream ends cleanly
