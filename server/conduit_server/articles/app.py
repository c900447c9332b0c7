"""The articles service: wiring of its parts, migrations on start."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import redis.asyncio as aioredis

from conduit.articles.v1 import articles_pb2, articles_pb2_grpc
from conduit_server.articles import api, domain, models, repository
from conduit_server.runtime import migrations
from conduit_server.runtime.db import Database
from conduit_server.runtime.resources import Resources
from conduit_server.runtime.server import Binding
from conduit_server.runtime.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


class ArticlesApp:
    name = "articles"

    def __init__(self, settings: Settings, database: Database, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.database = database
        self.redis = redis
        self.tags = domain.Tags(database, repository.TagRepository())

    @classmethod
    def from_resources(cls, resources: Resources) -> ArticlesApp:
        return cls(resources.settings, resources.database(models.SCHEMA), resources.redis)

    def bindings(self) -> Sequence[Binding]:
        services = articles_pb2.DESCRIPTOR.services_by_name
        return [
            Binding(services["ArticlesService"], articles_pb2_grpc.add_ArticlesServiceServicer_to_server,
                    api.ArticlesApi()),  # type: ignore[abstract]  # built by the Articles issue
            Binding(services["CommentsService"], articles_pb2_grpc.add_CommentsServiceServicer_to_server,
                    api.CommentsApi()),  # type: ignore[abstract]  # built by the Articles issue
            Binding(services["TagsService"], articles_pb2_grpc.add_TagsServiceServicer_to_server,
                    api.TagsApi(self.tags)),
        ]

    async def start(self) -> None:
        await migrations.upgrade(self.database, MIGRATIONS, models.Base.metadata)

    async def close(self) -> None:
        await self.database.close()
        await self.redis.aclose()
