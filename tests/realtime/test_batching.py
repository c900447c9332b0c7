"""Batched streams (`batched` in the request): every event, in order, once; several per message when behind."""

from __future__ import annotations

import asyncio

import grpc

from conduit.articles.v1 import articles_pb2
from conduit.realtime.v1 import realtime_pb2
from conduit.users.v1 import users_pb2
from conduit_server.realtime.domain.enrich import MAX_EVENTS_PER_MESSAGE, Entry, Prepared, batch, build, heartbeat
from conduit_server.realtime.domain.ids import StreamId
from conduit_server.realtime.domain.watchers import ArticleSelector, Offer, Watcher
from tests.fixtures.users import UsersServer
from tests.realtime.support import (
    HEARTBEAT,
    Change,
    Events,
    Realtime,
    Watch,
    comment_added,
    config_for,
    created,
    deleted,
    error_info,
    running_realtime,
)
from tests.support import eventually

RESPONSES = (realtime_pb2.WatchFeedResponse, realtime_pb2.WatchArticleResponse,
             realtime_pb2.WatchArticlesResponse)


async def _author(users_server: UsersServer) -> int:
    user_id, _ = await users_server.register("realtime-batching-author")
    return user_id


async def _burst(events: Events, author_id: int, first: int, count: int) -> list[str]:
    """`count` new articles in transactions of 50, as fast as they commit; every entry id published."""
    for start in range(first, first + count, 50):
        await events.write(*(created(n, f"article-{n}", author_id) for n in range(start, start + 50)))
    return [entry_id.decode() for entry_id, _ in await events.published()]


def test_concatenated_single_event_messages_with_the_key_swapped_parse_as_one_batched_message() -> None:
    events = [realtime_pb2.Event(event_id=f"1-{n}", type=realtime_pb2.EVENT_TYPE_ARTICLE_CREATED,
                                 article=articles_pb2.Article(slug=f"s{n}", body="x" * 300 * n))
              for n in range(4)]
    singles = [realtime_pb2.WatchArticlesResponse(event=event).SerializeToString() for event in events]
    beat = heartbeat("1-3")

    for response in RESPONSES:  # the three responses are the same on the wire
        batched = response.FromString(batch([*singles, beat]))
        assert not batched.HasField("event")
        assert list(batched.events)[:4] == events  # in order, 300-byte to 900-byte events (2-byte lengths)
        assert (batched.events[4].type, batched.events[4].event_id) == (HEARTBEAT, "1-3")
        assert list(response.FromString(batch(singles[:1])).events) == events[:1]


def _prepared(n: int, change: Change) -> Prepared:
    built = build(Entry(StreamId(100, n), f"event-{n}", change[0], b""), change[1],
                  {7: users_pb2.Profile(username="seven")})
    assert built is not None
    return built


def test_a_watcher_hands_over_what_is_queued_up_to_a_limit_and_knows_which_one_ends_the_stream() -> None:
    watcher = Watcher("WatchArticle", ArticleSelector("a", None), max_queued=8)
    events = [_prepared(n, comment_added(n, 1, "a", 7)) for n in range(1, 4)] + [_prepared(4, deleted(1, "a", 7))]
    assert [watcher.offer(event) for event in events] == [Offer.QUEUED] * 3 + [Offer.FINAL]

    assert watcher.take(2) == ([events[0].payload(False), events[1].payload(False)], events[1].id, False)
    assert watcher.take(MAX_EVENTS_PER_MESSAGE) == (
        [events[2].payload(False), events[3].payload(False)], events[3].id, True)
    assert watcher.queued == 0


async def test_a_burst_reaches_a_batched_stream_in_order_without_duplicates_in_fewer_messages(
        realtime: Realtime, events: Events, users_server: UsersServer) -> None:
    author_id = await _author(users_server)
    batched = realtime.watch_articles(batched=True)
    unbatched = realtime.watch_articles()
    for watch in (batched, unbatched):
        await watch.joined()

    written = await _burst(events, author_id, 0, 300)  # nothing read while it is written: both fall behind

    assert [e.event_id for e in await batched.take(300)] == written
    assert [e.event_id for e in await unbatched.take(300)] == written
    sizes = batched.batch_sizes
    assert sum(sizes) == 300
    assert max(sizes) > 1  # the fan-out queues many events at once: they share messages
    assert max(sizes) <= MAX_EVENTS_PER_MESSAGE
    assert set(unbatched.batch_sizes) == {1}  # unchanged: one event per message, in `event`
    for watch in (batched, unbatched):
        extra = await watch.message(within=2)  # nothing more, nothing repeated
        assert extra is not None
        assert extra.type == HEARTBEAT
    metrics = realtime.app.metrics()
    assert metrics["events_delivered"] == 600
    assert metrics["event_messages_sent"] == 300 + len(sizes)


