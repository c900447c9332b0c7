"""Test servers of the contract for the SDK's unit tests: generated servicers with scripted behaviour.

They run in a real gRPC server (`conduit.client.testing.InProcessServer`), so
the SDK is exercised over the wire: statuses, details and metadata are real.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from conduit.articles.v1 import articles_pb2, articles_pb2_grpc
from conduit.realtime.v1 import realtime_pb2, realtime_pb2_grpc
from conduit.users.v1 import users_pb2, users_pb2_grpc


def packed(*details: Message) -> list[any_pb2.Any]:
    result = []
    for detail in details:
        wrapper = any_pb2.Any()
        wrapper.Pack(detail)
        result.append(wrapper)
    return result


def error_info(reason: str, **metadata: str) -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo(reason=reason, domain="conduit.dev", metadata=metadata)


def retry_info(seconds: float) -> error_details_pb2.RetryInfo:
    return error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(
        seconds=int(seconds), nanos=round((seconds % 1) * 1e9)))


def bad_request(*violations: tuple[str, str]) -> error_details_pb2.BadRequest:
    return error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in violations])


@dataclass(frozen=True)
class Failure:
    """A status a test server ends a call with: code, message, `google.rpc` details, extra trailers."""

    code: grpc.StatusCode
    message: str = "failed"
    details: Sequence[Message] = ()
    trailers: tuple[tuple[str, str], ...] = ()

    def abort(self, context: grpc.ServicerContext) -> NoReturn:
        status = status_pb2.Status(code=self.code.value[0], message=self.message,
                                   details=packed(*self.details))
        encoded = rpc_status.to_status(status)  # carries grpc-status-details-bin
        context.set_trailing_metadata((*encoded.trailing_metadata, *self.trailers))
        context.abort(encoded.code, encoded.details)


UNAVAILABLE = Failure(grpc.StatusCode.UNAVAILABLE, "service restarting", (error_info("UNAVAILABLE"),))


def bearer_of(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata():
        if key == "authorization" and isinstance(value, str):
            return value
    return ""


class ScriptedTags(articles_pb2_grpc.TagsServiceServicer):
    """ListTags fails with each scripted failure in turn, then answers; counts every call."""

    def __init__(self, *failures: Failure, delay: float = 0.0) -> None:
        self.failures = list(failures)
        self.delay = delay
        self.calls = 0
        self.call_times: list[float] = []
        self.authorization: list[str] = []
        self.deadlines: list[float | None] = []
        self._lock = threading.Lock()

    def ListTags(self, request: articles_pb2.ListTagsRequest,
                 context: grpc.ServicerContext) -> articles_pb2.ListTagsResponse:
        with self._lock:
            self.calls += 1
            self.call_times.append(time.monotonic())
            self.authorization.append(bearer_of(context))
            self.deadlines.append(context.time_remaining())
            failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            failure.abort(context)
        if self.delay:
            time.sleep(self.delay)
        return articles_pb2.ListTagsResponse(tags=["grpc", "python"])


def summary(index: int) -> articles_pb2.ArticleSummary:
    return articles_pb2.ArticleSummary(slug=f"article-{index}", title=f"Article {index}")


@dataclass
class ListCall:
    tag: str
    author: str
    favorited: str
    limit: int
    offset: int


class FakeArticles(articles_pb2_grpc.ArticlesServiceServicer):
    """`count` articles to page through, kept in memory; CreateArticle fails with the scripted failures.

    Every request is recorded in `requests` (method name, request).
    """

    def __init__(self, count: int = 0, *, create_failures: Sequence[Failure] = (),
                 reported_count: int | None = None, max_page: int | None = None) -> None:
        self.articles = [summary(i) for i in range(count)]
        self.reported_count = reported_count
        self.max_page = max_page
        self.list_calls: list[ListCall] = []
        self.create_failures = list(create_failures)
        self.create_calls = 0
        self.created: list[articles_pb2.NewArticle] = []
        self.requests: list[tuple[str, Message]] = []
        self.stored: dict[str, articles_pb2.Article] = {}
        self._lock = threading.Lock()

    def _page(self, limit: int, offset: int) -> tuple[list[articles_pb2.ArticleSummary], int]:
        limit = min(limit or 20, self.max_page or limit or 20)
        total = self.reported_count if self.reported_count is not None else len(self.articles)
        return self.articles[offset:offset + limit], total

    def ListArticles(self, request: articles_pb2.ListArticlesRequest,
                     context: grpc.ServicerContext) -> articles_pb2.ListArticlesResponse:
        with self._lock:
            self.list_calls.append(ListCall(request.tag, request.author, request.favorited, request.limit,
                                            request.offset))
        page, total = self._page(request.limit, request.offset)
        return articles_pb2.ListArticlesResponse(articles=page, articles_count=total)

    def ListFeedArticles(self, request: articles_pb2.ListFeedArticlesRequest,
                         context: grpc.ServicerContext) -> articles_pb2.ListFeedArticlesResponse:
        with self._lock:
            self.list_calls.append(ListCall("", "", "", request.limit, request.offset))
        page, total = self._page(request.limit, request.offset)
        return articles_pb2.ListFeedArticlesResponse(articles=page, articles_count=total)

    def CreateArticle(self, request: articles_pb2.CreateArticleRequest,
                      context: grpc.ServicerContext) -> articles_pb2.CreateArticleResponse:
        with self._lock:
            self.create_calls += 1
            failure = self.create_failures.pop(0) if self.create_failures else None
        if failure is not None:
            failure.abort(context)
        self.created.append(request.article)
        article = articles_pb2.Article(
            slug=request.article.title.lower().replace(" ", "-"), title=request.article.title,
            description=request.article.description, body=request.article.body,
            tag_list=request.article.tag_list)
        self.stored[article.slug] = article
        return articles_pb2.CreateArticleResponse(article=article)

    def _find(self, name: str, request: Message, slug: str,
              context: grpc.ServicerContext) -> articles_pb2.Article:
        self.requests.append((name, request))
        found = self.stored.get(slug)
        if found is None:
            Failure(grpc.StatusCode.NOT_FOUND, "article not found", (error_info("ARTICLE_NOT_FOUND"),)).abort(
                context)
        return found

    def GetArticle(self, request: articles_pb2.GetArticleRequest,
                   context: grpc.ServicerContext) -> articles_pb2.GetArticleResponse:
        article = self._find("GetArticle", request, request.slug, context)
        return articles_pb2.GetArticleResponse(article=article)

    def UpdateArticle(self, request: articles_pb2.UpdateArticleRequest,
                      context: grpc.ServicerContext) -> articles_pb2.UpdateArticleResponse:
        article = self._find("UpdateArticle", request, request.slug, context)
        for name in ("title", "description", "body"):
            value = getattr(request.article, name)
            if value:
                setattr(article, name, value)
        return articles_pb2.UpdateArticleResponse(article=article)

    def DeleteArticle(self, request: articles_pb2.DeleteArticleRequest,
                      context: grpc.ServicerContext) -> articles_pb2.DeleteArticleResponse:
        self._find("DeleteArticle", request, request.slug, context)
        del self.stored[request.slug]
        return articles_pb2.DeleteArticleResponse()

    def FavoriteArticle(self, request: articles_pb2.FavoriteArticleRequest,
                        context: grpc.ServicerContext) -> articles_pb2.FavoriteArticleResponse:
        article = self._find("FavoriteArticle", request, request.slug, context)
        if not article.favorited:
            article.favorited, article.favorites_count = True, article.favorites_count + 1
        return articles_pb2.FavoriteArticleResponse(article=article)

    def UnfavoriteArticle(self, request: articles_pb2.UnfavoriteArticleRequest,
                          context: grpc.ServicerContext) -> articles_pb2.UnfavoriteArticleResponse:
        article = self._find("UnfavoriteArticle", request, request.slug, context)
        if article.favorited:
            article.favorited, article.favorites_count = False, article.favorites_count - 1
        return articles_pb2.UnfavoriteArticleResponse(article=article)

    def ImportArticles(self, request_iterator: Iterator[articles_pb2.ImportArticlesRequest],
                       context: grpc.ServicerContext) -> articles_pb2.ImportArticlesResponse:
        response = articles_pb2.ImportArticlesResponse()
        for index, item in enumerate(request_iterator):
            self.requests.append(("ImportArticles", item))
            if item.article.title:
                response.created_count += 1
            else:
                response.rejected_count += 1
                response.rejected.add(index=index, outcome=articles_pb2.IMPORT_OUTCOME_REJECTED,
                                      reason="article.title: can't be blank")
        return response


def event(event_id: str, kind: int = realtime_pb2.EVENT_TYPE_COMMENT_ADDED) -> realtime_pb2.Event:
    return realtime_pb2.Event(event_id=event_id, type=kind)  # type: ignore[arg-type]


def heartbeat(event_id: str = "") -> realtime_pb2.Event:
    return realtime_pb2.Event(event_id=event_id, type=realtime_pb2.EVENT_TYPE_HEARTBEAT)


# One message of a scripted stream: an event (in `event`), or a batch of them (in `events`).
Scripted = realtime_pb2.Event | Sequence[realtime_pb2.Event]


@dataclass
class Connection:
    """What one WatchArticle stream does: send `events`, then end with `end` (None: OK).

    An item that is a list of events is one batched message (`events`), as the realtime
    service sends when the request sets `batched`.
    """

    events: Sequence[Scripted]
    end: Failure | None = None
    hold: threading.Event | None = None  # when set: block after the events until it is set


@dataclass
class FakeRealtime(realtime_pb2_grpc.RealtimeServiceServicer):
    """Plays one scripted Connection per stream opened; records each request's resume token."""

    connections: list[Connection]
    resume_tokens: list[str] = field(default_factory=list)
    requests: list[Message] = field(default_factory=list)

    def _play(self, request: Message, token: str, context: grpc.ServicerContext) -> Iterator[dict[str, Any]]:
        """The fields of each scripted response."""
        self.requests.append(request)
        self.resume_tokens.append(token)
        if not self.connections:
            UNAVAILABLE.abort(context)
        connection = self.connections.pop(0)
        for item in connection.events:
            yield {"event": item} if isinstance(item, realtime_pb2.Event) else {"events": item}
        if connection.hold is not None:
            while not connection.hold.wait(0.05):
                if not context.is_active():
                    return
        if connection.end is not None:
            connection.end.abort(context)

    def WatchArticle(self, request: realtime_pb2.WatchArticleRequest,
                     context: grpc.ServicerContext) -> Iterator[realtime_pb2.WatchArticleResponse]:
        for item in self._play(request, request.resume_token, context):
            yield realtime_pb2.WatchArticleResponse(**item)

    def WatchArticles(self, request: realtime_pb2.WatchArticlesRequest,
                      context: grpc.ServicerContext) -> Iterator[realtime_pb2.WatchArticlesResponse]:
        for item in self._play(request, request.resume_token, context):
            yield realtime_pb2.WatchArticlesResponse(**item)

    def WatchFeed(self, request: realtime_pb2.WatchFeedRequest,
                  context: grpc.ServicerContext) -> Iterator[realtime_pb2.WatchFeedResponse]:
        for item in self._play(request, request.resume_token, context):
            yield realtime_pb2.WatchFeedResponse(**item)


