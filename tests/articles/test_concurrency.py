"""Exactness under concurrency: favorite counters and slugs."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from conduit.articles.v1 import articles_pb2
from tests.articles.conftest import Mesh


async def test_100_concurrent_favorites_by_100_users_count_100(mesh: Mesh) -> None:
    author = await mesh.person("author")
    slug = (await mesh.create(author, "Popular")).slug
    fans = await asyncio.gather(*(mesh.person("fan") for _ in range(100)))
    request = articles_pb2.FavoriteArticleRequest(slug=slug)
    # Each fan favorites twice at once: the repeat must not count.
    await asyncio.gather(*(mesh.articles.FavoriteArticle(request, metadata=fan.auth)
                           for fan in fans for _ in range(2)))
    article = (await mesh.articles.GetArticle(articles_pb2.GetArticleRequest(slug=slug))).article
    assert article.favorites_count == 100
    async with mesh.app.database.read() as session:
        rows = await session.scalar(text("SELECT count(*) FROM favorites"))
    assert rows == 100

    unfavorite = articles_pb2.UnfavoriteArticleRequest(slug=slug)
    await asyncio.gather(*(mesh.articles.UnfavoriteArticle(unfavorite, metadata=fan.auth)
                           for fan in fans[:40] for _ in range(2)))
    article = (await mesh.articles.GetArticle(articles_pb2.GetArticleRequest(slug=slug))).article
    assert article.favorites_count == 60


async def test_20_concurrent_creates_with_the_same_title_get_20_distinct_slugs(mesh: Mesh) -> None:
    authors = await asyncio.gather(*(mesh.person("writer") for _ in range(20)))
    created = await asyncio.gather(*(mesh.create(author, "Breaking News") for author in authors))
    slugs = {article.slug for article in created}
    assert len(slugs) == 20
    assert "breaking-news" in slugs
    assert all(slug == "breaking-news" or slug.startswith("breaking-news-") for slug in slugs)
    listed = await mesh.articles.ListArticles(articles_pb2.ListArticlesRequest(limit=50))
    assert listed.articles_count == 20


async def test_a_tag_another_writer_commits_during_a_create_is_still_attached(mesh: Mesh) -> None:
    """The create's statement cannot see a tag committed after its snapshot (its ON CONFLICT waited
    for that commit); the tag is linked all the same, in the author's order."""
    author = await mesh.person("author")
    async with mesh.app.database.transaction() as other_writer:
        await other_writer.execute(text("INSERT INTO tags (name) VALUES ('contested')"))
        creating = asyncio.create_task(mesh.create(author, "Contested", tags=["first", "contested", "last"]))
        for _ in range(500):  # until the create waits for this transaction's tag
            async with mesh.app.database.read() as session:
                if await session.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' "
                                             "AND NOT granted")):
                    break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the create never waited for the other writer's tag")
    created = await creating
    assert list(created.tag_list) == ["contested", "first", "last"]
    stored = (await mesh.articles.GetArticle(articles_pb2.GetArticleRequest(slug=created.slug))).article
    assert list(stored.tag_list) == ["contested", "first", "last"]
