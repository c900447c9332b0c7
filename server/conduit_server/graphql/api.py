"""The GraphQL schema: query and mutation roots whose resolvers call the mesh's RPCs.

Each resolver translates its arguments into one request message, calls the RPC through the generated stub
with the caller's `Authorization` and request id (so the called method's own rules apply: an anonymous
caller cannot write), and translates the answer with the generated types (`domain/types.py`). A failed
call becomes a GraphQL error carrying the gRPC code and field violations (`domain/errors.py`).
Subscriptions are in `events.py`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import strawberry
from google.protobuf.message import Message
from strawberry.types import Info

from conduit.articles.v1 import articles_pb2, articles_pb2_grpc
from conduit.realtime.v1 import realtime_pb2_grpc
from conduit.search.v1 import search_pb2, search_pb2_grpc
from conduit.users.v1 import users_pb2, users_pb2_grpc
from conduit_server.graphql.domain import types
from conduit_server.graphql.domain.errors import CallFailure, graphql_error, unauthenticated
from conduit_server.graphql.domain.loaders import Loaders
from conduit_server.runtime.errors import ConduitError
from conduit_server.runtime.logs import request_id_var
from conduit_server.runtime.propagation import REQUEST_ID_KEY
from conduit_server.users.client.calls import UsersClient

Reply = TypeVar("Reply")
STATUS_DETAILS_KEY = "grpc-status-details-bin"
# Page sizes: the default, and the largest a document may ask (the cost rule uses it for variables).
DEFAULT_PAGE = 20
MAX_PAGE = 100


def failure_of(error: grpc.aio.AioRpcError) -> CallFailure:
    details = b""
    pairs: tuple[tuple[str, str | bytes], ...] = tuple(error.trailing_metadata() or ())  # type: ignore[arg-type]
    for key, value in pairs:
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            details = value
    return CallFailure(error.code().name, error.details() or "", details)


class Mesh:
    """The stubs of the services the schema calls, on the process's internal channels."""

    def __init__(self, *, articles: grpc.aio.Channel, users: grpc.aio.Channel, search: grpc.aio.Channel,
                 realtime: grpc.aio.Channel, timeout_seconds: float) -> None:
        self.articles = articles_pb2_grpc.ArticlesServiceStub(articles)
        self.comments = articles_pb2_grpc.CommentsServiceStub(articles)
        self.tags = articles_pb2_grpc.TagsServiceStub(articles)
        self.users = users_pb2_grpc.UsersServiceStub(users)
        self.profiles = users_pb2_grpc.ProfilesServiceStub(users)
        self.directory = UsersClient(users, timeout_cap_seconds=timeout_seconds)
        self.search = search_pb2_grpc.SearchServiceStub(search)
        self.realtime = realtime_pb2_grpc.RealtimeServiceStub(realtime)
        self.timeout_seconds = timeout_seconds


@dataclass
class Context:
    """What every resolver of one request (or one WebSocket connection) sees."""

    mesh: Mesh
    # Sent on with every call: the caller's Authorization and the request id.
    metadata: tuple[tuple[str, str], ...]
    # The caller's user id from their verified token; 0 for anonymous callers.
    viewer_id: int = 0
    loaders: Loaders = field(init=False)
    # The event id of the last event a watch stream of this context yielded (a shared feed's position).
    watch_position: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self._profiles)

    @property
    def signed_in(self) -> bool:
        return any(key == "authorization" for key, _ in self.metadata)

    async def call(self, method: Callable[..., Awaitable[Reply]], request: Message) -> Reply:
        try:
            return await method(request, metadata=self.metadata, timeout=self.mesh.timeout_seconds)
        except grpc.aio.AioRpcError as error:
            raise graphql_error(failure_of(error)) from None

    async def _profiles(self, usernames: Sequence[str]) -> Mapping[str, types.Profile]:
        """One ResolveUsernames and one BatchGetProfiles call for every username of the tick."""
        # The users client's channel sends the request id of the served call on (runtime/propagation.py).
        served = request_id_var.set(dict(self.metadata).get(REQUEST_ID_KEY, ""))
        try:
            ids = await self.mesh.directory.resolve(usernames)
            found = await self.mesh.directory.profiles(ids.values(), self.viewer_id) if ids else {}
        except ConduitError as error:
            raise graphql_error(CallFailure(error.code.name, str(error))) from None
        except grpc.aio.AioRpcError as error:
            raise graphql_error(failure_of(error)) from None
        finally:
            request_id_var.reset(served)
        return {profile.username.lower(): types.Profile.from_pb(profile) for profile in found.values()}


def context_of(info: Info[Context, Any]) -> Context:
    return info.context


