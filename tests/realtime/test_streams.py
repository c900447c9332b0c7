"""What each watch delivers: filters, enrichment, personalisation, renames, deletion, heartbeats."""

from __future__ import annotations

import grpc
import pytest

from conduit.realtime.v1 import realtime_pb2
from conduit.users.v1 import users_pb2
from tests.fixtures.users import UsersServer, unique_name
from tests.realtime.support import (
    HEARTBEAT,
    Events,
    Realtime,
    comment_added,
    comment_deleted,
    created,
    deleted,
    favorite_changed,
    updated,
)
from tests.support import eventually


async def _user(users_server: UsersServer, prefix: str = "author") -> tuple[str, int, str]:
    username = unique_name(prefix)
    user_id, token = await users_server.register(username)
    return username, user_id, token


async def test_watch_articles_delivers_new_articles_with_the_authors_profile(
        realtime: Realtime, events: Events, users_server: UsersServer) -> None:
    username, author_id, _ = await _user(users_server)
    watch = realtime.watch_articles()
    await watch.joined()
    await events.write(created(1, "first-post", author_id, tags=["grpc", "python"]))
    (entry_id, _), = await events.published()

    event = await watch.next()

    assert event.type == realtime_pb2.EVENT_TYPE_ARTICLE_CREATED
    assert event.event_id == entry_id.decode()
    assert event.article.slug == "first-post"
    assert list(event.article.tag_list) == ["grpc", "python"]
    assert event.article.author.username == username
    assert not event.article.author.following
    assert not event.article.favorited
    assert event.occurred_at.seconds > 0


async def test_watch_articles_filters_by_tag_and_by_author(
        realtime: Realtime, events: Events, users_server: UsersServer) -> None:
    alice, alice_id, _ = await _user(users_server, "alice")
    _, bob_id, _ = await _user(users_server, "bob")
    by_tag = realtime.watch_articles(tag="grpc")
    by_author = realtime.watch_articles(author=alice)
    both = realtime.watch_articles(tag="grpc", author=alice)
    for watch in (by_tag, by_author, both):
        await watch.joined()

    await events.write(created(1, "alice-grpc", alice_id, tags=["grpc"]),
                       created(2, "alice-rust", alice_id, tags=["rust"]),
                       created(3, "bob-grpc", bob_id, tags=["grpc"]),
                       created(4, "marker", bob_id, tags=["marker"]))
    await events.write(created(5, "alice-grpc-again", alice_id, tags=["x", "grpc"]))

    assert [e.article.slug for e in await by_tag.take(3)] == ["alice-grpc", "bob-grpc", "alice-grpc-again"]
    assert [e.article.slug for e in await by_author.take(3)] == ["alice-grpc", "alice-rust", "alice-grpc-again"]
    assert [e.article.slug for e in await both.take(2)] == ["alice-grpc", "alice-grpc-again"]


async def test_watch_article_follows_renames_comments_favorites_and_ends_on_deletion(
        realtime: Realtime, events: Events, users_server: UsersServer) -> None:
    commenter, commenter_id, _ = await _user(users_server, "commenter")
    _, author_id, _ = await _user(users_server)
    watch = realtime.watch_article("old-title")
    await watch.joined()

    await events.write(comment_added(10, 7, "old-title", commenter_id, "first!"),
                       created(8, "unrelated", author_id),
                       comment_added(11, 8, "unrelated", commenter_id),
                       updated(7, "new-title", author_id, previous_slug="old-title"),
                       favorite_changed(7, "new-title", commenter_id, 1),
                       comment_deleted(10, 7, "new-title"),
                       deleted(7, "new-title", author_id))

    comment, edit, favorites, uncomment, deletion = await watch.take(5)
    assert comment.type == realtime_pb2.EVENT_TYPE_COMMENT_ADDED
    assert (comment.comment.id, comment.comment.body) == (10, "first!")
    assert comment.comment.author.username == commenter
    assert edit.type == realtime_pb2.EVENT_TYPE_ARTICLE_UPDATED
    assert edit.article.slug == "new-title"
    assert favorites.type == realtime_pb2.EVENT_TYPE_FAVORITES_CHANGED
    assert (favorites.favorites.slug, favorites.favorites.favorites_count) == ("new-title", 1)
    assert uncomment.type == realtime_pb2.EVENT_TYPE_COMMENT_DELETED
    assert (uncomment.deletion.slug, uncomment.deletion.comment_id) == ("new-title", 10)
    assert deletion.type == realtime_pb2.EVENT_TYPE_ARTICLE_DELETED
    assert (deletion.deletion.slug, deletion.deletion.comment_id) == ("new-title", 0)
    assert await watch.message() is None  # the article is gone: the stream ends with OK
    assert await watch.call.code() == grpc.StatusCode.OK


