"""The resources of the asyncio client: the same methods as the blocking ones, awaited.

List calls return an `AsyncPager` at once (`async for`); watches return an `AsyncWatch`.
"""

# ruff: noqa: ASYNC109 - `timeout` is the gRPC deadline sent with each call, not a local wait

from __future__ import annotations

import builtins
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import grpc.aio

from conduit.articles.v1 import articles_pb2 as a
from conduit.client import _contract as m
from conduit.client import _requests as build
from conduit.client._errors import from_rpc_error
from conduit.client._pagers import AsyncPager, check_page
from conduit.client._resources import DEFAULT_PAGE_SIZE
from conduit.client._retry import Budget
from conduit.client._transport import AsyncTransport
from conduit.client._watch import MAX_RECONNECTS, AsyncWatch, ReconnectHook, watch_options
from conduit.realtime.v1 import realtime_pb2 as r
from conduit.search.v1 import search_pb2 as s
from conduit.users.v1 import users_pb2 as u


class AsyncUsers:
    """Accounts: registration, login and the current user (`UsersService`)."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def register(self, *, username: str, email: str, password: str,
                       timeout: float | None = None) -> u.User:
        """Registers a new account and returns it with an access token (`user.token`)."""
        request = u.CreateUserRequest(user=u.NewUser(username=username, email=email, password=password))
        return (await self._t.unary(m.CREATE_USER, request, timeout=timeout)).user

    async def login(self, *, email: str, password: str, timeout: float | None = None) -> u.User:
        """Exchanges email and password for the account and an access token.

        To keep a session that renews itself, connect with `PasswordCredentials` instead.
        """
        request = u.LoginRequest(user=u.LoginUser(email=email, password=password))
        return (await self._t.unary(m.LOGIN, request, timeout=timeout)).user

    async def me(self, *, timeout: float | None = None) -> u.User:
        """Returns the account of the caller with a fresh access token."""
        return (await self._t.unary(m.GET_CURRENT_USER, u.GetCurrentUserRequest(), timeout=timeout)).user

    async def update(self, *, email: str | None = None, username: str | None = None,
                     password: str | None = None, bio: str | None = None, image: str | None = None,
                     timeout: float | None = None) -> u.User:
        """Changes fields of the caller's account; fields not given are left unchanged."""
        request = build.update_user(email=email, username=username, password=password, bio=bio, image=image)
        return (await self._t.unary(m.UPDATE_CURRENT_USER, request, timeout=timeout)).user


