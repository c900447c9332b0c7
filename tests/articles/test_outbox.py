"""The transactional outbox against real PostgreSQL and Redis: order, crash safety, dedupe.

The relay tests drive relays by hand on a schema of their own (the articles
migrations applied to `articles_relay_test`), so the running service's relay
cannot interfere. The last test checks what the service's own relay publishes
for real article writes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import event, text

from conduit.articles.v1 import articles_pb2, events_pb2
from conduit_server.articles.app import EVENTS_STREAM, MIGRATIONS, ArticlesApp
from conduit_server.articles.repository import models
from conduit_server.runtime import migrations, outbox
from conduit_server.runtime.db import Database
from conduit_server.runtime.errors import Unavailable
from tests.articles.conftest import Mesh, Person, stream_entries
from tests.support import eventually


class RelayCrashed(Exception):
    pass


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def relay_schema(postgres_url: str) -> AsyncIterator[Database]:
    database = Database(postgres_url, "articles_relay_test")
    await migrations.upgrade(database, MIGRATIONS, models.Base.metadata)
    yield database
    await database.close()


@pytest_asyncio.fixture(loop_scope="session")
async def relay_db(relay_schema: Database) -> Database:
    async with relay_schema.transaction() as session:
        await session.execute(text("TRUNCATE outbox RESTART IDENTITY"))
    return relay_schema


async def _write(database: Database, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        async with database.transaction() as session:
            event = events_pb2.ArticleEvent(article_deleted=events_pb2.ArticleDeleted(article_id=n))
            await outbox.append(session, "article_deleted", event)


async def _read_stream(app: ArticlesApp, stream: str) -> list[int]:
    """What a deduplicating consumer sees: article ids in stream order, each event id once."""
    seen: set[bytes] = set()
    delivered: list[int] = []
    for _, fields in await stream_entries(app.redis, stream):
        if fields[b"event_id"] in seen:
            continue
        seen.add(fields[b"event_id"])
        event = events_pb2.ArticleEvent.FromString(fields[b"payload"])
        delivered.append(event.article_deleted.article_id)
    return delivered


async def test_relay_killed_between_publish_and_mark_loses_nothing_and_dedupes(
        articles_app: ArticlesApp, relay_db: Database) -> None:
    stream = "test:outbox:crash"
    await articles_app.redis.delete(stream)
    await _write(relay_db, 30)

    async def crash(events: Sequence[outbox.Event]) -> None:
        raise RelayCrashed(f"killed after publishing {len(events)}")

    crashing = outbox.OutboxRelay(relay_db, articles_app.redis, stream, batch_size=10, after_publish=crash)
    with pytest.raises(RelayCrashed):
        await crashing.relay_once()
    assert await crashing.pending() == 30  # published to the stream, but not marked
    await _write(relay_db, 20, start=30)
    restarted = outbox.OutboxRelay(relay_db, articles_app.redis, stream, batch_size=10)
    while await restarted.relay_once():
        pass
    assert await restarted.pending() == 0
    assert await articles_app.redis.xlen(stream) == 60  # the first batch went out twice
    assert await _read_stream(articles_app, stream) == list(range(50))


async def test_a_running_relay_publishes_concurrent_writers_in_id_order_without_gaps(
        articles_app: ArticlesApp, relay_db: Database) -> None:
    """Writers no longer wait for each other; the relay publishes only up to its horizon, so the stream
    is in id order (no id published after a larger one) and complete."""
    stream = f"test:outbox:order:{uuid.uuid4().hex[:8]}"
    relay = outbox.OutboxRelay(relay_db, articles_app.redis, stream, batch_size=7, poll_seconds=0.1)
    relay.start()
    try:
        await asyncio.gather(*(_write(relay_db, 20, start=100 * n) for n in range(8)))
        await eventually(lambda: relay.published >= 160, seconds=30)
    finally:
        await relay.stop()
    entries = await stream_entries(articles_app.redis, stream)
    sequence = [int(fields[b"seq"]) for _, fields in entries]
    assert sequence == sorted(set(sequence))  # in id order, none twice
    assert len(sequence) == 160
    delivered = await _read_stream(articles_app, stream)
    assert sorted(delivered) == sorted(100 * n + k for n in range(8) for k in range(20))
    for writer in range(8):  # each writer's own events stay in its order
        mine = [d for d in delivered if d // 100 == writer]
        assert mine == sorted(mine)


def _deleted(article_id: int) -> events_pb2.ArticleEvent:
    return events_pb2.ArticleEvent(article_deleted=events_pb2.ArticleDeleted(article_id=article_id))


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
@pytest.mark.parametrize("later_xid_first", [False, True])
async def test_the_relay_never_publishes_past_a_transaction_still_holding_a_smaller_id(
        articles_app: ArticlesApp, relay_db: Database, outcome: str, later_xid_first: bool) -> None:
    """The hard case: A draws id 1 and stays open; B draws id 2 and commits first. The relay must not
    publish 2 while A may still commit 1, and must publish 1 (then 2) once A commits, or 2 alone once
    A rolls back. With `later_xid_first`, B had its transaction id before A: a relay that compared
    transaction ids with the oldest running one (and not ids with a horizon) would publish 2 early."""
    stream = f"test:outbox:horizon:{uuid.uuid4().hex[:8]}"
    relay = outbox.OutboxRelay(relay_db, articles_app.redis, stream)
    async with relay_db.sessions() as late, relay_db.sessions() as early:
        await late.begin()
        if later_xid_first:
            await late.execute(text("SELECT pg_current_xact_id()"))
        await early.begin()
        await outbox.append(early, "article_deleted", _deleted(1))
        await outbox.append(late, "article_deleted", _deleted(2))
        await late.commit()
        async with relay_db.read() as session:
            ids = list((await session.scalars(text("SELECT id FROM outbox"))).all())
        assert ids == [2]  # only B's row is visible, and it has the larger id: A holds id 1
        assert await relay.relay_once() == 0
        assert await relay.relay_once() == 0  # however often it looks
        assert await articles_app.redis.xlen(stream) == 0
        await (early.commit() if outcome == "commit" else early.rollback())
    while await relay.relay_once():
        pass
    assert await _read_stream(articles_app, stream) == ([1, 2] if outcome == "commit" else [2])
    assert await relay.pending() == 0


async def test_a_snapshot_position_waits_for_a_write_in_flight_below_it(
        articles_app: ArticlesApp, relay_db: Database) -> None:
    """An export's position is final: a write holding a smaller id when the position is asked for is
    in the snapshot opened afterwards, never counted as reflected while missing from it."""
    async with relay_db.sessions() as writer:
        await writer.begin()
        await outbox.append(writer, "article_deleted", _deleted(1))
        await _write(relay_db, 1, start=2)  # id 2, committed
        async with relay_db.read() as session:
            with pytest.raises(Unavailable):  # id 1 may still commit: no position covers id 2 yet
                await outbox.settled_position(session, within=0.3)
            await writer.commit()
            position = await outbox.settled_position(session)
    assert position == 2
    async with relay_db.snapshot() as session:
        assert await session.scalar(text("SELECT count(*) FROM outbox WHERE id <= :p"), {"p": position}) == 2


async def _events(app: ArticlesApp, expected: int) -> list[events_pb2.ArticleEvent]:
    """The service's stream once its relay has published `expected` events (deduplicated)."""
    for _ in range(200):
        entries = await stream_entries(app.redis, EVENTS_STREAM)
        if len({fields[b"event_id"] for _, fields in entries}) >= expected:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"the relay did not publish {expected} events")
    seen: set[bytes] = set()
    events: list[events_pb2.ArticleEvent] = []
    sequence: list[int] = []
    for _, fields in entries:
        if fields[b"event_id"] not in seen:
            seen.add(fields[b"event_id"])
            events.append(events_pb2.ArticleEvent.FromString(fields[b"payload"]))
            sequence.append(int(fields[b"seq"]))
    assert sequence == sorted(sequence)  # commit order
    return events


