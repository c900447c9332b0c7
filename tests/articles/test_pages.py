"""Pages: a reader's request never fails because of what others posted; limits are clamped.

An article with more maximum-size comments than fit one gRPC message (4 MiB) still serves
every reader its newest page; a limit above the maximum gets the maximum; a limit below 1
or a negative offset stays INVALID_ARGUMENT.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest

from conduit.articles.v1 import articles_pb2
from conduit_server.articles.domain.pages import ARTICLES_PAGE, COMMENTS_PAGE
from conduit_server.runtime.server import MAX_MESSAGE_BYTES
from tests.articles.conftest import Mesh

# 20,000 characters of 4 UTF-8 bytes each: the largest comment in bytes.
LARGEST_BODY = "\U0001f409" * 20_000


async def test_more_max_size_comments_than_fit_one_message_still_serve_their_page(mesh: Mesh) -> None:
    author, reader = await mesh.person("author"), await mesh.person("reader")
    slug = (await mesh.create(author, "Popular")).slug
    count = MAX_MESSAGE_BYTES // len(LARGEST_BODY.encode()) + 5
    for _ in range(count):
        await mesh.comments.CreateComment(articles_pb2.CreateCommentRequest(
            slug=slug, comment=articles_pb2.NewComment(body=LARGEST_BODY)), metadata=author.auth)
    assert count * len(LARGEST_BODY.encode()) > MAX_MESSAGE_BYTES  # all of them would not fit

    newest, anonymous, asked_for_all = await asyncio.gather(
        mesh.comments.ListComments(articles_pb2.ListCommentsRequest(slug=slug), metadata=reader.auth),
        mesh.comments.ListComments(articles_pb2.ListCommentsRequest(slug=slug)),
        mesh.comments.ListComments(articles_pb2.ListCommentsRequest(slug=slug, limit=1000)))
    last = await mesh.comments.ListComments(articles_pb2.ListCommentsRequest(
        slug=slug, limit=COMMENTS_PAGE.maximum, offset=count - 2))

    assert len(newest.comments) == len(anonymous.comments) == len(asked_for_all.comments) == COMMENTS_PAGE.default
    ids = [comment.id for comment in newest.comments]
    assert ids == sorted(ids, reverse=True)
    assert len(last.comments) == 2
    assert max(c.id for c in last.comments) < min(ids)


async def test_a_list_limit_above_the_maximum_gets_the_maximum(mesh: Mesh) -> None:
    author = await mesh.person("prolific")
    for n in range(ARTICLES_PAGE.maximum + 2):
        await mesh.create(author, f"Article {n}")

    asked = await mesh.articles.ListArticles(articles_pb2.ListArticlesRequest(author=author.username, limit=1000))

    assert len(asked.articles) == ARTICLES_PAGE.maximum
    assert asked.articles_count == ARTICLES_PAGE.maximum + 2


@pytest.mark.parametrize("request_", [
    articles_pb2.ListArticlesRequest(limit=-1),
    articles_pb2.ListArticlesRequest(offset=-1),
])
async def test_a_limit_below_one_or_a_negative_offset_is_invalid(mesh: Mesh,
                                                                  request_: articles_pb2.ListArticlesRequest) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await mesh.articles.ListArticles(request_)

    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("request_", [
    articles_pb2.ListCommentsRequest(slug="any", limit=-5),
    articles_pb2.ListCommentsRequest(slug="any", offset=-1),
])
async def test_comment_paging_is_validated_too(mesh: Mesh, request_: articles_pb2.ListCommentsRequest) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await mesh.comments.ListComments(request_)

    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