class AsyncProfiles:
    """Profiles and follows (`ProfilesService`)."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def get(self, username: str, *, timeout: float | None = None) -> u.Profile:
        """Returns a profile, with `following` as seen by the caller."""
        request = u.GetProfileRequest(username=username)
        return (await self._t.unary(m.GET_PROFILE, request, timeout=timeout)).profile

    async def follow(self, username: str, *, timeout: float | None = None) -> u.Profile:
        """Makes the caller follow a user; following twice is not an error."""
        request = u.FollowProfileRequest(username=username)
        return (await self._t.unary(m.FOLLOW_PROFILE, request, timeout=timeout)).profile

    async def unfollow(self, username: str, *, timeout: float | None = None) -> u.Profile:
        """Makes the caller stop following a user; unfollowing twice is not an error."""
        request = u.UnfollowProfileRequest(username=username)
        return (await self._t.unary(m.UNFOLLOW_PROFILE, request, timeout=timeout)).profile


class AsyncArticles:
    """Articles, favorites, the feed and live watches (`ArticlesService`, `RealtimeService`)."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    def list(self, *, tag: str | None = None, author: str | None = None, favorited: str | None = None,
             page_size: int = DEFAULT_PAGE_SIZE, offset: int = 0,
             timeout: float | None = None) -> AsyncPager[a.ListArticlesResponse, a.ArticleSummary]:
        """Lists articles newest first, filtered by tag, author or favoriting user.

        Returns a pager at once (no `await`): `async for` it for every article,
        or `async for page in pager.pages()`. `timeout` applies to each page.
        """
        check_page(page_size, offset)

        async def fetch(at: int, limit: int, budget: Budget) -> a.ListArticlesResponse:
            request = build.list_articles(tag=tag, author=author, favorited=favorited, limit=limit, offset=at)
            return await self._t.unary(m.LIST_ARTICLES, request, timeout=timeout, budget=budget)

        return AsyncPager(fetch, lambda page: page.articles, lambda page: page.articles_count,
                          page_size=page_size, offset=offset, budget=self._t.budget)

    def feed(self, *, page_size: int = DEFAULT_PAGE_SIZE, offset: int = 0,
             timeout: float | None = None) -> AsyncPager[a.ListFeedArticlesResponse, a.ArticleSummary]:
        """Lists articles by the authors the caller follows, newest first (a pager)."""
        check_page(page_size, offset)

        async def fetch(at: int, limit: int, budget: Budget) -> a.ListFeedArticlesResponse:
            request = a.ListFeedArticlesRequest(limit=limit, offset=at)
            return await self._t.unary(m.LIST_FEED_ARTICLES, request, timeout=timeout, budget=budget)

        return AsyncPager(fetch, lambda page: page.articles, lambda page: page.articles_count,
                          page_size=page_size, offset=offset, budget=self._t.budget)

    async def get(self, slug: str, *, timeout: float | None = None) -> a.Article:
        """Returns one article by slug."""
        return (await self._t.unary(m.GET_ARTICLE, a.GetArticleRequest(slug=slug), timeout=timeout)).article

    async def create(self, *, title: str, description: str, body: str, tags: Iterable[str] = (),
                     timeout: float | None = None) -> a.Article:
        """Publishes an article by the caller; its slug is made from the title."""
        request = build.create_article(title=title, description=description, body=body, tags=tags)
        return (await self._t.unary(m.CREATE_ARTICLE, request, timeout=timeout)).article

    async def update(self, slug: str, *, title: str | None = None, description: str | None = None,
                     body: str | None = None, timeout: float | None = None) -> a.Article:
        """Changes an article; only its author may. A new title makes a new slug."""
        request = build.update_article(slug, title=title, description=description, body=body)
        return (await self._t.unary(m.UPDATE_ARTICLE, request, timeout=timeout)).article

    async def delete(self, slug: str, *, timeout: float | None = None) -> None:
        """Deletes an article; its author, a moderator or an admin may."""
        await self._t.unary(m.DELETE_ARTICLE, a.DeleteArticleRequest(slug=slug), timeout=timeout)

    async def favorite(self, slug: str, *, timeout: float | None = None) -> a.Article:
        """Marks an article as a favorite of the caller; repeating it is not an error."""
        request = a.FavoriteArticleRequest(slug=slug)
        return (await self._t.unary(m.FAVORITE_ARTICLE, request, timeout=timeout)).article

    async def unfavorite(self, slug: str, *, timeout: float | None = None) -> a.Article:
        """Removes an article from the caller's favorites; repeating it is not an error."""
        request = a.UnfavoriteArticleRequest(slug=slug)
        return (await self._t.unary(m.UNFAVORITE_ARTICLE, request, timeout=timeout)).article

    async def import_articles(self, articles: Iterable[a.RawArticle] | AsyncIterable[a.RawArticle], *,
                              timeout: float | None = None) -> a.ImportArticlesResponse:
        """Imports many raw articles in one client stream (admins, or the `articles.import` scope).

        Each item is validated on its own: a bad item is reported in `rejected`
        and never aborts the others. Never retried.
        """
        return await self._t.client_stream(m.IMPORT_ARTICLES, _import_requests(articles), timeout=timeout)

    def watch(self, slug: str, *, resume_token: str | None = None, include_heartbeats: bool = False,
              max_reconnects: int = MAX_RECONNECTS, heartbeat_gap: float | None = None,
              on_reconnect: ReconnectHook | None = None) -> AsyncWatch:
        """One article's edits, deletion, comments and favorite count, as they happen.

        Starts with new events, or after `resume_token`. Reconnects by itself;
        raises `StreamExpired` when the token is too old. Close it to stop.
        """
        async def open_stream(token: str, budget: Budget) -> grpc.aio.UnaryStreamCall[Any, r.WatchArticleResponse]:
            request = build.watch_article(slug, resume_token=token)
            return await self._t.server_stream(m.WATCH_ARTICLE, request, budget=budget)

        return AsyncWatch(open_stream, **watch_options(self._t, m.WATCH_ARTICLE, resume_token=resume_token,
            include_heartbeats=include_heartbeats, max_reconnects=max_reconnects, heartbeat_gap=heartbeat_gap,
            on_reconnect=on_reconnect))

    def watch_all(self, *, tag: str | None = None, author: str | None = None, resume_token: str | None = None,
                  include_heartbeats: bool = False,
                  max_reconnects: int = MAX_RECONNECTS, heartbeat_gap: float | None = None,
              on_reconnect: ReconnectHook | None = None) -> AsyncWatch:
        """The public stream of new articles, optionally filtered by tag or author."""
        async def open_stream(token: str, budget: Budget) -> grpc.aio.UnaryStreamCall[Any, r.WatchArticlesResponse]:
            request = build.watch_articles(tag=tag, author=author, resume_token=token)
            return await self._t.server_stream(m.WATCH_ARTICLES, request, budget=budget)

        return AsyncWatch(open_stream, **watch_options(self._t, m.WATCH_ARTICLES, resume_token=resume_token,
            include_heartbeats=include_heartbeats, max_reconnects=max_reconnects, heartbeat_gap=heartbeat_gap,
            on_reconnect=on_reconnect))

    def watch_feed(self, *, resume_token: str | None = None, include_heartbeats: bool = False,
                   max_reconnects: int = MAX_RECONNECTS, heartbeat_gap: float | None = None,
              on_reconnect: ReconnectHook | None = None) -> AsyncWatch:
        """New articles by the authors the caller follows (needs a signed-in client)."""
        async def open_stream(token: str, budget: Budget) -> grpc.aio.UnaryStreamCall[Any, r.WatchFeedResponse]:
            return await self._t.server_stream(m.WATCH_FEED, build.watch_feed(resume_token=token), budget=budget)

        return AsyncWatch(open_stream, **watch_options(self._t, m.WATCH_FEED, resume_token=resume_token,
            include_heartbeats=include_heartbeats, max_reconnects=max_reconnects, heartbeat_gap=heartbeat_gap,
            on_reconnect=on_reconnect))


