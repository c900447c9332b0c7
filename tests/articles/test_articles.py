"""RealWorld article, favorite, feed and tag operations through gRPC, against the real users service."""

from __future__ import annotations

import grpc
import pytest

from conduit.articles.v1 import articles_pb2
from tests.articles.conftest import Mesh, Person


async def _list(mesh: Mesh, viewer: Person | None = None, *, tag: str = "", author: str = "",
                favorited: str = "", limit: int = 0, offset: int = 0) -> articles_pb2.ListArticlesResponse:
    request = articles_pb2.ListArticlesRequest(tag=tag, author=author, favorited=favorited, limit=limit,
                                               offset=offset)
    return await mesh.articles.ListArticles(request, metadata=viewer.auth if viewer else None)


def _titles(response: articles_pb2.ListArticlesResponse | articles_pb2.ListFeedArticlesResponse
            ) -> list[str]:
    return [article.title for article in response.articles]


async def test_create_returns_the_article_with_slug_author_and_tags_in_author_order(mesh: Mesh) -> None:
    alice = await mesh.person("alice")
    article = await mesh.create(alice, "How to train your dragon",
                                tags=["Dragons", "training", "dragons", " Zoo "])
    assert article.slug == "how-to-train-your-dragon"
    assert article.title == "How to train your dragon"
    assert (article.description, article.body) == ("Ever wonder how?", "You have to believe.")
    assert list(article.tag_list) == ["dragons", "training", "zoo"]
    assert (article.favorited, article.favorites_count) == (False, 0)
    assert article.author.username == alice.username
    assert article.author.following is False
    assert article.created_at.ToDatetime() == article.updated_at.ToDatetime()
    assert article.created_at.seconds > 0


async def test_get_personalises_following_and_favorited_for_the_caller(mesh: Mesh) -> None:
    alice, bob = await mesh.person("alice"), await mesh.person("bob")
    slug = (await mesh.create(alice, "Followed", tags=["b", "a"])).slug
    await mesh.follow(bob, alice)
    await mesh.articles.FavoriteArticle(articles_pb2.FavoriteArticleRequest(slug=slug), metadata=bob.auth)

    as_bob = (await mesh.articles.GetArticle(articles_pb2.GetArticleRequest(slug=slug),
                                             metadata=bob.auth)).article
    assert (as_bob.author.following, as_bob.favorited, as_bob.favorites_count) == (True, True, 1)
    assert list(as_bob.tag_list) == ["a", "b"]  # alphabetical, whatever order they were sent in
    anonymous = (await mesh.articles.GetArticle(articles_pb2.GetArticleRequest(slug=slug))).article
    assert (anonymous.author.following, anonymous.favorited, anonymous.favorites_count) == (False, False, 1)
    assert anonymous.body == "You have to believe."


