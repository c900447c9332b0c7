"""Queries of comments."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from conduit_server.articles.models import Article, Comment
from conduit_server.articles.records import StoredComment

_COLUMNS = (Comment.id, Comment.article_id, Article.slug.label("article_slug"), Comment.author_id,
            Comment.body, Comment.created_at, Comment.updated_at)


def _stored(row: Any) -> StoredComment:
    return StoredComment(id=row.id, article_id=row.article_id, article_slug=row.article_slug,
                         author_id=row.author_id, body=row.body, created_at=row.created_at,
                         updated_at=row.updated_at)


class CommentRepository:
    async def for_article(self, session: AsyncSession, article_id: int) -> list[StoredComment]:
        """The article's comments, oldest first."""
        rows = await session.execute(select(*_COLUMNS).join(Article, Article.id == Comment.article_id)
                                     .where(Comment.article_id == article_id).order_by(Comment.id))
        return [_stored(row) for row in rows]

    async def insert(self, session: AsyncSession, article_id: int, article_slug: str, author_id: int,
                     body: str) -> StoredComment:
        row = (await session.execute(
            insert(Comment).values(article_id=article_id, author_id=author_id, body=body)
            .returning(Comment.id, Comment.article_id, Comment.author_id, Comment.body,
                       Comment.created_at, Comment.updated_at))).one()
        return StoredComment(id=row.id, article_id=row.article_id, article_slug=article_slug,
                             author_id=row.author_id, body=row.body, created_at=row.created_at,
                             updated_at=row.updated_at)

    async def in_article_for_update(self, session: AsyncSession, slug: str, comment_id: int
                                    ) -> StoredComment | None:
        """The comment if it belongs to the article with `slug`, locked until the transaction ends."""
        row = (await session.execute(
            select(*_COLUMNS).join(Article, Article.id == Comment.article_id)
            .where(Comment.id == comment_id, Article.slug == slug).with_for_update(of=Comment))).first()
        return _stored(row) if row is not None else None

    async def delete(self, session: AsyncSession, comment_id: int) -> None:
        await session.execute(delete(Comment).where(Comment.id == comment_id))
