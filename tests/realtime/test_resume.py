"""Resume tokens: no gap, no duplicate, a clean OUT_OF_RANGE outside the retained window."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import grpc

from conduit_server.runtime import outbox
from tests.fixtures.users import UsersServer
from tests.realtime.support import (
    HEARTBEAT,
    Events,
    Realtime,
    comment_added,
    created,
    updated,
)
from tests.support import details


async def _author(users_server: UsersServer) -> int:
    user_id, _ = await users_server.register("realtime-resume-author")
    return user_id


async def test_disconnect_after_event_k_and_resume_while_50_more_are_written_gives_exactly_the_rest(
        realtime: Realtime, events: Events, users_server: UsersServer) -> None:
    author_id = await _author(users_server)
    first = realtime.watch_articles()
    await first.joined()
    await events.write(*(created(n, f"article-{n}", author_id) for n in range(10)))
    k = 4
    received = await first.take(k)
    first.cancel()  # the client goes away after event k

    async def write_more() -> None:
        for n in range(10, 60):
            await events.write(created(n, f"article-{n}", author_id))
            await asyncio.sleep(0.003)

    writer = asyncio.create_task(write_more())
    while await events.redis.xlen(events.stream) < 25:  # noqa: ASYNC110 - resume mid-way: history and live
        await asyncio.sleep(0.005)
    resumed = realtime.watch_articles(resume_token=received[-1].event_id)
    rest = await resumed.take(60 - k, within=20)
    await writer

    entries = await events.published()
    assert [e.event_id for e in received + rest] == [entry_id.decode() for entry_id, _ in entries]
    assert [e.article.slug for e in rest] == [f"article-{n}" for n in range(k, 60)]
    # Nothing more: the next message is a heartbeat.
    extra = await resumed.message(within=2)
    assert extra is not None
    assert extra.type == HEARTBEAT
    assert realtime.app.metrics()["resumes"] == 1


async def test_a_token_from_before_the_retained_window_is_out_of_range(
        realtime: Realtime, events: Events, users_server: UsersServer) -> None:
    author_id = await _author(users_server)
    await events.write(created(0, "oldest", author_id))
    (oldest_token, _), = await events.published()
    events.relay.stream_max_len = 10  # the relay trims with MAXLEN ~ as in production, only sooner
    for batch in range(3):
        await events.write(*(created(n, f"article-{n}", author_id) for n in range(batch * 100, batch * 100 + 100)))
    retained = await events.published()
    assert retained[0][0] != oldest_token

    error = await realtime.watch_articles(resume_token=oldest_token.decode()).error()

    assert error.code() == grpc.StatusCode.OUT_OF_RANGE
    assert "refetch" in (error.details() or "")
    info = details(error)["ErrorInfo"]
    assert info.reason == "RESUME_TOKEN_EXPIRED"
    assert info.metadata["resume_token"] == oldest_token.decode()
    # A token inside the window still resumes.
    inside = realtime.watch_articles(resume_token=retained[-3][0].decode())
    assert [e.event_id for e in await inside.take(2)] == [entry_id.decode() for entry_id, _ in retained[-2:]]


async def test_a_token_this_stream_never_had_is_out_of_range(realtime: Realtime, events: Events,
                                                             users_server: UsersServer) -> None:
    author_id = await _author(users_server)
    await events.write(created(1, "only", author_id))
    (entry_id, _), = await events.published()
    ms, _ = entry_id.decode().split("-")
    for token in (f"{ms}-7", "1-0", f"{int(ms) + 10_000_000}-0"):
        error = await realtime.watch_articles(resume_token=token).error()
        assert error.code() == grpc.StatusCode.OUT_OF_RANGE, token


async def test_events_the_relay_publishes_twice_are_delivered_once_live_and_on_resume(
        realtime: Realtime, events: Events, users_server: UsersServer) -> None:
    author_id = await _author(users_server)
    live = realtime.watch_articles()
    await live.joined()
    await events.write(created(0, "before-the-crash", author_id))
    (token, _), = await events.published()
    await events.relay.stop()

    class Crash(Exception):
        pass

    async def crash(_: Sequence[outbox.Event]) -> None:
        raise Crash

    await events.write(*(created(n, f"article-{n}", author_id) for n in range(1, 6)))
    crashing = outbox.OutboxRelay(events.database, events.redis, events.stream, after_publish=crash)
    with contextlib.suppress(Crash):
        await crashing.relay_once()  # XADDed, never marked published
    events.relay.start()  # the restarted relay publishes the same five again
    entries = await events.published()
    assert len(entries) == 11

    slugs = [e.article.slug for e in await live.take(6)]
    assert slugs == ["before-the-crash"] + [f"article-{n}" for n in range(1, 6)]
    resumed = realtime.watch_articles(resume_token=token.decode())
    assert [e.article.slug for e in await resumed.take(5)] == slugs[1:]
    for watch in (live, resumed):
        extra = await watch.message(within=2)
        assert extra is not None
        assert extra.type == HEARTBEAT
    assert realtime.app.metrics()["duplicates_dropped"] == 5


async def test_resuming_from_a_heartbeat_of_a_quiet_stream_loses_nothing(
        realtime: Realtime, events: Events, users_server: UsersServer) -> None:
    author_id = await _author(users_server)
    watch = realtime.watch_article("quiet")
    await watch.joined()
    await events.write(*(created(n, f"noise-{n}", author_id) for n in range(5)))
    entries = await events.published()
    beat = await watch.message(within=2)
    while beat is not None and beat.event_id != entries[-1][0].decode():
        beat = await watch.message(within=2)
    assert beat is not None
    watch.cancel()

    await events.write(comment_added(1, 99, "quiet", author_id, "while you were away"),
                       created(6, "more-noise", author_id))
    resumed = realtime.watch_article("quiet", resume_token=beat.event_id)
    event = await resumed.next()
    assert event.comment.body == "while you were away"


async def test_resuming_a_watch_article_follows_a_rename_made_while_disconnected(
        realtime: Realtime, events: Events, users_server: UsersServer) -> None:
    author_id = await _author(users_server)
    watch = realtime.watch_article("draft")
    await watch.joined()
    await events.write(comment_added(1, 5, "draft", author_id, "one"))
    first = await watch.next()
    watch.cancel()

    await events.write(updated(5, "final", author_id, previous_slug="draft"))
    await events.write(comment_added(2, 5, "final", author_id, "two"))
    resumed = realtime.watch_article("draft", resume_token=first.event_id)
    rename, comment = await resumed.take(2)
    assert rename.article.slug == "final"
    assert comment.comment.body == "two"
    # Live again after the history: new events under the new slug still arrive.
    await events.write(comment_added(3, 5, "final", author_id, "three"))
    assert (await resumed.next()).comment.body == "three"
