"""Every resource method sends the request the contract expects and returns the unwrapped message."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from conduit.articles.v1 import articles_pb2, articles_pb2_grpc
from conduit.client import AsyncConduit, Conduit, NotFound
from conduit.users.v1 import users_pb2, users_pb2_grpc
from tests.sdk.conftest import Serve
from tests.sdk.support import FakeArticles, FakeAuth, bearer_of

Recorded = list[tuple[str, Message, str]]


class _Recording:
    def __init__(self, record: Recorded) -> None:
        self.record = record

    def seen(self, name: str, request: Message, context: grpc.ServicerContext) -> None:
        self.record.append((name, request, bearer_of(context)))


JAKE = users_pb2.User(email="jake@example.com", username="jake", token="jwt-jake")
COMMENT = articles_pb2.Comment(id=7, body="Nice")
Ctx = grpc.ServicerContext


class Users(_Recording, users_pb2_grpc.UsersServiceServicer):
    def CreateUser(self, request: users_pb2.CreateUserRequest, context: Ctx) -> users_pb2.CreateUserResponse:
        self.seen("CreateUser", request, context)
        return users_pb2.CreateUserResponse(user=JAKE)

    def Login(self, request: users_pb2.LoginRequest, context: Ctx) -> users_pb2.LoginResponse:
        self.seen("Login", request, context)
        return users_pb2.LoginResponse(user=JAKE)

    def GetCurrentUser(self, request: users_pb2.GetCurrentUserRequest,
                       context: Ctx) -> users_pb2.GetCurrentUserResponse:
        self.seen("GetCurrentUser", request, context)
        return users_pb2.GetCurrentUserResponse(user=JAKE)

    def UpdateCurrentUser(self, request: users_pb2.UpdateCurrentUserRequest,
                          context: Ctx) -> users_pb2.UpdateCurrentUserResponse:
        self.seen("UpdateCurrentUser", request, context)
        return users_pb2.UpdateCurrentUserResponse(user=JAKE)


class Profiles(_Recording, users_pb2_grpc.ProfilesServiceServicer):
    def GetProfile(self, request: users_pb2.GetProfileRequest, context: Ctx) -> users_pb2.GetProfileResponse:
        self.seen("GetProfile", request, context)
        profile = users_pb2.Profile(username=request.username, following=True)
        return users_pb2.GetProfileResponse(profile=profile)

    def FollowProfile(self, request: users_pb2.FollowProfileRequest,
                      context: Ctx) -> users_pb2.FollowProfileResponse:
        self.seen("FollowProfile", request, context)
        return users_pb2.FollowProfileResponse(profile=users_pb2.Profile(username=request.username))

    def UnfollowProfile(self, request: users_pb2.UnfollowProfileRequest,
                        context: Ctx) -> users_pb2.UnfollowProfileResponse:
        self.seen("UnfollowProfile", request, context)
        return users_pb2.UnfollowProfileResponse(profile=users_pb2.Profile(username=request.username))


class Comments(_Recording, articles_pb2_grpc.CommentsServiceServicer):
    def ListComments(self, request: articles_pb2.ListCommentsRequest,
                     context: Ctx) -> articles_pb2.ListCommentsResponse:
        self.seen("ListComments", request, context)
        return articles_pb2.ListCommentsResponse(comments=[COMMENT, COMMENT])

    def CreateComment(self, request: articles_pb2.CreateCommentRequest,
                      context: Ctx) -> articles_pb2.CreateCommentResponse:
        self.seen("CreateComment", request, context)
        return articles_pb2.CreateCommentResponse(comment=COMMENT)

    def DeleteComment(self, request: articles_pb2.DeleteCommentRequest,
                      context: Ctx) -> articles_pb2.DeleteCommentResponse:
        self.seen("DeleteComment", request, context)
        return articles_pb2.DeleteCommentResponse()


class Ping(articles_pb2_grpc.PingServiceServicer):
    def Ping(self, request: articles_pb2.PingRequest,
             context: grpc.ServicerContext) -> articles_pb2.PingResponse:
        response = articles_pb2.PingResponse()
        response.server_time.GetCurrentTime()
        return response


class Mesh:
    def __init__(self, serve: Serve) -> None:
        self.record: Recorded = []
        self.articles = FakeArticles(3)
        self.auth = FakeAuth(lifetime=60)
        server = serve((users_pb2_grpc.add_UsersServiceServicer_to_server, Users(self.record)),
                       (users_pb2_grpc.add_ProfilesServiceServicer_to_server, Profiles(self.record)),
                       (articles_pb2_grpc.add_CommentsServiceServicer_to_server, Comments(self.record)),
                       (articles_pb2_grpc.add_ArticlesServiceServicer_to_server, self.articles),
                       (users_pb2_grpc.add_AuthServiceServicer_to_server, self.auth),
                       (articles_pb2_grpc.add_PingServiceServicer_to_server, Ping()))
        self.target = server.target

    def requests(self, name: str) -> list[Any]:
        return [request for method, request, _ in self.record if method == name]


@pytest.fixture
def mesh(serve: Serve) -> Mesh:
    return Mesh(serve)


def _check_users_and_profiles(mesh: Mesh) -> None:
    (create,) = mesh.requests("CreateUser")
    assert (create.user.username, create.user.email) == ("jake", "jake@x.io")
    assert create.user.password == "pw-123456"
    (login,) = mesh.requests("Login")
    assert (login.user.email, login.user.password) == ("jake@x.io", "pw-123456")
    (update,) = mesh.requests("UpdateCurrentUser")
    assert (update.user.bio, update.user.email, update.user.password, update.user.image) == ("hi", "", "", "")
    assert [r.username for r in mesh.requests("GetProfile")] == ["jane"]
    assert [r.username for r in mesh.requests("FollowProfile")] == ["jane"]
    assert [r.username for r in mesh.requests("UnfollowProfile")] == ["jane"]
    assert {token for _, _, token in mesh.record} == {"Bearer jwt-jake"}


def _check_articles_and_comments(mesh: Mesh) -> None:
    (created,) = mesh.articles.created
    assert (created.title, created.description, created.body, list(created.tag_list)) == (
        "Hello World", "d", "b", ["grpc", "python"])
    (update,) = [r for name, r in mesh.articles.requests if name == "UpdateArticle"]
    assert isinstance(update, articles_pb2.UpdateArticleRequest)
    assert (update.slug, update.article.title, update.article.body) == ("hello-world", "", "new body")
    (add,) = mesh.requests("CreateComment")
    assert (add.slug, add.comment.body) == ("hello-world", "Nice")
    (delete,) = mesh.requests("DeleteComment")
    assert (delete.slug, delete.id) == ("hello-world", 7)
    imported = [r for name, r in mesh.articles.requests if name == "ImportArticles"]
    assert len(imported) == 2


def test_every_sync_method_maps_to_its_rpc(mesh: Mesh) -> None:
    with Conduit.connect(mesh.target, tls=False, token="jwt-jake") as conduit:
        user = conduit.users.register(username="jake", email="jake@x.io", password="pw-123456")
        assert user.token == "jwt-jake"
        assert conduit.users.login(email="jake@x.io", password="pw-123456").username == "jake"
        assert conduit.users.me().email == "jake@example.com"
        assert conduit.users.update(bio="hi").username == "jake"
        assert conduit.profiles.get("jane").following
        assert conduit.profiles.follow("jane").username == "jane"
        assert conduit.profiles.unfollow("jane").username == "jane"

        article = conduit.articles.create(title="Hello World", description="d", body="b",
                                          tags=["grpc", "python"])
        assert isinstance(article, articles_pb2.Article)
        assert conduit.articles.get(article.slug).title == "Hello World"
        assert conduit.articles.update(article.slug, body="new body").body == "new body"
        assert conduit.articles.favorite(article.slug).favorites_count == 1
        assert conduit.articles.favorite(article.slug).favorites_count == 1
        assert not conduit.articles.unfavorite(article.slug).favorited
        assert [c.id for c in conduit.comments.list(article.slug)] == [7, 7]
        assert conduit.comments.add(article.slug, body="Nice").body == "Nice"
        conduit.comments.delete(article.slug, 7)
        result = conduit.articles.import_articles([
            articles_pb2.RawArticle(title="A", body="b", author="jake"),
            articles_pb2.RawArticle(body="no title", author="jake")])
        assert (result.created_count, result.rejected_count) == (1, 1)
        conduit.articles.delete(article.slug)
        with pytest.raises(NotFound):
            conduit.articles.get(article.slug)

        session = conduit.auth.create_session(email="jake@x.io", password="correct-horse")
        renewed = conduit.auth.refresh_session(session.session.refresh_token)
        assert renewed.access_token != session.session.access_token
        conduit.auth.revoke_session(renewed.refresh_token)
        token = conduit.auth.create_oauth_token(client_id="svc-1", client_secret="s3cret", scopes=["a", "b"])
        assert token.scope == "a b"
        assert [key.kid for key in conduit.auth.jwks()] == ["k1"]
        assert conduit.ping().seconds > 0
    _check_users_and_profiles(mesh)
    _check_articles_and_comments(mesh)


async def test_every_async_method_maps_to_its_rpc(mesh: Mesh) -> None:
    async with await AsyncConduit.connect(mesh.target, tls=False, token="jwt-jake") as conduit:
        user = await conduit.users.register(username="jake", email="jake@x.io", password="pw-123456")
        assert user.token == "jwt-jake"
        assert (await conduit.users.login(email="jake@x.io", password="pw-123456")).username == "jake"
        assert (await conduit.users.me()).email == "jake@example.com"
        assert (await conduit.users.update(bio="hi")).username == "jake"
        assert (await conduit.profiles.get("jane")).following
        assert (await conduit.profiles.follow("jane")).username == "jane"
        assert (await conduit.profiles.unfollow("jane")).username == "jane"

        article = await conduit.articles.create(title="Hello World", description="d", body="b",
                                                tags=["grpc", "python"])
        assert (await conduit.articles.get(article.slug)).title == "Hello World"
        assert (await conduit.articles.update(article.slug, body="new body")).body == "new body"
        assert (await conduit.articles.favorite(article.slug)).favorites_count == 1
        assert not (await conduit.articles.unfavorite(article.slug)).favorited
        assert [c.id for c in await conduit.comments.list(article.slug)] == [7, 7]
        assert (await conduit.comments.add(article.slug, body="Nice")).body == "Nice"
        await conduit.comments.delete(article.slug, 7)

        async def raw() -> Any:
            yield articles_pb2.RawArticle(title="A", body="b", author="jake")
            yield articles_pb2.RawArticle(body="no title", author="jake")

        result = await conduit.articles.import_articles(raw())
        assert (result.created_count, result.rejected_count) == (1, 1)
        await conduit.articles.delete(article.slug)
        with pytest.raises(NotFound):
            await conduit.articles.get(article.slug)

        session = await conduit.auth.create_session(email="jake@x.io", password="correct-horse")
        renewed = await conduit.auth.refresh_session(session.session.refresh_token)
        await conduit.auth.revoke_session(renewed.refresh_token)
        token = await conduit.auth.create_oauth_token(client_id="svc-1", client_secret="s3cret")
        assert token.token_type == "Bearer"
        assert [key.kid for key in await conduit.auth.jwks()] == ["k1"]
        assert (await conduit.ping()).seconds > 0
    _check_users_and_profiles(mesh)
    _check_articles_and_comments(mesh)
