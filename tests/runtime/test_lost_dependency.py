"""A lost connection to PostgreSQL or Redis ends a call UNAVAILABLE (retryable), never INTERNAL."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
import redis.exceptions

from conduit_server.runtime.interceptors import lost_dependency
from tests.conftest import free_port


async def test_connecting_to_a_postgresql_that_is_down_is_a_lost_dependency(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as raised:
        await asyncpg.connect(host=str(tmp_path), port=5432, user="conduit", timeout=5)
    assert lost_dependency(raised.value)


async def test_a_redis_that_is_down_is_a_lost_dependency() -> None:
    client = aioredis.Redis(host="127.0.0.1", port=free_port())
    try:
        with pytest.raises(redis.exceptions.ConnectionError) as raised:
            await client.ping()
    finally:
        await client.aclose()
    assert lost_dependency(raised.value)


def test_an_error_of_our_own_is_not() -> None:
    with pytest.raises(FileNotFoundError) as raised:
        Path("/nonexistent/conduit/file").read_text()
    assert not lost_dependency(raised.value)
    assert not lost_dependency(ValueError("bad input"))
