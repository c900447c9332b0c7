"""No N+1: a page costs one users-service call and a fixed number of SQL statements, whatever its size."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from conduit.articles.v1 import articles_pb2
from conduit_server.articles.domain.pages import COMMENTS_PAGE
from conduit_server.runtime.db import Database
from tests.articles.conftest import Mesh, Person


@contextmanager
def counting_statements(database: Database) -> Iterator[list[str]]:
    """Every SQL statement the service sends while the block runs (the outbox relay's aside)."""
    statements: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "outbox" not in statement and "advisory" not in statement:
            statements.append(statement)

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


async def _twenty_authors(mesh: Mesh) -> tuple[list[Person], Person]:
    authors = list(await asyncio.gather(*(mesh.person("author") for _ in range(20))))
    for author in authors:
        await mesh.create(author, f"By {author.username}", tags=["batch", "n1"])
    viewer = await mesh.person("viewer")
    for author in authors[::3]:
        await mesh.follow(viewer, author)
        await mesh.articles.FavoriteArticle(articles_pb2.FavoriteArticleRequest(slug=f"by-{author.username}"),
                                            metadata=viewer.auth)
    return authors, viewer


async def _measure(mesh: Mesh, viewer: Person, request: articles_pb2.ListArticlesRequest
                   ) -> tuple[int, int, articles_pb2.ListArticlesResponse]:
    await mesh.forget_authors()  # cold: what one page costs when no author is known yet
    calls_before = mesh.app.users.batch_get_profiles_calls
    with counting_statements(mesh.app.database) as statements:
        response = await mesh.articles.ListArticles(request, metadata=viewer.auth)
    return len(statements), mesh.app.users.batch_get_profiles_calls - calls_before, response


async def test_a_page_of_20_authors_makes_one_users_call_and_as_many_queries_as_a_page_of_1(mesh: Mesh
                                                                                           ) -> None:
    authors, viewer = await _twenty_authors(mesh)
    followed = {author.username for author in authors[::3]}
    counts = {}
    for limit in (1, 20):
        statements, calls, response = await _measure(mesh, viewer, articles_pb2.ListArticlesRequest(
            tag="batch", limit=limit))
        assert len(response.articles) == limit
        assert response.articles_count == 20
        assert calls == 1
        counts[limit] = statements
        assert {a.author.username for a in response.articles if a.author.following} == (
            followed & {a.author.username for a in response.articles})
        assert {a.slug for a in response.articles if a.favorited} == (
            {f"by-{name}" for name in followed} & {a.slug for a in response.articles})
    # One statement: the page (tags aggregated), the total and the viewer's favorites.
    assert counts[1] == counts[20] == 1


async def test_the_unfiltered_list_is_batched_too_and_a_cached_front_page_skips_the_database(mesh: Mesh
                                                                                            ) -> None:
    _, viewer = await _twenty_authors(mesh)
    await mesh.articles.ListArticles(articles_pb2.ListArticlesRequest())  # the front page (and its total) cached
    uncached = {}
    for limit in (1, 20):  # offset 1: past the cached front page
        statements, calls, response = await _measure(mesh, viewer, articles_pb2.ListArticlesRequest(
            limit=limit, offset=1))
        assert (len(response.articles), response.articles_count, calls) == (min(limit, 19), 20, 1)
        uncached[limit] = statements
    assert uncached[1] == uncached[20] == 1  # the page and the viewer's favorites; the total is cached

    await mesh.articles.ListArticles(articles_pb2.ListArticlesRequest())  # warms the front page and its authors
    calls_before = mesh.app.users.batch_get_profiles_calls
    with counting_statements(mesh.app.database) as sent:
        anonymous = await mesh.articles.ListArticles(articles_pb2.ListArticlesRequest())
    assert sent == []  # viewer-independent part from Redis; nothing to personalise
    assert len(anonymous.articles) == 20
    assert mesh.app.users.batch_get_profiles_calls - calls_before == 0  # authors from the process cache
    signed_in, calls, response = await _measure(mesh, viewer, articles_pb2.ListArticlesRequest(limit=5))
    assert (signed_in, calls, len(response.articles)) == (1, 1, 5)  # only the viewer's favorites


async def test_author_filter_resolves_the_username_in_one_call(mesh: Mesh) -> None:
    authors, viewer = await _twenty_authors(mesh)
    resolves = mesh.app.users.calls["ResolveUsernames"]
    await mesh.forget_authors()
    profiles = mesh.app.users.batch_get_profiles_calls
    response = await mesh.articles.ListArticles(articles_pb2.ListArticlesRequest(
        author=authors[0].username, favorited=viewer.username), metadata=viewer.auth)
    assert [a.slug for a in response.articles] == [f"by-{authors[0].username}"]
    assert mesh.app.users.calls["ResolveUsernames"] - resolves == 1
    assert mesh.app.users.batch_get_profiles_calls - profiles == 1


async def test_the_feed_is_one_followee_call_one_profiles_call_and_fixed_queries(mesh: Mesh) -> None:
    _, viewer = await _twenty_authors(mesh)
    counts = {}
    for limit in (1, 7):
        await mesh.forget_authors()  # nothing known yet: one call for the followees, one for the authors
        before = dict(mesh.app.users.calls)
        with counting_statements(mesh.app.database) as statements:
            feed = await mesh.articles.ListFeedArticles(articles_pb2.ListFeedArticlesRequest(limit=limit),
                                                        metadata=viewer.auth)
        assert (len(feed.articles), feed.articles_count) == (limit, 7)
        made = {name: mesh.app.users.calls[name] - before.get(name, 0)
                for name in ("ListFolloweeIds", "BatchGetProfiles", "ResolveUsernames")}
        assert made == {"ListFolloweeIds": 1, "BatchGetProfiles": 1, "ResolveUsernames": 0}
        assert all(article.author.following for article in feed.articles)
        counts[limit] = len(statements)
    assert counts[1] == counts[7] == 1
    # Warm: the followees from the users directory, the authors from the process cache; no call.
    before = dict(mesh.app.users.calls)
    feed = await mesh.articles.ListFeedArticles(articles_pb2.ListFeedArticlesRequest(limit=7), metadata=viewer.auth)
    assert all(article.author.following for article in feed.articles)
    assert (mesh.app.users.calls["ListFolloweeIds"] - before["ListFolloweeIds"],
            mesh.app.users.calls["BatchGetProfiles"] - before["BatchGetProfiles"]) == (0, 0)


async def test_comments_of_many_authors_cost_one_users_call(mesh: Mesh) -> None:
    authors, viewer = await _twenty_authors(mesh)
    slug = f"by-{authors[0].username}"
    for author in authors:
        await mesh.comments.CreateComment(articles_pb2.CreateCommentRequest(
            slug=slug, comment=articles_pb2.NewComment(body=f"from {author.username}")), metadata=author.auth)
    await mesh.forget_authors()
    before = mesh.app.users.batch_get_profiles_calls
    with counting_statements(mesh.app.database) as statements:
        listed = await mesh.comments.ListComments(articles_pb2.ListCommentsRequest(slug=slug, limit=20),
                                                  metadata=viewer.auth)
    assert len(listed.comments) == COMMENTS_PAGE.maximum  # a page: the newest 10 of 20 authors
    assert mesh.app.users.batch_get_profiles_calls - before == 1
    assert len(statements) == 1  # the article with its comments
