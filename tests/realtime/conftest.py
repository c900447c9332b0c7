"""The realtime service in-process on the session's Redis, with the real users service behind it and
article events written as outbox rows of a real articles schema, relayed by the real OutboxRelay."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest_asyncio

from conduit_server.articles.app import MIGRATIONS
from conduit_server.articles.repository import models
from conduit_server.runtime import migrations
from conduit_server.runtime.db import Database
from conduit_server.runtime.redis import connect
from tests.fixtures.users import UsersServer
from tests.realtime.support import Events, Realtime, config_for, relaying, running_realtime

EVENTS_SCHEMA = "realtime_events"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def events_database(postgres_url: str) -> AsyncIterator[Database]:
    """An articles schema of the realtime tests' own: its outbox is where their events start."""
    database = Database(postgres_url, EVENTS_SCHEMA)
    await migrations.upgrade(database, MIGRATIONS, models.Base.metadata)
    yield database
    await database.close()


@pytest_asyncio.fixture(loop_scope="session")
async def events(events_database: Database, redis_url: str) -> AsyncIterator[Events]:
    """A fresh stream per test, fed by the real relay."""
    redis = connect(redis_url)
    stream = f"test:realtime:{uuid.uuid4().hex[:12]}"
    async with relaying(events_database, redis, stream) as running:
        yield running
    await redis.delete(stream)
    await redis.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def realtime(events: Events, redis_url: str, users_server: UsersServer) -> AsyncIterator[Realtime]:
    async with running_realtime(redis_url, users_server, config_for(events.stream)) as running:
        yield running
