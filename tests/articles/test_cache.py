"""The cache-aside helper against real Redis: versioned invalidation closes the stale-set race."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
import redis.asyncio as aioredis
from google.protobuf import wrappers_pb2

from conduit_server.runtime.cache import Cache, pack_messages, unpack_messages


@pytest_asyncio.fixture(loop_scope="session")
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


async def test_miss_loads_and_stores_then_hits(redis: aioredis.Redis) -> None:
    cache = Cache(redis, "test")
    loads: list[int] = []

    async def load() -> bytes:
        loads.append(1)
        return b"value"

    assert await cache.get_or_load("k", load, bytes, bytes) == b"value"
    assert await cache.get_or_load("k", load, bytes, bytes) == b"value"
    assert len(loads) == 1
    assert (cache.hits, cache.misses) == (1, 1)


async def test_none_is_not_cached(redis: aioredis.Redis) -> None:
    cache = Cache(redis, "test")
    calls: list[int] = []

    async def load() -> bytes | None:
        calls.append(1)
        return None

    assert await cache.get_or_load("absent", load, bytes, bytes) is None
    assert await cache.get_or_load("absent", load, bytes, bytes) is None
    assert len(calls) == 2


async def test_invalidate_makes_the_next_read_load_again(redis: aioredis.Redis) -> None:
    cache = Cache(redis, "test")
    value = b"old"

    async def load() -> bytes:
        return value

    assert await cache.get_or_load("k", load, bytes, bytes) == b"old"
    value = b"new"
    await cache.invalidate(["k"])
    assert await cache.get_or_load("k", load, bytes, bytes) == b"new"


async def test_a_load_that_raced_an_invalidation_cannot_store_a_stale_value(redis: aioredis.Redis) -> None:
    cache = Cache(redis, "test")
    seen = await cache.lookup("k")  # a reader misses and starts loading the old row...
    assert seen is not None
    assert seen.value is None
    await cache.invalidate(["k"])  # ...a writer commits and invalidates...
    await cache.store("k", seen.version, b"stale")  # ...and the reader stores what it loaded
    after = await cache.lookup("k")
    assert after is not None
    assert after.value is None


async def test_values_expire(redis: aioredis.Redis) -> None:
    cache = Cache(redis, "test")
    seen = await cache.lookup("ttl")
    assert seen is not None
    await cache.store("ttl", seen.version, b"v", ttl_seconds=5)
    ttl = await redis.pttl(f"test:ttl:{seen.version}")
    assert 0 < ttl <= 5000


async def test_unreachable_redis_falls_through_to_the_loader() -> None:
    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    cache = Cache(dead, "test")

    async def load() -> bytes:
        return b"from the database"

    assert await cache.get_or_load("k", load, bytes, bytes) == b"from the database"
    await cache.invalidate(["k"])  # logged, not raised
    assert cache.errors == 2  # the read and the invalidation; nothing is stored after a failed read
    await dead.aclose()


def test_packed_messages_round_trip() -> None:
    messages = [wrappers_pb2.StringValue(value=v) for v in ("a", "", "ccc")]
    header, unpacked = unpack_messages(pack_messages(messages, header=42), wrappers_pb2.StringValue)
    assert header == 42
    assert [m.value for m in unpacked] == ["a", "", "ccc"]
    assert unpack_messages(pack_messages([], header=0), wrappers_pb2.StringValue) == (0, [])
