"""Watches resume after a drop with the last event id, back off within a budget, and expire cleanly."""

from __future__ import annotations

import asyncio
import threading
import time

import grpc
import pytest

from conduit.client import (
    AsyncConduit,
    Conduit,
    Internal,
    NotFound,
    OutOfRange,
    PasswordCredentials,
    RetryPolicy,
    StreamExpired,
    Unavailable,
    Watch,
)
from conduit.realtime.v1 import realtime_pb2, realtime_pb2_grpc
from conduit.users.v1 import users_pb2_grpc
from tests.sdk.conftest import Serve
from tests.sdk.support import (
    UNAVAILABLE,
    Connection,
    Failure,
    FakeAuth,
    FakeClock,
    FakeRealtime,
    error_info,
    event,
    heartbeat,
    retry_info,
)

S = grpc.StatusCode
FAST = RetryPolicy(initial_backoff=0.01, max_backoff=0.05)


def dropped(last_event_id: str = "", code: grpc.StatusCode = S.UNAVAILABLE) -> Failure:
    """How the realtime service ends a stream it cannot continue (shutdown, slow consumer)."""
    reason = "SHUTTING_DOWN" if code == S.UNAVAILABLE else "SLOW_CONSUMER"
    return Failure(code, f"resume with last_event_id {last_event_id!r}",
                   (error_info(reason, last_event_id=last_event_id),))


EXPIRED = Failure(S.OUT_OF_RANGE, "resume token 1-0 is outside the retained events",
                  (error_info("RESUME_TOKEN_EXPIRED", resume_token="1-0"),))


def _connect(serve: Serve, realtime: FakeRealtime, *, port: int = 0) -> Conduit:
    server = serve((realtime_pb2_grpc.add_RealtimeServiceServicer_to_server, realtime), port=port)
    return Conduit.connect(server.target, tls=False, retry=FAST)


def _ids(events: list[realtime_pb2.Event]) -> list[str]:
    return [e.event_id for e in events]


def test_a_dropped_watch_resumes_after_the_last_event_with_no_gap_or_duplicate(serve: Serve) -> None:
    realtime = FakeRealtime([Connection([event("1"), event("2"), event("3")], end=dropped("3")),
                             Connection([event("4"), event("5")])])
    with _connect(serve, realtime) as conduit, conduit.articles.watch("how-to-grpc") as watch:
        assert _ids(list(watch)) == ["1", "2", "3", "4", "5"]
        assert watch.resume_token == "5"
    assert realtime.resume_tokens == ["", "3"]
    assert all(isinstance(r, realtime_pb2.WatchArticleRequest) and r.slug == "how-to-grpc"
               for r in realtime.requests)


def test_a_slow_consumer_cut_off_resumes_too(serve: Serve) -> None:
    realtime = FakeRealtime([Connection([event("1")], end=dropped("1", S.RESOURCE_EXHAUSTED)),
                             Connection([event("2")])])
    with _connect(serve, realtime) as conduit:
        assert _ids(list(conduit.articles.watch("a"))) == ["1", "2"]
    assert realtime.resume_tokens == ["", "1"]


def test_a_given_resume_token_is_sent_on_the_first_connection(serve: Serve) -> None:
    realtime = FakeRealtime([Connection([event("8")])])
    with _connect(serve, realtime) as conduit:
        assert _ids(list(conduit.articles.watch("a", resume_token="7"))) == ["8"]
    assert realtime.resume_tokens == ["7"]


def test_heartbeats_are_skipped_unless_asked_for_but_still_move_the_token(serve: Serve) -> None:
    script = [heartbeat("0-0"), event("1"), heartbeat("1"), event("2"), heartbeat("2")]
    realtime = FakeRealtime([Connection(script, end=dropped("2")), Connection([event("3")]),
                             Connection(script)])
    with _connect(serve, realtime) as conduit:
        assert _ids(list(conduit.articles.watch("a"))) == ["1", "2", "3"]
        every = list(conduit.articles.watch("a", include_heartbeats=True))
    assert [(e.event_id, e.type == realtime_pb2.EVENT_TYPE_HEARTBEAT) for e in every] == [
        ("0-0", True), ("1", False), ("1", True), ("2", False), ("2", True)]
    assert realtime.resume_tokens == ["", "2", ""]


def test_the_servers_last_event_id_fills_in_when_nothing_arrived(serve: Serve) -> None:
    realtime = FakeRealtime([Connection([], end=dropped("9-0")), Connection([event("9-1")])])
    with _connect(serve, realtime) as conduit:
        assert _ids(list(conduit.articles.watch("a"))) == ["9-1"]
    assert realtime.resume_tokens == ["", "9-0"]


