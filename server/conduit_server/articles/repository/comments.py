"""Queries of comments: SQL text built once, one statement per request path."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from conduit_server.articles.domain.records import StoredComment

# The article's id and one page of its comments, newest first: no row when there is no such
# article, one row without a comment when the page is empty.
_FOR_ARTICLE = text(
    "SELECT c.id, a.id AS article_id, a.slug AS article_slug, c.author_id, c.body, c.created_at, c.updated_at "
    "FROM articles AS a LEFT JOIN LATERAL (SELECT * FROM comments WHERE article_id = a.id "
    "ORDER BY id DESC LIMIT :limit OFFSET :offset) AS c ON true WHERE a.slug = :slug ORDER BY c.id DESC")
# KEY SHARE keeps the article from being deleted until the transaction ends.
_ADD = text(
    "WITH target AS (SELECT id, slug FROM articles WHERE slug = :slug FOR KEY SHARE) "
    "INSERT INTO comments (article_id, author_id, body) "
    "SELECT id, CAST(:author_id AS bigint), CAST(:body AS text) FROM target "
    "RETURNING id, article_id, (SELECT slug FROM target) AS article_slug, author_id, body, created_at, updated_at")
_IN_ARTICLE_FOR_UPDATE = text(
    "SELECT c.id, c.article_id, a.slug AS article_slug, c.author_id, c.body, c.created_at, c.updated_at "
    "FROM comments AS c JOIN articles AS a ON a.id = c.article_id "
    "WHERE c.id = :id AND a.slug = :slug FOR UPDATE OF c")
_DELETE = text("DELETE FROM comments WHERE id = :id")


def _stored(row: Any) -> StoredComment:
    """The comment from its columns in StoredComment's order, by position (a list maps many)."""
    comment_id, article_id, article_slug, author_id, body, created_at, updated_at = row
    return StoredComment(comment_id, article_id, article_slug, author_id, body, created_at, updated_at)


class CommentRepository:
    async def for_article(self, session: AsyncSession, slug: str, *, limit: int, offset: int
                          ) -> list[StoredComment] | None:
        """One page of the comments of the article with `slug`, newest first; None when there is no
        such article."""
        rows = (await session.execute(_FOR_ARTICLE, {"slug": slug, "limit": limit, "offset": offset})).all()
        if not rows:
            return None
        return [_stored(row) for row in rows if row[0] is not None]

    async def add(self, session: AsyncSession, slug: str, author_id: int, body: str) -> StoredComment | None:
        """Comment on the article with `slug`; None when there is no such article."""
        row = (await session.execute(_ADD, {"slug": slug, "author_id": author_id, "body": body})).first()
        return _stored(row) if row is not None else None

    async def in_article_for_update(self, session: AsyncSession, slug: str, comment_id: int
                                    ) -> StoredComment | None:
        """The comment if it belongs to the article with `slug`, locked until the transaction ends."""
        row = (await session.execute(_IN_ARTICLE_FOR_UPDATE, {"id": comment_id, "slug": slug})).first()
        return _stored(row) if row is not None else None

    async def delete(self, session: AsyncSession, comment_id: int) -> None:
        await session.execute(_DELETE, {"id": comment_id})
