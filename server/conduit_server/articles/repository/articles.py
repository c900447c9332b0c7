"""Queries of articles and favorites.

Every statement is SQL text built once (at import, or once per filter shape),
so a request costs no statement construction or cache-key work, and each
request path is as few statements as its guarantees allow: a page is one
statement whatever its size (the rows with their tags aggregated per row, the
total count, and which of them the viewer favorited), a create is one, a
favorite toggle is one.
"""

# ruff: noqa: S608 - statements are composed of this module's constants at import; values are always bound

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from conduit_server.articles.domain.records import ArticleFilter, NewArticleRow, StoredArticle
from conduit_server.runtime import outbox

SLUG_CONSTRAINT = "uq_articles_slug"


def is_slug_conflict(error: IntegrityError) -> bool:
    """Whether an IntegrityError is the slug's unique index (and not some other constraint)."""
    cause = error.orig.__cause__ if error.orig is not None else None
    return getattr(cause, "constraint_name", None) == SLUG_CONSTRAINT or SLUG_CONSTRAINT in str(error.orig)


def _tags_of(alias: str) -> str:
    """The article's tag names in author order, as one array (NULL when it has none)."""
    # Alphabetical, whatever order older rows were linked in (new ones are linked sorted).
    return (f"(SELECT array_agg(t.name ORDER BY t.name) FROM article_tags AS at "
            f"JOIN tags AS t ON t.id = at.tag_id WHERE at.article_id = {alias}.id) AS tags")


def _article_columns(alias: str, *, body: bool = True, favorites_count: str = "") -> str:
    """StoredArticle's fields of the article `alias`, in their order; list views leave the body out."""
    body_column = f"{alias}.body" if body else "'' AS body"
    count_column = favorites_count or f"{alias}.favorites_count"
    return (f"{alias}.id, {alias}.slug, {alias}.title, {alias}.description, {body_column}, {_tags_of(alias)}, "
            f"{alias}.author_id, {alias}.created_at, {alias}.updated_at, {count_column} AS favorites_count")


_FIELDS = 10  # columns of _article_columns


def _stored(columns: Sequence[Any], tags: Sequence[str] | None = None) -> StoredArticle:
    """The article from the columns of `_article_columns`, by position (a page maps 20 of them)."""
    article_id, slug, title, description, body, stored_tags, author_id, created_at, updated_at, count = columns
    return StoredArticle(article_id, slug, title, description, body,
                         tuple(stored_tags or ()) if tags is None else tuple(tags),
                         author_id, created_at, updated_at, count)


@functools.cache
def _page_statement(*, tag: bool, authors: bool, favorited_by: bool, viewer: bool, count: bool) -> TextClause:
    """The page, its total and the viewer's favorites in one statement; one per filter shape.

    The total comes from its own aggregate (run once, as if it were a separate
    query), and the page's ids are picked before the body of each row is read:
    PostgreSQL evaluates a select list (the tags subquery) for every row OFFSET
    skips, so a deep page would otherwise aggregate tags for discarded rows.
    `count(*) OVER ()` would make the unfiltered list walk all rows in index
    order instead (3x slower on 10,000 articles). The LEFT JOIN keeps the total
    when the page is empty. Without `count` the total is NULL (the caller has it).
    """
    conditions = ["TRUE"]
    if tag:
        conditions.append("EXISTS (SELECT 1 FROM article_tags AS ft JOIN tags AS tt ON tt.id = ft.tag_id "
                          "WHERE ft.article_id = articles.id AND tt.name = :tag)")
    if authors:  # one array parameter, however many authors a feed follows
        conditions.append("articles.author_id = ANY(CAST(:author_ids AS bigint[]))")
    if favorited_by:
        conditions.append("EXISTS (SELECT 1 FROM favorites AS ff "
                          "WHERE ff.article_id = articles.id AND ff.user_id = :favorited_by)")
    where = " AND ".join(conditions)
    favorited = ("EXISTS (SELECT 1 FROM favorites AS vf WHERE vf.user_id = :viewer_id AND vf.article_id = a.id)"
                 if viewer else "FALSE")
    return text(
        f"SELECT {_article_columns('a', body=False)}, {favorited} AS favorited, total.n AS total "
        f"FROM ({f'SELECT count(*) AS n FROM articles WHERE {where}' if count else 'SELECT NULL AS n'}) AS total "
        f"LEFT JOIN (articles AS a JOIN (SELECT id FROM articles WHERE {where} "
        f"ORDER BY created_at DESC, id DESC LIMIT :limit OFFSET :offset) AS page ON page.id = a.id) ON TRUE "
        f"ORDER BY a.created_at DESC, a.id DESC")


_BY_SLUG = text(f"SELECT {_article_columns('a')} FROM articles AS a WHERE a.slug = :slug")
_BY_SLUG_FOR_UPDATE = text(f"SELECT {_article_columns('a')} FROM articles AS a WHERE a.slug = :slug "
                           f"FOR UPDATE OF a")
