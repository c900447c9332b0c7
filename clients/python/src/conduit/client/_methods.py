"""The per-method table (as GAPIC clients keep one): every RPC with its types and retry class.

Only idempotent methods are retried automatically. A method is idempotent
when repeating it cannot change the outcome: reads (`Get*`, `List*`,
`BatchGet*`, `Search*`, `ResolveUsernames`, `GetJwks`, `Ping`). Everything that
writes (`Create*`, `Update*`, `Delete*`, `Favorite*`, `Follow*`, `Login`,
`RefreshSession`, ...) is never retried by the SDK: a retry after a lost
answer could write twice, or spend a single-use refresh token. A test checks
the table against the contract's descriptors, so a new RPC cannot be missed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message

from conduit.articles.v1 import articles_pb2 as a
from conduit.realtime.v1 import realtime_pb2 as r
from conduit.search.v1 import search_pb2 as s
from conduit.users.v1 import users_pb2 as u

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)


@dataclass(frozen=True)
class Method(Generic[Req, Resp]):
    """One RPC of the contract: its path, message types and whether it may be retried."""

    path: str
    request_type: type[Req]
    response_type: type[Resp]
    idempotent: bool
    kind: str = "unary"  # "unary", "server_stream" or "client_stream"

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[1]


def _m(service: str, name: str, request: type[Req], response: type[Resp], *,
       idempotent: bool, kind: str = "unary") -> Method[Req, Resp]:
    return Method(f"/{service}/{name}", request, response, idempotent, kind)


_USERS = "conduit.users.v1.UsersService"
_PROFILES = "conduit.users.v1.ProfilesService"
_AUTH = "conduit.users.v1.AuthService"
_ADMIN = "conduit.users.v1.AdminService"
_DIRECTORY = "conduit.users.v1.UserDirectoryService"
_ARTICLES = "conduit.articles.v1.ArticlesService"
_COMMENTS = "conduit.articles.v1.CommentsService"
_TAGS = "conduit.articles.v1.TagsService"
_PING = "conduit.articles.v1.PingService"
_RECORDS = "conduit.articles.v1.ArticleRecordsService"
_SEARCH = "conduit.search.v1.SearchService"
_REALTIME = "conduit.realtime.v1.RealtimeService"

CREATE_USER = _m(_USERS, "CreateUser", u.CreateUserRequest, u.CreateUserResponse, idempotent=False)
LOGIN = _m(_USERS, "Login", u.LoginRequest, u.LoginResponse, idempotent=False)
GET_CURRENT_USER = _m(_USERS, "GetCurrentUser", u.GetCurrentUserRequest, u.GetCurrentUserResponse,
                      idempotent=True)
UPDATE_CURRENT_USER = _m(_USERS, "UpdateCurrentUser", u.UpdateCurrentUserRequest,
                         u.UpdateCurrentUserResponse, idempotent=False)

GET_PROFILE = _m(_PROFILES, "GetProfile", u.GetProfileRequest, u.GetProfileResponse, idempotent=True)
FOLLOW_PROFILE = _m(_PROFILES, "FollowProfile", u.FollowProfileRequest, u.FollowProfileResponse,
                    idempotent=False)
UNFOLLOW_PROFILE = _m(_PROFILES, "UnfollowProfile", u.UnfollowProfileRequest, u.UnfollowProfileResponse,
                      idempotent=False)

CREATE_SESSION = _m(_AUTH, "CreateSession", u.CreateSessionRequest, u.CreateSessionResponse,
                    idempotent=False)
REFRESH_SESSION = _m(_AUTH, "RefreshSession", u.RefreshSessionRequest, u.RefreshSessionResponse,
                     idempotent=False)
REVOKE_SESSION = _m(_AUTH, "RevokeSession", u.RevokeSessionRequest, u.RevokeSessionResponse,
                    idempotent=False)
REVOKE_ALL_SESSIONS = _m(_AUTH, "RevokeAllSessions", u.RevokeAllSessionsRequest, u.RevokeAllSessionsResponse,
                         idempotent=False)
CREATE_OAUTH_TOKEN = _m(_AUTH, "CreateOAuthToken", u.CreateOAuthTokenRequest, u.CreateOAuthTokenResponse,
                        idempotent=False)
GET_JWKS = _m(_AUTH, "GetJwks", u.GetJwksRequest, u.GetJwksResponse, idempotent=True)
# Each start mints a new single-use state; a completion spends one: neither is ever repeated.
START_OIDC_LOGIN = _m(_AUTH, "StartOidcLogin", u.StartOidcLoginRequest, u.StartOidcLoginResponse,
                      idempotent=False)
COMPLETE_OIDC_LOGIN = _m(_AUTH, "CompleteOidcLogin", u.CompleteOidcLoginRequest, u.CompleteOidcLoginResponse,
                         idempotent=False)

LIST_USER_ROLES = _m(_ADMIN, "ListUserRoles", u.ListUserRolesRequest, u.ListUserRolesResponse,
                     idempotent=True)
GRANT_ROLE = _m(_ADMIN, "GrantRole", u.GrantRoleRequest, u.GrantRoleResponse, idempotent=False)
REVOKE_ROLE = _m(_ADMIN, "RevokeRole", u.RevokeRoleRequest, u.RevokeRoleResponse, idempotent=False)
CREATE_SERVICE_ACCOUNT = _m(_ADMIN, "CreateServiceAccount", u.CreateServiceAccountRequest,
                            u.CreateServiceAccountResponse, idempotent=False)
LIST_SERVICE_ACCOUNTS = _m(_ADMIN, "ListServiceAccounts", u.ListServiceAccountsRequest,
                           u.ListServiceAccountsResponse, idempotent=True)
REVOKE_SERVICE_ACCOUNT = _m(_ADMIN, "RevokeServiceAccount", u.RevokeServiceAccountRequest,
                            u.RevokeServiceAccountResponse, idempotent=False)

BATCH_GET_PROFILES = _m(_DIRECTORY, "BatchGetProfiles", u.BatchGetProfilesRequest,
                        u.BatchGetProfilesResponse, idempotent=True)
RESOLVE_USERNAMES = _m(_DIRECTORY, "ResolveUsernames", u.ResolveUsernamesRequest,
                       u.ResolveUsernamesResponse, idempotent=True)
LIST_FOLLOWEE_IDS = _m(_DIRECTORY, "ListFolloweeIds", u.ListFolloweeIdsRequest, u.ListFolloweeIdsResponse,
                       idempotent=True)

LIST_ARTICLES = _m(_ARTICLES, "ListArticles", a.ListArticlesRequest, a.ListArticlesResponse,
                   idempotent=True)
LIST_FEED_ARTICLES = _m(_ARTICLES, "ListFeedArticles", a.ListFeedArticlesRequest,
                        a.ListFeedArticlesResponse, idempotent=True)
GET_ARTICLE = _m(_ARTICLES, "GetArticle", a.GetArticleRequest, a.GetArticleResponse, idempotent=True)
CREATE_ARTICLE = _m(_ARTICLES, "CreateArticle", a.CreateArticleRequest, a.CreateArticleResponse,
                    idempotent=False)
UPDATE_ARTICLE = _m(_ARTICLES, "UpdateArticle", a.UpdateArticleRequest, a.UpdateArticleResponse,
                    idempotent=False)
DELETE_ARTICLE = _m(_ARTICLES, "DeleteArticle", a.DeleteArticleRequest, a.DeleteArticleResponse,
                    idempotent=False)
FAVORITE_ARTICLE = _m(_ARTICLES, "FavoriteArticle", a.FavoriteArticleRequest, a.FavoriteArticleResponse,
                      idempotent=False)
UNFAVORITE_ARTICLE = _m(_ARTICLES, "UnfavoriteArticle", a.UnfavoriteArticleRequest,
                        a.UnfavoriteArticleResponse, idempotent=False)
IMPORT_ARTICLES = _m(_ARTICLES, "ImportArticles", a.ImportArticlesRequest, a.ImportArticlesResponse,
                     idempotent=False, kind="client_stream")

LIST_COMMENTS = _m(_COMMENTS, "ListComments", a.ListCommentsRequest, a.ListCommentsResponse,
                   idempotent=True)
CREATE_COMMENT = _m(_COMMENTS, "CreateComment", a.CreateCommentRequest, a.CreateCommentResponse,
                    idempotent=False)
DELETE_COMMENT = _m(_COMMENTS, "DeleteComment", a.DeleteCommentRequest, a.DeleteCommentResponse,
                    idempotent=False)

LIST_TAGS = _m(_TAGS, "ListTags", a.ListTagsRequest, a.ListTagsResponse, idempotent=True)

PING = _m(_PING, "Ping", a.PingRequest, a.PingResponse, idempotent=True)

SEARCH_ARTICLES = _m(_SEARCH, "SearchArticles", s.SearchArticlesRequest, s.SearchArticlesResponse,
                     idempotent=True)
REINDEX_ARTICLES = _m(_SEARCH, "ReindexArticles", s.ReindexArticlesRequest, s.ReindexArticlesResponse,
                      idempotent=False)
GET_INDEX_STATUS = _m(_SEARCH, "GetIndexStatus", s.GetIndexStatusRequest, s.GetIndexStatusResponse,
                      idempotent=True)
WATCH_REINDEX_ARTICLES = _m(_SEARCH, "WatchReindexArticles", s.WatchReindexArticlesRequest,
                            s.WatchReindexArticlesResponse, idempotent=False, kind="server_stream")

# Internal to the mesh (the gateway never routes them); listed so the table covers the contract.
STREAM_ARTICLE_RECORDS = _m(_RECORDS, "StreamArticleRecords", a.StreamArticleRecordsRequest,
                            a.StreamArticleRecordsResponse, idempotent=False, kind="server_stream")
BATCH_GET_ARTICLES = _m(_RECORDS, "BatchGetArticles", a.BatchGetArticlesRequest, a.BatchGetArticlesResponse,
                        idempotent=True)

# Watches are resumed by the watch iterator with their resume token, never retried blindly.
WATCH_FEED = _m(_REALTIME, "WatchFeed", r.WatchFeedRequest, r.WatchFeedResponse, idempotent=False,
                kind="server_stream")
WATCH_ARTICLE = _m(_REALTIME, "WatchArticle", r.WatchArticleRequest, r.WatchArticleResponse,
                   idempotent=False, kind="server_stream")
WATCH_ARTICLES = _m(_REALTIME, "WatchArticles", r.WatchArticlesRequest, r.WatchArticlesResponse,
                    idempotent=False, kind="server_stream")

#: Every RPC of the contract by path.
METHODS: dict[str, Method[Any, Any]] = {
    method.path: method for method in (
        CREATE_USER, LOGIN, GET_CURRENT_USER, UPDATE_CURRENT_USER,
        GET_PROFILE, FOLLOW_PROFILE, UNFOLLOW_PROFILE,
        CREATE_SESSION, REFRESH_SESSION, REVOKE_SESSION, REVOKE_ALL_SESSIONS, CREATE_OAUTH_TOKEN, GET_JWKS,
        START_OIDC_LOGIN, COMPLETE_OIDC_LOGIN,
        LIST_USER_ROLES, GRANT_ROLE, REVOKE_ROLE, CREATE_SERVICE_ACCOUNT, LIST_SERVICE_ACCOUNTS,
        REVOKE_SERVICE_ACCOUNT,
        BATCH_GET_PROFILES, RESOLVE_USERNAMES, LIST_FOLLOWEE_IDS,
        LIST_ARTICLES, LIST_FEED_ARTICLES, GET_ARTICLE, CREATE_ARTICLE, UPDATE_ARTICLE, DELETE_ARTICLE,
        FAVORITE_ARTICLE, UNFAVORITE_ARTICLE, IMPORT_ARTICLES,
        LIST_COMMENTS, CREATE_COMMENT, DELETE_COMMENT,
        LIST_TAGS, PING,
        STREAM_ARTICLE_RECORDS, BATCH_GET_ARTICLES,
        SEARCH_ARTICLES, REINDEX_ARTICLES, GET_INDEX_STATUS, WATCH_REINDEX_ARTICLES,
        WATCH_FEED, WATCH_ARTICLE, WATCH_ARTICLES,
    )
}
