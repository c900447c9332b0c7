"""The search service in-process against the real articles and users services, on every backend.

`backend` is parametrized: PostgreSQL always; Elasticsearch whenever a node can
start here (one genuine 7.10.2 node per session, from `make search-node`'s
Maven cache). On CI a node that cannot start is an error, not a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from sqlalchemy import text

from conduit.search.v1 import search_pb2, search_pb2_grpc
from conduit_server.process import build_verifier
from conduit_server.runtime import channels, migrations
from conduit_server.runtime.db import Database
from conduit_server.runtime.resources import Resources
from conduit_server.runtime.server import GrpcServer
from conduit_server.search.app import MIGRATIONS, SCHEMA, SearchApp
from conduit_server.search.domain.ports import SearchBackend
from conduit_server.search.repository import models
from conduit_server.search.repository.postgres import SEARCH_WINDOW, PostgresBackend
from search_node.node import NodeUnavailable, SearchNode
from tests.articles.conftest import Mesh, articles_app, articles_channel, mesh  # noqa: F401 - fixtures
from tests.fixtures.users import INTERNAL_TOKEN, UsersServer, settings_for

BACKENDS = ["postgresql", "elasticsearch"]


@pytest.fixture(scope="session")
def elasticsearch_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    node = SearchNode(tmp_path_factory.mktemp("search-node"))
    try:
        url = node.start()
    except NodeUnavailable as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Elasticsearch node here: {error}")
    yield url
    node.stop()


async def postgres_backend(postgres_url: str, *, window: int = SEARCH_WINDOW, **options: Any) -> PostgresBackend:
    """The PostgreSQL backend on an empty `search` schema (made first, as the app does: it sets up
    every connection its engine opens)."""
    backend = PostgresBackend(Database(postgres_url, SCHEMA), window=window, **options)
    await migrations.upgrade(backend.database, MIGRATIONS, models.Base.metadata)
    async with backend.database.transaction() as session:
        await session.execute(text("TRUNCATE documents, words"))
        await session.execute(text("UPDATE state SET live_generation = 1"))
    return backend


async def make_backend(kind: str, request: pytest.FixtureRequest) -> SearchBackend:
    if kind == "postgresql":
        return await postgres_backend(request.getfixturevalue("postgres_url"))
    from conduit_server.search.repository.elastic import ElasticBackend

    backend = ElasticBackend(request.getfixturevalue("elasticsearch_url"), alias=f"test-{uuid.uuid4().hex[:12]}")
    await backend.prepare()
    return backend


async def drop(backend: SearchBackend, request: pytest.FixtureRequest) -> None:
    """Remove a test's Elasticsearch indices (with a client of its own: the app closed the backend's)."""
    from conduit_server.search.repository.elastic import ElasticBackend

    await backend.close()
    if isinstance(backend, ElasticBackend):
        cleaner = ElasticBackend(request.getfixturevalue("elasticsearch_url"), alias=backend.alias)
        await cleaner.client.indices.delete(index=f"{backend.alias}-*", ignore=404)
        await cleaner.client.indices.delete_template(name=backend.alias, ignore=404)
        await cleaner.close()


@pytest_asyncio.fixture(loop_scope="session", params=BACKENDS)
async def backend(request: pytest.FixtureRequest, mesh: Mesh) -> AsyncIterator[SearchBackend]:  # noqa: F811
    """An empty index on each backend (after `mesh` emptied the articles and their stream)."""
    made = await make_backend(request.param, request)
    yield made
    await drop(made, request)


@dataclass
class Search:
    """The search service as a client sees it, beside the articles mesh that feeds it."""

    app: SearchApp
    mesh: Mesh
    channel: grpc.aio.Channel
    stub: search_pb2_grpc.SearchServiceAsyncStub = field(init=False)

    def __post_init__(self) -> None:
        self.stub = search_pb2_grpc.SearchServiceStub(self.channel)

    async def find(self, query: str, *, metadata: Any = (), **filters: Any) -> search_pb2.SearchArticlesResponse:
        response: search_pb2.SearchArticlesResponse = await self.stub.SearchArticles(
            search_pb2.SearchArticlesRequest(query=query, **filters), metadata=metadata)
        return response

    async def slugs(self, query: str, **filters: Any) -> list[str]:
        await self.app.backend.refresh()
        return [hit.slug for hit in (await self.find(query, **filters)).hits]


@pytest_asyncio.fixture(loop_scope="session")
async def search(backend: SearchBackend, mesh: Mesh, redis_url: str, postgres_url: str,  # noqa: F811
                 users_server: UsersServer) -> AsyncIterator[Search]:
    """SearchApp served over gRPC the way serve.py serves it, indexing the articles stream."""
    settings = settings_for(postgres_url, redis_url, internal_call_timeout_seconds=5.0,
                            search_claim_idle_seconds=0.5)
    users_channel = channels.internal_channel(users_server.address, INTERNAL_TOKEN)
    to_articles = channels.internal_channel(f"127.0.0.1:{mesh.app.port}",  # type: ignore[attr-defined]
                                            INTERNAL_TOKEN)
    redis = aioredis.Redis.from_url(redis_url)
    verifier = build_verifier(settings, Resources(settings, postgres_url, redis, users_channel))
    app = SearchApp(settings, backend, redis, users_channel, to_articles,
                    consumer=f"test-{uuid.uuid4().hex[:8]}")
    server = GrpcServer(app, host="127.0.0.1", port=0, verifier=verifier, internal_token=INTERNAL_TOKEN,
                        grace_seconds=1.0)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield Search(app, mesh, channel)
    await channel.close(None)
    await server.stop()
    await users_channel.close(None)
