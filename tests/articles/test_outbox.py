"""The transactional outbox against real PostgreSQL and Redis: order, crash safety, dedupe."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from conduit.articles.v1 import events_pb2

from conduit_server.articles.app import ArticlesApp
from conduit_server.runtime import outbox


class RelayCrashed(Exception):
    pass


async def _write(app: ArticlesApp, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        async with app.database.transaction() as session:
            event = events_pb2.ArticleEvent(article_deleted=events_pb2.ArticleDeleted(article_id=n))
            await outbox.append(session, "article_deleted", event)


async def _read_stream(app: ArticlesApp, stream: str) -> list[int]:
    """What a deduplicating consumer sees: article ids in stream order, each event id once."""
    seen: set[bytes] = set()
    delivered: list[int] = []
    for _, fields in await app.redis.xrange(stream):
        if fields[b"event_id"] in seen:
            continue
        seen.add(fields[b"event_id"])
        event = events_pb2.ArticleEvent.FromString(fields[b"payload"])
        delivered.append(event.article_deleted.article_id)
    return delivered


@pytest.mark.usefixtures("articles_channel")
async def test_relay_killed_between_publish_and_mark_loses_nothing_and_dedupes(articles_app: ArticlesApp
                                                                              ) -> None:
    stream = "test:outbox:crash"
    await articles_app.redis.delete(stream)
    await _write(articles_app, 30)

    async def crash(events: Sequence[outbox.Event]) -> None:
        raise RelayCrashed(f"killed after publishing {len(events)}")

    crashing = outbox.OutboxRelay(articles_app.database, articles_app.redis, stream, batch_size=10,
                                  after_publish=crash)
    with pytest.raises(RelayCrashed):
        await crashing.relay_once()
    assert await crashing.pending() == 30  # published to the stream, but not marked
    await _write(articles_app, 20, start=30)
    restarted = outbox.OutboxRelay(articles_app.database, articles_app.redis, stream, batch_size=10)
    while await restarted.relay_once():
        pass
    assert await restarted.pending() == 0
    assert await articles_app.redis.xlen(stream) == 60  # the first batch went out twice
    assert await _read_stream(articles_app, stream) == list(range(50))


@pytest.mark.usefixtures("articles_channel")
async def test_concurrent_writers_get_ids_in_commit_order(articles_app: ArticlesApp) -> None:
    stream = "test:outbox:order"
    await articles_app.redis.delete(stream)
    await asyncio.gather(*(_write(articles_app, 5, start=100 * n) for n in range(8)))
    relay = outbox.OutboxRelay(articles_app.database, articles_app.redis, stream)
    relay.start()
    try:
        for _ in range(100):
            if await relay.pending() == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        await relay.stop()
    delivered = await _read_stream(articles_app, stream)
    assert sorted(delivered) == sorted(100 * n + k for n in range(8) for k in range(5))
    for writer in range(8):  # each writer's own events stay in its order
        mine = [d for d in delivered if d // 100 == writer]
        assert mine == sorted(mine)
