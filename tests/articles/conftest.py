"""The articles service in-process on the session's embedded PostgreSQL and Redis, talking to the
real users service (tests.fixtures.users) for tokens, profiles, usernames and follows."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import cast

import grpc
import pytest_asyncio
import redis.asyncio as aioredis
from sqlalchemy import text

from conduit.articles.v1 import articles_pb2, articles_pb2_grpc
from conduit.users.v1 import users_pb2, users_pb2_grpc
from conduit_server.articles.app import EVENTS_STREAM, ArticlesApp
from conduit_server.articles.repository.cache import NAMESPACE
from conduit_server.process import build_verifier
from conduit_server.runtime import channels
from conduit_server.runtime.db import Database
from conduit_server.runtime.idempotency import IdempotencyStore
from conduit_server.runtime.resources import Resources
from conduit_server.runtime.server import GrpcServer
from conduit_server.users.client.cache import directory_prefix
from tests.fixtures.users import INTERNAL_TOKEN, UsersServer, settings_for, unique_name

Metadata = tuple[tuple[str, str], ...]
StreamEntry = tuple[bytes, dict[bytes, bytes]]


async def stream_entries(redis: aioredis.Redis, stream: str) -> list[StreamEntry]:
    """Every entry of a Redis Stream, typed as the byte-level client returns them."""
    return cast("list[StreamEntry]", await redis.xrange(stream))


@dataclass
class Person:
    """A registered user of the users service, as tests use them."""

    username: str
    user_id: int
    token: str

    @property
    def auth(self) -> Metadata:
        return (("authorization", f"Token {self.token}"),)


@dataclass
class Mesh:
    """The articles service (and the users service behind it) as a client sees them."""

    app: ArticlesApp
    users: UsersServer
    channel: grpc.aio.Channel
    articles: articles_pb2_grpc.ArticlesServiceAsyncStub = field(init=False)
    comments: articles_pb2_grpc.CommentsServiceAsyncStub = field(init=False)
    tags: articles_pb2_grpc.TagsServiceAsyncStub = field(init=False)
    profiles: users_pb2_grpc.ProfilesServiceAsyncStub = field(init=False)
    auth_service: users_pb2_grpc.AuthServiceAsyncStub = field(init=False)

    def __post_init__(self) -> None:
        self.articles = articles_pb2_grpc.ArticlesServiceStub(self.channel)
        self.comments = articles_pb2_grpc.CommentsServiceStub(self.channel)
        self.tags = articles_pb2_grpc.TagsServiceStub(self.channel)
        self.profiles = users_pb2_grpc.ProfilesServiceStub(self.users.channel)
        self.auth_service = users_pb2_grpc.AuthServiceStub(self.users.channel)

    async def person(self, prefix: str = "user") -> Person:
        username = unique_name(prefix)
        user_id, token = await self.users.register(username)
        return Person(username, user_id, token)

    async def moderator(self, role: str = "moderator") -> Person:
        person = await self.person(role)
        await self.users.app.roles.grant(person.username, role)
        _, token = await self.users.register(person.username)  # logs in again: the new token has the role
        return Person(person.username, person.user_id, token)

    async def service_token(self, scopes: Sequence[str]) -> str:
        account, secret = await self.users.app.service_accounts.create(unique_name("svc"), list(scopes))
        response = await self.auth_service.CreateOAuthToken(users_pb2.CreateOAuthTokenRequest(
            grant_type="client_credentials", client_id=account.client_id, client_secret=secret,
            scope=" ".join(scopes)))
        return response.access_token

    async def forget_authors(self) -> None:
        """Cold author caches: this process's profiles and the users directory in Redis."""
        self.app.authors.profiles.clear()
        keys = [key async for key in self.app.redis.scan_iter(match=f"{directory_prefix()}:*")]
        if keys:
            await self.app.redis.delete(*keys)

    async def follow(self, follower: Person, followee: Person) -> None:
        await self.profiles.FollowProfile(users_pb2.FollowProfileRequest(username=followee.username),
                                                metadata=follower.auth)

    async def create(self, author: Person, title: str = "How to train your dragon", *,
                     description: str = "Ever wonder how?", body: str = "You have to believe.",
                     tags: Sequence[str] = ()) -> articles_pb2.Article:
        response = await self.articles.CreateArticle(articles_pb2.CreateArticleRequest(
            article=articles_pb2.NewArticle(title=title, description=description, body=body, tag_list=tags)),
            metadata=author.auth)
        return response.article


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def articles_app(postgres_url: str, redis_url: str, users_server: UsersServer
                       ) -> AsyncIterator[ArticlesApp]:
    """Built the way process.py builds it: resources' users channel, a verifier fed by the users JWKS
    and checking the users service's revocations."""
    settings = settings_for(postgres_url, redis_url, internal_call_timeout_seconds=5.0)
    users_channel = channels.internal_channel(users_server.address, INTERNAL_TOKEN)
    redis = aioredis.Redis.from_url(redis_url)
    verifier = build_verifier(settings, Resources(settings, postgres_url, redis, users_channel))
    app = ArticlesApp(settings, Database(postgres_url, "articles"), redis, users_channel)
    server = GrpcServer(app, host="127.0.0.1", port=0, verifier=verifier, internal_token=INTERNAL_TOKEN,
                        grace_seconds=1.0,
                        idempotency=IdempotencyStore(redis, window_seconds=settings.idempotency_window_seconds,
                                                     pending_seconds=settings.idempotency_pending_seconds))
    app.port = await server.start()  # type: ignore[attr-defined]
    yield app
    await server.stop()
    await users_channel.close(None)


async def reset(app: ArticlesApp) -> None:
    """Empty the articles tables, the cache and the events stream (the users service is left alone)."""
    async with app.database.transaction() as session:
        await session.execute(text("TRUNCATE articles, tags, comments, favorites RESTART IDENTITY CASCADE"))
        # Outbox ids keep counting: a relay batch in flight across the reset cannot mark a new row.
        await session.execute(text("TRUNCATE outbox"))
    keys = [key async for key in app.redis.scan_iter(match=f"{NAMESPACE}:*")]
    if keys:
        await app.redis.delete(*keys)
    await app.redis.delete(EVENTS_STREAM)


@pytest_asyncio.fixture(loop_scope="session")
async def articles_channel(articles_app: ArticlesApp) -> AsyncIterator[grpc.aio.Channel]:
    await reset(articles_app)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{articles_app.port}")  # type: ignore[attr-defined]
    yield channel
    await channel.close(None)


@pytest_asyncio.fixture(loop_scope="session")
async def mesh(articles_app: ArticlesApp, articles_channel: grpc.aio.Channel,
               users_server: UsersServer) -> Mesh:
    return Mesh(articles_app, users_server, articles_channel)