_BY_ID = text(f"SELECT {_article_columns('a')} FROM articles AS a WHERE a.id = :id")
_BY_IDS = text(f"SELECT {_article_columns('a', body=False)} FROM articles AS a "
               "WHERE a.id = ANY(CAST(:ids AS bigint[]))")
_AFTER = text(f"SELECT {_article_columns('a')} FROM articles AS a WHERE a.id > :after ORDER BY a.id LIMIT :limit")
_COUNT = text("SELECT count(*) FROM articles")
_FAVORITED = text("SELECT article_id FROM favorites WHERE user_id = :user_id "
                  "AND article_id = ANY(CAST(:article_ids AS bigint[]))")

# The article, its missing tags and its tag links in one statement. The tag ids are those this
# statement created plus those its snapshot sees; a tag another writer committed after that
# snapshot (ON CONFLICT waited for it) is in neither and comes back in `unattached`: the caller
# links it with a later statement, which sees it. A taken slug inserts nothing at all.
_CREATE = text(
    "WITH article AS ("
    " INSERT INTO articles (slug, title, description, body, excerpt, reading_time_minutes, author_id)"
    " VALUES (:slug, :title, :description, :body, :excerpt, :reading_time_minutes, :author_id)"
    " ON CONFLICT (slug) DO NOTHING"
    " RETURNING id, slug, title, description, body, author_id, created_at, updated_at, favorites_count), "
    "wanted AS ("
    " SELECT w.name, w.position - 1 AS position"
    " FROM unnest(CAST(:tags AS varchar[])) WITH ORDINALITY AS w(name, position)"
    " WHERE EXISTS (SELECT FROM article)), "
    # Sorted, so concurrent writers take the unique-index locks in the same order (no deadlock).
    "created_tags AS ("
    " INSERT INTO tags (name) SELECT name FROM wanted ORDER BY name"
    " ON CONFLICT (name) DO NOTHING RETURNING id, name), "
    "tag_ids AS ("
    " SELECT id, name FROM created_tags"
    " UNION ALL SELECT tags.id, tags.name FROM tags JOIN wanted USING (name)), "
    "links AS ("  # runs although nothing reads it, as every data-modifying WITH does
    " INSERT INTO article_tags (article_id, tag_id, position)"
    " SELECT article.id, tag_ids.id, wanted.position FROM article, wanted JOIN tag_ids USING (name)) "
    "SELECT id, slug, title, description, body, NULL AS tags, author_id, created_at, updated_at, favorites_count,"
    " ARRAY(SELECT name FROM wanted WHERE name NOT IN (SELECT name FROM tag_ids)) AS unattached FROM article")

# Add or remove the favorite, move the counter only when a row really changed, and answer the
# article: one statement. KEY SHARE keeps the article from being deleted until commit; the
# counter's UPDATE re-reads the newest row version under READ COMMITTED, so it stays exact.
_TOGGLE = (
    "WITH target AS (SELECT id, slug, title, description, body, author_id, created_at, updated_at, favorites_count"
    " FROM articles WHERE slug = :slug FOR KEY SHARE), "
    "changed AS ({change} RETURNING article_id), "
    "counted AS (UPDATE articles SET favorites_count = favorites_count {sign} 1"
    " WHERE id IN (SELECT article_id FROM changed) RETURNING favorites_count) "
    "SELECT {columns}, EXISTS (SELECT FROM changed) AS changed FROM target AS a")
_TOGGLE_COLUMNS = _article_columns(
    "a", favorites_count="COALESCE((SELECT favorites_count FROM counted), a.favorites_count)")
_FAVORITE = text(_TOGGLE.format(
    sign="+", columns=_TOGGLE_COLUMNS,
    change="INSERT INTO favorites (user_id, article_id) SELECT CAST(:user_id AS bigint), id FROM target "
           "ON CONFLICT DO NOTHING"))
_UNFAVORITE = text(_TOGGLE.format(
    sign="-", columns=_TOGGLE_COLUMNS,
    # `= (subquery)`, not IN: the primary key finds the row, not a scan of the article's favorites.
    change="DELETE FROM favorites WHERE user_id = :user_id AND article_id = (SELECT id FROM target)"))

_UPDATE = text("UPDATE articles SET title = COALESCE(:title, title), "
               "description = COALESCE(:description, description), body = COALESCE(:body, body), "
               "excerpt = COALESCE(:excerpt, excerpt), "
               "reading_time_minutes = COALESCE(:reading_time_minutes, reading_time_minutes), "
               "slug = COALESCE(:slug, slug), updated_at = now() WHERE id = :id")
_UPDATABLE = ("title", "description", "body", "excerpt", "reading_time_minutes")
_DELETE = text("DELETE FROM articles WHERE id = :id")