async def _every_kind_of_write(mesh: Mesh) -> tuple[Person, Person, str, articles_pb2.Comment]:
    """Create, rename, favorite twice, unfavorite, comment, delete the comment, delete the article."""
    alice, bob = await mesh.person("alice"), await mesh.person("bob")
    article = await mesh.create(alice, "Events", tags=["x"])
    await mesh.articles.UpdateArticle(articles_pb2.UpdateArticleRequest(
        slug=article.slug, article=articles_pb2.UpdateArticle(title="Events renamed")), metadata=alice.auth)
    slug = "events-renamed"
    await mesh.articles.FavoriteArticle(articles_pb2.FavoriteArticleRequest(slug=slug), metadata=bob.auth)
    await mesh.articles.FavoriteArticle(articles_pb2.FavoriteArticleRequest(slug=slug), metadata=bob.auth)
    await mesh.articles.UnfavoriteArticle(articles_pb2.UnfavoriteArticleRequest(slug=slug), metadata=bob.auth)
    comment = (await mesh.comments.CreateComment(articles_pb2.CreateCommentRequest(
        slug=slug, comment=articles_pb2.NewComment(body="hi")), metadata=bob.auth)).comment
    await mesh.comments.DeleteComment(articles_pb2.DeleteCommentRequest(slug=slug, id=comment.id),
                                      metadata=bob.auth)
    await mesh.articles.DeleteArticle(articles_pb2.DeleteArticleRequest(slug=slug), metadata=alice.auth)
    return alice, bob, slug, comment


