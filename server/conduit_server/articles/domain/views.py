"""Personalisation of stored articles and comments for the caller: authors and `following`."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from conduit_server.articles.domain.authors import Authors
from conduit_server.articles.domain.records import (
    UNKNOWN_AUTHOR,
    ArticleView,
    Caller,
    CommentView,
    StoredArticle,
    StoredComment,
)


class Views:
    """Builds what the caller sees with at most ONE users-service call per page (never one per item)."""

    def __init__(self, authors: Authors) -> None:
        self._authors = authors

    async def articles(self, articles: Sequence[StoredArticle], caller: Caller, favorited: Collection[int], *,
                       followed: Collection[int] | None = None) -> list[ArticleView]:
        """`followed`: the caller's fresh followee set when the caller already has it (the feed)."""
        authors = await self._authors.get((a.author_id for a in articles), caller, followed=followed)
        return [ArticleView(article, authors.get(article.author_id, UNKNOWN_AUTHOR), article.id in favorited)
                for article in articles]

    async def article(self, article: StoredArticle, caller: Caller, *, favorited: bool) -> ArticleView:
        (view,) = await self.articles([article], caller, {article.id} if favorited else set())
        return view

    async def comments(self, comments: Sequence[StoredComment], caller: Caller) -> list[CommentView]:
        authors = await self._authors.get((c.author_id for c in comments), caller)
        return [CommentView(comment, authors.get(comment.author_id, UNKNOWN_AUTHOR)) for comment in comments]
