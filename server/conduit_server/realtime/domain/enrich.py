"""From stream entries to the events watchers receive: decoding, author profiles, serialization.

An entry becomes a `Prepared` event once per process, whatever the number of watchers:
the resource is built as the unary API returns it (Article / Comment with the author's
profile), and each of its two personalised forms (author followed by the watcher or not)
is serialized at most once, then handed to every matching stream as bytes.

Personalisation: `author.following` is the watcher's own (its followees are known to the hub);
`favorited` is false for every watcher, because who favorited what is the articles service's
and no event or internal RPC tells realtime. That is exact for new articles (nobody has
favorited them yet) and for anonymous watchers; for an authenticated watcher of an edited
article it may differ from GetArticle. Clients keep `favorited` from the unary API.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from google.protobuf import timestamp_pb2
from google.protobuf.message import DecodeError

from conduit.articles.v1 import articles_pb2, events_pb2
from conduit.realtime.v1 import realtime_pb2
from conduit.users.v1 import users_pb2
from conduit_server.realtime.domain.ids import StreamId
from conduit_server.realtime.repository.profiles import ProfileCache

log = logging.getLogger("conduit.realtime")

Kind: TypeAlias = "realtime_pb2.EventType.ValueType"
ARTICLE_CREATED = realtime_pb2.EVENT_TYPE_ARTICLE_CREATED
ARTICLE_UPDATED = realtime_pb2.EVENT_TYPE_ARTICLE_UPDATED
ARTICLE_DELETED = realtime_pb2.EVENT_TYPE_ARTICLE_DELETED
COMMENT_ADDED = realtime_pb2.EVENT_TYPE_COMMENT_ADDED
COMMENT_DELETED = realtime_pb2.EVENT_TYPE_COMMENT_DELETED
FAVORITES_CHANGED = realtime_pb2.EVENT_TYPE_FAVORITES_CHANGED
HEARTBEAT = realtime_pb2.EVENT_TYPE_HEARTBEAT

# Shown for an author the users service no longer knows, as the articles API shows it.
UNKNOWN_AUTHOR = users_pb2.Profile(username="")


@dataclass(frozen=True)
class Entry:
    """One entry of a Redis Stream, as the outbox relay wrote it."""

    id: StreamId
    event_id: str
    type: str
    payload: bytes
    # The writer's W3C trace context, when the relay carried one (decision 0018).
    traceparent: str = ""

    @classmethod
    def decode(cls, raw_id: bytes | str, fields: Mapping[bytes, bytes]) -> Entry:
        """KeyError/ValueError when the entry is not the relay's layout."""
        return cls(StreamId.parse(raw_id), fields[b"event_id"].decode(), fields.get(b"type", b"").decode(),
                   fields[b"payload"], fields.get(b"traceparent", b"").decode())


class Prepared:
    """An article event ready for fan-out: what it concerns, and its serialized forms."""

    __slots__ = ("_event", "_payloads", "article_id", "author_id", "event_id", "id", "kind",
                 "previous_slug", "slug", "tags", "username")

    def __init__(self, entry: Entry, kind: Kind, event: realtime_pb2.Event, *, article_id: int,
                 slug: str, previous_slug: str = "", author_id: int = 0, username: str = "",
                 tags: Sequence[str] = ()) -> None:
        self.id = entry.id
        self.event_id = entry.event_id
        self.kind = kind
        self.article_id = article_id
        self.slug = slug
        self.previous_slug = previous_slug or slug
        self.author_id = author_id
        self.username = username
        self.tags = frozenset(tags)
        self._event = event
        self._payloads: list[bytes | None] = [None, None]

    @property
    def final(self) -> bool:
        """The article is gone: a watch of it ends after this event."""
        return self.kind == ARTICLE_DELETED

    def payload(self, following: bool) -> bytes:
        """The serialized stream message, with the author's `following` as the watcher sees it."""
        cached = self._payloads[following]
        if cached is None:
            event = self._event
            if following:
                event = realtime_pb2.Event()
                event.CopyFrom(self._event)
                resource = event.WhichOneof("resource")
                if resource == "article":
                    event.article.author.following = True
                elif resource == "comment":
                    event.comment.author.following = True
            # The three Watch*Response messages are the same on the wire: `Event event = 1`.
            cached = realtime_pb2.WatchArticlesResponse(event=event).SerializeToString()
            self._payloads[following] = cached
        return cached

    def message(self) -> realtime_pb2.Event:
        """The viewer-independent event (for logs and tests)."""
        return self._event


def heartbeat(event_id: str) -> bytes:
    """A heartbeat message; `event_id` is the stream's resume position ("" before the first event)."""
    event = realtime_pb2.Event(event_id=event_id, type=HEARTBEAT)
    event.occurred_at.GetCurrentTime()
    return realtime_pb2.WatchArticlesResponse(event=event).SerializeToString()


# Most events one batched message carries (the contract's `events` documents this cap).
MAX_EVENTS_PER_MESSAGE = 100
# The key of `repeated Event events = 2` (length-delimited); `Event event = 1` is 0x0a.
_EVENTS_KEY = 0x12


