"""Personalisation of stored articles and comments for the caller: authors and `following`."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence

from conduit_server.articles.records import (
    UNKNOWN_AUTHOR,
    ArticleView,
    Author,
    Caller,
    CommentView,
    StoredArticle,
    StoredComment,
)
from conduit_server.articles.users_client import UsersClient

log = logging.getLogger("conduit.articles")


class Views:
    """Builds what the caller sees with ONE users-service call per page (never one per item)."""

    def __init__(self, users: UsersClient) -> None:
        self._users = users

    async def _authors(self, author_ids: Iterable[int], caller: Caller) -> dict[int, Author]:
        wanted = set(author_ids)
        if not wanted:
            return {}
        found = await self._users.profiles(wanted, caller.viewer_id, caller.deadline)
        missing = wanted - found.keys()
        if missing:
            log.warning("users service does not know authors %s", sorted(missing))
        return found

    async def articles(self, articles: Sequence[StoredArticle], caller: Caller,
                       favorited: Collection[int]) -> list[ArticleView]:
        authors = await self._authors((a.author_id for a in articles), caller)
        return [ArticleView(article, authors.get(article.author_id, UNKNOWN_AUTHOR), article.id in favorited)
                for article in articles]

    async def article(self, article: StoredArticle, caller: Caller, *, favorited: bool) -> ArticleView:
        (view,) = await self.articles([article], caller, {article.id} if favorited else set())
        return view

    async def comments(self, comments: Sequence[StoredComment], caller: Caller) -> list[CommentView]:
        authors = await self._authors((c.author_id for c in comments), caller)
        return [CommentView(comment, authors.get(comment.author_id, UNKNOWN_AUTHOR)) for comment in comments]