def _import_requests(articles: Iterable[a.RawArticle] | AsyncIterable[a.RawArticle],
                     ) -> Iterable[a.ImportArticlesRequest] | AsyncIterable[a.ImportArticlesRequest]:
    if isinstance(articles, AsyncIterable):
        return _import_stream(articles)
    return (a.ImportArticlesRequest(article=article) for article in articles)


async def _import_stream(articles: AsyncIterable[a.RawArticle]) -> AsyncIterator[a.ImportArticlesRequest]:
    async for article in articles:
        yield a.ImportArticlesRequest(article=article)


class AsyncComments:
    """Comments on articles (`CommentsService`)."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def list(self, slug: str, *, limit: int = 0, offset: int = 0,
                   timeout: float | None = None) -> builtins.list[a.Comment]:
        """One page of an article's comments, newest first: the newest page by default (the
        service serves at most 10 per page; `offset` counts from the newest)."""
        request = a.ListCommentsRequest(slug=slug, limit=limit, offset=offset)
        return list((await self._t.unary(m.LIST_COMMENTS, request, timeout=timeout)).comments)

    async def add(self, slug: str, *, body: str, timeout: float | None = None) -> a.Comment:
        """Adds a comment by the caller to an article."""
        request = a.CreateCommentRequest(slug=slug, comment=a.NewComment(body=body))
        return (await self._t.unary(m.CREATE_COMMENT, request, timeout=timeout)).comment

    async def delete(self, slug: str, comment_id: int, *, timeout: float | None = None) -> None:
        """Deletes a comment; its author, a moderator or an admin may."""
        request = a.DeleteCommentRequest(slug=slug, id=comment_id)
        await self._t.unary(m.DELETE_COMMENT, request, timeout=timeout)


class AsyncTags:
    """Tags (`TagsService`)."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def list(self, *, timeout: float | None = None) -> builtins.list[str]:
        """Lists every tag in use, most used first."""
        return list((await self._t.unary(m.LIST_TAGS, a.ListTagsRequest(), timeout=timeout)).tags)


