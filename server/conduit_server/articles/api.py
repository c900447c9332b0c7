"""gRPC servicers of conduit.articles.v1: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

from conduit.articles.v1 import articles_pb2, articles_pb2_grpc
from conduit.users.v1 import users_pb2
from conduit_server.articles.domain.articles import ArticleChanges, Articles
from conduit_server.articles.domain.comments import Comments
from conduit_server.articles.domain.importer import Importer, RawItem, Rejection
from conduit_server.articles.domain.records import ArticleView, Author, Caller, CommentView, StoredArticle
from conduit_server.articles.domain.tags import Tags
from conduit_server.articles.events import timestamp
from conduit_server.runtime import auth
from conduit_server.runtime.errors import InvalidArgument
from conduit_server.runtime.interceptors import check_text, validate


class CallerFactory:
    """The domain's view of the current call: the verified principal and the deadline to propagate."""

    def __init__(self, timeout_cap_seconds: float) -> None:
        self._cap = timeout_cap_seconds

    def __call__(self, context: Any, *, streaming: bool = False) -> Caller:
        principal = auth.current_principal()
        remaining = context.time_remaining()
        # No deadline from the client: a unary call gets the sane default, a long import no overall limit
        # (each call to users is still capped by the settings).
        budget = remaining if remaining is not None else (math.inf if streaming else self._cap)
        deadline = time.monotonic() + budget
        if principal is None:
            return Caller(user_id=None, deadline=deadline)
        return Caller(user_id=principal.user_id, roles=principal.roles, is_service=principal.is_service,
                      deadline=deadline)


def _profile(author: Author) -> users_pb2.Profile:
    return users_pb2.Profile(username=author.username, bio=author.bio, image=author.image,
                             following=author.following)


# Building messages is memoised by their (immutable) inputs: hot articles and the front page are the
# same decoded objects request after request (see cache.py). The messages are only ever copied into
# responses, never changed.
@functools.lru_cache(maxsize=64)  # bodies (≤ 200,000 characters) included: bounded like cache.py's
def _article_message(a: StoredArticle, author: Author, favorited: bool) -> articles_pb2.Article:
    return articles_pb2.Article(
        slug=a.slug, title=a.title, description=a.description, body=a.body, tag_list=a.tags,
        created_at=timestamp(a.created_at), updated_at=timestamp(a.updated_at), favorited=favorited,
        favorites_count=a.favorites_count, author=_profile(author))


@functools.lru_cache(maxsize=4096)
def _summary_message(a: StoredArticle, author: Author, favorited: bool) -> articles_pb2.ArticleSummary:
    return articles_pb2.ArticleSummary(
        slug=a.slug, title=a.title, description=a.description, tag_list=a.tags,
        created_at=timestamp(a.created_at), updated_at=timestamp(a.updated_at), favorited=favorited,
        favorites_count=a.favorites_count, author=_profile(author))


def _article(view: ArticleView) -> articles_pb2.Article:
    return _article_message(view.article, view.author, view.favorited)


def _summary(view: ArticleView) -> articles_pb2.ArticleSummary:
    return _summary_message(view.article, view.author, view.favorited)


def _comment(view: CommentView) -> articles_pb2.Comment:
    c = view.comment
    return articles_pb2.Comment(id=c.id, created_at=timestamp(c.created_at),
                                updated_at=timestamp(c.updated_at), body=c.body, author=_profile(view.author))


