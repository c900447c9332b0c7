"""The articles service: wiring of its parts, migrations and the outbox relay on start."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import grpc
import redis.asyncio as aioredis

from conduit.articles.v1 import articles_pb2, articles_pb2_grpc
from conduit_server.articles import api
from conduit_server.articles.domain.articles import Articles
from conduit_server.articles.domain.authors import Authors
from conduit_server.articles.domain.comments import Comments
from conduit_server.articles.domain.exports import Exports
from conduit_server.articles.domain.importer import Importer
from conduit_server.articles.domain.tags import Tags
from conduit_server.articles.domain.views import Views
from conduit_server.articles.repository import (
    ArticleRepository,
    CommentRepository,
    ImportRepository,
    TagRepository,
    models,
)
from conduit_server.articles.repository.cache import ArticleCache
from conduit_server.runtime import migrations, outbox
from conduit_server.runtime.db import Database
from conduit_server.runtime.ratelimit import RateLimiter, WriteLimit
from conduit_server.runtime.resources import Resources
from conduit_server.runtime.server import Binding
from conduit_server.runtime.settings import Settings
from conduit_server.runtime.tail import StreamFollower
from conduit_server.users.client.cache import DirectoryCache, directory_prefix
from conduit_server.users.client.calls import UsersClient
from conduit_server.users.client.profiles import ProfileCache

MIGRATIONS = Path(__file__).parent / "migrations"
EVENTS_STREAM = outbox.stream_name("articles")
USERS_SCHEMA = "users"
USERS_STREAM = outbox.stream_name(USERS_SCHEMA)


class ArticlesApp:
    """Everything the articles service runs on. It owns the database and Redis client it is given;
    the users channel belongs to the caller (it is shared with the token verifier)."""

    name = "articles"

    def __init__(self, settings: Settings, database: Database, redis: aioredis.Redis,
                 users_channel: grpc.aio.Channel) -> None:
        self.settings = settings
        self.database = database
        self.redis = redis
        self.users = UsersClient(users_channel, timeout_cap_seconds=settings.internal_call_timeout_seconds)
        self.cache = ArticleCache(redis, settings.cache)
        profiles = ProfileCache(self.users, ttl_seconds=settings.cache.profile_ttl_seconds,
                                max_entries=settings.cache.profile_entries, name="articles.author_profiles")
        self.authors = Authors(self.users, DirectoryCache(redis, prefix=directory_prefix(USERS_SCHEMA)), profiles)
        # user_updated events evict cached profiles; a gap (start, Redis lost) clears them all.
        self.users_tail = StreamFollower(redis, [USERS_STREAM], on_entries=lambda _, entries:
                                         profiles.users_changed(entries), on_gap=profiles.clear)
        articles, tags, views = ArticleRepository(), TagRepository(), Views(self.authors)
        # Keys carry the schema, so two services (or test apps) can share one Redis.
        self.limiter = RateLimiter(redis, prefix=f"conduit:{database.schema}:ratelimit")
        self.writes = WriteLimit.per_minute(self.limiter, settings.writes_per_user_per_minute)
        self.articles = Articles(database, articles, tags, cache=self.cache, users=self.users, authors=self.authors,
                                 views=views, writes=self.writes)
        self.comments = Comments(database, CommentRepository(), views, writes=self.writes)
        self.importer = Importer(database, ImportRepository(), tags, self.cache, self.users)
        self.tags = Tags(database, tags, self.cache)
        self.exports = Exports(database, articles, views)
        self.relay = outbox.OutboxRelay.from_settings(settings, database, redis, EVENTS_STREAM)

    @classmethod
    def from_resources(cls, resources: Resources) -> ArticlesApp:
        return cls(resources.settings, resources.database(models.SCHEMA), resources.redis,
                   resources.users_channel)

    def bindings(self) -> Sequence[Binding]:
        services = articles_pb2.DESCRIPTOR.services_by_name
        caller = api.CallerFactory(self.settings.internal_call_timeout_seconds)
        return [
            Binding(services["ArticlesService"], articles_pb2_grpc.add_ArticlesServiceServicer_to_server,
                    api.ArticlesApi(self.articles, self.importer, caller)),
            Binding(services["CommentsService"], articles_pb2_grpc.add_CommentsServiceServicer_to_server,
                    api.CommentsApi(self.comments, caller)),
            Binding(services["TagsService"], articles_pb2_grpc.add_TagsServiceServicer_to_server,
                    api.TagsApi(self.tags)),
            Binding(services["PingService"], articles_pb2_grpc.add_PingServiceServicer_to_server,
                    api.PingApi()),
            Binding(services["ArticleRecordsService"],
                    articles_pb2_grpc.add_ArticleRecordsServiceServicer_to_server,
                    api.ArticleRecordsApi(self.exports, caller)),
        ]

    async def start(self) -> None:
        await migrations.upgrade(self.database, MIGRATIONS, models.Base.metadata)
        self.relay.start()
        self.users_tail.start()

    async def close(self) -> None:
        await self.users_tail.stop()
        await self.relay.stop()
        await self.database.close()
        await self.redis.aclose()
