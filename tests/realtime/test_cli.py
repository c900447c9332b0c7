"""`conduit realtime history`: how far back a watch can resume, per followed stream."""

from __future__ import annotations

import io
import uuid

import redis.asyncio as aioredis

from conduit_server.realtime.cli import print_history
from conduit_server.realtime.domain.ids import StreamId
from conduit_server.runtime.settings import RealtimeSettings, Settings


async def test_history_prints_each_streams_length_and_its_oldest_and_newest_ids(redis_url: str) -> None:
    articles, users = f"test:cli:articles:{uuid.uuid4().hex}", f"test:cli:users:{uuid.uuid4().hex}"
    writer = aioredis.Redis.from_url(redis_url)
    ids = [StreamId.parse(await writer.xadd(articles, {"n": str(n)})) for n in range(3)]
    await writer.aclose()
    settings = Settings(realtime=RealtimeSettings(articles_stream=articles, users_stream=users))
    out = io.StringIO()
    await print_history(aioredis.Redis.from_url(redis_url), settings, out)
    assert out.getvalue().splitlines() == [f"{articles} 3 {ids[0]} {ids[2]}", f"{users} 0 - -"]