class AsyncSearch:
    """Full-text search over published articles (`SearchService`)."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    def articles(self, query: str, *, tag: str | None = None, author: str | None = None,
                 page_size: int = DEFAULT_PAGE_SIZE, offset: int = 0,
                 timeout: float | None = None) -> AsyncPager[s.SearchArticlesResponse, s.SearchHit]:
        """Finds articles whose title, description, body or tags match `query`, best first (a pager).

        `query` takes web-search syntax: quotes, `-`, `or`. Each hit carries the article in the list
        shape (`hit.article`) and HTML-safe highlights (`hit.title_highlight`, `hit.snippet`: `<mark>`
        around matches, the rest escaped); `.pages()` yields whole answers with `tag_facets`,
        `hits_count` and `corrected` (true when a misspelling was corrected).
        """
        check_page(page_size, offset)

        async def fetch(at: int, limit: int, budget: Budget) -> s.SearchArticlesResponse:
            request = build.search_articles(query, tag=tag, author=author, limit=limit, offset=at)
            return await self._t.unary(m.SEARCH_ARTICLES, request, timeout=timeout, budget=budget)

        return AsyncPager(fetch, lambda page: page.hits, lambda page: page.hits_count,
                          page_size=page_size, offset=offset, budget=self._t.budget)

    async def reindex(self, progress: Callable[[s.WatchReindexArticlesResponse], None] | None = None) -> int:
        """Rebuilds the index (admins only), calling `progress` with each update; returns how many
        articles the new index holds. Searches keep working meanwhile; the swap is atomic."""
        last = s.WatchReindexArticlesResponse()
        try:
            call = await self._t.server_stream(m.WATCH_REINDEX_ARTICLES, s.WatchReindexArticlesRequest())
            async for update in call:
                last = update
                if progress is not None:
                    progress(update)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        return last.indexed_count

    async def reindex_articles(self, *, timeout: float | None = None) -> int:
        """Rebuilds the index in one call (admins only; 120 s default deadline from the contract);
        returns how many articles the new index holds. A retry after a lost answer reuses the
        idempotency key, so it never starts a second rebuild."""
        return (await self._t.unary(m.REINDEX_ARTICLES, s.ReindexArticlesRequest(), timeout=timeout)).indexed_count

    async def status(self, *, timeout: float | None = None) -> s.GetIndexStatusResponse:
        """The index's size, backend and indexing lag (admins only)."""
        return await self._t.unary(m.GET_INDEX_STATUS, s.GetIndexStatusRequest(), timeout=timeout)


