"""Ownership rules in the domain layer (BOLA): every write as a stranger is PERMISSION_DENIED;
moderators and admins may delete articles and comments, but only authors edit."""

from __future__ import annotations

import grpc
import pytest

from conduit.articles.v1 import articles_pb2
from conduit.users.v1 import users_pb2
from tests.articles.conftest import Mesh, Person


async def _setup(mesh: Mesh) -> tuple[Person, Person, str, int]:
    author, stranger = await mesh.person("author"), await mesh.person("stranger")
    slug = (await mesh.create(author, "Owned")).slug
    comment = (await mesh.comments.CreateComment(articles_pb2.CreateCommentRequest(
        slug=slug, comment=articles_pb2.NewComment(body="mine")), metadata=author.auth)).comment
    return author, stranger, slug, comment.id


async def _denied(call: object) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_stranger_can_change_or_delete_nothing(mesh: Mesh) -> None:
    _, stranger, slug, comment_id = await _setup(mesh)
    await _denied(mesh.articles.UpdateArticle(articles_pb2.UpdateArticleRequest(
        slug=slug, article=articles_pb2.UpdateArticle(title="Hijacked")), metadata=stranger.auth))
    await _denied(mesh.articles.UpdateArticle(articles_pb2.UpdateArticleRequest(
        slug=slug, article=articles_pb2.UpdateArticle(body="defaced")), metadata=stranger.auth))
    await _denied(mesh.articles.DeleteArticle(articles_pb2.DeleteArticleRequest(slug=slug),
                                              metadata=stranger.auth))
    await _denied(mesh.comments.DeleteComment(articles_pb2.DeleteCommentRequest(slug=slug, id=comment_id),
                                              metadata=stranger.auth))
    article = (await mesh.articles.GetArticle(articles_pb2.GetArticleRequest(slug=slug))).article
    assert (article.title, article.body) == ("Owned", "You have to believe.")
    comments = await mesh.comments.ListComments(articles_pb2.ListCommentsRequest(slug=slug))
    assert [c.id for c in comments.comments] == [comment_id]
    # The stranger's own favorites and comments are theirs to make (no ownership involved).
    await mesh.articles.FavoriteArticle(articles_pb2.FavoriteArticleRequest(slug=slug),
                                        metadata=stranger.auth)


async def test_the_article_author_cannot_delete_other_peoples_comments(mesh: Mesh) -> None:
    author, stranger, slug, _ = await _setup(mesh)
    theirs = (await mesh.comments.CreateComment(articles_pb2.CreateCommentRequest(
        slug=slug, comment=articles_pb2.NewComment(body="theirs")), metadata=stranger.auth)).comment
    await _denied(mesh.comments.DeleteComment(articles_pb2.DeleteCommentRequest(slug=slug, id=theirs.id),
                                              metadata=author.auth))


@pytest.mark.parametrize("role", ["moderator", "admin"])
async def test_moderators_and_admins_delete_comments_and_articles_but_do_not_edit(mesh: Mesh,
                                                                                  role: str) -> None:
    _, _, slug, comment_id = await _setup(mesh)
    moderator = await mesh.moderator(role)
    await _denied(mesh.articles.UpdateArticle(articles_pb2.UpdateArticleRequest(
        slug=slug, article=articles_pb2.UpdateArticle(title="Moderated")), metadata=moderator.auth))
    await mesh.comments.DeleteComment(articles_pb2.DeleteCommentRequest(slug=slug, id=comment_id),
                                      metadata=moderator.auth)
    await mesh.articles.DeleteArticle(articles_pb2.DeleteArticleRequest(slug=slug), metadata=moderator.auth)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await mesh.articles.GetArticle(articles_pb2.GetArticleRequest(slug=slug))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_service_account_cannot_act_as_a_user(mesh: Mesh) -> None:
    _, _, slug, comment_id = await _setup(mesh)
    auth = (("authorization", f"Bearer {await mesh.service_token(['articles.import'])}"),)
    await _denied(mesh.articles.FavoriteArticle(articles_pb2.FavoriteArticleRequest(slug=slug),
                                                metadata=auth))
    await _denied(mesh.comments.CreateComment(articles_pb2.CreateCommentRequest(
        slug=slug, comment=articles_pb2.NewComment(body="bot")), metadata=auth))
    await _denied(mesh.comments.DeleteComment(articles_pb2.DeleteCommentRequest(slug=slug, id=comment_id),
                                              metadata=auth))
    await _denied(mesh.articles.DeleteArticle(articles_pb2.DeleteArticleRequest(slug=slug), metadata=auth))
    await _denied(mesh.articles.ListFeedArticles(articles_pb2.ListFeedArticlesRequest(), metadata=auth))


async def test_a_password_change_voids_older_tokens_in_the_articles_service_too(mesh: Mesh) -> None:
    author = await mesh.person("changer")
    await mesh.create(author, "Before")  # the token is now in the articles verifier's cache

    changed = await mesh.users.users.UpdateCurrentUser(users_pb2.UpdateCurrentUserRequest(
        user=users_pb2.UpdateUser(password="another long password")), metadata=author.auth)

    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await mesh.create(author, "After")
    assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
    renewed = Person(author.username, author.user_id, changed.user.token)
    assert (await mesh.create(renewed, "After")).title == "After"
