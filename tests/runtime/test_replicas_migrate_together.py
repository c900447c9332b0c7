"""Replicas of a service starting at once on a fresh database all migrate it (one does the work, none
fails): `conduit run --replicas 2` hit a unique violation creating the schema before this was locked."""

from __future__ import annotations

import asyncio
import uuid

from conduit_server.articles.app import MIGRATIONS
from conduit_server.articles.repository import models
from conduit_server.runtime import migrations
from conduit_server.runtime.db import Database


async def test_eight_replicas_migrating_a_fresh_schema_at_once_all_succeed(postgres_url: str) -> None:
    schema = f"replicas_{uuid.uuid4().hex[:8]}"
    databases = [Database(postgres_url, schema, pool_size=1, max_overflow=0) for _ in range(8)]
    try:
        await asyncio.gather(*(migrations.upgrade(database, MIGRATIONS, models.Base.metadata)
                               for database in databases))
    finally:
        for database in databases:
            await database.close()