class AsyncAuth:
    """Token life cycle (`AuthService`). Clients made with credentials call these for you."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def create_session(self, *, email: str, password: str,
                             timeout: float | None = None) -> u.CreateSessionResponse:
        """Logs in and returns the account, an access token and an opaque refresh token."""
        request = u.CreateSessionRequest(user=u.LoginUser(email=email, password=password))
        return await self._t.unary(m.CREATE_SESSION, request, timeout=timeout)

    async def refresh_session(self, refresh_token: str, *, timeout: float | None = None) -> u.Session:
        """Exchanges a refresh token for new tokens; the presented one is spent.

        Presenting a spent token again revokes its whole family (`Unauthenticated`).
        """
        request = u.RefreshSessionRequest(refresh_token=refresh_token)
        return (await self._t.unary(m.REFRESH_SESSION, request, timeout=timeout)).session

    async def revoke_session(self, refresh_token: str, *, timeout: float | None = None) -> None:
        """Logs out: revokes the refresh token and every token of its family."""
        request = u.RevokeSessionRequest(refresh_token=refresh_token)
        await self._t.unary(m.REVOKE_SESSION, request, timeout=timeout)

    async def revoke_all_sessions(self, *, timeout: float | None = None) -> None:
        """Signs the caller out everywhere: every refresh and access token issued so far stops working."""
        await self._t.unary(m.REVOKE_ALL_SESSIONS, u.RevokeAllSessionsRequest(), timeout=timeout)

    async def create_oauth_token(self, *, client_id: str, client_secret: str, scopes: Sequence[str] = (),
                                 timeout: float | None = None) -> u.CreateOAuthTokenResponse:
        """OAuth2 client-credentials grant for a service account; empty `scopes` asks for all granted."""
        request = build.oauth_token(client_id=client_id, client_secret=client_secret, scopes=scopes)
        return await self._t.unary(m.CREATE_OAUTH_TOKEN, request, timeout=timeout)

    async def jwks(self, *, timeout: float | None = None) -> list[u.Jwk]:
        """The public keys that verify access tokens (a JSON Web Key Set)."""
        return list((await self._t.unary(m.GET_JWKS, u.GetJwksRequest(), timeout=timeout)).keys)


class AsyncAdmin:
    """Roles and service accounts (`AdminService`, admins only); lists return everything in one call."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def roles(self, username: str, *, timeout: float | None = None) -> builtins.list[str]:
        """The roles of a user (`user` is implicit and always listed)."""
        return list((await self._t.unary(m.LIST_USER_ROLES, u.ListUserRolesRequest(username=username),
                                         timeout=timeout)).roles)

    async def grant_role(self, username: str, role: str, *, timeout: float | None = None) -> builtins.list[str]:
        """Grants `role` (`moderator`, `admin`); effective from the user's next token. Returns the roles."""
        request = u.GrantRoleRequest(username=username, role=role)
        return list((await self._t.unary(m.GRANT_ROLE, request, timeout=timeout)).roles)

    async def revoke_role(self, username: str, role: str, *, timeout: float | None = None) -> builtins.list[str]:
        """Revokes `role`; the last admin cannot lose `admin` (`LastAdminError`). Returns the roles."""
        request = u.RevokeRoleRequest(username=username, role=role)
        return list((await self._t.unary(m.REVOKE_ROLE, request, timeout=timeout)).roles)

    async def create_service_account(self, name: str, scopes: Sequence[str], *,
                               timeout: float | None = None) -> u.CreateServiceAccountResponse:
        """Creates a service account; `client_secret` of the answer is shown this once."""
        request = u.CreateServiceAccountRequest(name=name, scopes=list(scopes))
        return await self._t.unary(m.CREATE_SERVICE_ACCOUNT, request, timeout=timeout)

    async def service_accounts(self, *, timeout: float | None = None) -> builtins.list[u.ServiceAccount]:
        """Every service account (never their secrets)."""
        return list((await self._t.unary(m.LIST_SERVICE_ACCOUNTS, u.ListServiceAccountsRequest(),
                                  timeout=timeout)).service_accounts)

    async def revoke_service_account(self, client_id: str, *, timeout: float | None = None) -> None:
        """Revokes a service account: its secret stops working at once."""
        request = u.RevokeServiceAccountRequest(client_id=client_id)
        await self._t.unary(m.REVOKE_SERVICE_ACCOUNT, request, timeout=timeout)
