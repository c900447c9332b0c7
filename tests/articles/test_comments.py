"""RealWorld comments through gRPC: list newest first, add, delete; a comment belongs to its article."""

from __future__ import annotations

import grpc
import pytest

from conduit.articles.v1 import articles_pb2
from tests.articles.conftest import Mesh, Person


async def _comment(mesh: Mesh, author: Person, slug: str, body: str) -> articles_pb2.Comment:
    response = await mesh.comments.CreateComment(articles_pb2.CreateCommentRequest(
        slug=slug, comment=articles_pb2.NewComment(body=body)), metadata=author.auth)
    return response.comment


async def _comments(mesh: Mesh, slug: str) -> list[articles_pb2.Comment]:
    return list((await mesh.comments.ListComments(articles_pb2.ListCommentsRequest(slug=slug))).comments)


async def test_comments_are_added_and_listed_newest_first_with_authors(mesh: Mesh) -> None:
    alice, bob = await mesh.person("alice"), await mesh.person("bob")
    slug = (await mesh.create(alice, "Discussed")).slug
    first = await _comment(mesh, bob, slug, "First!")
    assert (first.body, first.author.username, first.author.following) == ("First!", bob.username, False)
    assert first.id > 0
    assert first.created_at == first.updated_at
    await _comment(mesh, alice, slug, "Thanks")
    await mesh.follow(alice, bob)
    listed = await mesh.comments.ListComments(articles_pb2.ListCommentsRequest(slug=slug),
                                              metadata=alice.auth)
    assert [(c.body, c.author.username, c.author.following) for c in listed.comments] == [
        ("Thanks", alice.username, False), ("First!", bob.username, True)]
    anonymous = await mesh.comments.ListComments(articles_pb2.ListCommentsRequest(slug=slug))
    assert [c.author.following for c in anonymous.comments] == [False, False]


async def test_an_article_without_comments_lists_none(mesh: Mesh) -> None:
    alice = await mesh.person("alice")
    slug = (await mesh.create(alice, "Quiet")).slug
    assert await _comments(mesh, slug) == []


async def test_comments_of_a_missing_article_are_not_found(mesh: Mesh) -> None:
    alice = await mesh.person("alice")
    with pytest.raises(grpc.aio.AioRpcError) as listing:
        await mesh.comments.ListComments(articles_pb2.ListCommentsRequest(slug="missing"))
    assert listing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as adding:
        await _comment(mesh, alice, "missing", "hello?")
    assert adding.value.code() == grpc.StatusCode.NOT_FOUND


async def test_author_deletes_own_comment(mesh: Mesh) -> None:
    alice, bob = await mesh.person("alice"), await mesh.person("bob")
    slug = (await mesh.create(alice, "Discussed")).slug
    comment = await _comment(mesh, bob, slug, "oops")
    await mesh.comments.DeleteComment(articles_pb2.DeleteCommentRequest(slug=slug, id=comment.id),
                                      metadata=bob.auth)
    assert await _comments(mesh, slug) == []
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await mesh.comments.DeleteComment(articles_pb2.DeleteCommentRequest(slug=slug, id=comment.id),
                                          metadata=bob.auth)
    assert again.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_comment_can_only_be_deleted_through_its_own_article(mesh: Mesh) -> None:
    alice = await mesh.person("alice")
    one = (await mesh.create(alice, "One")).slug
    two = (await mesh.create(alice, "Two")).slug
    comment = await _comment(mesh, alice, one, "on one")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await mesh.comments.DeleteComment(articles_pb2.DeleteCommentRequest(slug=two, id=comment.id),
                                          metadata=alice.auth)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert len((await mesh.comments.ListComments(articles_pb2.ListCommentsRequest(slug=one))).comments) == 1


async def test_deleting_an_article_deletes_its_comments(mesh: Mesh) -> None:
    alice = await mesh.person("alice")
    slug = (await mesh.create(alice, "Short-lived")).slug
    await _comment(mesh, alice, slug, "bye")
    await mesh.articles.DeleteArticle(articles_pb2.DeleteArticleRequest(slug=slug), metadata=alice.auth)
    again = await mesh.create(alice, "Short-lived")  # the slug is free again, and starts clean
    assert again.slug == slug
    assert await _comments(mesh, slug) == []


async def test_blank_comment_is_invalid(mesh: Mesh) -> None:
    alice = await mesh.person("alice")
    slug = (await mesh.create(alice, "Strict")).slug
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _comment(mesh, alice, slug, "")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
