"""The articles service in-process on the session's embedded PostgreSQL and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest_asyncio
from sqlalchemy import text

from conduit_server.articles.app import ArticlesApp
from conduit_server.runtime.db import Database
from conduit_server.runtime.redis import connect
from conduit_server.runtime.server import GrpcServer
from conduit_server.runtime.settings import Settings

INTERNAL_TOKEN = "articles-test-internal"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def articles_app(postgres_url: str, redis_url: str) -> AsyncIterator[ArticlesApp]:
    settings = Settings(database_url=postgres_url, redis_url=redis_url, internal_token=INTERNAL_TOKEN)
    app = ArticlesApp(settings, Database(postgres_url, "articles"), connect(redis_url))
    server = GrpcServer(app, host="127.0.0.1", port=0, verifier=None, internal_token=INTERNAL_TOKEN)
    app.port = await server.start()  # type: ignore[attr-defined]
    yield app
    await server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def articles_channel(articles_app: ArticlesApp) -> AsyncIterator[grpc.aio.Channel]:
    async with articles_app.database.transaction() as session:
        await session.execute(text(
            "TRUNCATE articles, tags, comments, favorites, outbox RESTART IDENTITY CASCADE"))
    await articles_app.redis.flushdb()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{articles_app.port}")  # type: ignore[attr-defined]
    yield channel
    await channel.close(None)
