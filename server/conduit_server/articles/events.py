"""Outbox events of the articles service (events.proto) and the records they carry."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from google.protobuf import timestamp_pb2
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.articles.v1 import events_pb2
from conduit_server.articles.domain.records import StoredArticle, StoredComment
from conduit_server.runtime import outbox

ARTICLE_CREATED = "article_created"
ARTICLE_UPDATED = "article_updated"
ARTICLE_DELETED = "article_deleted"
COMMENT_ADDED = "comment_added"
COMMENT_DELETED = "comment_deleted"
FAVORITE_CHANGED = "favorite_changed"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    """An aware datetime as a Timestamp (exact to the microsecond; 6x faster than FromDatetime)."""
    since = moment - _EPOCH
    return timestamp_pb2.Timestamp(seconds=since.days * 86_400 + since.seconds, nanos=since.microseconds * 1000)


def moment(stamp: timestamp_pb2.Timestamp) -> datetime:
    """A Timestamp as an aware UTC datetime (the inverse of `timestamp`)."""
    return _EPOCH + timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)


def article_record(article: StoredArticle) -> events_pb2.ArticleRecord:
    return events_pb2.ArticleRecord(
        id=article.id, slug=article.slug, title=article.title, description=article.description,
        body=article.body, tag_list=article.tags, author_id=article.author_id,
        created_at=timestamp(article.created_at), updated_at=timestamp(article.updated_at),
        favorites_count=article.favorites_count)


def stored_article(record: events_pb2.ArticleRecord) -> StoredArticle:
    return StoredArticle(
        id=record.id, slug=record.slug, title=record.title, description=record.description,
        body=record.body, tags=tuple(record.tag_list), author_id=record.author_id,
        created_at=moment(record.created_at), updated_at=moment(record.updated_at),
        favorites_count=record.favorites_count)


def comment_record(comment: StoredComment) -> events_pb2.CommentRecord:
    return events_pb2.CommentRecord(
        id=comment.id, article_id=comment.article_id, article_slug=comment.article_slug,
        author_id=comment.author_id, body=comment.body, created_at=timestamp(comment.created_at),
        updated_at=timestamp(comment.updated_at))


# An outbox row as the bulk writer takes it: event id, event type, serialized ArticleEvent.
OutboxRow = tuple[uuid.UUID, str, bytes]
WriteRows = Callable[[AsyncSession, Sequence[OutboxRow]], Awaitable[None]]


def _stamped(event: events_pb2.ArticleEvent) -> uuid.UUID:
    event_id = uuid.uuid4()
    event.event_id = str(event_id)
    event.occurred_at.GetCurrentTime()
    return event_id


async def _append(session: AsyncSession, event_type: str, event: events_pb2.ArticleEvent) -> None:
    await outbox.append(session, event_type, event, event_id=_stamped(event))


async def article_created(session: AsyncSession, article: StoredArticle) -> None:
    await _append(session, ARTICLE_CREATED, events_pb2.ArticleEvent(
        article_created=events_pb2.ArticleCreated(article=article_record(article))))


async def articles_created(session: AsyncSession, articles: Sequence[StoredArticle], write_rows: WriteRows
                           ) -> None:
    """One ArticleCreated per article, for a bulk import.

    The first goes through `outbox.append`, which gives the transaction its
    xid before drawing an id; the others follow in one multi-row statement,
    so they keep the outbox's ordering guarantee (decision 0028) at a fraction
    of the round trips.
    """
    if not articles:
        return
    events = [events_pb2.ArticleEvent(article_created=events_pb2.ArticleCreated(article=article_record(a)))
              for a in articles]
    await _append(session, ARTICLE_CREATED, events[0])
    await write_rows(session, [(_stamped(event), ARTICLE_CREATED, event.SerializeToString())
                               for event in events[1:]])


async def article_updated(session: AsyncSession, article: StoredArticle, previous_slug: str) -> None:
    await _append(session, ARTICLE_UPDATED, events_pb2.ArticleEvent(
        article_updated=events_pb2.ArticleUpdated(article=article_record(article),
                                                  previous_slug=previous_slug)))


async def article_deleted(session: AsyncSession, article: StoredArticle) -> None:
    await _append(session, ARTICLE_DELETED, events_pb2.ArticleEvent(
        article_deleted=events_pb2.ArticleDeleted(article_id=article.id, slug=article.slug,
                                                  author_id=article.author_id)))


async def comment_added(session: AsyncSession, comment: StoredComment) -> None:
    await _append(session, COMMENT_ADDED, events_pb2.ArticleEvent(
        comment_added=events_pb2.CommentAdded(comment=comment_record(comment))))


async def comment_deleted(session: AsyncSession, comment: StoredComment) -> None:
    await _append(session, COMMENT_DELETED, events_pb2.ArticleEvent(
        comment_deleted=events_pb2.CommentDeleted(comment_id=comment.id, article_id=comment.article_id,
                                                  article_slug=comment.article_slug)))


async def favorite_changed(session: AsyncSession, article: StoredArticle, user_id: int, *,
                           favorited: bool) -> None:
    await _append(session, FAVORITE_CHANGED, events_pb2.ArticleEvent(
        favorite_changed=events_pb2.FavoriteChanged(
            article_id=article.id, article_slug=article.slug, user_id=user_id, favorited=favorited,
            favorites_count=article.favorites_count)))