def _page(first: int, after: str | None) -> tuple[int, int]:
    """(limit, offset) from a connection's `first` and `after` cursor (an opaque offset)."""
    if not 1 <= first <= MAX_PAGE:
        raise graphql_error(CallFailure("INVALID_ARGUMENT", f"first must be between 1 and {MAX_PAGE}"))
    offset = 0
    if after:
        try:
            offset = int(base64.b64decode(after, validate=True).decode().removeprefix("offset:")) + 1
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise graphql_error(CallFailure("INVALID_ARGUMENT", "after is not a cursor of this API")) from None
    return first, offset


def cursor(offset: int) -> str:
    return base64.b64encode(f"offset:{offset}".encode()).decode()


@strawberry.type(description="A page of a connection.")
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type(description="An article of a list, with its cursor.")
class ArticleEdge:
    cursor: str
    node: types.ArticleSummary


@strawberry.type(description="A page of articles, newest first.")
class ArticleConnection:
    total_count: int
    edges: list[ArticleEdge]
    page_info: PageInfo

    @strawberry.field(description="The articles of the page (the edges' nodes).")
    def nodes(self) -> list[types.ArticleSummary]:
        return [edge.node for edge in self.edges]


def connection(summaries: Sequence[articles_pb2.ArticleSummary], total: int, offset: int) -> ArticleConnection:
    edges = [ArticleEdge(cursor=cursor(offset + index), node=types.ArticleSummary.from_pb(summary))
             for index, summary in enumerate(summaries)]
    end = offset + len(edges)
    page = PageInfo(has_next_page=end < total, end_cursor=edges[-1].cursor if edges else None)
    return ArticleConnection(total_count=total, edges=edges, page_info=page)


@strawberry.type(description="An article with its comments.")
class ArticleDetail(types.Article):
    @strawberry.field(description="The article's comments, oldest first.")
    async def comments(self, info: Info[Context, Any], first: int = DEFAULT_PAGE, after: str | None = None
                       ) -> list[types.Comment]:
        limit, offset = _page(first, after)
        request = articles_pb2.ListCommentsRequest(slug=self.slug, limit=limit, offset=offset)
        answer = await context_of(info).call(context_of(info).mesh.comments.ListComments, request)
        return [types.Comment.from_pb(comment) for comment in answer.comments]


@strawberry.type(description="Search results: hits with highlights, and tag counts.")
class SearchResults:
    total_count: int
    hits: list[types.SearchHit]
    tag_facets: list[types.TagFacet]
    corrected: bool