def test_a_token_too_old_raises_stream_expired(serve: Serve) -> None:
    realtime = FakeRealtime([Connection([], end=EXPIRED)])
    with _connect(serve, realtime) as conduit, pytest.raises(StreamExpired) as raised:
        list(conduit.articles.watch("a", resume_token="1-0"))
    assert isinstance(raised.value, OutOfRange)
    assert raised.value.resume_token == "1-0"
    assert raised.value.reason == "RESUME_TOKEN_EXPIRED"
    assert realtime.resume_tokens == ["1-0"]


def test_a_stream_reset_by_a_proxy_resumes(serve: Serve) -> None:
    """Envoy resets a watch whose replica died after the headers went out; gRPC reports INTERNAL."""
    reset = Failure(S.INTERNAL, "Stream removed (RST_STREAM (Received RST_STREAM with error code 2))")
    realtime = FakeRealtime([Connection([event("1")], end=reset), Connection([event("2")])])
    with _connect(serve, realtime) as conduit:
        assert _ids(list(conduit.articles.watch("a"))) == ["1", "2"]
    assert realtime.resume_tokens == ["", "1"]


def test_a_stream_the_server_cancelled_resumes(serve: Serve) -> None:
    """A server stopping cancels the streams still open when its grace period ends (seen in CI with a
    realtime restart under a watch through Envoy: CANCELLED, details "CANCELLED")."""
    realtime = FakeRealtime([Connection([event("1")], end=Failure(S.CANCELLED, "CANCELLED")),
                             Connection([event("2")])])
    with _connect(serve, realtime) as conduit:
        assert _ids(list(conduit.articles.watch("a"))) == ["1", "2"]
    assert realtime.resume_tokens == ["", "1"]


def test_a_watch_whose_client_closes_ends_without_reconnecting(serve: Serve) -> None:
    release = threading.Event()
    realtime = FakeRealtime([Connection([event("1")], hold=release), Connection([event("2")])])
    conduit = _connect(serve, realtime)
    try:
        watch = conduit.articles.watch("a")
        assert next(watch).event_id == "1"
        conduit.close()  # the channel cancels the open stream: CANCELLED, "Channel closed!"
        with pytest.raises(Exception, match=r"[Cc]hannel") as ended:
            next(watch)
        assert not isinstance(ended.value, StopIteration)
        assert realtime.resume_tokens == [""]
    finally:
        release.set()


def test_an_internal_error_the_server_sent_is_raised_at_once(serve: Serve) -> None:
    realtime = FakeRealtime([Connection([event("1")], end=Failure(S.INTERNAL, "handler failed"))])
    with _connect(serve, realtime) as conduit, pytest.raises(Internal):
        list(conduit.articles.watch("a"))
    assert len(realtime.resume_tokens) == 1


def test_errors_that_a_reconnect_cannot_fix_are_raised_at_once(serve: Serve) -> None:
    realtime = FakeRealtime([Connection([event("1")], end=Failure(S.NOT_FOUND, "article not found"))])
    with _connect(serve, realtime) as conduit:
        watch = conduit.articles.watch("gone")
        assert next(watch).event_id == "1"
        with pytest.raises(NotFound):
            next(watch)
    assert len(realtime.resume_tokens) == 1


def test_reconnects_give_up_after_the_budget(serve: Serve) -> None:
    realtime = FakeRealtime([Connection([], end=dropped()) for _ in range(10)])
    with _connect(serve, realtime) as conduit, pytest.raises(Unavailable):
        list(conduit.articles.watch("a", max_reconnects=3))
    assert len(realtime.resume_tokens) == 4


def test_progress_resets_the_reconnect_budget(serve: Serve) -> None:
    realtime = FakeRealtime([Connection([event(str(i))], end=dropped(str(i))) for i in range(5)]
                            + [Connection([event("5")])])
    with _connect(serve, realtime) as conduit:
        assert _ids(list(conduit.articles.watch("a", max_reconnects=1))) == [str(i) for i in range(6)]
    assert realtime.resume_tokens == ["", "0", "1", "2", "3", "4"]


def test_retry_info_sets_the_wait_before_reconnecting(serve: Serve) -> None:
    busy = Failure(S.RESOURCE_EXHAUSTED, "too many open streams", (error_info("TOO_MANY_STREAMS"),
                                                                   retry_info(0.3)))
    realtime = FakeRealtime([Connection([], end=busy), Connection([event("1")])])
    with _connect(serve, realtime) as conduit:
        started = time.monotonic()
        assert _ids(list(conduit.articles.watch("a"))) == ["1"]
    assert time.monotonic() - started >= 0.29


