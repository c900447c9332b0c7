"""The search service: its backend chosen by settings, the indexer, search and reindex wired together."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import grpc
import redis.asyncio as aioredis

from conduit.search.v1 import search_pb2, search_pb2_grpc
from conduit_server.articles.client.records import ArticleRecordsClient
from conduit_server.runtime import channels, migrations, outbox
from conduit_server.runtime.db import Database
from conduit_server.runtime.errors import FailedPrecondition
from conduit_server.runtime.resources import Resources
from conduit_server.runtime.server import Binding
from conduit_server.runtime.settings import Settings
from conduit_server.runtime.tail import RawEntry, StreamFollower
from conduit_server.search import api
from conduit_server.search.domain.ports import IndexStatus, SearchBackend
from conduit_server.search.domain.reindex import ProgressCallback, Reindexer
from conduit_server.search.domain.search import Searcher
from conduit_server.search.domain.sharing import SharedSearches, SharedViews
from conduit_server.search.events import Indexer, StreamLog, changed_article_ids
from conduit_server.search.repository import models
from conduit_server.search.repository.lease import Lease
from conduit_server.search.repository.peers import ArticlesSource, UsersDirectory
from conduit_server.search.repository.postgres import PostgresBackend
from conduit_server.users.client.calls import UsersClient
from conduit_server.users.client.profiles import user_events

log = logging.getLogger("conduit.search")
SCHEMA = models.SCHEMA
MIGRATIONS = Path(__file__).parent / "migrations"
EVENTS_STREAM = outbox.stream_name("articles")
USERS_STREAM = outbox.stream_name("users")
REINDEX_LOCK = "conduit:search:reindex"
# The lock's time to live, renewed every third of it while the reindex runs (docs/decisions/0023):
# a crashed reindex blocks the next one for at most this long.
REINDEX_LOCK_SECONDS = 30.0


def build_backend(settings: Settings, database_url: str) -> SearchBackend:
    """Elasticsearch when CONDUIT_ELASTICSEARCH_URL is set, else PostgreSQL full-text search."""
    if settings.elasticsearch_url:
        from conduit_server.search.repository.elastic import ElasticBackend

        return ElasticBackend(settings.elasticsearch_url, alias=settings.search_index)
    return PostgresBackend(Database.from_settings(settings, database_url, SCHEMA),
                           concurrency=settings.search_database_concurrency)


class SearchApp:
    """Owns its backend, its Redis client and its channel to the articles service; the users channel
    belongs to the caller (shared with the token verifier)."""

    name = "search"
    # Read by the metrics endpoint (runtime/metrics.track_app): counters among `metrics()`.
    metric_counters = ("search_documents_indexed", "search_indexing_failures", "search_events_acknowledged")

    def __init__(self, settings: Settings, backend: SearchBackend, redis: aioredis.Redis,
                 users_channel: grpc.aio.Channel, articles_channel: grpc.aio.Channel, *,
                 stream: str = EVENTS_STREAM, consumer: str = "",
                 reindex_lock_seconds: float = REINDEX_LOCK_SECONDS) -> None:
        self.settings = settings
        self.store = backend
        # Searches, the indexer and reindexes all go through the sharing wrapper: its writes forget.
        self.backend: SearchBackend = backend if settings.search_answers_shared_seconds == 0 else SharedSearches(
            backend, ttl=settings.search_answers_shared_seconds, entries=settings.search_answers_shared_entries)
        self.redis = redis
        self.articles_channel = articles_channel
        timeout = settings.internal_call_timeout_seconds
        self.article_records = ArticleRecordsClient(articles_channel, settings.internal_token.get_secret_value(),
                                                    timeout_seconds=timeout)
        self.articles = ArticlesSource(self.article_records)
        users = UsersClient(users_channel, timeout_cap_seconds=timeout)
        self.views: SharedViews | None = None
        if settings.search_answers_shared_seconds:
            self.views = SharedViews(self.articles, ttl=settings.search_views_kept_seconds,
                                     entries=settings.search_views_kept_entries, name="search.anonymous_views")
        # Article and profile events evict the anonymous views; a gap (start, Redis lost) clears them.
        self.views_tail = StreamFollower(redis, [stream, USERS_STREAM], on_entries=self._changed,
                                         on_gap=self.views.clear if self.views else None)
        self.searcher = Searcher(self.backend, self.views or self.articles,
                                 UsersDirectory(users, timeout_seconds=timeout))
        self.events = StreamLog(redis, stream)
        self.indexer = Indexer(redis, stream, self.backend, consumer=consumer,
                               claim_idle_ms=int(settings.search_claim_idle_seconds * 1000))
        self.reindex_lock_seconds = reindex_lock_seconds

    @classmethod
    def from_resources(cls, resources: Resources) -> SearchApp:
        settings = resources.settings
        articles_channel = channels.internal_channel(settings.grpc_target("articles"),
                                                     settings.internal_token.get_secret_value())
        return cls(settings, build_backend(settings, resources.database_url), resources.redis,
                   resources.users_channel, articles_channel)

    def bindings(self) -> Sequence[Binding]:
        return [Binding(search_pb2.DESCRIPTOR.services_by_name["SearchService"],
                        search_pb2_grpc.add_SearchServiceServicer_to_server,
                        api.SearchApi(self.searcher, self.reindex, self.status))]

    async def reindex(self, progress: ProgressCallback) -> int:
        """One full reindex at a time across replicas (a Redis lease, renewed while it runs)."""
        lease = Lease(self.redis, REINDEX_LOCK, ttl_seconds=self.reindex_lock_seconds, owner=self.indexer.consumer)
        async with lease.held(FailedPrecondition("a reindex is already running", reason="REINDEX_RUNNING")):
            return await Reindexer(self.backend, self.articles, self.events).run(progress)

    async def status(self) -> IndexStatus:
        """What `conduit search status` and the metrics show: the index, the lag, documents indexed.
        The metrics work hooks this function (indexing lag, documents indexed)."""
        return IndexStatus(await self.backend.stats(), await self.indexer.lag_seconds(),
                           self.indexer.documents_indexed)

    def metrics(self) -> dict[str, int]:
        """This replica's indexer in numbers (the lag is a gauge the indexer sets per batch)."""
        return {"search_documents_indexed": self.indexer.documents_indexed,
                "search_indexing_failures": self.indexer.failures,
                "search_events_acknowledged": self.indexer.entries_acknowledged}

    def _changed(self, stream: str, entries: Sequence[RawEntry]) -> None:
        if self.views is None:
            return
        if stream == USERS_STREAM:
            if any(event.WhichOneof("payload") == "user_updated" for event in user_events(entries)):
                self.views.author_changed()
            return
        changed = changed_article_ids(entries)
        if changed is None:
            self.views.clear()
            return
        for article_id in changed:
            self.views.evict(article_id)

    async def start(self) -> None:
        if isinstance(self.store, PostgresBackend):
            await migrations.upgrade(self.store.database, MIGRATIONS, models.Base.metadata)
        await self.backend.prepare()
        self.indexer.start()
        if self.views is not None:
            self.views_tail.start()

    async def close(self) -> None:
        await self.views_tail.stop()
        await self.indexer.stop()
        await self.backend.close()
        await self.articles_channel.close(None)
        await self.redis.aclose()