async def test_resuming_a_batched_stream_after_its_last_event_continues_cleanly(
        realtime: Realtime, events: Events, users_server: UsersServer) -> None:
    author_id = await _author(users_server)
    first = realtime.watch_articles(batched=True)
    await first.joined()
    written = await _burst(events, author_id, 0, 100)
    received = await first.take(100)
    assert [e.event_id for e in received] == written
    first.cancel()

    more = await _burst(events, author_id, 100, 100)
    resumed = realtime.watch_articles(resume_token=received[-1].event_id, batched=True)

    assert [e.event_id for e in await resumed.take(100)] == more[100:]
    extra = await resumed.message(within=2)
    assert extra is not None
    assert extra.type == HEARTBEAT
    assert extra.event_id == more[-1]  # and the heartbeat's position resumes after everything seen


async def test_history_is_caught_up_in_batches_of_at_most_the_cap(
        realtime: Realtime, events: Events, users_server: UsersServer) -> None:
    author_id = await _author(users_server)
    written = await _burst(events, author_id, 0, 250)
    # the whole history is behind the reader: no event comes live
    await eventually(lambda: realtime.app.metrics()["position"] == written[-1])

    resumed = realtime.watch_articles(resume_token=written[0], batched=True)

    assert [e.event_id for e in await resumed.take(249)] == written[1:]
    # Pages of read_count (200) entries, each sent in messages of at most the cap.
    assert resumed.batch_sizes == [MAX_EVENTS_PER_MESSAGE, MAX_EVENTS_PER_MESSAGE, 49]
    joined = await resumed.message()
    assert joined is not None
    assert (joined.type, joined.event_id) == (HEARTBEAT, written[-1])


async def test_a_batched_watch_of_an_article_ends_after_its_deletion_even_mid_batch(
        realtime: Realtime, events: Events, users_server: UsersServer) -> None:
    author_id = await _author(users_server)
    watch = realtime.watch_article("doomed", batched=True)
    await watch.joined()
    await events.write(*(comment_added(n, 9, "doomed", author_id, f"comment {n}") for n in range(20)),
                       deleted(9, "doomed", author_id),
                       comment_added(99, 9, "doomed", author_id, "after the end"))

    received = [await watch.next() for _ in range(21)]

    assert [e.comment.body for e in received[:20]] == [f"comment {n}" for n in range(20)]
    assert received[20].type == realtime_pb2.EVENT_TYPE_ARTICLE_DELETED
    assert await watch.message() is None
    assert await watch.call.code() == grpc.StatusCode.OK


async def test_shutdown_tells_a_batched_stream_the_last_event_of_the_batch_it_was_sent(
        events: Events, redis_url: str, users_server: UsersServer) -> None:
    author_id = await _author(users_server)
    async with running_realtime(redis_url, users_server, config_for(events.stream)) as replica:
        watch = replica.watch_articles(batched=True)
        await watch.joined()
        written = await _burst(events, author_id, 0, 100)
        received = await watch.take(100)

        await replica.app.shutting_down()

        error = await watch.error()
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert error_info(error).metadata["last_event_id"] == received[-1].event_id == written[-1]


async def test_a_batched_stream_that_stops_reading_is_cut_off_with_the_last_id_it_was_sent(
        events: Events, redis_url: str, users_server: UsersServer) -> None:
    author_id = await _author(users_server)
    # Small queues and pages, big events: a reader that stops falls behind by more than its queue.
    config = config_for(events.stream, max_queued_per_watcher=256, read_count=64, heartbeat_seconds=5.0)
    async with running_realtime(redis_url, users_server, config) as replica:
        stalled = replica.watch_articles(batched=True)
        await stalled.joined()
        for start in range(0, 1500, 100):
            await events.write(*(created(n, f"article-{n}", author_id, body="x" * 8192)
                                 for n in range(start, start + 100)))
        written = [entry_id.decode() for entry_id, _ in await events.published()]
        await asyncio.sleep(0.5)  # let the hub offer the rest

        received, error = await _read_until_error(stalled)

        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert received == written[:len(received)]
        assert len(received) < len(written)
        last = error_info(error).metadata["last_event_id"]
        assert last == received[-1]  # the last event of the last batch sent: resuming from it is exact
        resumed = replica.watch_articles(resume_token=last, batched=True)
        assert [e.event_id for e in await resumed.take(len(written) - len(received), within=30)] == \
            written[len(received):]


async def _read_until_error(watch: Watch) -> tuple[list[str], grpc.aio.AioRpcError]:
    received: list[str] = []
    try:
        while (event := await watch.message(within=30)) is not None:
            if event.type != HEARTBEAT:
                received.append(event.event_id)
    except grpc.aio.AioRpcError as error:
        return received, error
    raise AssertionError("the stream ended with OK")