async def test_watch_feed_delivers_articles_of_followed_authors_including_follows_made_while_watching(
        realtime: Realtime, events: Events, users_server: UsersServer) -> None:
    _, _, reader_token = await _user(users_server, "reader")
    followed, followed_id, _ = await _user(users_server, "followed")
    later, later_id, _ = await _user(users_server, "later")
    _, stranger_id, _ = await _user(users_server, "stranger")
    auth = users_server.auth(reader_token)
    await users_server.profiles.FollowProfile(users_pb2.FollowProfileRequest(username=followed), metadata=auth)
    watch = realtime.watch_feed(metadata=auth)
    await watch.joined()

    await events.write(created(1, "by-followed", followed_id), created(2, "by-stranger", stranger_id),
                       created(3, "by-later-too-early", later_id))
    first = await watch.next()
    assert first.article.slug == "by-followed"
    assert first.article.author.following  # the feed's authors are followed by definition

    await users_server.profiles.FollowProfile(users_pb2.FollowProfileRequest(username=later), metadata=auth)
    # The follow reaches the hub through the users service's outbox stream.
    await eventually(lambda: realtime.app.metrics()["follow_events"] > 0)
    await events.write(created(4, "by-later", later_id), created(5, "by-stranger-again", stranger_id))
    second = await watch.next()
    assert second.article.slug == "by-later"


async def test_watch_feed_requires_a_signed_in_user(realtime: Realtime) -> None:
    error = await realtime.watch_feed().error()
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_signed_in_watchers_see_following_as_the_unary_api_shows_it(
        realtime: Realtime, events: Events, users_server: UsersServer) -> None:
    _, _, fan_token = await _user(users_server, "fan")
    celebrity, celebrity_id, _ = await _user(users_server, "celebrity")
    _, other_id, _ = await _user(users_server, "other")
    await users_server.profiles.FollowProfile(users_pb2.FollowProfileRequest(username=celebrity),
                                              metadata=users_server.auth(fan_token))
    fan = realtime.watch_articles(metadata=users_server.auth(fan_token))
    anonymous = realtime.watch_articles()
    await fan.joined()
    await anonymous.joined()

    await events.write(created(1, "celebrity-post", celebrity_id), created(2, "other-post", other_id))

    seen_by_fan = await fan.take(2)
    seen_anonymously = await anonymous.take(2)
    assert [e.article.author.following for e in seen_by_fan] == [True, False]
    assert [e.article.author.following for e in seen_anonymously] == [False, False]
    assert [e.event_id for e in seen_by_fan] == [e.event_id for e in seen_anonymously]


async def test_idle_streams_get_heartbeats_carrying_their_resume_position(
        realtime: Realtime, events: Events, users_server: UsersServer) -> None:
    _, author_id, _ = await _user(users_server)
    watch = realtime.watch_article("quiet-article")
    await watch.joined()
    await events.write(created(1, "busy-article", author_id))
    entries = await events.published()

    beats = []
    for _ in range(3):  # heartbeat_seconds is 0.5 in these tests
        event = await watch.message(within=2.0)
        assert event is not None
        assert event.type == HEARTBEAT
        beats.append(event)
    # Nothing concerned this stream, yet it has seen everything up to the newest entry: resuming
    # from the heartbeat's id loses nothing and never expires while the stream is open.
    assert beats[-1].event_id == entries[-1][0].decode()
    assert realtime.app.metrics()["heartbeats_sent"] >= 3


async def test_unknown_authors_are_shown_as_the_articles_api_shows_them(
        realtime: Realtime, events: Events) -> None:
    watch = realtime.watch_articles()
    await watch.joined()
    await events.write(created(1, "orphan", 987_654_321))
    event = await watch.next()
    assert event.article.slug == "orphan"
    assert event.article.author == users_pb2.Profile(username="")


@pytest.mark.parametrize("token", ["yesterday", "12-", "-1", "1-2-3", "0-0"])
async def test_a_malformed_resume_token_is_invalid_argument(realtime: Realtime, token: str) -> None:
    error = await realtime.watch_articles(resume_token=token).error()
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "resume_token" in (error.details() or "")