class FakeClock:
    """Seconds since the epoch that move only when a test says so (token expiry without waiting)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeAuth(users_pb2_grpc.AuthServiceServicer):
    """Issues short-lived access tokens and single-use refresh tokens; `verify` checks a bearer.

    Refresh tokens rotate on use; presenting a spent or revoked one revokes the
    family (as the users service does). `latency` slows every token call down,
    which widens the window for concurrent renewals.
    """

    def __init__(self, *, lifetime: float, refresh_lifetime: int = 3600, latency: float = 0.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.clock = clock  # the client's clock too, in tests that move time instead of waiting
        self.lifetime = lifetime
        self.refresh_lifetime = refresh_lifetime
        self.latency = latency
        self.sessions_created = 0
        self.refreshes = 0
        self.oauth_tokens = 0
        self.revocations = 0
        self.scopes: list[str] = []
        self.rejected: list[str] = []
        self.refresh_failures: list[Failure] = []
        self._tokens: dict[str, float] = {}  # access token -> expiry (by `clock`)
        self._refresh: dict[str, str] = {}  # live refresh token -> state ("live", "spent", "revoked")
        self._counter = 0
        self._lock = threading.Lock()

    def _issue(self) -> tuple[str, str]:
        with self._lock:
            self._counter += 1
            access, refresh = f"access-{self._counter}", f"refresh-{self._counter}"
            self._tokens[access] = self.clock() + self.lifetime
            self._refresh[refresh] = "live"
        return access, refresh

    def _session(self) -> users_pb2.Session:
        access, refresh = self._issue()
        # The wire carries whole seconds: round up so the client's view never outlives ours.
        return users_pb2.Session(access_token=access, expires_in_seconds=max(1, int(self.lifetime)),
                                 refresh_token=refresh, refresh_expires_in_seconds=self.refresh_lifetime)

    def revoke_all(self) -> None:
        with self._lock:
            for token in self._refresh:
                self._refresh[token] = "revoked"

    def verify(self, context: grpc.ServicerContext) -> None:
        """Abort with UNAUTHENTICATED unless the call carries a live access token."""
        header = bearer_of(context)
        token = header.removeprefix("Bearer ")
        expiry = self._tokens.get(token)
        if not header.startswith("Bearer ") or expiry is None or expiry <= self.clock():
            self.rejected.append(header)
            Failure(grpc.StatusCode.UNAUTHENTICATED, "token expired or invalid",
                    (error_info("TOKEN_INVALID"),)).abort(context)

    def CreateSession(self, request: users_pb2.CreateSessionRequest,
                      context: grpc.ServicerContext) -> users_pb2.CreateSessionResponse:
        time.sleep(self.latency)
        if request.user.password != "correct-horse":
            Failure(grpc.StatusCode.UNAUTHENTICATED, "email or password is invalid",
                    (error_info("INVALID_CREDENTIALS"),)).abort(context)
        with self._lock:
            self.sessions_created += 1
        return users_pb2.CreateSessionResponse(user=users_pb2.User(email=request.user.email),
                                               session=self._session())

    def RefreshSession(self, request: users_pb2.RefreshSessionRequest,
                       context: grpc.ServicerContext) -> users_pb2.RefreshSessionResponse:
        time.sleep(self.latency)
        with self._lock:
            self.refreshes += 1
            failure = self.refresh_failures.pop(0) if self.refresh_failures else None
        if failure is not None:
            failure.abort(context)
        with self._lock:
            state = self._refresh.get(request.refresh_token)
            if state == "live":
                self._refresh[request.refresh_token] = "spent"
            elif state is not None:
                for token in self._refresh:
                    self._refresh[token] = "revoked"
        if state != "live":
            Failure(grpc.StatusCode.UNAUTHENTICATED, "refresh token has been revoked",
                    (error_info("REFRESH_TOKEN_REVOKED"),)).abort(context)
        return users_pb2.RefreshSessionResponse(session=self._session())

    def RevokeSession(self, request: users_pb2.RevokeSessionRequest,
                      context: grpc.ServicerContext) -> users_pb2.RevokeSessionResponse:
        with self._lock:
            self.revocations += 1
        self.revoke_all()
        return users_pb2.RevokeSessionResponse()

    def RevokeAllSessions(self, request: users_pb2.RevokeAllSessionsRequest,
                          context: grpc.ServicerContext) -> users_pb2.RevokeAllSessionsResponse:
        self.revoke_all()
        return users_pb2.RevokeAllSessionsResponse()

    def GetJwks(self, request: users_pb2.GetJwksRequest,
                context: grpc.ServicerContext) -> users_pb2.GetJwksResponse:
        return users_pb2.GetJwksResponse(keys=[users_pb2.Jwk(kty="OKP", crv="Ed25519", x="abc", kid="k1",
                                                             use="sig", alg="EdDSA")])

    def CreateOAuthToken(self, request: users_pb2.CreateOAuthTokenRequest,
                         context: grpc.ServicerContext) -> users_pb2.CreateOAuthTokenResponse:
        time.sleep(self.latency)
        if (request.grant_type, request.client_id, request.client_secret) != (
                "client_credentials", "svc-1", "s3cret"):
            Failure(grpc.StatusCode.UNAUTHENTICATED, "client authentication failed",
                    (error_details_pb2.ErrorInfo(reason="invalid_client", domain="oauth2"),)).abort(context)
        with self._lock:
            self.oauth_tokens += 1
            self.scopes.append(request.scope)
        access, _ = self._issue()
        return users_pb2.CreateOAuthTokenResponse(access_token=access, token_type="Bearer",
                                                  expires_in=max(1, int(self.lifetime)), scope=request.scope)

    def StartOidcLogin(self, request: users_pb2.StartOidcLoginRequest,
                       context: grpc.ServicerContext) -> users_pb2.StartOidcLoginResponse:
        # Browser sign-in is no part of the SDK's sessions.
        Failure(grpc.StatusCode.UNIMPLEMENTED, "not in this fake", ()).abort(context)

    def CompleteOidcLogin(self, request: users_pb2.CompleteOidcLoginRequest,
                          context: grpc.ServicerContext) -> users_pb2.CompleteOidcLoginResponse:
        Failure(grpc.StatusCode.UNIMPLEMENTED, "not in this fake", ()).abort(context)


class GuardedTags(articles_pb2_grpc.TagsServiceServicer):
    """ListTags that only answers callers with a live token from `auth`."""

    def __init__(self, auth: FakeAuth) -> None:
        self.auth = auth
        self.calls = 0
        self.tokens: list[str] = []

    def ListTags(self, request: articles_pb2.ListTagsRequest,
                 context: grpc.ServicerContext) -> articles_pb2.ListTagsResponse:
        self.calls += 1
        self.tokens.append(bearer_of(context))
        self.auth.verify(context)
        return articles_pb2.ListTagsResponse(tags=["ok"])
