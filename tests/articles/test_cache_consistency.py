"""Read-after-write through the Redis cache: warm every cached read, write, read again — never stale.

Cached: an article by slug, the first page of the public list (with the total),
and the tag list. Every write path is exercised after warming all three.
"""

from __future__ import annotations

import grpc
import pytest

from conduit.articles.v1 import articles_pb2
from tests.articles.conftest import Mesh, Person


class Reads:
    """The cached reads, as an anonymous client makes them."""

    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh

    async def article(self, slug: str) -> articles_pb2.Article | None:
        try:
            return (await self.mesh.articles.GetArticle(articles_pb2.GetArticleRequest(slug=slug))).article
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return None

    async def front(self) -> articles_pb2.ListArticlesResponse:
        return await self.mesh.articles.ListArticles(articles_pb2.ListArticlesRequest())

    async def tags(self) -> list[str]:
        return list((await self.mesh.tags.ListTags(articles_pb2.ListTagsRequest())).tags)

    async def warm(self, *slugs: str) -> None:
        hits = self.mesh.app.cache.cache.hits
        for _ in range(2):
            for slug in slugs:
                await self.article(slug)
            await self.front()
            await self.tags()
        assert self.mesh.app.cache.cache.hits > hits  # really served from the cache


@pytest.fixture
def reads(mesh: Mesh) -> Reads:
    return Reads(mesh)


async def _seed(mesh: Mesh) -> tuple[Person, str]:
    alice = await mesh.person("alice")
    slug = (await mesh.create(alice, "Cached", tags=["old"])).slug
    return alice, slug


async def test_create_is_seen_by_the_list_and_the_tags(mesh: Mesh, reads: Reads) -> None:
    alice, slug = await _seed(mesh)
    await reads.warm(slug, "fresh")
    await mesh.create(alice, "Fresh", tags=["new"])
    front = await reads.front()
    assert ([a.slug for a in front.articles], front.articles_count) == (["fresh", slug], 2)
    assert sorted(await reads.tags()) == ["new", "old"]
    fresh = await reads.article("fresh")
    assert fresh is not None


async def test_update_is_seen_by_the_article_and_the_list(mesh: Mesh, reads: Reads) -> None:
    alice, slug = await _seed(mesh)
    await reads.warm(slug)
    await mesh.articles.UpdateArticle(articles_pb2.UpdateArticleRequest(
        slug=slug, article=articles_pb2.UpdateArticle(body="edited", description="new summary")),
        metadata=alice.auth)
    article = await reads.article(slug)
    assert article is not None
    assert (article.body, article.description) == ("edited", "new summary")
    assert (await reads.front()).articles[0].description == "new summary"

    await reads.warm(slug, "renamed")
    await mesh.articles.UpdateArticle(articles_pb2.UpdateArticleRequest(
        slug=slug, article=articles_pb2.UpdateArticle(title="Renamed")), metadata=alice.auth)
    assert await reads.article(slug) is None
    renamed = await reads.article("renamed")
    assert renamed is not None
    assert renamed.title == "Renamed"
    assert [a.slug for a in (await reads.front()).articles] == ["renamed"]


async def test_delete_is_seen_by_the_article_the_list_and_the_tags(mesh: Mesh, reads: Reads) -> None:
    alice, slug = await _seed(mesh)
    await reads.warm(slug)
    await mesh.articles.DeleteArticle(articles_pb2.DeleteArticleRequest(slug=slug), metadata=alice.auth)
    assert await reads.article(slug) is None
    front = await reads.front()
    assert (list(front.articles), front.articles_count) == ([], 0)
    assert await reads.tags() == []
    # A new article under the same slug is not shadowed by anything cached for the old one.
    await reads.warm(slug)
    await mesh.create(alice, "Cached", body="second life")
    again = await reads.article(slug)
    assert again is not None
    assert again.body == "second life"


async def test_favorite_and_unfavorite_are_seen_by_the_article_and_the_list(mesh: Mesh, reads: Reads) -> None:
    _, slug = await _seed(mesh)
    bob = await mesh.person("bob")
    await reads.warm(slug)
    await mesh.articles.FavoriteArticle(articles_pb2.FavoriteArticleRequest(slug=slug), metadata=bob.auth)
    article = await reads.article(slug)
    assert article is not None
    assert article.favorites_count == 1
    assert (await reads.front()).articles[0].favorites_count == 1
    as_bob = await mesh.articles.GetArticle(articles_pb2.GetArticleRequest(slug=slug), metadata=bob.auth)
    assert as_bob.article.favorited is True
    listed = await mesh.articles.ListArticles(articles_pb2.ListArticlesRequest(), metadata=bob.auth)
    assert listed.articles[0].favorited is True  # personalised on top of the cached page

    await reads.warm(slug)
    await mesh.articles.UnfavoriteArticle(articles_pb2.UnfavoriteArticleRequest(slug=slug), metadata=bob.auth)
    article = await reads.article(slug)
    assert article is not None
    assert article.favorites_count == 0
    assert (await reads.front()).articles[0].favorites_count == 0
    listed = await mesh.articles.ListArticles(articles_pb2.ListArticlesRequest(), metadata=bob.auth)
    assert listed.articles[0].favorited is False


async def test_comment_add_and_delete_are_seen_by_the_comment_list(mesh: Mesh, reads: Reads) -> None:
    alice, slug = await _seed(mesh)
    await reads.warm(slug)
    listing = articles_pb2.ListCommentsRequest(slug=slug)
    assert list((await mesh.comments.ListComments(listing)).comments) == []
    comment = (await mesh.comments.CreateComment(articles_pb2.CreateCommentRequest(
        slug=slug, comment=articles_pb2.NewComment(body="hello")), metadata=alice.auth)).comment
    assert [c.id for c in (await mesh.comments.ListComments(listing)).comments] == [comment.id]
    await mesh.comments.DeleteComment(articles_pb2.DeleteCommentRequest(slug=slug, id=comment.id),
                                      metadata=alice.auth)
    assert list((await mesh.comments.ListComments(listing)).comments) == []
    article = await reads.article(slug)  # comments do not change the cached article
    assert article is not None


async def test_following_an_author_is_seen_at_once_although_the_article_is_cached(mesh: Mesh,
                                                                                  reads: Reads) -> None:
    alice, slug = await _seed(mesh)
    bob = await mesh.person("bob")
    await reads.warm(slug)
    await mesh.follow(bob, alice)
    as_bob = await mesh.articles.GetArticle(articles_pb2.GetArticleRequest(slug=slug), metadata=bob.auth)
    assert as_bob.article.author.following is True  # profiles are never in the articles cache


async def test_deeper_pages_report_the_same_total_as_the_front_page_across_creates_and_deletes(
        mesh: Mesh, reads: Reads) -> None:
    alice, slug = await _seed(mesh)
    deeper = articles_pb2.ListArticlesRequest(limit=1, offset=1)

    async def totals() -> tuple[int, int]:
        return ((await reads.front()).articles_count, (await mesh.articles.ListArticles(deeper)).articles_count)

    before, _ = await totals()
    assert await totals() == (before, before)  # the deeper page's total is the cached front page's
    second = await mesh.create(alice, "Second article")
    assert await totals() == (before + 1, before + 1)
    await mesh.articles.DeleteArticle(articles_pb2.DeleteArticleRequest(slug=second.slug), metadata=alice.auth)
    await mesh.articles.DeleteArticle(articles_pb2.DeleteArticleRequest(slug=slug), metadata=alice.auth)
    assert await totals() == (before - 1, before - 1)
