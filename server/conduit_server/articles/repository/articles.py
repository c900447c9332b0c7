"""Queries of articles and favorites.

A page of articles costs a fixed number of statements whatever its size: the
rows with their tags aggregated in a correlated subquery, the total count, and
(for a signed-in viewer) which of the page's articles the viewer favorited.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    any_,
    bindparam,
    delete,
    exists,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from conduit_server.articles.models import Article, ArticleTag, Favorite, Tag
from conduit_server.articles.records import ArticleFilter, NewArticleRow, StoredArticle

SLUG_CONSTRAINT = "uq_articles_slug"


def is_slug_conflict(error: IntegrityError) -> bool:
    """Whether an IntegrityError is the slug's unique index (and not some other constraint)."""
    cause = error.orig.__cause__ if error.orig is not None else None
    return getattr(cause, "constraint_name", None) == SLUG_CONSTRAINT or SLUG_CONSTRAINT in str(error.orig)


def _tags_column() -> Any:
    """The article's tag names in author order, as one array (NULL when it has none)."""
    return (select(func.array_agg(aggregate_order_by(Tag.name, ArticleTag.position)))
            .select_from(ArticleTag).join(Tag, Tag.id == ArticleTag.tag_id)
            .where(ArticleTag.article_id == Article.id)
            .scalar_subquery().label("tags"))


def _columns(*, with_body: bool) -> list[Any]:
    body = Article.body if with_body else literal("").label("body")
    return [Article.id, Article.slug, Article.title, Article.description, body, _tags_column(),
            Article.author_id, Article.created_at, Article.updated_at, Article.favorites_count]


def _stored(row: Any) -> StoredArticle:
    return StoredArticle(id=row.id, slug=row.slug, title=row.title, description=row.description,
                         body=row.body, tags=tuple(row.tags or ()), author_id=row.author_id,
                         created_at=row.created_at, updated_at=row.updated_at,
                         favorites_count=row.favorites_count)


def _bigints(name: str, values: Sequence[int]) -> Any:
    return bindparam(name, value=list(values), type_=ARRAY(BigInteger))


