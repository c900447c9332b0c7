"""The life of one stream: resume from history, then live from the hub, heartbeats, end states.

Resume: the events after the token are read from Redis page by page up to the hub's
position P, then the stream joins the hub — synchronously, so every entry after P reaches
it from the hub and none up to P does: no gap, no duplicate, and no buffer that a long
history could overflow. Each page starts AT the previous page's last entry: if that entry
is gone, the stream was trimmed past the client (OUT_OF_RANGE, never a silent gap).

Batching (`batched` in the request): each message carries every event ready when it is sent —
after one event arrives, whatever else is already queued (or the rest of a history page), up to
MAX_EVENTS_PER_MESSAGE. Nothing waits for a batch to fill, so batches form only when the client
or this server is behind, and then one gRPC send (the dominant cost) serves many events.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence, Set

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from conduit_server.realtime.domain.enrich import MAX_EVENTS_PER_MESSAGE, batch, heartbeat
from conduit_server.realtime.domain.hub import Hub
from conduit_server.realtime.domain.ids import ORIGIN, StreamId, parse_resume_token
from conduit_server.realtime.domain.watchers import Item, Selector, Watcher
from conduit_server.realtime.events import RecentIds, decode_entries, drop_duplicates
from conduit_server.realtime.repository.history import xrange, xrevrange
from conduit_server.runtime.errors import ConduitError, OutOfRange, Unavailable
from conduit_server.runtime.settings import RealtimeSettings
from conduit_server.runtime.tail import RawEntry

log = logging.getLogger("conduit.realtime")

SelectorFactory = Callable[[Set[int] | None], Selector]
# Single-event messages to one wire message: `batch`, or the message itself when unbatched.
Framing = Callable[[Sequence[bytes]], bytes]


def _single(messages: Sequence[bytes]) -> bytes:
    (message,) = messages
    return message


def token_of(position: StreamId | None) -> str:
    """The resume token for a position ("" when nothing has been seen yet)."""
    return "" if position is None or position == ORIGIN else str(position)


def unavailable(message: str, reason: str) -> Callable[[StreamId | None], ConduitError]:
    """UNAVAILABLE carrying the position to resume from, in the message and in ErrorInfo metadata."""
    def error(position: StreamId | None) -> ConduitError:
        last = token_of(position)
        return Unavailable(f"{message}; resume with last_event_id {last!r}", reason=reason,
                           metadata={"last_event_id": last})
    return error


class Streams:
    """Opens and runs streams against one hub."""

    def __init__(self, hub: Hub, config: RealtimeSettings) -> None:
        self.hub = hub
        self.config = config

    async def watch(self, method: str, selector: SelectorFactory, *, resume_token: str,
                    user_id: int | None, batched: bool = False, client: str = "") -> AsyncIterator[bytes]:
        """The serialized messages of one stream; `user_id` personalises `following`; `batched`: each
        message carries every event ready when it is sent (`events`), else one (`event`); `client`:
        whom the per-client cap counts the stream for."""
        resume_after = parse_resume_token(resume_token)
        if self.hub.closing:
            raise unavailable("this server is shutting down", "SHUTTING_DOWN")(resume_after)
        if not await self.hub.wait_ready():
            raise unavailable("the event stream is unavailable", "EVENTS_UNAVAILABLE")(resume_after)
        try:
            followees = await self.hub.follows.acquire(user_id) if user_id else None
        except Unavailable as error:
            raise unavailable(error.message, error.reason)(resume_after) from None
        try:
            watcher = Watcher(method, selector(followees), max_queued=self.config.max_queued_per_watcher,
                              resume_after=resume_after, client=client)
            self.hub.attach(watcher)
            try:
                async for message in self._run(watcher, resume_after, batched):
                    yield message
            finally:
                self.hub.detach(watcher)
        finally:
            if user_id:
                self.hub.follows.release(user_id)

    async def _run(self, watcher: Watcher, resume_after: StreamId | None,
                   batched: bool) -> AsyncIterator[bytes]:
        limit, frame = (MAX_EVENTS_PER_MESSAGE, batch) if batched else (1, _single)
        try:
            if resume_after is not None:
                self.hub.counters.resumes += 1
                async for message in self._catch_up(watcher, resume_after, limit, frame):
                    yield message
            else:
                self.hub.go_live(watcher)
        except RedisError as error:
            log.warning("resume of %s failed: %r", watcher.method, error)
            raise unavailable("the event store is unavailable", "EVENTS_UNAVAILABLE")(watcher.position()) \
                from None
        except Unavailable as error:
            if "last_event_id" in error.metadata:
                raise
            raise unavailable(error.message, error.reason)(watcher.position()) from None
        watcher.raise_if_closed()
        if watcher.done:  # the article was deleted during the history: the stream is complete
            return
        counters = self.hub.counters
        # The first live message: the stream has joined, and the client holds a resume token already.
        yield frame([heartbeat(token_of(watcher.position()))])
        while True:
            if not await watcher.wait(self.config.heartbeat_seconds):
                counters.heartbeats_sent += 1
                yield frame([heartbeat(token_of(watcher.position()))])
                continue
            # Batched: everything queued by now rides along (up to the cap), one send for all of it.
            payloads, event_id, final = watcher.take(limit)
            watcher.last_sent = event_id  # before the hand-over: from here on they are on their way
            counters.events_delivered += len(payloads)
            counters.event_messages_sent += 1
            yield frame(payloads)
            if final:
                return

    async def _catch_up(self, watcher: Watcher, after: StreamId, limit: int,
                        frame: Framing) -> AsyncIterator[bytes]:
        redis, stream, page = self.hub.redis, self.config.articles_stream, self.config.read_count
        # Entries up to the token: its own presence proves retention, their ids seed the dedupe window.
        before = await xrevrange(redis, stream, str(after), count=self.config.dedupe_window)
        await self._check_anchor(redis, stream, before, after)
        recent = RecentIds(self.config.dedupe_window)
        recent.extend(before)
        while True:
            watcher.raise_if_closed()  # shutdown while catching up
            target = self.hub.position
            if target is None or after >= target:
                self.hub.go_live(watcher)  # no await since reading `target`: nothing slips between
                return
            raw = await xrange(redis, stream, str(after), str(target), count=page + 1)
            await self._check_anchor(redis, stream, raw, after)
            entries, last, _ = decode_entries(raw[1:])
            fresh, _ = drop_duplicates(entries, recent)
            prepared = await self.hub.preparer.prepare(fresh)
            for entry in fresh:
                recent.add(entry.event_id)
            selected: list[Item] = []
            for event in prepared:
                payload = watcher.selector.select(event)
                if payload is not None:
                    selected.append((event.id, payload, event.final))
                    if event.final:
                        break
            for start in range(0, len(selected), limit):
                items = selected[start:start + limit]
                event_id, _, final = items[-1]
                watcher.last_sent = event_id  # before the hand-over, as live
                self.hub.counters.events_delivered += len(items)
                self.hub.counters.event_messages_sent += 1
                yield frame([payload for _, payload, _ in items])
                if final:
                    watcher.done = True
                    return
            after = last if last is not None else target

    async def _check_anchor(self, redis: aioredis.Redis, stream: str, entries: list[RawEntry],
                            anchor: StreamId) -> None:
        if entries and StreamId.parse(entries[0][0]) == anchor:
            return
        self.hub.counters.resumes_out_of_range += 1
        oldest = await xrange(redis, stream, "-", "+", count=1)
        retained = f"the oldest is {oldest[0][0].decode()}" if oldest else "none are retained"
        raise OutOfRange(
            f"resume token {anchor} is outside the retained events ({retained}); refetch the resource, "
            "then watch again without a resume_token", reason="RESUME_TOKEN_EXPIRED",
            metadata={"resume_token": str(anchor)})