async def test_unknown_slug_is_not_found(mesh: Mesh) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await mesh.articles.GetArticle(articles_pb2.GetArticleRequest(slug="nope"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_is_newest_first_with_total_count_and_paging(mesh: Mesh) -> None:
    alice = await mesh.person("alice")
    for n in range(5):
        await mesh.create(alice, f"Article {n}")
    everything = await _list(mesh)
    assert _titles(everything) == [f"Article {n}" for n in reversed(range(5))]
    assert everything.articles_count == 5
    page = await _list(mesh, limit=2, offset=1)
    assert _titles(page) == ["Article 3", "Article 2"]
    assert page.articles_count == 5
    beyond = await _list(mesh, limit=2, offset=10)
    assert (_titles(beyond), beyond.articles_count) == ([], 5)


async def test_list_summaries_have_no_body(mesh: Mesh) -> None:
    alice = await mesh.person("alice")
    await mesh.create(alice, "Bodiless", body="long body")
    (summary,) = (await _list(mesh)).articles
    assert "body" not in {field.name for field, _ in summary.ListFields()}
    assert summary.description == "Ever wonder how?"


async def test_default_limit_is_twenty(mesh: Mesh) -> None:
    alice = await mesh.person("alice")
    for n in range(22):
        await mesh.create(alice, f"Many {n}")
    page = await _list(mesh)
    assert len(page.articles) == 20
    assert page.articles_count == 22
    assert len((await _list(mesh, offset=20)).articles) == 2


async def test_filters_combine_with_paging_and_count(mesh: Mesh) -> None:
    alice, bob, carol = await mesh.person("alice"), await mesh.person("bob"), await mesh.person("carol")
    for n in range(4):
        await mesh.create(alice, f"Alice grpc {n}", tags=["grpc", "python"])
    await mesh.create(alice, "Alice other", tags=["other"])
    for n in range(3):
        await mesh.create(bob, f"Bob grpc {n}", tags=["grpc"])
    for slug in ("alice-grpc-0", "alice-grpc-2", "bob-grpc-1", "alice-other"):
        await mesh.articles.FavoriteArticle(articles_pb2.FavoriteArticleRequest(slug=slug),
                                            metadata=carol.auth)

    by_tag = await _list(mesh, tag="grpc", limit=3)
    assert (_titles(by_tag), by_tag.articles_count) == (["Bob grpc 2", "Bob grpc 1", "Bob grpc 0"], 7)
    assert (await _list(mesh, tag="GRPC")).articles_count == 7  # tags are stored lower case
    by_author = await _list(mesh, author=alice.username, limit=2, offset=1)
    assert (_titles(by_author), by_author.articles_count) == (["Alice grpc 3", "Alice grpc 2"], 5)
    tag_and_author = await _list(mesh, tag="grpc", author=alice.username, limit=10)
    assert tag_and_author.articles_count == 4
    favorited = await _list(mesh, favorited=carol.username, limit=2)
    assert (_titles(favorited), favorited.articles_count) == (["Bob grpc 1", "Alice other"], 4)
    favorited_by_tag = await _list(mesh, favorited=carol.username, tag="python", author=alice.username)
    assert _titles(favorited_by_tag) == ["Alice grpc 2", "Alice grpc 0"]
    assert favorited_by_tag.articles_count == 2
    as_carol = await _list(mesh, carol, tag="grpc", limit=20)
    assert {a.title for a in as_carol.articles if a.favorited} == {
        "Alice grpc 0", "Alice grpc 2", "Bob grpc 1"}


async def test_unknown_usernames_and_tags_give_empty_lists_not_errors(mesh: Mesh) -> None:
    alice = await mesh.person("alice")
    await mesh.create(alice, "Something", tags=["t"])
    for response in (await _list(mesh, author="nobody-at-all"), await _list(mesh, favorited="nobody-at-all"),
                     await _list(mesh, tag="missing"),
                     await _list(mesh, author=alice.username, favorited="nobody-at-all")):
        assert (list(response.articles), response.articles_count) == ([], 0)


async def test_feed_lists_followed_authors_newest_first(mesh: Mesh) -> None:
    alice, bob, carol, reader = (await mesh.person("alice"), await mesh.person("bob"),
                                 await mesh.person("carol"), await mesh.person("reader"))
    await mesh.create(alice, "A1")
    await mesh.create(bob, "B1")
    await mesh.create(carol, "C1")
    await mesh.create(alice, "A2")
    empty = await mesh.articles.ListFeedArticles(articles_pb2.ListFeedArticlesRequest(), metadata=reader.auth)
    assert (list(empty.articles), empty.articles_count) == ([], 0)
    await mesh.follow(reader, alice)
    await mesh.follow(reader, carol)
    feed = await mesh.articles.ListFeedArticles(articles_pb2.ListFeedArticlesRequest(), metadata=reader.auth)
    assert (_titles(feed), feed.articles_count) == (["A2", "C1", "A1"], 3)
    assert all(article.author.following for article in feed.articles)
    paged = await mesh.articles.ListFeedArticles(articles_pb2.ListFeedArticlesRequest(limit=1, offset=1),
                                                 metadata=reader.auth)
    assert (_titles(paged), paged.articles_count) == (["C1"], 3)


async def test_feed_requires_a_token(mesh: Mesh) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await mesh.articles.ListFeedArticles(articles_pb2.ListFeedArticlesRequest())
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_update_changes_fields_and_a_new_title_makes_a_new_slug(mesh: Mesh) -> None:
    alice = await mesh.person("alice")
    created = await mesh.create(alice, "Old title", tags=["keep"])
    same_title = (await mesh.articles.UpdateArticle(articles_pb2.UpdateArticleRequest(
        slug=created.slug, article=articles_pb2.UpdateArticle(body="New body")), metadata=alice.auth)).article
    assert (same_title.slug, same_title.body, same_title.title) == ("old-title", "New body", "Old title")
    assert same_title.updated_at.ToDatetime() > created.updated_at.ToDatetime()
    assert same_title.created_at == created.created_at
    renamed = (await mesh.articles.UpdateArticle(articles_pb2.UpdateArticleRequest(
        slug="old-title", article=articles_pb2.UpdateArticle(title="New title", description="d2")),
        metadata=alice.auth)).article
    assert (renamed.slug, renamed.title, renamed.description, renamed.body) == (
        "new-title", "New title", "d2", "New body")
    assert list(renamed.tag_list) == ["keep"]
    fetched = (await mesh.articles.GetArticle(articles_pb2.GetArticleRequest(slug="new-title"))).article
    assert fetched.title == "New title"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await mesh.articles.GetArticle(articles_pb2.GetArticleRequest(slug="old-title"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_renaming_to_a_taken_title_gets_a_distinct_slug(mesh: Mesh) -> None:
    alice = await mesh.person("alice")
    await mesh.create(alice, "Taken")
    other = await mesh.create(alice, "Other")
    renamed = (await mesh.articles.UpdateArticle(articles_pb2.UpdateArticleRequest(
        slug=other.slug, article=articles_pb2.UpdateArticle(title="Taken")), metadata=alice.auth)).article
    assert renamed.slug.startswith("taken-")
    assert renamed.title == "Taken"


async def test_delete_removes_the_article_and_its_tags(mesh: Mesh) -> None:
    alice = await mesh.person("alice")
    await mesh.create(alice, "Doomed", tags=["gone"])
    await mesh.create(alice, "Stays", tags=["kept"])
    await mesh.articles.DeleteArticle(articles_pb2.DeleteArticleRequest(slug="doomed"), metadata=alice.auth)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await mesh.articles.GetArticle(articles_pb2.GetArticleRequest(slug="doomed"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert list((await mesh.tags.ListTags(articles_pb2.ListTagsRequest())).tags) == ["kept"]
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await mesh.articles.DeleteArticle(articles_pb2.DeleteArticleRequest(slug="doomed"),
                                          metadata=alice.auth)
    assert again.value.code() == grpc.StatusCode.NOT_FOUND


async def test_favorite_and_unfavorite_are_idempotent(mesh: Mesh) -> None:
    alice, bob = await mesh.person("alice"), await mesh.person("bob")
    slug = (await mesh.create(alice, "Liked")).slug
    request = articles_pb2.FavoriteArticleRequest(slug=slug)
    first = (await mesh.articles.FavoriteArticle(request, metadata=bob.auth)).article
    second = (await mesh.articles.FavoriteArticle(request, metadata=bob.auth)).article
    assert (first.favorited, first.favorites_count) == (True, 1)
    assert (second.favorited, second.favorites_count) == (True, 1)
    unfavorite = articles_pb2.UnfavoriteArticleRequest(slug=slug)
    gone = (await mesh.articles.UnfavoriteArticle(unfavorite, metadata=bob.auth)).article
    again = (await mesh.articles.UnfavoriteArticle(unfavorite, metadata=bob.auth)).article
    assert (gone.favorited, gone.favorites_count) == (False, 0)
    assert (again.favorited, again.favorites_count) == (False, 0)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await mesh.articles.FavoriteArticle(articles_pb2.FavoriteArticleRequest(slug="nope"),
                                            metadata=bob.auth)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_tags_are_listed_most_used_first(mesh: Mesh) -> None:
    alice = await mesh.person("alice")
    assert list((await mesh.tags.ListTags(articles_pb2.ListTagsRequest())).tags) == []
    await mesh.create(alice, "One", tags=["rare", "common"])
    await mesh.create(alice, "Two", tags=["common"])
    assert list((await mesh.tags.ListTags(articles_pb2.ListTagsRequest())).tags) == ["common", "rare"]


async def test_invalid_article_names_the_fields(mesh: Mesh) -> None:
    alice = await mesh.person("alice")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await mesh.articles.CreateArticle(articles_pb2.CreateArticleRequest(
            article=articles_pb2.NewArticle(title="", description="d", body="")), metadata=alice.auth)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "title" in (caught.value.details() or "")
    assert "body" in (caught.value.details() or "")


async def test_writes_require_a_token(mesh: Mesh) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await mesh.articles.CreateArticle(articles_pb2.CreateArticleRequest(
            article=articles_pb2.NewArticle(title="t", description="d", body="b")))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_service_account_cannot_author_articles(mesh: Mesh) -> None:
    token = await mesh.service_token(["articles.import"])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await mesh.articles.CreateArticle(articles_pb2.CreateArticleRequest(
            article=articles_pb2.NewArticle(title="t", description="d", body="b")),
            metadata=(("authorization", f"Bearer {token}"),))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_title_without_ascii_letters_still_gets_a_slug(mesh: Mesh) -> None:
    alice = await mesh.person("alice")
    first = await mesh.create(alice, "日本語")
    second = await mesh.create(alice, "中文")
    assert first.slug == "article"
    assert second.slug.startswith("article-")
    feed = await mesh.create(alice, "Feed")
    assert feed.slug.startswith("feed-")  # never shadows GET /api/articles/feed
