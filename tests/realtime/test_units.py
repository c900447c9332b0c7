"""The pieces on their own: ids, dedupe window, a watcher's queue and positions, errors, follows."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from conduit.articles.v1 import events_pb2
from conduit.realtime.v1 import realtime_pb2
from conduit.users.v1 import users_pb2
from conduit_server.realtime.domain.enrich import Entry, Prepared, build
from conduit_server.realtime.domain.follows import FollowGraph
from conduit_server.realtime.domain.ids import StreamId, parse_resume_token
from conduit_server.realtime.domain.watchers import ArticlesSelector, Offer, Watcher
from conduit_server.realtime.events import RecentIds, drop_duplicates
from conduit_server.realtime.repository.profiles import UsersDirectory
from conduit_server.runtime import channels, errors
from conduit_server.runtime.settings import RealtimeSettings
from tests.fixtures.users import INTERNAL_TOKEN, UsersServer, unique_name
from tests.realtime.support import created, deleted


def test_resource_exhausted_maps_to_its_code_with_error_info_and_no_retry_hint() -> None:
    error = errors.ResourceExhausted("too slow", reason="SLOW_CONSUMER", metadata={"last_event_id": "5-0"})
    status = errors.to_status(error)
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    metadata = dict(status.trailing_metadata)
    assert "retry-after" not in metadata  # not a rate limit: retrying at once (with the id) is right
    details = status_pb2.Status.FromString(metadata["grpc-status-details-bin"]).details
    info = error_details_pb2.ErrorInfo()
    assert details[0].Unpack(info)
    assert (info.reason, dict(info.metadata)) == ("SLOW_CONSUMER", {"last_event_id": "5-0"})
    assert not any(detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for detail in details)


def test_stream_ids_compare_in_stream_order() -> None:
    assert StreamId.parse("1732537200000-2") < StreamId.parse("1732537200000-10") < StreamId.parse("1732537200001-0")
    assert str(StreamId.parse(b"17-3")) == "17-3"
    assert parse_resume_token("") is None
    assert parse_resume_token("42-1") == StreamId(42, 1)
    with pytest.raises(errors.InvalidArgument):
        parse_resume_token(f"{2**64}-0")


def test_the_dedupe_window_forgets_the_oldest_ids() -> None:
    recent = RecentIds(3)
    for event_id in "abcd":
        recent.add(event_id)
    assert "a" not in recent
    assert all(event_id in recent for event_id in "bcd")
    entries = [Entry(StreamId(1, n), event_id, "t", b"") for n, event_id in enumerate("bxxey")]
    fresh, dropped = drop_duplicates(entries, recent)
    assert [entry.event_id for entry in fresh] == ["x", "e", "y"]
    assert dropped == 2


def _prepared(n: int, change: tuple[str, events_pb2.ArticleEvent]) -> Prepared:
    built = build(Entry(StreamId(100, n), f"event-{n}", change[0], b""), change[1],
                  {7: users_pb2.Profile(username="seven")})
    assert built is not None
    return built


def test_a_watcher_queues_up_to_its_bound_then_overflows_and_reports_where_to_resume() -> None:
    watcher = Watcher("WatchArticles", ArticlesSelector("", "", None), max_queued=2)
    watcher.live, watcher.seen = True, StreamId(100, 0)
    assert watcher.position() == StreamId(100, 0)  # nothing pending: the hub's position
    assert watcher.offer(_prepared(1, created(1, "a", 7))) is Offer.QUEUED
    assert watcher.offer(_prepared(2, deleted(1, "a", 7))) is Offer.SKIPPED  # not a new article
    assert watcher.offer(_prepared(3, created(2, "b", 7))) is Offer.QUEUED
    assert watcher.offer(_prepared(4, created(3, "c", 7))) is Offer.OVERFLOW
    watcher.last_sent = StreamId(100, 0)
    watcher.seen = StreamId(100, 4)
    assert watcher.position() == StreamId(100, 0)  # events pending: only what was handed over counts
    watcher.close(lambda position: errors.ResourceExhausted(f"behind after {position}"))
    assert watcher.queued == 0
    assert watcher.done
    with pytest.raises(errors.ResourceExhausted, match="behind after 100-0"):
        watcher.raise_if_closed()


def test_events_carry_the_authors_profile_and_personalise_following_without_copying_for_others() -> None:
    event = _prepared(1, created(1, "a", 7))
    anonymous = event.payload(False)
    assert event.payload(False) is anonymous  # serialized once, shared by every stream
    follower = event.payload(True)
    assert realtime_pb2.WatchFeedResponse.FromString(follower).event.article.author.following
    assert not realtime_pb2.WatchFeedResponse.FromString(anonymous).event.article.author.following
    assert realtime_pb2.WatchFeedResponse.FromString(anonymous).event.article.author.username == "seven"


def test_the_config_refuses_queues_that_a_single_read_could_overflow() -> None:
    with pytest.raises(ValueError, match="max_queued_per_watcher"):
        RealtimeSettings(max_queued_per_watcher=100, read_count=100)


async def test_a_follow_made_while_the_followees_load_is_not_lost(users_server: UsersServer) -> None:
    fan, celebrity = unique_name("fan"), unique_name("celebrity")
    fan_id, _ = await users_server.register(fan)
    celebrity_id, _ = await users_server.register(celebrity)
    channel = channels.internal_channel(users_server.address, INTERNAL_TOKEN)
    try:
        graph = FollowGraph(UsersDirectory(channel, timeout_seconds=5.0))
        loading = asyncio.create_task(graph.acquire(fan_id))
        await asyncio.sleep(0)  # the snapshot call is in flight
        graph.follow_changed(fan_id, celebrity_id, True)  # an event read meanwhile
        graph.follow_changed(12345, celebrity_id, True)  # someone without a stream: ignored
        followees = await loading
        assert followees == {celebrity_id}
        assert len(graph) == 1
        assert await graph.acquire(fan_id) is followees  # one set per user, shared
        graph.follow_changed(fan_id, celebrity_id, False)
        assert followees == set()
        graph.release(fan_id)
        graph.release(fan_id)
        assert len(graph) == 0
    finally:
        await channel.close(None)


def test_a_stream_resumed_ahead_of_this_hub_skips_what_its_client_already_has() -> None:
    # A token from a replica whose reader is further along: the hub here may still offer those events.
    watcher = Watcher("WatchArticles", ArticlesSelector("", "", None), max_queued=8, resume_after=StreamId(100, 2))
    assert watcher.offer(_prepared(1, created(1, "seen-elsewhere", 7))) is Offer.SKIPPED
    assert watcher.offer(_prepared(2, created(2, "also-seen", 7))) is Offer.SKIPPED
    assert watcher.offer(_prepared(3, created(3, "new", 7))) is Offer.QUEUED
