"""Articles and favorites: lists, feed, reads, writes.

Each public method is one request: one unit of work (a read session or one
transaction). Writes commit first, then invalidate the cache (see cache.py for
why that order is race-free), then fetch the author's profile for the answer.
Calls to the users service never happen while a database connection is held.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from conduit_server.articles import events
from conduit_server.articles.domain import normalise, slugs
from conduit_server.articles.domain.access import (
    count_write,
    require_author,
    require_author_or_moderator,
    require_user,
)
from conduit_server.articles.domain.authors import Authors
from conduit_server.articles.domain.pages import ARTICLES_PAGE, page_size
from conduit_server.articles.domain.records import (
    ArticleFilter,
    ArticlePage,
    ArticleView,
    Caller,
    NewArticleRow,
    StoredArticle,
)
from conduit_server.articles.domain.views import Views
from conduit_server.articles.repository import ArticleRepository, TagRepository
from conduit_server.articles.repository.cache import FRONT_PAGE_SIZE, ArticleCache
from conduit_server.runtime.db import Database
from conduit_server.runtime.errors import AlreadyExists, FieldViolation, NotFound
from conduit_server.runtime.ratelimit import WriteLimit
from conduit_server.users.client.calls import UsersClient

# Tries of a slug before giving up: the plain slug, then random suffixes (a clash is ~1 in 2·10⁹).
SLUG_ATTEMPTS = 8


@dataclass(frozen=True)
class ArticleChanges:
    """An update; empty fields are left unchanged."""

    title: str = ""
    description: str = ""
    body: str = ""


def _not_found(slug: str) -> NotFound:
    return NotFound(f"article '{slug}' not found", reason="ARTICLE_NOT_FOUND")


def _slug_exhausted() -> AlreadyExists:
    return AlreadyExists([FieldViolation("article.title", "has already been taken")])


class Articles:
    def __init__(self, database: Database, articles: ArticleRepository, tags: TagRepository, *,
                 cache: ArticleCache, users: UsersClient, authors: Authors, views: Views,
                 writes: WriteLimit) -> None:
        self._database = database
        self._writes = writes
        self._articles = articles
        self._tags = tags
        self._cache = cache
        self._users = users
        self._authors = authors
        self._views = views

    # Reads

    async def list_articles(self, caller: Caller, *, tag: str = "", author: str = "", favorited: str = "",
                   limit: int = 0, offset: int = 0) -> ArticlePage:
        """RealWorld's global list: filters by tag, author and favoriting user; newest first."""
        limit = page_size(limit, ARTICLES_PAGE)
        names = [name for name in (author, favorited) if name]
        ids = await self._users.resolve(names, caller.deadline) if names else {}
        if any(name not in ids for name in names):
            return ArticlePage([], 0)  # an unknown username matches nothing: not an error
        where = ArticleFilter(tag=normalise.normalise_tags([tag])[0] if tag.strip() else "",
                              author_ids=(ids[author],) if author else None,
                              favorited_by=ids[favorited] if favorited else None)
        return await self._page(caller, where, limit, offset)

    async def feed(self, caller: Caller, *, limit: int = 0, offset: int = 0) -> ArticlePage:
        """Articles by the authors the caller follows, newest first."""
        user_id = require_user(caller, "have a feed")
        followees = await self._authors.followee_ids(user_id, caller)
        if not followees:
            return ArticlePage([], 0)
        followed = frozenset(followees)
        return await self._page(caller, ArticleFilter(author_ids=tuple(sorted(followed))),
                                page_size(limit, ARTICLES_PAGE),
                                offset, followed=followed)

    async def _page(self, caller: Caller, where: ArticleFilter, limit: int, offset: int, *,
                    followed: frozenset[int] | None = None) -> ArticlePage:
        """`followed`: the caller's fresh followee set, when known (the feed), answers `following`."""
        async with self._database.read() as session:
            if where.is_public_front and offset == 0 and limit <= FRONT_PAGE_SIZE:
                total, front = await self._cache.front_page(lambda: self._load_front(session))
                page = front[:limit]
                favorited = await self._articles.favorited_ids(session, caller.viewer_id, [a.id for a in page])
            elif where.is_public_front:
                # A deeper page of the unfiltered list: the total comes with the cached front page
                # (invalidated by every create and delete), so PostgreSQL does not count every article.
                total, _ = await self._cache.front_page(lambda: self._load_front(session))
                page, _, favorited = await self._articles.page(session, where, limit=limit, offset=offset,
                                                               viewer_id=caller.viewer_id, count=False)
            else:
                page, total, favorited = await self._articles.page(session, where, limit=limit, offset=offset,
                                                                   viewer_id=caller.viewer_id)
        return ArticlePage(await self._views.articles(page, caller, favorited, followed=followed), total)

    async def _load_front(self, session: AsyncSession) -> tuple[int, list[StoredArticle]]:
        page, total, _ = await self._articles.page(session, ArticleFilter(), limit=FRONT_PAGE_SIZE, offset=0)
        return total, page

    async def get(self, caller: Caller, slug: str) -> ArticleView:
        async with self._database.read() as session:
            article = await self._cache.article(slug, lambda: self._articles.by_slug(session, slug))
            if article is None:
                raise _not_found(slug)
            favorited = await self._articles.favorited_ids(session, caller.viewer_id, [article.id])
        return await self._views.article(article, caller, favorited=bool(favorited))

    # Writes

    async def create(self, caller: Caller, *, title: str, description: str, body: str,
                     tags: list[str]) -> ArticleView:
        """Publish an article by the caller; its slug comes from the title, made unique."""
        author_id = require_user(caller, "write articles")
        await self._writes.check(author_id)
        names = normalise.normalise_tags(tags)
        row = NewArticleRow(title=title, description=description, body=body, tags=tuple(names),
                            author_id=author_id, excerpt=normalise.excerpt(body),
                            reading_time_minutes=normalise.reading_time_minutes(body))
        async with self._database.transaction() as session:
            article = await self._insert_with_unique_slug(session, row)
            await events.article_created(session, article)
        await self._cache.invalidate(lists=True, tags=bool(names))
        return await self._views.article(article, caller, favorited=False)

    async def _insert_with_unique_slug(self, session: AsyncSession, row: NewArticleRow) -> StoredArticle:
        for slug in slugs.candidates(row.title, SLUG_ATTEMPTS):
            created = await self._articles.create(session, row, slug)
            if created is None:
                continue
            article, unattached = created
            if unattached:  # tags a concurrent writer committed while the insert ran (rare)
                tag_ids = await self._tags.ensure(session, unattached)
                await self._tags.attach(session, [(article.id, tag_ids[name], row.tags.index(name))
                                                  for name in unattached])
            return article
        raise _slug_exhausted()

    async def update(self, caller: Caller, slug: str, changes: ArticleChanges) -> ArticleView:
        """Change an article; only its author may. A new title makes a new slug."""
        await count_write(self._writes, caller)
        async with self._database.transaction() as session:
            current = await self._articles.by_slug(session, slug, for_update=True)
            if current is None:
                raise _not_found(slug)
            require_author(caller, current.author_id, "change this article")
            values = _changed_columns(current, changes)
            # Every read before the event: the append is the last statement (decision 0028).
            favorited = await self._articles.favorited_ids(session, caller.viewer_id, [current.id])
            if values:
                await self._apply(session, current, values)
                article = await self._articles.by_id(session, current.id)
                await events.article_updated(session, article, previous_slug=current.slug)
            else:
                article = current
        if values:
            await self._cache.invalidate(slugs={current.slug, article.slug}, lists=True)
        return await self._views.article(article, caller, favorited=bool(favorited))

    async def _apply(self, session: AsyncSession, current: StoredArticle, values: dict[str, Any]) -> None:
        title = values.get("title")
        if title is None or slugs.slugify(title) == slugs.slugify(current.title):
            await self._articles.update(session, current.id, values)
            return
        for candidate in slugs.candidates(title, SLUG_ATTEMPTS):
            if await self._articles.update(session, current.id, values, slug=candidate):
                return
        raise _slug_exhausted()

    async def delete(self, caller: Caller, slug: str) -> None:
        """Delete an article; its author, a moderator or an admin may."""
        await count_write(self._writes, caller)
        async with self._database.transaction() as session:
            article = await self._articles.by_slug(session, slug, for_update=True)
            if article is None:
                raise _not_found(slug)
            require_author_or_moderator(caller, article.author_id, "delete this article")
            await self._articles.delete(session, article.id)
            await events.article_deleted(session, article)
        await self._cache.invalidate(slugs=[article.slug], lists=True, tags=bool(article.tags))

    async def favorite(self, caller: Caller, slug: str, *, favorited: bool) -> ArticleView:
        """Add or remove the caller's favorite; repeating either is not an error.

        The counter moves only when a favorites row was really inserted or
        deleted, in the same statement, so it stays exact under concurrency.
        """
        user_id = require_user(caller, "favorite articles")
        await self._writes.check(user_id)
        async with self._database.transaction() as session:
            toggled = await self._articles.set_favorite(session, slug, user_id, favorited=favorited)
            if toggled is None:
                raise _not_found(slug)
            article, changed = toggled
            if changed:
                await events.favorite_changed(session, article, user_id, favorited=favorited)
        if changed:
            await self._cache.invalidate(slugs=[article.slug], lists=True)
        return await self._views.article(article, caller, favorited=favorited)


def _changed_columns(current: StoredArticle, changes: ArticleChanges) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if changes.title and changes.title != current.title:
        values["title"] = changes.title
    if changes.description and changes.description != current.description:
        values["description"] = changes.description
    if changes.body and changes.body != current.body:
        values.update(body=changes.body, excerpt=normalise.excerpt(changes.body),
                      reading_time_minutes=normalise.reading_time_minutes(changes.body))
    return values