class ArticleRepository:
    async def page(self, session: AsyncSession, where: ArticleFilter, *, limit: int, offset: int,
                   viewer_id: int = 0, count: bool = True) -> tuple[list[StoredArticle], int, set[int]]:
        """One page of matching articles without bodies, newest first; how many match in all pages
        (0 without `count`); which of the page's articles `viewer_id` favorited. One statement."""
        statement = _page_statement(tag=bool(where.tag), authors=where.author_ids is not None,
                                    favorited_by=where.favorited_by is not None, viewer=bool(viewer_id),
                                    count=count)
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if where.tag:
            params["tag"] = where.tag
        if where.author_ids is not None:
            params["author_ids"] = list(where.author_ids)
        if where.favorited_by is not None:
            params["favorited_by"] = where.favorited_by
        if viewer_id:
            params["viewer_id"] = viewer_id
        rows = (await session.execute(statement, params)).all()
        page = [_stored(row[:_FIELDS]) for row in rows if row[0] is not None]
        favorited = {row[0] for row in rows if row[_FIELDS]}
        return page, int(rows[0][-1] or 0) if rows else 0, favorited

    async def by_slug(self, session: AsyncSession, slug: str, *, for_update: bool = False
                      ) -> StoredArticle | None:
        """The article with its body; `for_update` locks its row until the transaction ends."""
        row = (await session.execute(_BY_SLUG_FOR_UPDATE if for_update else _BY_SLUG, {"slug": slug})).first()
        return _stored(row) if row is not None else None

    async def by_id(self, session: AsyncSession, article_id: int) -> StoredArticle:
        return _stored((await session.execute(_BY_ID, {"id": article_id})).one())

    async def by_ids(self, session: AsyncSession, article_ids: Sequence[int]) -> list[StoredArticle]:
        """The articles (without bodies) among `article_ids`, in no particular order."""
        if not article_ids:
            return []
        return [_stored(row) for row in await session.execute(_BY_IDS, {"ids": list(article_ids)})]

    async def after(self, session: AsyncSession, after_id: int, limit: int) -> list[StoredArticle]:
        """Up to `limit` articles with their bodies whose id is above `after_id`, in id order."""
        return [_stored(row) for row in await session.execute(_AFTER, {"after": after_id, "limit": limit})]

    async def count(self, session: AsyncSession) -> int:
        return int(await session.scalar(_COUNT) or 0)

    async def settled_outbox_position(self, session: AsyncSession) -> int:
        """An outbox id that a snapshot opened afterwards reflects exactly: every event up to it is in
        that snapshot, and every event the snapshot misses has a larger id (decision 0028). Waits for
        the write transactions running now to end (bounded)."""
        return await outbox.settled_position(session)

    async def favorited_ids(self, session: AsyncSession, user_id: int, article_ids: Sequence[int]
                            ) -> set[int]:
        """Which of `article_ids` the user has favorited."""
        if not article_ids or not user_id:
            return set()
        rows = await session.execute(_FAVORITED, {"user_id": user_id, "article_ids": list(article_ids)})
        return {row.article_id for row in rows}

    async def create(self, session: AsyncSession, row: NewArticleRow, slug: str
                     ) -> tuple[StoredArticle, list[str]] | None:
        """Insert the article under `slug` with its tags (creating missing tags); None when the slug
        is taken (waits for in-flight writers). Also the tags left to attach (see `_CREATE`)."""
        found = (await session.execute(_CREATE, {
            "slug": slug, "title": row.title, "description": row.description, "body": row.body,
            "excerpt": row.excerpt, "reading_time_minutes": row.reading_time_minutes,
            "author_id": row.author_id, "tags": list(row.tags)})).first()
        return (_stored(found[:_FIELDS], row.tags), list(found.unattached)) if found is not None else None

    async def update(self, session: AsyncSession, article_id: int, changes: dict[str, Any], *,
                     slug: str | None = None) -> bool:
        """Apply changes and bump updated_at; with a new slug, False when that slug is taken."""
        params = {name: changes.get(name) for name in _UPDATABLE}
        params.update(id=article_id, slug=slug)
        if slug is None:
            await session.execute(_UPDATE, params)
            return True
        try:
            async with session.begin_nested():  # a savepoint: a taken slug must not doom the transaction
                await session.execute(_UPDATE, params)
        except IntegrityError as error:
            if is_slug_conflict(error):
                return False
            raise
        return True

    async def delete(self, session: AsyncSession, article_id: int) -> None:
        """Delete the article; its tags links, favorites and comments go with it (ON DELETE CASCADE)."""
        await session.execute(_DELETE, {"id": article_id})

    async def set_favorite(self, session: AsyncSession, slug: str, user_id: int, *, favorited: bool
                           ) -> tuple[StoredArticle, bool] | None:
        """Add or remove the user's favorite of the article with `slug`; None when there is no such
        article. The article as it is now, and whether a favorites row was inserted or deleted."""
        row = (await session.execute(_FAVORITE if favorited else _UNFAVORITE,
                                     {"slug": slug, "user_id": user_id})).first()
        return (_stored(row[:_FIELDS]), bool(row.changed)) if row is not None else None


__all__ = ["SLUG_CONSTRAINT", "ArticleRepository", "is_slug_conflict"]