@strawberry.type
class Query:
    @strawberry.field(description="Articles, newest first, filtered by tag, author or favoriting user.")
    async def articles(self, info: Info[Context, Any], *, tag: str | None = None, author: str | None = None,
                       favorited: str | None = None, first: int = DEFAULT_PAGE, after: str | None = None
                       ) -> ArticleConnection:
        limit, offset = _page(first, after)
        request = articles_pb2.ListArticlesRequest(tag=tag or "", author=author or "", favorited=favorited or "",
                                                   limit=limit, offset=offset)
        answer = await context_of(info).call(context_of(info).mesh.articles.ListArticles, request)
        return connection(answer.articles, answer.articles_count, offset)

    @strawberry.field(description="Articles by the users the caller follows (signed in).")
    async def feed(self, info: Info[Context, Any], first: int = DEFAULT_PAGE, after: str | None = None
                   ) -> ArticleConnection:
        limit, offset = _page(first, after)
        request = articles_pb2.ListFeedArticlesRequest(limit=limit, offset=offset)
        answer = await context_of(info).call(context_of(info).mesh.articles.ListFeedArticles, request)
        return connection(answer.articles, answer.articles_count, offset)

    @strawberry.field(description="One article by slug, with its author and comments.")
    async def article(self, info: Info[Context, Any], slug: str) -> ArticleDetail:
        answer = await context_of(info).call(context_of(info).mesh.articles.GetArticle,
                                             articles_pb2.GetArticleRequest(slug=slug))
        return ArticleDetail.from_pb(answer.article)

    @strawberry.field(description="A user's profile; null when there is no such user.")
    async def profile(self, info: Info[Context, Any], username: str) -> types.Profile | None:
        return await context_of(info).loaders.profiles.load(username.lower())

    @strawberry.field(description="Every tag in use.")
    async def tags(self, info: Info[Context, Any]) -> list[str]:
        answer = await context_of(info).call(context_of(info).mesh.tags.ListTags, articles_pb2.ListTagsRequest())
        return list(answer.tags)

    @strawberry.field(description="The signed-in caller.")
    async def me(self, info: Info[Context, Any]) -> types.User:
        context = context_of(info)
        if not context.signed_in:
            raise unauthenticated()
        answer = await context.call(context.mesh.users.GetCurrentUser, users_pb2.GetCurrentUserRequest())
        return types.User.from_pb(answer.user)

    @strawberry.field(description="Full-text search over articles.")
    async def search(self, info: Info[Context, Any], *, query: str = "", tag: str | None = None,
                     author: str | None = None, first: int = DEFAULT_PAGE, after: str | None = None) -> SearchResults:
        limit, offset = _page(first, after)
        request = search_pb2.SearchArticlesRequest(query=query, tag=tag or "", author=author or "", limit=limit,
                                                   offset=offset)
        answer = await context_of(info).call(context_of(info).mesh.search.SearchArticles, request)
        return SearchResults(total_count=answer.hits_count, hits=[types.SearchHit.from_pb(h) for h in answer.hits],
                             tag_facets=[types.TagFacet.from_pb(f) for f in answer.tag_facets],
                             corrected=answer.corrected)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Register; the answer carries the new user's token.")
    async def register(self, info: Info[Context, Any], user: types.NewUserInput) -> types.User:
        answer = await context_of(info).call(context_of(info).mesh.users.CreateUser,
                                             users_pb2.CreateUserRequest(user=user.to_pb()))
        return types.User.from_pb(answer.user)

    @strawberry.mutation(description="Sign in with email and password; the answer carries a token.")
    async def login(self, info: Info[Context, Any], user: types.LoginUserInput) -> types.User:
        answer = await context_of(info).call(context_of(info).mesh.users.Login,
                                             users_pb2.LoginRequest(user=user.to_pb()))
        return types.User.from_pb(answer.user)

    @strawberry.mutation(description="Change the signed-in caller's account; only the given fields change.")
    async def update_user(self, info: Info[Context, Any], user: types.UpdateUserInput) -> types.User:
        answer = await context_of(info).call(context_of(info).mesh.users.UpdateCurrentUser,
                                             users_pb2.UpdateCurrentUserRequest(user=user.to_pb()))
        return types.User.from_pb(answer.user)

    @strawberry.mutation(description="Follow a user.")
    async def follow(self, info: Info[Context, Any], username: str) -> types.Profile:
        answer = await context_of(info).call(context_of(info).mesh.profiles.FollowProfile,
                                             users_pb2.FollowProfileRequest(username=username))
        return types.Profile.from_pb(answer.profile)

    @strawberry.mutation(description="Stop following a user.")
    async def unfollow(self, info: Info[Context, Any], username: str) -> types.Profile:
        answer = await context_of(info).call(context_of(info).mesh.profiles.UnfollowProfile,
                                             users_pb2.UnfollowProfileRequest(username=username))
        return types.Profile.from_pb(answer.profile)

    @strawberry.mutation(description="Publish an article.")
    async def create_article(self, info: Info[Context, Any], article: types.NewArticleInput) -> ArticleDetail:
        answer = await context_of(info).call(context_of(info).mesh.articles.CreateArticle,
                                             articles_pb2.CreateArticleRequest(article=article.to_pb()))
        return ArticleDetail.from_pb(answer.article)

    @strawberry.mutation(description="Change one's article; only the given fields change.")
    async def update_article(self, info: Info[Context, Any], slug: str, article: types.UpdateArticleInput
                             ) -> ArticleDetail:
        request = articles_pb2.UpdateArticleRequest(slug=slug, article=article.to_pb())
        answer = await context_of(info).call(context_of(info).mesh.articles.UpdateArticle, request)
        return ArticleDetail.from_pb(answer.article)

    @strawberry.mutation(description="Delete one's article; true when done.")
    async def delete_article(self, info: Info[Context, Any], slug: str) -> bool:
        await context_of(info).call(context_of(info).mesh.articles.DeleteArticle,
                                    articles_pb2.DeleteArticleRequest(slug=slug))
        return True

    @strawberry.mutation(description="Favorite an article.")
    async def favorite_article(self, info: Info[Context, Any], slug: str) -> ArticleDetail:
        answer = await context_of(info).call(context_of(info).mesh.articles.FavoriteArticle,
                                             articles_pb2.FavoriteArticleRequest(slug=slug))
        return ArticleDetail.from_pb(answer.article)

    @strawberry.mutation(description="Take back a favorite.")
    async def unfavorite_article(self, info: Info[Context, Any], slug: str) -> ArticleDetail:
        answer = await context_of(info).call(context_of(info).mesh.articles.UnfavoriteArticle,
                                             articles_pb2.UnfavoriteArticleRequest(slug=slug))
        return ArticleDetail.from_pb(answer.article)

    @strawberry.mutation(description="Comment on an article.")
    async def add_comment(self, info: Info[Context, Any], slug: str, comment: types.NewCommentInput) -> types.Comment:
        answer = await context_of(info).call(context_of(info).mesh.comments.CreateComment,
                                             articles_pb2.CreateCommentRequest(slug=slug, comment=comment.to_pb()))
        return types.Comment.from_pb(answer.comment)

    @strawberry.mutation(description="Delete one's comment; true when done.")
    async def delete_comment(self, info: Info[Context, Any], slug: str, id: int) -> bool:
        await context_of(info).call(context_of(info).mesh.comments.DeleteComment,
                                    articles_pb2.DeleteCommentRequest(slug=slug, id=id))
        return True


__all__ = ["DEFAULT_PAGE", "MAX_PAGE", "Context", "Mesh", "Mutation", "Query", "connection", "failure_of"]
