"""Graceful shutdown ends streams resumably; a Redis restart pauses streams and loses no event."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import redis.asyncio as aioredis

from conduit.realtime.v1 import realtime_pb2, realtime_pb2_grpc
from conduit_server.realtime.app import RealtimeApp
from conduit_server.runtime import channels, outbox
from conduit_server.runtime.db import Database
from conduit_server.runtime.resources import Resources
from conduit_server.runtime.server import GrpcServer
from tests.conftest import free_port
from tests.fixtures.users import INTERNAL_TOKEN, UsersServer, settings_for
from tests.realtime.support import (
    HEARTBEAT,
    Events,
    TcpRedis,
    Watch,
    comment_added,
    config_for,
    created,
    relaying,
    running_realtime,
)
from tests.support import details


async def test_shutdown_ends_every_stream_with_unavailable_and_the_position_to_resume_from(
        events: Events, redis_url: str, users_server: UsersServer) -> None:
    author_id, token = await users_server.register("realtime-shutdown-author")
    async with running_realtime(redis_url, users_server, config_for(events.stream)) as replica:
        busy = replica.watch_articles()
        quiet = replica.watch_article("quiet-one")
        feed = replica.watch_feed(metadata=users_server.auth(token))
        for watch in (busy, quiet, feed):
            await watch.joined()
        await events.write(created(1, "first", author_id), created(2, "second", author_id))
        entries = await events.published()
        await busy.take(2)

        await replica.app.shutting_down()  # what GrpcServer.stop calls once health is NOT_SERVING

        for watch in (busy, quiet, feed):
            error = await watch.error()
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            info = details(error)["ErrorInfo"]
            assert info.reason == "SHUTTING_DOWN"
            # Every stream had seen everything up to the newest entry: that is where to resume.
            assert info.metadata["last_event_id"] == entries[-1][0].decode()
            assert entries[-1][0].decode() in (error.details() or "")
        refused = await replica.watch_articles().error()
        assert refused.code() == grpc.StatusCode.UNAVAILABLE
        assert details(refused)["ErrorInfo"].reason == "SHUTTING_DOWN"
        assert replica.app.metrics()["watchers"] == 0

    # Another replica continues from the id: nothing missed, nothing repeated.
    await events.write(created(3, "third", author_id))
    async with running_realtime(redis_url, users_server, config_for(events.stream)) as other:
        resumed = other.watch_articles(resume_token=entries[-1][0].decode())
        assert (await resumed.next()).article.slug == "third"


async def test_the_grpc_servers_graceful_stop_ends_streams_resumably(
        events: Events, redis_url: str, users_server: UsersServer) -> None:
    author_id, _ = await users_server.register("realtime-shutdown-author")
    async with running_realtime(redis_url, users_server, config_for(events.stream)) as replica:
        watch = replica.watch_articles()
        await watch.joined()
        await events.write(created(1, "only", author_id))
        event = await watch.next()
        started = time.monotonic()
        stopping = asyncio.create_task(replica.server.stop())
        error = await watch.error()
        await stopping
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert details(error)["ErrorInfo"].metadata["last_event_id"] == event.event_id
        assert time.monotonic() - started < 1.0  # ended at once, not at the grace limit


async def test_a_redis_restart_pauses_streams_which_then_continue_without_losing_an_event(
        events_database: Database, users_server: UsersServer, tmp_path: Path) -> None:
    author_id, _ = await users_server.register("realtime-restart-author")
    redis_server = TcpRedis(tmp_path / "redis", free_port())
    await asyncio.to_thread(redis_server.start)
    redis = aioredis.Redis.from_url(redis_server.url)
    config = config_for("test:realtime:restart", users_stream="", heartbeat_seconds=0.3)
    try:
        async with relaying(events_database, redis, config.articles_stream) as writer, \
                running_realtime(redis_server.url, users_server, config) as realtime:
            watch = realtime.watch_articles()
            article = realtime.watch_article("watched")
            await watch.joined()
            await article.joined()
            await writer.write(*(created(n, f"before-{n}", author_id) for n in range(5)))
            before = await watch.take(5)

            await asyncio.to_thread(redis_server.stop)
            # Written during the outage: the outbox keeps them until Redis is back.
            await writer.write(*(created(n, f"during-{n}", author_id) for n in range(5, 10)),
                               comment_added(1, 77, "watched", author_id, "made during the outage"))
            heartbeat = await watch.message(within=3)  # the stream stays open while Redis is away
            assert heartbeat is not None
            assert heartbeat.type == HEARTBEAT
            resume_now = await realtime.watch_articles(resume_token=before[0].event_id).error()
            assert resume_now.code() == grpc.StatusCode.UNAVAILABLE
            assert details(resume_now)["ErrorInfo"].metadata["last_event_id"] == before[0].event_id
            deadline = time.monotonic() + 5
            while not realtime.app.metrics()["read_failures"]:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)

            await asyncio.to_thread(redis_server.start)  # same port, same data directory
            after = await watch.take(5, within=30)
            assert (await article.next(within=10)).comment.body == "made during the outage"

            entries = await writer.published()
            assert [e.event_id for e in before + after] == [entry_id.decode() for entry_id, _ in entries[:10]]
            assert [e.article.slug for e in after] == [f"during-{n}" for n in range(5, 10)]
            # What was retained before the outage is still there: a resume from the first event works.
            resumed = realtime.watch_articles(resume_token=before[0].event_id)
            assert [e.event_id for e in await resumed.take(9)] == [e.event_id for e in before[1:] + after]
    finally:
        await redis.aclose()
        await asyncio.to_thread(redis_server.stop)


async def test_the_app_is_built_from_the_process_resources_as_serve_builds_it(
        postgres_url: str, redis_url: str, users_server: UsersServer) -> None:
    settings = settings_for(postgres_url, redis_url)
    users_channel = channels.internal_channel(users_server.address, INTERNAL_TOKEN)
    resources = Resources(settings, postgres_url, aioredis.Redis.from_url(redis_url), users_channel)
    app = RealtimeApp.from_resources(resources)
    assert app.config.articles_stream == outbox.stream_name("articles")
    assert app.config.users_stream == outbox.stream_name("users")
    server = GrpcServer(app, host="127.0.0.1", port=0, verifier=users_server.app.verifier,
                        internal_token=INTERNAL_TOKEN)
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            watch = Watch(realtime_pb2_grpc.RealtimeServiceStub(channel).WatchArticles(
                realtime_pb2.WatchArticlesRequest()))
            await watch.joined()
            assert app.metrics()["watchers"] == 1
            watch.cancel()
    finally:
        await server.stop()
        await users_channel.close(None)
