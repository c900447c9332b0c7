"""The one Redis reader of the process and its fan-out to every local stream.

One StreamFollower (runtime/tail.py) XREADs the articles stream (and the users stream, for
follows and profile changes) from its last position and offers each new event to the streams it may concern:
adding streams adds no Redis load. A batch is deduplicated by event id (the outbox relay
publishes at least once), enriched with ONE profile look-up, and fanned out without ever
waiting on a stream; the position advances only past events offered to every stream — so a
failure (Redis or users away) retries the same batch after a backoff and no retained event
is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from conduit_server.realtime.domain.enrich import Entry, Prepared, Preparer
from conduit_server.realtime.domain.follows import FollowGraph
from conduit_server.realtime.domain.ids import ORIGIN, StreamId
from conduit_server.realtime.domain.watchers import ArticleSelector, Offer, Watcher
from conduit_server.realtime.events import RecentIds, decode_entries, drop_duplicates
from conduit_server.realtime.repository.history import xrevrange
from conduit_server.runtime import telemetry
from conduit_server.runtime.errors import ConduitError, RateLimited, ResourceExhausted
from conduit_server.runtime.settings import RealtimeSettings
from conduit_server.runtime.tail import RawEntry, StreamFollower
from conduit_server.runtime.tasks import cancel_until_done
from conduit_server.users.client.profiles import ProfileCache, user_events

log = logging.getLogger("conduit.realtime.hub")

# Events fanned out between two yields to the event loop.
FAN_OUT_SLICE = 32


@dataclass
class Counters:
    """Plain counters; `Hub.metrics()` adds the gauges."""

    events_read: int = 0
    duplicates_dropped: int = 0
    malformed_entries: int = 0
    events_queued: int = 0
    events_delivered: int = 0
    event_messages_sent: int = 0  # below events_delivered when batched streams batch
    heartbeats_sent: int = 0
    slow_consumer_disconnects: int = 0
    refused_streams: int = 0
    refused_streams_per_client: int = 0
    resumes: int = 0
    resumes_out_of_range: int = 0
    follow_events: int = 0
    by_method: dict[str, int] = field(default_factory=dict)


class Hub:
    """Reader, fan-out and registry of the process's streams."""

    def __init__(self, redis: aioredis.Redis, preparer: Preparer, profiles: ProfileCache,
                 follows: FollowGraph, config: RealtimeSettings) -> None:
        self.redis = redis
        self.preparer = preparer
        self.profiles = profiles
        self.follows = follows
        self.config = config
        self.counters = Counters()
        # Every entry of the articles stream up to here has been offered to the live streams.
        self.position: StreamId | None = None
        self._recent = RecentIds(config.dedupe_window)
        self._ready = asyncio.Event()
        self._closing = False
        self._streams: set[Watcher] = set()  # every open stream, live or catching up
        self._per_client: dict[str, int] = {}  # open streams by client (auth.client_key)
        self._broadcast: set[Watcher] = set()  # live WatchFeed / WatchArticles streams
        self._by_slug: dict[str, set[Watcher]] = {}  # live WatchArticle streams by current slug
        self._tasks: list[asyncio.Task[None]] = []
        streams = [config.users_stream] if config.users_stream else []  # follows first, then articles
        self.reader = StreamFollower(redis, [*streams, config.articles_stream], on_entries=self._changed,
                                     start=self._initialise, block_ms=config.read_block_ms,
                                     count=config.read_count, retry_initial_seconds=config.retry_initial_seconds,
                                     retry_max_seconds=config.retry_max_seconds)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self.reader.run(), name="realtime-reader"))
        if self.config.metrics_log_seconds > 0:
            self._tasks.append(asyncio.create_task(self._every(self.config.metrics_log_seconds, self._log),
                                                   name="realtime-metrics"))
        if self.config.follow_refresh_seconds > 0:
            refresh = self._every(self.config.follow_refresh_seconds, self.follows.refresh)
            self._tasks.append(asyncio.create_task(refresh, name="realtime-follows"))

    async def stop(self) -> None:
        await self.reader.stop()
        for task in self._tasks:
            await cancel_until_done(task)
        self._tasks.clear()

    async def wait_ready(self) -> bool:
        """True once the reader knows its starting position (it has reached Redis once)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), self.config.ready_timeout_seconds)
        return self._ready.is_set()

    @property
    def closing(self) -> bool:
        return self._closing

    def close_all(self, error: Callable[[StreamId | None], ConduitError]) -> None:
        """End every stream (shutdown): each gets `error(its resume position)`."""
        self._closing = True
        for watcher in list(self._streams):
            watcher.close(error)
            self._unlink(watcher)

    # -- registry ----------------------------------------------------------------------------

    def attach(self, watcher: Watcher) -> None:
        """Count a new stream (not yet fed). Past `max_watchers` on this process, or past
        `max_watchers_per_client` for the watcher's client, it is refused: RESOURCE_EXHAUSTED with a
        RetryInfo (REST: 429 with Retry-After), so one client cannot take every stream."""
        retry = self.config.refused_stream_retry_seconds
        if len(self._streams) >= self.config.max_watchers:
            self.counters.refused_streams += 1
            raise RateLimited("too many open streams on this server; retry later", retry,
                              reason="TOO_MANY_STREAMS")
        held = self._per_client.get(watcher.client, 0)
        if held >= self.config.max_watchers_per_client:
            self.counters.refused_streams_per_client += 1
            raise RateLimited(f"this client has {held} open streams, the most allowed; close one or retry later",
                              retry, reason="TOO_MANY_STREAMS_FOR_CLIENT",
                              metadata={"max_streams": str(self.config.max_watchers_per_client)})
        self._per_client[watcher.client] = held + 1
        self._streams.add(watcher)
        self.counters.by_method[watcher.method] = self.counters.by_method.get(watcher.method, 0) + 1

    def go_live(self, watcher: Watcher) -> None:
        """Feed `watcher` every event after `self.position` (synchronous: nothing slips between)."""
        if watcher.done:
            return
        watcher.live = True
        watcher.seen = self.position
        if isinstance(watcher.selector, ArticleSelector):
            self._by_slug.setdefault(watcher.selector.slug, set()).add(watcher)
        else:
            self._broadcast.add(watcher)

    def detach(self, watcher: Watcher) -> None:
        self._unlink(watcher)
        if watcher in self._streams:
            self._streams.discard(watcher)
            held = self._per_client[watcher.client] - 1
            if held:
                self._per_client[watcher.client] = held
            else:
                del self._per_client[watcher.client]

    def _unlink(self, watcher: Watcher) -> None:
        self._broadcast.discard(watcher)
        if isinstance(watcher.selector, ArticleSelector):
            self._unindex(watcher, watcher.selector.slug)

    def _unindex(self, watcher: Watcher, slug: str) -> None:
        watchers = self._by_slug.get(slug)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._by_slug[slug]

    # -- fan-out -----------------------------------------------------------------------------

    def fan_out(self, event: Prepared) -> None:
        """Offer `event` to every live stream it may concern; never waits."""
        candidates = list(self._broadcast)
        for slug in {event.slug, event.previous_slug}:
            candidates.extend(self._by_slug.get(slug, ()))
        for watcher in candidates:
            before = watcher.selector.slug if isinstance(watcher.selector, ArticleSelector) else ""
            outcome = watcher.offer(event)
            if outcome is Offer.SKIPPED:
                continue
            if outcome is Offer.OVERFLOW:
                self.counters.slow_consumer_disconnects += 1
                watcher.close(_too_slow(watcher.max_queued))
                self._unlink(watcher)
                continue
            self.counters.events_queued += 1
            if outcome is Offer.FINAL:
                self._unlink(watcher)
            elif isinstance(watcher.selector, ArticleSelector) and watcher.selector.slug != before:
                self._unindex(watcher, before)
                self._by_slug.setdefault(watcher.selector.slug, set()).add(watcher)

    def _advance(self, position: StreamId) -> None:
        self.position = position
        for watchers in (self._broadcast, *self._by_slug.values()):
            for watcher in watchers:
                watcher.seen = position

    # -- the reader --------------------------------------------------------------------------

    async def _initialise(self) -> dict[str, str]:
        """Start after the newest entries, remembering the recent event ids (their re-publications drop)."""
        stream = self.config.articles_stream
        newest = await xrevrange(self.redis, stream, "+", count=self.config.dedupe_window)
        self._recent.extend(newest)
        positions: dict[str, str] = {}
        if self.config.users_stream:
            users = await xrevrange(self.redis, self.config.users_stream, "+", count=1)
            positions[self.config.users_stream] = str(StreamId.parse(users[0][0]) if users else ORIGIN)
        self._advance(StreamId.parse(newest[0][0]) if newest else ORIGIN)
        positions[stream] = str(self.position)
        self._ready.set()
        log.info("realtime reader starts after %s", self.position)
        return positions

    async def _changed(self, stream: str, raw: Sequence[RawEntry]) -> None:
        if stream == self.config.users_stream:
            self._users_changed(raw)
        else:
            await self._articles_changed(raw)

    async def _articles_changed(self, raw: Sequence[RawEntry]) -> None:
        entries, last, malformed = decode_entries(raw)
        fresh, duplicates = drop_duplicates(entries, self._recent)
        # One span per delivered batch, linked to the traces of the writes (decision 0018).
        with telemetry.consumer_span("realtime deliver", [entry.traceparent for entry in fresh],
                                     stream=self.config.articles_stream, events=len(fresh)):
            await self._deliver(fresh)
        self.counters.duplicates_dropped += duplicates
        self.counters.malformed_entries += malformed
        if last is not None:
            self._advance(last)

    async def _deliver(self, fresh: Sequence[Entry]) -> None:
        prepared = await self.preparer.prepare(fresh)  # raises: the batch is retried whole
        self.counters.events_read += len(fresh)
        for entry in fresh:
            self._recent.add(entry.event_id)
        for n, event in enumerate(prepared, start=1):
            self.fan_out(event)
            self.position = event.id
            if n % FAN_OUT_SLICE == 0:
                # Let streams send (and heartbeats, subscriptions run) during a large burst. Every
                # stream has been offered everything up to `position`: a stream joining now is fed
                # from the next event on.
                self._advance(event.id)
                await asyncio.sleep(0)

    def _users_changed(self, raw: Sequence[RawEntry]) -> None:
        for event in user_events(raw):
            which = event.WhichOneof("payload")
            if which == "follow_changed":
                change = event.follow_changed
                self.counters.follow_events += 1
                self.follows.follow_changed(change.follower_id, change.followee_id, change.following)
            elif which == "user_updated":
                self.profiles.evict(event.user_updated.user_id)

    # -- metrics -----------------------------------------------------------------------------

    def metrics(self) -> dict[str, Any]:
        """Counters and gauges: current watchers (total, live, by method), deliveries, disconnects."""
        counters = self.counters
        open_by_method: dict[str, int] = {}
        for watcher in self._streams:
            open_by_method[watcher.method] = open_by_method.get(watcher.method, 0) + 1
        return {
            "watchers": len(self._streams),
            "watchers_live": len(self._broadcast) + sum(len(w) for w in self._by_slug.values()),
            "watchers_by_method": open_by_method,
            "streams_opened_by_method": dict(counters.by_method),
            "events_read": counters.events_read,
            "events_queued": counters.events_queued,
            "events_delivered": counters.events_delivered,
            "event_messages_sent": counters.event_messages_sent,
            "heartbeats_sent": counters.heartbeats_sent,
            "slow_consumer_disconnects": counters.slow_consumer_disconnects,
            "refused_streams": counters.refused_streams,
            "refused_streams_per_client": counters.refused_streams_per_client,
            "clients": len(self._per_client),
            "duplicates_dropped": counters.duplicates_dropped,
            "malformed_entries": counters.malformed_entries + self.preparer.malformed,
            "resumes": counters.resumes,
            "resumes_out_of_range": counters.resumes_out_of_range,
            "read_failures": self.reader.failures,
            "follow_events": counters.follow_events,
            "followee_sets": len(self.follows),
            "queued_now": sum(w.queued for w in self._streams),
            "profile_cache_hits": self.profiles.hits,
            "profile_cache_misses": self.profiles.misses,
            "position": str(self.position) if self.position else "",
        }

    def _log(self) -> None:
        log.info("realtime metrics", extra={"metrics": self.metrics()})

    @staticmethod
    async def _every(seconds: float, action: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                result = action()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # a periodic chore must not stop the service
                log.exception("realtime periodic task failed")


def _too_slow(max_queued: int) -> Callable[[StreamId | None], ConduitError]:
    def error(position: StreamId | None) -> ConduitError:
        last = str(position) if position else ""
        return ResourceExhausted(
            f"stream fell more than {max_queued} events behind and was ended; "
            f"resume with last_event_id {last!r} to continue without a gap",
            reason="SLOW_CONSUMER", metadata={"last_event_id": last})
    return error