async def test_every_article_write_reaches_the_stream_in_commit_order(mesh: Mesh) -> None:
    alice, bob, slug, comment = await _every_kind_of_write(mesh)
    events = await _events(mesh.app, 7)
    kinds = [event.WhichOneof("payload") for event in events]
    # The repeated favorite changed nothing, so it wrote no event.
    assert kinds == ["article_created", "article_updated", "favorite_changed", "favorite_changed",
                     "comment_added", "comment_deleted", "article_deleted"]
    created, updated, favorited, unfavorited = (events[0].article_created, events[1].article_updated,
                                                events[2].favorite_changed, events[3].favorite_changed)
    assert created.article.slug == "events"
    assert list(created.article.tag_list) == ["x"]
    assert created.article.author_id == alice.user_id
    assert (updated.previous_slug, updated.article.slug) == ("events", slug)
    assert (favorited.favorited, favorited.favorites_count, favorited.user_id) == (True, 1, bob.user_id)
    assert (unfavorited.favorited, unfavorited.favorites_count) == (False, 0)
    assert events[4].comment_added.comment.id == comment.id
    assert events[6].article_deleted.slug == slug
    assert len({event.event_id for event in events}) == 7


async def test_a_relay_stopped_and_started_again_in_the_same_process_takes_over(
        articles_app: ArticlesApp, relay_db: Database) -> None:
    first = outbox.OutboxRelay(relay_db, articles_app.redis, "test:outbox:restart", poll_seconds=0.1)
    first.start()
    await asyncio.sleep(0.3)
    await first.stop()
    await _write(relay_db, 3, start=900)
    second = outbox.OutboxRelay(relay_db, articles_app.redis, "test:outbox:restart", poll_seconds=0.1)
    second.start()
    try:
        for _ in range(50):
            if await second.pending() == 0:
                break
            await asyncio.sleep(0.1)
        assert await second.pending() == 0
    finally:
        await second.stop()


async def test_the_outbox_append_is_the_last_statement_of_every_write(mesh: Mesh) -> None:
    """The append draws the event's id after every read and lock of the write, and the relay's horizon
    waits for the transactions holding ids: any statement after the append delays every event, so none
    may follow it."""
    engine = mesh.app.database.engine.sync_engine
    appended: dict[int, str] = {}
    after_append: list[str] = []

    def on_statement(connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        key = id(connection.connection.dbapi_connection)
        if key in appended:
            after_append.append(statement)
        if "INSERT INTO outbox" in statement:
            appended[key] = statement

    def on_end(connection: Any) -> None:
        appended.pop(id(connection.connection.dbapi_connection), None)

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "commit", on_end)
    event.listen(engine, "rollback", on_end)
    try:
        await _every_kind_of_write(mesh)
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
        event.remove(engine, "commit", on_end)
        event.remove(engine, "rollback", on_end)
    assert after_append == []


async def test_killing_the_relay_lock_connection_never_yields_two_publishers(
        articles_app: ArticlesApp, relay_db: Database) -> None:
    stream = f"test:outbox:lock:{uuid.uuid4().hex[:8]}"
    relays = [outbox.OutboxRelay(relay_db, articles_app.redis, stream, poll_seconds=0.1) for _ in range(2)]
    for relay in relays:
        relay.start()
    try:
        await eventually(lambda: any(relay.holds_lock for relay in relays))
        holder = next(relay for relay in relays if relay.holds_lock)
        async with relay_db.transaction() as session:
            await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": holder.lock_backend_pid})
        await _write(relay_db, 30, start=2_000)
        await eventually(lambda: sum(relay.published for relay in relays) >= 30, seconds=20)
        # The lock went with its connection: whoever holds it now holds it alone.
        await eventually(lambda: any(relay.holds_lock for relay in relays), seconds=20)
        assert [relay.holds_lock for relay in relays].count(True) == 1
        entries = await stream_entries(articles_app.redis, stream)
        event_ids = [fields[b"event_id"] for _, fields in entries]
        assert len(event_ids) == len(set(event_ids)) == 30
        sequence = [int(fields[b"seq"]) for _, fields in entries]
        assert sequence == sorted(sequence)
    finally:
        for relay in relays:
            await relay.stop()


async def test_published_rows_and_stream_entries_past_the_retention_are_pruned_and_pending_ones_kept(
        articles_app: ArticlesApp, relay_db: Database) -> None:
    stream = f"test:outbox:prune:{uuid.uuid4().hex[:8]}"
    relay = outbox.OutboxRelay(relay_db, articles_app.redis, stream, retention_seconds=0, prune_batch=4)
    await _write(relay_db, 10, start=3_000)
    while await relay.relay_once():
        pass
    await _write(relay_db, 3, start=3_100)  # not yet published: never pruned
    assert await relay.prune() == 10
    assert await relay.pending() == 3
    async with relay_db.read() as session:
        assert await session.scalar(text("SELECT count(*) FROM outbox")) == 3
    assert await articles_app.redis.xlen(stream) == 0

    keeping = outbox.OutboxRelay(relay_db, articles_app.redis, stream, retention_seconds=3_600)
    while await keeping.relay_once():
        pass
    assert await keeping.prune() == 0
    assert await articles_app.redis.xlen(stream) == 3
