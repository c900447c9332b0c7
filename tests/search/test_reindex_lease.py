"""The reindex lock is a short lease renewed while the reindex runs (docs/decisions/0023): a crashed
reindex's lease expires so a new one can start, a running one keeps it however long it takes, a
holder that loses it is stopped, and nobody releases a lease that is not theirs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from conduit_server.runtime.errors import FailedPrecondition
from conduit_server.search.app import REINDEX_LOCK
from conduit_server.search.domain.reindex import Progress
from conduit_server.search.repository.lease import Lease, LeaseLost
from tests.search.conftest import Search
from tests.search.support import until

TTL = 0.3
BUSY = FailedPrecondition("busy", reason="BUSY")


@pytest_asyncio.fixture(loop_scope="session")
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_a_crashed_holders_lease_expires_and_the_next_one_takes_it(redis: aioredis.Redis) -> None:
    crashed = Lease(redis, "test:lease:crash", ttl_seconds=TTL)
    assert await crashed.acquire()  # then the process dies: no heartbeat, no release
    following = Lease(redis, "test:lease:crash", ttl_seconds=TTL)
    assert not await following.acquire()
    await until(following.acquire, seconds=5)
    assert not await crashed.renew()  # the dead holder's token no longer owns it
    await following.release()


async def test_a_running_holder_keeps_its_lease_well_past_its_ttl(redis: aioredis.Redis) -> None:
    holder = Lease(redis, "test:lease:long", ttl_seconds=TTL)
    other = Lease(redis, "test:lease:long", ttl_seconds=TTL)
    async with holder.held(BUSY):
        await until(lambda: _renewed(holder, 6), seconds=10)  # two TTLs' worth of heartbeats
        assert not await other.acquire()
        with pytest.raises(FailedPrecondition):
            async with other.held(BUSY):
                pass
    assert await other.acquire()  # released on the way out
    await other.release()


async def _renewed(lease: Lease, times: int) -> bool:
    return lease.renewals >= times


async def test_a_holder_that_loses_its_lease_is_stopped(redis: aioredis.Redis) -> None:
    holder = Lease(redis, "test:lease:lost", ttl_seconds=TTL)

    async def work_without_end() -> None:
        async with asyncio.timeout(10), holder.held(BUSY):
            await redis.delete("test:lease:lost")  # Redis lost it, or it expired during a stall
            await asyncio.Event().wait()

    with pytest.raises(LeaseLost):
        await work_without_end()


async def test_only_the_holder_releases(redis: aioredis.Redis) -> None:
    holder = Lease(redis, "test:lease:own", ttl_seconds=5)
    stranger = Lease(redis, "test:lease:own", ttl_seconds=5)
    assert await holder.acquire()
    await stranger.release()
    assert await redis.exists("test:lease:own")
    await holder.release()
    assert not await redis.exists("test:lease:own")


async def test_a_reindex_starts_once_a_crashed_reindexs_lock_has_expired(search: Search) -> None:
    await search.mesh.create(await search.mesh.person("leased"), "Leased article", body="Lease body")
    crashed = Lease(search.app.redis, REINDEX_LOCK, ttl_seconds=TTL)
    assert await crashed.acquire()

    async def ignore(_: Progress) -> None:
        return None

    with pytest.raises(FailedPrecondition) as refused:
        await search.app.reindex(ignore)
    assert refused.value.reason == "REINDEX_RUNNING"
    await until(lambda: _gone(search.app.redis), seconds=5)
    assert await search.app.reindex(ignore) >= 1
    assert not await search.app.redis.exists(REINDEX_LOCK)  # released when done


async def _gone(redis: aioredis.Redis) -> bool:
    return not await redis.exists(REINDEX_LOCK)