def test_a_watch_survives_the_server_going_away_and_coming_back(serve: Serve) -> None:
    hold = threading.Event()
    first = FakeRealtime([Connection([event("1"), event("2")], hold=hold)])
    server = serve((realtime_pb2_grpc.add_RealtimeServiceServicer_to_server, first))
    port = server.port
    policy = RetryPolicy(initial_backoff=0.05, max_backoff=0.5)
    second = FakeRealtime([Connection([event("3")])])
    with Conduit.connect(server.target, tls=False, retry=policy,
                         options=[("grpc.initial_reconnect_backoff_ms", 100),
                                  ("grpc.max_reconnect_backoff_ms", 200)]) as conduit:
        watch = conduit.articles.watch("a", max_reconnects=20)
        received = [next(watch), next(watch)]
        server.stop()  # the connection drops mid-stream: no status from the service
        hold.set()
        restart = threading.Timer(0.3, lambda: serve(
            (realtime_pb2_grpc.add_RealtimeServiceServicer_to_server, second), port=port))
        restart.start()
        received.extend(watch)
        restart.join()
    assert _ids(received) == ["1", "2", "3"]
    assert second.resume_tokens == ["2"]


def test_close_from_another_thread_ends_a_blocked_iteration(serve: Serve) -> None:
    hold = threading.Event()
    realtime = FakeRealtime([Connection([event("1")], hold=hold)])
    with _connect(serve, realtime) as conduit:
        watch = conduit.articles.watch("a")
        assert next(watch).event_id == "1"
        threading.Timer(0.2, watch.close).start()
        started = time.monotonic()
        assert list(watch) == []
        assert time.monotonic() - started < 2
    hold.set()


def test_watch_all_and_watch_feed_send_their_filters_token_and_credentials(serve: Serve) -> None:
    realtime = FakeRealtime([Connection([event("1", realtime_pb2.EVENT_TYPE_ARTICLE_CREATED)]),
                             Connection([event("2", realtime_pb2.EVENT_TYPE_ARTICLE_CREATED)])])
    server = serve((realtime_pb2_grpc.add_RealtimeServiceServicer_to_server, realtime))
    with Conduit.connect(server.target, tls=False, token="jwt-1") as conduit:
        everything = conduit.articles.watch_all(tag="grpc", author="jake", resume_token="0")
        assert isinstance(everything, Watch)
        assert _ids(list(everything)) == ["1"]
        assert _ids(list(conduit.articles.watch_feed(resume_token="1"))) == ["2"]
    articles_request, feed_request = realtime.requests
    assert isinstance(articles_request, realtime_pb2.WatchArticlesRequest)
    assert articles_request.tag == "grpc"
    assert (articles_request.author, articles_request.resume_token) == ("jake", "0")
    assert isinstance(feed_request, realtime_pb2.WatchFeedRequest)
    assert feed_request.resume_token == "1"


async def test_the_async_watch_resumes_with_the_last_event_id(serve: Serve) -> None:
    realtime = FakeRealtime([Connection([event("1"), heartbeat("1"), event("2")], end=dropped("2")),
                             Connection([event("3")], end=dropped("3", S.RESOURCE_EXHAUSTED)),
                             Connection([event("4")])])
    server = serve((realtime_pb2_grpc.add_RealtimeServiceServicer_to_server, realtime))
    conduit = await AsyncConduit.connect(server.target, tls=False, retry=FAST)
    async with conduit, conduit.articles.watch("a") as watch:
        received = [e.event_id async for e in watch]
    assert received == ["1", "2", "3", "4"]
    assert realtime.resume_tokens == ["", "2", "3"]


async def test_the_async_watch_raises_stream_expired(serve: Serve) -> None:
    realtime = FakeRealtime([Connection([], end=EXPIRED)])
    server = serve((realtime_pb2_grpc.add_RealtimeServiceServicer_to_server, realtime))
    async with await AsyncConduit.connect(server.target, tls=False, retry=FAST) as conduit:
        with pytest.raises(StreamExpired) as raised:
            _ = [e async for e in conduit.articles.watch_all(resume_token="1-0")]
    assert raised.value.resume_token == "1-0"


async def test_the_async_watch_gives_up_after_the_budget(serve: Serve) -> None:
    realtime = FakeRealtime([Connection([], end=dropped()) for _ in range(5)])
    server = serve((realtime_pb2_grpc.add_RealtimeServiceServicer_to_server, realtime))
    async with await AsyncConduit.connect(server.target, tls=False, retry=FAST) as conduit:
        with pytest.raises(Unavailable):
            _ = [e async for e in conduit.articles.watch("a", max_reconnects=2)]
    assert len(realtime.resume_tokens) == 3


async def test_closing_an_async_watch_ends_its_iteration(serve: Serve) -> None:
    hold = threading.Event()
    realtime = FakeRealtime([Connection([event("1")], hold=hold)])
    server = serve((realtime_pb2_grpc.add_RealtimeServiceServicer_to_server, realtime))
    async with await AsyncConduit.connect(server.target, tls=False) as conduit:
        watch = conduit.articles.watch_feed()
        assert (await anext(watch)).event_id == "1"
        asyncio.get_running_loop().call_later(0.2, watch.close)
        assert [e async for e in watch] == []
    hold.set()


