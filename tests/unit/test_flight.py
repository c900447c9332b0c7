"""Results shared for a moment (runtime/flight.py) and search answers shared through the index wrapper
(search/domain/sharing.py): a write forgets, and a search begun before a write is never kept after it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from conduit_server.runtime.flight import SharedResults
from conduit_server.search.domain.documents import Change, Document
from conduit_server.search.domain.ports import IndexStats
from conduit_server.search.domain.query import BackendHit, BackendPage, SearchQuery
from conduit_server.search.domain.sharing import SharedSearches, SharedViews


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_result_computed_across_a_forget_goes_to_its_waiters_and_is_not_kept() -> None:
    release = asyncio.Event()
    values = iter(["old", "new"])

    async def compute() -> str:
        value = next(values)
        if value == "old":
            await release.wait()
        return value

    shared: SharedResults[str, str] = SharedResults(ttl=60, entries=10, clock=Clock())
    before = asyncio.create_task(shared.get("k", compute))
    await asyncio.sleep(0)
    shared.forget()  # the data changed while "old" was being computed
    after = await shared.get("k", compute)  # not joined to the stale computation
    release.set()
    assert await before == ("old", False)
    assert after == ("new", False)
    assert await shared.get("k", compute) == ("new", True)


async def test_forget_drops_what_is_kept_and_results_expire() -> None:
    clock, calls = Clock(), []

    async def compute() -> int:
        calls.append(1)
        return len(calls)

    shared: SharedResults[str, int] = SharedResults(ttl=1, entries=10, clock=clock)
    assert await shared.get("k", compute) == (1, False)
    assert await shared.get("k", compute) == (1, True)
    shared.forget()
    assert await shared.get("k", compute) == (2, False)
    clock.now = 1.0
    assert await shared.get("k", compute) == (3, False)
    assert len(shared) == 1


async def test_unkeepable_results_are_computed_every_time() -> None:
    calls = []

    async def compute() -> int:
        calls.append(1)
        return -len(calls)

    shared: SharedResults[str, int] = SharedResults(ttl=60, entries=10, keepable=lambda value: value > 0)
    assert [await shared.get("k", compute) for _ in range(2)] == [(-1, False), (-2, False)]
    assert len(shared) == 0


class Index:
    """A backend holding titles by article id; `search` returns every title containing the words,
    and may be held half-way to let a write land meanwhile."""

    name = "memory"

    def __init__(self) -> None:
        self.titles: dict[int, str] = {}
        self.searches = 0
        self.hold: asyncio.Event | None = None
        self.read = asyncio.Event()  # set once a search has read the titles

    async def search(self, query: SearchQuery, *, fuzzy: bool) -> BackendPage:
        self.searches += 1
        found = [article_id for article_id, title in self.titles.items() if query.text in title]
        self.read.set()
        if self.hold is not None:
            await self.hold.wait()
        hits = [BackendHit(article_id, 1.0, f"s{article_id}", self.titles.get(article_id, ""), "", (), 1,
                           datetime.now(UTC), "", "") for article_id in found]
        return BackendPage(hits, len(hits), [])

    async def apply(self, changes: Sequence[Change], target: str | None = None) -> int:
        for change in changes:
            assert isinstance(change, Document)
            self.titles[change.article_id] = change.title
        return len(changes)

    async def prepare(self) -> None: ...
    async def begin_rebuild(self) -> str: return "2"
    async def swap(self, target: str) -> None: ...
    async def discard(self, target: str) -> None: ...
    async def documents(self) -> dict[int, Document]: return {}
    async def refresh(self) -> None: ...
    async def stats(self) -> IndexStats: return IndexStats(self.name, len(self.titles), 0, 0)
    async def close(self) -> None: ...


def _article(article_id: int, title: str) -> Document:
    return Document(article_id, 1, f"s{article_id}", title, "", "", (), 1, datetime.now(UTC))


async def test_the_same_search_is_shared_until_a_write_goes_through_the_wrapper() -> None:
    index = Index()
    shared = SharedSearches(index, ttl=60, entries=10)
    query = SearchQuery("dragons")
    assert (await shared.search(query, fuzzy=False)).total == 0
    assert (await shared.search(query, fuzzy=False)).total == 0
    assert index.searches == 1
    await shared.apply([_article(1, "dragons")])
    assert (await shared.search(query, fuzzy=False)).total == 1
    assert index.searches == 2
    await shared.apply([_article(2, "dragons")], target="2")  # a rebuild's index is not searched yet
    assert (await shared.search(query, fuzzy=False)).total == 1
    assert index.searches == 2
    await shared.swap("2")
    await shared.search(query, fuzzy=False)
    assert index.searches == 3


async def test_a_search_that_began_before_a_write_is_not_served_after_it() -> None:
    index = Index()
    shared = SharedSearches(index, ttl=60, entries=10)
    query = SearchQuery("dragons")
    index.hold = asyncio.Event()
    early = asyncio.create_task(shared.search(query, fuzzy=False))
    await index.read.wait()  # it read the index before the write
    await shared.apply([_article(1, "dragons")])
    index.hold.set()
    assert (await early).total == 0  # its own caller gets what it read
    index.hold = None
    assert (await shared.search(query, fuzzy=False)).total == 1  # the writer's reader never sees it


class Articles:
    """The articles service as search sees it: counts each views call."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[int, ...], int]] = []

    async def views(self, article_ids: Sequence[int], viewer_id: int) -> dict[int, str]:
        self.calls.append((tuple(article_ids), viewer_id))
        return {article_id: f"article {article_id} for {viewer_id}" for article_id in article_ids}

    def snapshot(self) -> Any:
        raise NotImplementedError


async def test_anonymous_views_of_the_same_hits_are_shared_for_the_ttl_and_signed_in_ones_never() -> None:
    articles, clock = Articles(), Clock()
    views = SharedViews(articles, ttl=1.0, entries=10, clock=clock)
    assert await views.views([1, 2], 0) == {1: "article 1 for 0", 2: "article 2 for 0"}
    await views.views([1, 2], 0)
    await asyncio.gather(views.views([3], 0), views.views([3], 0))  # concurrent: one call
    assert articles.calls == [((1, 2), 0), ((3,), 0)]
    assert await views.views([1, 2], 7) == {1: "article 1 for 7", 2: "article 2 for 7"}
    await views.views([1, 2], 7)
    assert articles.calls[2:] == [((1, 2), 7), ((1, 2), 7)]
    clock.now = 1.0  # the ttl has passed: asked again
    await views.views([1, 2], 0)
    assert articles.calls[-1] == ((1, 2), 0)
    assert len(articles.calls) == 5