def _conditions(where: ArticleFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if where.tag:
        conditions.append(exists().where(ArticleTag.article_id == Article.id, ArticleTag.tag_id == Tag.id,
                                         Tag.name == where.tag))
    if where.author_ids is not None:
        # One array parameter, however many authors a feed follows.
        conditions.append(Article.author_id == any_(_bigints("author_ids", where.author_ids)))
    if where.favorited_by is not None:
        conditions.append(exists().where(Favorite.article_id == Article.id,
                                         Favorite.user_id == where.favorited_by))
    return conditions


class ArticleRepository:
    async def page(self, session: AsyncSession, where: ArticleFilter, *, limit: int, offset: int
                   ) -> list[StoredArticle]:
        """One page of matching articles without bodies, newest first."""
        # Pick the page's ids first, then aggregate tags for those rows only: PostgreSQL evaluates
        # the select list (the tags subquery) for every row OFFSET skips, so a deep page would
        # otherwise aggregate tags for thousands of discarded articles.
        page_ids = (select(Article.id.label("page_id")).where(*_conditions(where))
                    .order_by(Article.created_at.desc(), Article.id.desc())
                    .limit(limit).offset(offset).subquery("page"))
        query: Select[Any] = (select(*_columns(with_body=False))
                              .join(page_ids, page_ids.c.page_id == Article.id)
                              .order_by(Article.created_at.desc(), Article.id.desc()))
        return [_stored(row) for row in await session.execute(query)]

    async def count(self, session: AsyncSession, where: ArticleFilter) -> int:
        """How many articles match in all pages."""
        total = await session.scalar(select(func.count()).select_from(Article).where(*_conditions(where)))
        return int(total or 0)

    async def by_slug(self, session: AsyncSession, slug: str, *, for_update: bool = False
                      ) -> StoredArticle | None:
        """The article with its body; `for_update` locks its row until the transaction ends."""
        query = select(*_columns(with_body=True)).where(Article.slug == slug)
        if for_update:
            query = query.with_for_update(of=Article)
        row = (await session.execute(query)).first()
        return _stored(row) if row is not None else None

    async def by_id(self, session: AsyncSession, article_id: int) -> StoredArticle:
        row = (await session.execute(select(*_columns(with_body=True)).where(Article.id == article_id))).one()
        return _stored(row)

    async def id_by_slug(self, session: AsyncSession, slug: str, *, key_share: bool = False) -> int | None:
        """The article's id; `key_share` keeps it from being deleted until the transaction ends."""
        query = select(Article.id).where(Article.slug == slug)
        if key_share:
            query = query.with_for_update(key_share=True)
        found = await session.scalar(query)
        return int(found) if found is not None else None

    async def favorited_ids(self, session: AsyncSession, user_id: int, article_ids: Sequence[int]
                            ) -> set[int]:
        """Which of `article_ids` the user has favorited."""
        if not article_ids or not user_id:
            return set()
        rows = await session.scalars(select(Favorite.article_id).where(
            Favorite.user_id == user_id, Favorite.article_id == any_(_bigints("article_ids", article_ids))))
        return set(rows)

    async def insert(self, session: AsyncSession, row: NewArticleRow, slug: str) -> int | None:
        """Insert an article under `slug`; None when the slug is taken (waits for in-flight writers)."""
        values: dict[str, Any] = {
            "slug": slug, "title": row.title, "description": row.description, "body": row.body,
            "author_id": row.author_id, "excerpt": row.excerpt,
            "reading_time_minutes": row.reading_time_minutes}
        if row.created_at is not None:
            values.update(created_at=row.created_at, updated_at=row.created_at)
        statement = (pg_insert(Article).values(**values)
                     .on_conflict_do_nothing(index_elements=[Article.slug]).returning(Article.id))
        found = await session.scalar(statement)
        return int(found) if found is not None else None

    async def update(self, session: AsyncSession, article_id: int, changes: dict[str, Any], *,
                     slug: str | None = None) -> bool:
        """Apply changes and bump updated_at; with a new slug, False when that slug is taken."""
        values = {**changes, "updated_at": func.now()}
        if slug is None:
            await session.execute(update(Article).where(Article.id == article_id).values(**values))
            return True
        try:
            async with session.begin_nested():  # a savepoint: a taken slug must not doom the transaction
                await session.execute(update(Article).where(Article.id == article_id)
                                      .values(slug=slug, **values))
        except IntegrityError as error:
            if is_slug_conflict(error):
                return False
            raise
        return True

    async def delete(self, session: AsyncSession, article_id: int) -> None:
        """Delete the article; its tags links, favorites and comments go with it (ON DELETE CASCADE)."""
        await session.execute(delete(Article).where(Article.id == article_id))

    async def add_favorite(self, session: AsyncSession, article_id: int, user_id: int) -> bool:
        """Record the favorite; False when it already existed."""
        inserted = await session.scalar(
            pg_insert(Favorite).values(user_id=user_id, article_id=article_id)
            .on_conflict_do_nothing().returning(Favorite.article_id))
        return inserted is not None

    async def remove_favorite(self, session: AsyncSession, article_id: int, user_id: int) -> bool:
        """Delete the favorite; False when there was none."""
        removed = await session.scalar(
            delete(Favorite).where(Favorite.article_id == article_id, Favorite.user_id == user_id)
            .returning(Favorite.article_id))
        return removed is not None

    async def add_to_favorites_count(self, session: AsyncSession, article_id: int, delta: int) -> None:
        """Adjust the denormalised counter in the transaction that changed a favorites row."""
        await session.execute(update(Article).where(Article.id == article_id)
                              .values(favorites_count=Article.favorites_count + delta))


__all__ = ["SLUG_CONSTRAINT", "ArticleRepository", "is_slug_conflict"]