def test_a_failed_token_renewal_on_reconnect_is_retried_like_a_drop(serve: Serve) -> None:
    clock = FakeClock()
    auth = FakeAuth(lifetime=100, clock=clock)
    auth.refresh_failures.append(UNAVAILABLE)  # the users service is briefly down as well
    expire = threading.Event()
    realtime = FakeRealtime([Connection([event("1")], end=dropped("1"), hold=expire),
                             Connection([event("2")])])
    server = serve((users_pb2_grpc.add_AuthServiceServicer_to_server, auth),
                   (realtime_pb2_grpc.add_RealtimeServiceServicer_to_server, realtime))
    credentials = PasswordCredentials("jake@example.com", "correct-horse")
    with Conduit.connect(server.target, tls=False, retry=FAST, credentials=credentials, clock=clock) as conduit:
        watch = conduit.articles.watch_feed()
        assert next(watch).event_id == "1"
        clock.advance(110)  # the access token has expired...
        expire.set()  # ...and the stream drops
        assert next(watch).event_id == "2"
    assert auth.refreshes == 2
    assert realtime.resume_tokens == ["", "1"]


def test_watches_ask_for_batches_and_hand_their_events_over_one_by_one_in_order(serve: Serve) -> None:
    batch = [event("2"), heartbeat("2"), event("3"), event("4")]
    realtime = FakeRealtime([Connection([heartbeat("1"), [event("1")], batch, event("5")]),
                             Connection([batch]), Connection([batch])])
    server = serve((realtime_pb2_grpc.add_RealtimeServiceServicer_to_server, realtime))
    with Conduit.connect(server.target, tls=False, token="jwt-1") as conduit:
        watch = conduit.articles.watch("a", include_heartbeats=True)
        assert [(e.event_id, e.type == realtime_pb2.EVENT_TYPE_HEARTBEAT) for e in watch] == [
            ("1", True), ("1", False), ("2", False), ("2", True), ("3", False), ("4", False), ("5", False)]
        assert _ids(list(conduit.articles.watch_all())) == ["2", "3", "4"]
        assert _ids(list(conduit.articles.watch_feed())) == ["2", "3", "4"]
    assert [(type(r).__name__, r.batched) for r in realtime.requests] == [  # type: ignore[attr-defined]
        ("WatchArticleRequest", True), ("WatchArticlesRequest", True), ("WatchFeedRequest", True)]


def test_a_watch_stopped_mid_batch_resumes_after_the_last_event_handed_over_not_the_batchs_last(
        serve: Serve) -> None:
    realtime = FakeRealtime([Connection([[event("1"), event("2"), event("3")]], end=dropped("3")),
                             Connection([[event("3")]])])
    with _connect(serve, realtime) as conduit:
        with conduit.articles.watch("a") as watch:
            assert [next(watch).event_id, next(watch).event_id] == ["1", "2"]
            assert watch.resume_token == "2"  # "3" arrived in the same message but was never handed over
        assert watch.resume_token == "2"
        assert _ids(list(conduit.articles.watch("a", resume_token=watch.resume_token))) == ["3"]
    assert realtime.resume_tokens == ["", "2"]


def test_a_batched_stream_dropped_after_a_batch_resumes_after_its_last_event(serve: Serve) -> None:
    realtime = FakeRealtime([Connection([[event("1"), event("2"), event("3")]], end=dropped("3")),
                             Connection([[event("4"), event("5")], event("6")])])
    with _connect(serve, realtime) as conduit, conduit.articles.watch("a") as watch:
        assert _ids(list(watch)) == ["1", "2", "3", "4", "5", "6"]
    assert realtime.resume_tokens == ["", "3"]


async def test_the_async_watch_unpacks_batches_and_resumes_after_the_last_event_handed_over(
        serve: Serve) -> None:
    realtime = FakeRealtime([Connection([[event("1"), heartbeat("1"), event("2")]], end=dropped("2")),
                             Connection([[event("3"), event("4"), event("5")]]),
                             Connection([[event("5")]])])
    server = serve((realtime_pb2_grpc.add_RealtimeServiceServicer_to_server, realtime))
    conduit = await AsyncConduit.connect(server.target, tls=False, retry=FAST)
    async with conduit:
        async with conduit.articles.watch("a") as watch:
            received = [(await anext(watch)).event_id for _ in range(4)]
        assert watch.resume_token == "4"
        rest = [e.event_id async for e in conduit.articles.watch("a", resume_token=watch.resume_token)]
    assert received == ["1", "2", "3", "4"]
    assert rest == ["5"]
    assert realtime.resume_tokens == ["", "2", "4"]
    assert all(request.batched for request in realtime.requests)  # type: ignore[attr-defined]
