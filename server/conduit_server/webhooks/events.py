"""What webhooks consumes: the articles and users event streams, through one Redis consumer group each.

Every entry of a subscribed type becomes one queued message per subscribed endpoint (the queue's
unique (endpoint, event id) makes a re-read harmless); entries are acknowledged only after their
messages are committed, so a crash re-reads them (this consumer on restart, another through
XAUTOCLAIM once idle). The service publishes nothing.

The body of a delivery (Standard Webhooks' recommended shape):
`{"type": "article.created", "timestamp": "<RFC 3339>", "data": {…the event, protobuf JSON…}}`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import redis.asyncio as aioredis
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from redis.exceptions import ResponseError

from conduit.articles.v1 import events_pb2 as article_events
from conduit.users.v1 import events_pb2 as user_events
from conduit_server.runtime.consumers import GroupConsumer, GroupEntry
from conduit_server.webhooks.domain.ports import DeliveryQueue, Queued

log = logging.getLogger("conduit.webhooks.events")

GROUP = "webhooks"
# outbox type -> (webhook event type, the payload's oneof field)
ARTICLE_TYPES = {"article_created": "article.created", "article_updated": "article.updated",
                 "article_deleted": "article.deleted", "comment_added": "comment.created",
                 "comment_deleted": "comment.deleted", "favorite_changed": "favorite.changed"}
USER_TYPES = {"follow_changed": "follow.changed"}


def position_of(entry_id: bytes) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.decode().partition("-")
    return int(milliseconds), int(sequence or 0)


def body_of(event_type: str, event: Message) -> bytes:
    payload = event.WhichOneof("payload")
    data = json_format.MessageToDict(getattr(event, payload)) if payload else {}
    occurred = getattr(event, "occurred_at")  # noqa: B009 - both event messages have it
    return json.dumps({"type": event_type, "timestamp": occurred.ToJsonString(), "data": data},
                      separators=(",", ":")).encode()


def queued_of(entry_id: bytes, fields: Mapping[bytes, bytes], types: Mapping[str, str],
              message: type[Message]) -> Queued | None:
    """The message an entry makes; None for types no endpoint can subscribe to."""
    kind = types.get(fields.get(b"type", b"").decode())
    if kind is None:
        return None
    event = message.FromString(fields[b"payload"])
    event_id = fields.get(b"event_id", b"").decode() or cast("Any", event).event_id
    return Queued(event_id, kind, body_of(kind, event), position_of(entry_id))


class EventQueue(GroupConsumer):
    """One consumer of the `webhooks` group on each stream; run one per process."""

    activity = "queueing webhook events"

    def __init__(self, redis: aioredis.Redis, queue: DeliveryQueue, *, articles_stream: str, users_stream: str,
                 on_queued: Callable[[], None] = lambda: None, consumer: str = "", count: int = 200,
                 block_ms: int = 1_000, claim_idle_ms: int = 30_000, max_backoff_seconds: float = 5.0) -> None:
        super().__init__(redis, group=GROUP, consumer=consumer, count=count, block_ms=block_ms,
                         claim_idle_ms=claim_idle_ms, max_backoff_seconds=max_backoff_seconds)
        self._queue = queue
        self._streams: dict[str, tuple[Mapping[str, str], type[Message]]] = {
            articles_stream: (ARTICLE_TYPES, article_events.ArticleEvent),
            users_stream: (USER_TYPES, user_events.UserEvent)}
        self._on_queued = on_queued
        self.messages_queued = 0

    async def _handle(self, stream: str, entries: Sequence[GroupEntry]) -> None:
        types, message = self._streams[stream]
        batch: list[Queued] = []
        for entry_id, fields in entries:
            if fields is None:  # trimmed away while pending
                continue
            try:
                queued = queued_of(entry_id, fields, types, message)
            except (KeyError, ValueError, DecodeError) as error:
                log.error("skipping unreadable event %s: %r", entry_id.decode(), error)
                continue
            if queued is not None:
                batch.append(queued)
        if batch:
            queued_count = await self._queue.enqueue(batch)
            self.messages_queued += queued_count
            if queued_count:
                self._on_queued()
        if entries:
            await self._redis.xack(stream, GROUP, *[entry_id for entry_id, _ in entries])
            self.entries_acknowledged += len(entries)

    async def _session(self) -> None:
        for stream in self._streams:
            with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
                await self._redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
        await self._read(dict.fromkeys(self._streams, "0"), until_empty=True)  # mine, unacknowledged
        self.reading.set()
        claimed_at = 0.0
        while not self._stopped:
            if time.monotonic() - claimed_at >= self._claim_idle_ms / 2000:
                await self._claim_all_abandoned()
                claimed_at = time.monotonic()
            await self._read(dict.fromkeys(self._streams, ">"))

    async def _read(self, positions: dict[str, str], *, until_empty: bool = False) -> None:
        while True:
            response: Any = await self._redis.xreadgroup(GROUP, self.consumer, cast("Any", positions),
                                                         count=self._count,
                                                         block=None if until_empty else self._block_ms)
            got = False
            for name, raw in response or ():
                stream = name.decode() if isinstance(name, bytes) else str(name)
                entries = cast("list[GroupEntry]", raw)
                got = got or bool(entries)
                await self._handle(stream, entries)
            if not until_empty or not got:
                return

    async def _claim_all_abandoned(self) -> None:
        for stream in self._streams:
            await self._claim_abandoned(stream, functools.partial(self._handle, stream))