def batch(messages: Sequence[bytes]) -> bytes:
    """Single-event messages (as `payload` and `heartbeat` make them) as ONE batched message.

    A message holding only `Event event = 1` is `0x0a <length> <event>`; the same event as an
    element of `repeated Event events = 2` is `0x12 <length> <event>`. So the batch is the
    messages concatenated with each one's first byte swapped: no event is parsed or re-serialized.
    """
    joined = bytearray(b"".join(messages))
    offset = 0
    for message in messages:
        joined[offset] = _EVENTS_KEY
        offset += len(message)
    return bytes(joined)


def _profile(author_id: int, profiles: Mapping[int, users_pb2.Profile]) -> users_pb2.Profile:
    found = profiles.get(author_id)
    # Viewer-independent base: `following` is decided per watcher in Prepared.payload.
    return users_pb2.Profile(username=found.username, bio=found.bio, image=found.image) if found \
        else UNKNOWN_AUTHOR


def _article(record: events_pb2.ArticleRecord, author: users_pb2.Profile) -> articles_pb2.Article:
    # `favorited` is false for everyone: realtime cannot see favorites per viewer (see the module doc).
    return articles_pb2.Article(
        slug=record.slug, title=record.title, description=record.description, body=record.body,
        tag_list=record.tag_list, created_at=record.created_at, updated_at=record.updated_at,
        favorited=False, favorites_count=record.favorites_count, author=author)


def _event(entry: Entry, kind: Kind, occurred_at: timestamp_pb2.Timestamp) -> realtime_pb2.Event:
    return realtime_pb2.Event(event_id=str(entry.id), type=kind, occurred_at=occurred_at)


def _author_of(event: events_pb2.ArticleEvent) -> int:
    which = event.WhichOneof("payload")
    if which == "article_created":
        return event.article_created.article.author_id
    if which == "article_updated":
        return event.article_updated.article.author_id
    if which == "comment_added":
        return event.comment_added.comment.author_id
    return 0


def build(entry: Entry, source: events_pb2.ArticleEvent,
          profiles: Mapping[int, users_pb2.Profile]) -> Prepared | None:
    """The prepared form of one decoded article event; None for a kind realtime does not serve."""
    which = source.WhichOneof("payload")
    at = source.occurred_at
    if which in ("article_created", "article_updated"):
        change = source.article_created if which == "article_created" else source.article_updated
        record = change.article
        author = _profile(record.author_id, profiles)
        kind = ARTICLE_CREATED if which == "article_created" else ARTICLE_UPDATED
        event = _event(entry, kind, at)
        event.article.CopyFrom(_article(record, author))
        previous = source.article_updated.previous_slug if which == "article_updated" else ""
        return Prepared(entry, kind, event, article_id=record.id, slug=record.slug, previous_slug=previous,
                        author_id=record.author_id, username=author.username, tags=record.tag_list)
    if which == "article_deleted":
        deleted = source.article_deleted
        event = _event(entry, ARTICLE_DELETED, at)
        event.deletion.slug = deleted.slug
        return Prepared(entry, ARTICLE_DELETED, event, article_id=deleted.article_id, slug=deleted.slug)
    if which == "comment_added":
        comment = source.comment_added.comment
        author = _profile(comment.author_id, profiles)
        event = _event(entry, COMMENT_ADDED, at)
        event.comment.CopyFrom(articles_pb2.Comment(id=comment.id, created_at=comment.created_at,
                                                    updated_at=comment.updated_at, body=comment.body,
                                                    author=author))
        return Prepared(entry, COMMENT_ADDED, event, article_id=comment.article_id, slug=comment.article_slug,
                        author_id=comment.author_id, username=author.username)
    if which == "comment_deleted":
        deleted_comment = source.comment_deleted
        event = _event(entry, COMMENT_DELETED, at)
        event.deletion.slug = deleted_comment.article_slug
        event.deletion.comment_id = deleted_comment.comment_id
        return Prepared(entry, COMMENT_DELETED, event, article_id=deleted_comment.article_id,
                        slug=deleted_comment.article_slug)
    if which == "favorite_changed":
        favorite = source.favorite_changed
        event = _event(entry, FAVORITES_CHANGED, at)
        event.favorites.slug = favorite.article_slug
        event.favorites.favorites_count = favorite.favorites_count
        return Prepared(entry, FAVORITES_CHANGED, event, article_id=favorite.article_id,
                        slug=favorite.article_slug)
    return None


class Preparer:
    """Turns a batch of entries into prepared events with ONE profile look-up for the batch."""

    def __init__(self, profiles: ProfileCache) -> None:
        self._profiles = profiles
        self.malformed = 0

    async def prepare(self, entries: Iterable[Entry]) -> list[Prepared]:
        decoded: list[tuple[Entry, events_pb2.ArticleEvent]] = []
        for entry in entries:
            try:
                decoded.append((entry, events_pb2.ArticleEvent.FromString(entry.payload)))
            except DecodeError:
                self.malformed += 1
                log.error("undecodable article event %s (%s) skipped", entry.id, entry.event_id)
        authors = {author for _, source in decoded if (author := _author_of(source))}
        profiles = await self._profiles.get_many(authors) if authors else {}
        prepared = []
        for entry, source in decoded:
            built = build(entry, source, profiles)
            if built is None:
                log.warning("article event %s of unknown kind %r skipped", entry.id, entry.type)
                continue
            prepared.append(built)
        return prepared
