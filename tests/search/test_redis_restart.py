"""The indexer survives a Redis restart: it backs off while Redis is away and resumes from its group."""

from __future__ import annotations

import uuid
from pathlib import Path

import redis.asyncio as aioredis

from conduit_server.search.domain.ports import SearchBackend
from conduit_server.search.events import Indexer
from tests.conftest import free_port
from tests.realtime.support import Change, TcpRedis, created, deleted
from tests.search.conftest import postgres_backend
from tests.search.support import until

STREAM = "conduit:events:articles"


async def publish(url: str, sequence: int, change: Change) -> None:
    """One entry exactly as the outbox relay writes it."""
    kind, event = change
    event.event_id = str(uuid.uuid4())
    client = aioredis.Redis.from_url(url)
    try:
        await client.xadd(STREAM, {"event_id": event.event_id, "type": kind,
                                   "payload": event.SerializeToString(), "seq": str(sequence)})
    finally:
        await client.aclose()


async def test_indexing_resumes_after_redis_restarts(tmp_path: Path, postgres_url: str) -> None:
    redis_server = TcpRedis(tmp_path / "redis", free_port())
    redis_server.start()
    backend = await postgres_backend(postgres_url)
    indexer = Indexer(aioredis.Redis.from_url(redis_server.url), STREAM, backend, consumer="restart", block_ms=200,
                      max_backoff_seconds=0.5)
    indexer.start()
    try:
        await publish(redis_server.url, 1, created(101, "before-restart", 7))
        await until(lambda: _has(backend, {101}))

        redis_server.stop()
        await until(lambda: _failed(indexer))
        redis_server.start()

        await publish(redis_server.url, 2, created(102, "after-restart", 7))
        await publish(redis_server.url, 3, deleted(101, "before-restart", 7))
        await until(lambda: _has(backend, {102}), seconds=20)
        assert indexer.reading.is_set()
    finally:
        await indexer.stop()
        await backend.close()
        redis_server.stop()


async def _has(backend: SearchBackend, ids: set[int]) -> bool:
    return set(await backend.documents()) == ids


async def _failed(indexer: Indexer) -> bool:
    return indexer.failures > 0



async def test_the_lag_is_the_age_of_the_oldest_event_not_indexed(tmp_path: Path, postgres_url: str) -> None:
    redis_server = TcpRedis(tmp_path / "redis", free_port())
    redis_server.start()
    backend = await postgres_backend(postgres_url)
    client = aioredis.Redis.from_url(redis_server.url)
    indexer = Indexer(client, STREAM, backend, consumer="lag", block_ms=200)
    try:
        assert await indexer.lag_seconds() == 0.0  # no stream, no group: nothing behind
        await publish(redis_server.url, 1, created(201, "waiting", 7))
        assert await indexer.lag_seconds() > 0.0  # not indexed yet (no group either)
        indexer.start()
        await until(lambda: _has(backend, {201}))
        await until(lambda: _no_lag(indexer))
        assert indexer.documents_indexed == 1
    finally:
        await indexer.stop()
        await backend.close()
        redis_server.stop()


async def _no_lag(indexer: Indexer) -> bool:
    return await indexer.lag_seconds() == 0.0