class ArticlesApi(articles_pb2_grpc.ArticlesServiceServicer):
    def __init__(self, articles: Articles, importer: Importer, caller: CallerFactory) -> None:
        self._articles = articles
        self._importer = importer
        self._caller = caller

    async def ListArticles(self, request: articles_pb2.ListArticlesRequest, context: Any
                           ) -> articles_pb2.ListArticlesResponse:
        page = await self._articles.list_articles(
            self._caller(context), tag=request.tag, author=request.author, favorited=request.favorited,
            limit=request.limit, offset=request.offset)
        return articles_pb2.ListArticlesResponse(articles=[_summary(view) for view in page.articles],
                                                 articles_count=page.total)

    async def ListFeedArticles(self, request: articles_pb2.ListFeedArticlesRequest, context: Any
                               ) -> articles_pb2.ListFeedArticlesResponse:
        page = await self._articles.feed(self._caller(context), limit=request.limit, offset=request.offset)
        return articles_pb2.ListFeedArticlesResponse(articles=[_summary(view) for view in page.articles],
                                                     articles_count=page.total)

    async def GetArticle(self, request: articles_pb2.GetArticleRequest, context: Any
                         ) -> articles_pb2.GetArticleResponse:
        view = await self._articles.get(self._caller(context), request.slug)
        return articles_pb2.GetArticleResponse(article=_article(view))

    async def CreateArticle(self, request: articles_pb2.CreateArticleRequest, context: Any
                            ) -> articles_pb2.CreateArticleResponse:
        new = request.article
        view = await self._articles.create(self._caller(context), title=new.title,
                                           description=new.description, body=new.body,
                                           tags=list(new.tag_list))
        return articles_pb2.CreateArticleResponse(article=_article(view))

    async def UpdateArticle(self, request: articles_pb2.UpdateArticleRequest, context: Any
                            ) -> articles_pb2.UpdateArticleResponse:
        changes = ArticleChanges(title=request.article.title, description=request.article.description,
                                 body=request.article.body)
        view = await self._articles.update(self._caller(context), request.slug, changes)
        return articles_pb2.UpdateArticleResponse(article=_article(view))

    async def DeleteArticle(self, request: articles_pb2.DeleteArticleRequest, context: Any
                            ) -> articles_pb2.DeleteArticleResponse:
        await self._articles.delete(self._caller(context), request.slug)
        return articles_pb2.DeleteArticleResponse()

    async def FavoriteArticle(self, request: articles_pb2.FavoriteArticleRequest, context: Any
                              ) -> articles_pb2.FavoriteArticleResponse:
        view = await self._articles.favorite(self._caller(context), request.slug, favorited=True)
        return articles_pb2.FavoriteArticleResponse(article=_article(view))

    async def UnfavoriteArticle(self, request: articles_pb2.UnfavoriteArticleRequest, context: Any
                                ) -> articles_pb2.UnfavoriteArticleResponse:
        view = await self._articles.favorite(self._caller(context), request.slug, favorited=False)
        return articles_pb2.UnfavoriteArticleResponse(article=_article(view))

    async def ImportArticles(self, request_iterator: AsyncIterator[articles_pb2.ImportArticlesRequest],
                             context: Any) -> articles_pb2.ImportArticlesResponse:
        report = await self._importer.run(_raw_items(request_iterator), self._caller(context, streaming=True))
        return articles_pb2.ImportArticlesResponse(
            created_count=report.created, rejected_count=report.rejected_count,
            rejected=[articles_pb2.ImportItemResult(index=r.index, reason=r.reason,
                                                    outcome=articles_pb2.IMPORT_OUTCOME_REJECTED)
                      for r in report.rejected])


async def _raw_items(requests: AsyncIterator[articles_pb2.ImportArticlesRequest]
                     ) -> AsyncIterator[RawItem | Rejection]:
    """Each streamed item validated on its own against the contract's rules."""
    index = 0
    async for request in requests:
        try:
            check_text(request)  # an item that did not parse, or U+0000 anywhere in it
            raw = request.article
            validate(raw)
        except InvalidArgument as error:
            yield Rejection(index, error.message)
        else:
            created_at = raw.created_at.ToDatetime(UTC) if raw.HasField("created_at") else None
            yield RawItem(index=index, title=raw.title, description=raw.description, body=raw.body,
                          tags=tuple(raw.tag_list), author=raw.author, created_at=created_at)
        index += 1


class CommentsApi(articles_pb2_grpc.CommentsServiceServicer):
    def __init__(self, comments: Comments, caller: CallerFactory) -> None:
        self._comments = comments
        self._caller = caller

    async def ListComments(self, request: articles_pb2.ListCommentsRequest, context: Any
                           ) -> articles_pb2.ListCommentsResponse:
        views = await self._comments.list_comments(self._caller(context), request.slug, limit=request.limit,
                                                   offset=request.offset)
        return articles_pb2.ListCommentsResponse(comments=[_comment(view) for view in views])

    async def CreateComment(self, request: articles_pb2.CreateCommentRequest, context: Any
                            ) -> articles_pb2.CreateCommentResponse:
        view = await self._comments.create(self._caller(context), request.slug, request.comment.body)
        return articles_pb2.CreateCommentResponse(comment=_comment(view))

    async def DeleteComment(self, request: articles_pb2.DeleteCommentRequest, context: Any
                            ) -> articles_pb2.DeleteCommentResponse:
        await self._comments.delete(self._caller(context), request.slug, request.id)
        return articles_pb2.DeleteCommentResponse()


class PingApi(articles_pb2_grpc.PingServiceServicer):
    """The cheapest call through the whole path: no database, no Redis, no other service."""

    async def Ping(self, request: articles_pb2.PingRequest, context: Any) -> articles_pb2.PingResponse:
        response = articles_pb2.PingResponse()
        response.server_time.GetCurrentTime()
        return response


class TagsApi(articles_pb2_grpc.TagsServiceServicer):
    def __init__(self, tags: Tags) -> None:
        self._tags = tags

    async def ListTags(self, request: articles_pb2.ListTagsRequest, context: Any
                       ) -> articles_pb2.ListTagsResponse:
        return articles_pb2.ListTagsResponse(tags=await self._tags.list())
