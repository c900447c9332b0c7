"""Pagers fetch pages lazily with limit/offset and stop at an empty page or at the reported total."""

from __future__ import annotations

import itertools

import grpc
import pytest

from conduit.articles.v1 import articles_pb2_grpc
from conduit.client import AsyncConduit, AsyncPager, Conduit, Pager
from conduit.search.v1 import search_pb2, search_pb2_grpc
from tests.sdk.conftest import Serve
from tests.sdk.support import FakeArticles


def _connect(serve: Serve, articles: FakeArticles) -> Conduit:
    server = serve((articles_pb2_grpc.add_ArticlesServiceServicer_to_server, articles))
    return Conduit.connect(server.target, tls=False)


def test_iterating_a_list_walks_every_page_in_order(serve: Serve) -> None:
    articles = FakeArticles(45)
    with _connect(serve, articles) as conduit:
        pager = conduit.articles.list(tag="grpc", author="jake", favorited="jane", page_size=20)
        assert isinstance(pager, Pager)
        slugs = [article.slug for article in pager]
    assert slugs == [f"article-{i}" for i in range(45)]
    assert [(c.limit, c.offset) for c in articles.list_calls] == [(20, 0), (20, 20), (20, 40)]
    assert {(c.tag, c.author, c.favorited) for c in articles.list_calls} == {("grpc", "jake", "jane")}
    assert pager.total == 45


def test_pages_are_fetched_only_when_reached(serve: Serve) -> None:
    articles = FakeArticles(100)
    with _connect(serve, articles) as conduit:
        pager = conduit.articles.list(page_size=10)
        assert articles.list_calls == []
        assert pager.total is None
        first = next(iter(pager))
        assert first.slug == "article-0"
        assert len(articles.list_calls) == 1
        assert len(list(itertools.islice(pager, 25))) == 25
    assert [c.offset for c in articles.list_calls] == [0, 0, 10, 20]  # each iteration starts over


def test_no_request_past_the_reported_total(serve: Serve) -> None:
    articles = FakeArticles(40)
    with _connect(serve, articles) as conduit:
        assert len(list(conduit.articles.list(page_size=20))) == 40
    assert [c.offset for c in articles.list_calls] == [0, 20]


def test_an_empty_page_ends_the_list_even_if_the_total_says_more(serve: Serve) -> None:
    articles = FakeArticles(25, reported_count=1000)
    with _connect(serve, articles) as conduit:
        assert len(list(conduit.articles.list(page_size=10))) == 25
    assert [c.offset for c in articles.list_calls] == [0, 10, 20, 25]


def test_a_server_serving_smaller_pages_than_asked_still_yields_every_item(serve: Serve) -> None:
    # The services clamp `limit` to their maximum page (20 for article lists), not refuse it.
    articles = FakeArticles(45, max_page=20)
    with _connect(serve, articles) as conduit:
        assert [a.slug for a in conduit.articles.list(page_size=100)] == [f"article-{i}" for i in range(45)]
    assert [c.offset for c in articles.list_calls] == [0, 20, 40]


def test_an_empty_list_takes_one_call(serve: Serve) -> None:
    articles = FakeArticles(0)
    with _connect(serve, articles) as conduit:
        assert list(conduit.articles.list()) == []
    assert [(c.limit, c.offset) for c in articles.list_calls] == [(20, 0)]


def test_pages_yields_the_page_responses(serve: Serve) -> None:
    articles = FakeArticles(7)
    with _connect(serve, articles) as conduit:
        pages = list(conduit.articles.list(page_size=3, offset=1).pages())
    assert [len(page.articles) for page in pages] == [3, 3]
    assert {page.articles_count for page in pages} == {7}
    assert pages[0].articles[0].slug == "article-1"


def test_the_feed_pages_the_same_way(serve: Serve) -> None:
    articles = FakeArticles(5)
    with _connect(serve, articles) as conduit:
        assert [a.slug for a in conduit.articles.feed(page_size=2)] == [f"article-{i}" for i in range(5)]
    assert [(c.limit, c.offset) for c in articles.list_calls] == [(2, 0), (2, 2), (2, 4)]


@pytest.mark.parametrize(("page_size", "offset"), [(0, 0), (101, 0), (10, -1)])
def test_impossible_pages_are_refused_before_any_call(serve: Serve, page_size: int, offset: int) -> None:
    articles = FakeArticles(5)
    with _connect(serve, articles) as conduit, pytest.raises(ValueError, match="must"):
        conduit.articles.list(page_size=page_size, offset=offset)
    assert articles.list_calls == []


async def test_the_async_pager_walks_every_page_lazily(serve: Serve) -> None:
    articles = FakeArticles(45)
    server = serve((articles_pb2_grpc.add_ArticlesServiceServicer_to_server, articles))
    async with await AsyncConduit.connect(server.target, tls=False) as conduit:
        pager = conduit.articles.list(tag="grpc", page_size=20)
        assert isinstance(pager, AsyncPager)
        assert articles.list_calls == []
        slugs = [article.slug async for article in pager]
        pages = [page async for page in conduit.articles.feed(page_size=20).pages()]
    assert slugs == [f"article-{i}" for i in range(45)]
    assert [len(page.articles) for page in pages] == [20, 20, 5]
    assert [c.offset for c in articles.list_calls] == [0, 20, 40, 0, 20, 40]


class _Search(search_pb2_grpc.SearchServiceServicer):
    def __init__(self, hits: int) -> None:
        self.hits = [search_pb2.SearchHit(slug=f"hit-{i}", score=1.0 / (i + 1)) for i in range(hits)]
        self.requests: list[search_pb2.SearchArticlesRequest] = []

    def SearchArticles(self, request: search_pb2.SearchArticlesRequest,
                       context: grpc.ServicerContext) -> search_pb2.SearchArticlesResponse:
        self.requests.append(request)
        page = self.hits[request.offset:request.offset + request.limit]
        return search_pb2.SearchArticlesResponse(hits=page, hits_count=len(self.hits))

    def ReindexArticles(self, request: search_pb2.ReindexArticlesRequest,
                        context: grpc.ServicerContext) -> search_pb2.ReindexArticlesResponse:
        return search_pb2.ReindexArticlesResponse(indexed_count=len(self.hits))


def test_search_results_are_a_pager_too(serve: Serve) -> None:
    search = _Search(12)
    server = serve((search_pb2_grpc.add_SearchServiceServicer_to_server, search))
    with Conduit.connect(server.target, tls=False) as conduit:
        hits = list(conduit.search.articles('"service mesh" -java', tag="grpc", page_size=5))
    assert [hit.slug for hit in hits] == [f"hit-{i}" for i in range(12)]
    assert [(r.query, r.tag, r.limit, r.offset) for r in search.requests] == [
        ('"service mesh" -java', "grpc", 5, 0), ('"service mesh" -java', "grpc", 5, 5),
        ('"service mesh" -java', "grpc", 5, 10)]
