"""Comments on articles."""

from __future__ import annotations

from conduit_server.articles import events
from conduit_server.articles.domain.access import count_write, require_author_or_moderator, require_user
from conduit_server.articles.domain.pages import COMMENTS_PAGE, page_size
from conduit_server.articles.domain.records import Caller, CommentView
from conduit_server.articles.domain.views import Views
from conduit_server.articles.repository import CommentRepository
from conduit_server.runtime.db import Database
from conduit_server.runtime.errors import NotFound
from conduit_server.runtime.ratelimit import WriteLimit


def _article_not_found(slug: str) -> NotFound:
    return NotFound(f"article '{slug}' not found", reason="ARTICLE_NOT_FOUND")


class Comments:
    def __init__(self, database: Database, comments: CommentRepository, views: Views, *,
                 writes: WriteLimit) -> None:
        self._database = database
        self._writes = writes
        self._comments = comments
        self._views = views

    async def list_comments(self, caller: Caller, slug: str, *, limit: int = 0, offset: int = 0
                            ) -> list[CommentView]:
        """One page of the article's comments, newest first (the newest page by default)."""
        async with self._database.read() as session:
            comments = await self._comments.for_article(session, slug, limit=page_size(limit, COMMENTS_PAGE),
                                                        offset=offset)
        if comments is None:
            raise _article_not_found(slug)
        return await self._views.comments(comments, caller)

    async def create(self, caller: Caller, slug: str, body: str) -> CommentView:
        author_id = require_user(caller, "comment")
        await self._writes.check(author_id)
        async with self._database.transaction() as session:
            comment = await self._comments.add(session, slug, author_id, body)
            if comment is None:
                raise _article_not_found(slug)
            await events.comment_added(session, comment)
        (view,) = await self._views.comments([comment], caller)
        return view

    async def delete(self, caller: Caller, slug: str, comment_id: int) -> None:
        """Delete a comment of the article; its author, a moderator or an admin may."""
        await count_write(self._writes, caller)
        async with self._database.transaction() as session:
            comment = await self._comments.in_article_for_update(session, slug, comment_id)
            if comment is None:
                raise NotFound(f"comment {comment_id} not found on article '{slug}'",
                               reason="COMMENT_NOT_FOUND")
            require_author_or_moderator(caller, comment.author_id, "delete this comment")
            await self._comments.delete(session, comment.id)
            await events.comment_deleted(session, comment)
