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
    """The articles service as search sees it: counts each views call; `hold` keeps a call waiting,
    `failure` makes the next call fail; `known` says which ids exist (all when None)."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[int, ...], int]] = []
        self.hold: asyncio.Event | None = None
        self.started = asyncio.Event()
        self.failure: Exception | None = None
        self.known: set[int] | None = None

    async def views(self, article_ids: Sequence[int], viewer_id: int) -> dict[int, str]:
        self.calls.append((tuple(article_ids), viewer_id))
        self.started.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure
        return {article_id: f"article {article_id} for {viewer_id}" for article_id in article_ids
                if self.known is None or article_id in self.known}

    def snapshot(self) -> Any:
        raise NotImplementedError


async def test_anonymous_views_are_kept_per_article_for_the_ttl_and_signed_in_ones_never() -> None:
    articles, clock = Articles(), Clock()
    views = SharedViews(articles, ttl=1.0, entries=10, clock=clock)
    assert await views.views([1, 2], 0) == {1: "article 1 for 0", 2: "article 2 for 0"}
    assert await views.views([2, 3], 0) == {2: "article 2 for 0", 3: "article 3 for 0"}  # only 3 is asked
    assert articles.calls == [((1, 2), 0), ((3,), 0)]
    assert await views.views([1, 2], 7) == {1: "article 1 for 7", 2: "article 2 for 7"}
    await views.views([1, 2], 7)
    assert articles.calls[2:] == [((1, 2), 7), ((1, 2), 7)]
    clock.now = 1.0  # the ttl has passed: asked again
    await views.views([1, 2], 0)
    assert articles.calls[-1] == ((1, 2), 0)
    assert len(articles.calls) == 5


async def test_misses_asked_during_a_call_go_together_in_the_next_one() -> None:
    articles = Articles()
    views = SharedViews(articles, ttl=1.0, entries=100, clock=Clock())
    articles.hold = asyncio.Event()
    first = asyncio.create_task(views.views([1, 2], 0))
    await articles.started.wait()  # the first call is running
    later = [asyncio.create_task(views.views(ids, 0)) for ids in ([2, 3], [4], [3, 5])]
    await asyncio.sleep(0)  # the later searches have queued their misses
    articles.hold.set()
    assert await first == {1: "article 1 for 0", 2: "article 2 for 0"}
    assert [sorted(await task) for task in later] == [[2, 3], [4], [3, 5]]
    # 2 joined the running call; 3, 4 and 5 (3 asked twice) went in one call after it.
    assert articles.calls == [((1, 2), 0), ((3, 4, 5), 0)]


async def test_a_failed_call_reaches_each_of_its_waiters_and_nothing_is_kept() -> None:
    articles = Articles()
    views = SharedViews(articles, ttl=1.0, entries=10, clock=Clock())
    articles.hold, articles.failure = asyncio.Event(), RuntimeError("articles down")
    waiters = [asyncio.create_task(views.views(ids, 0)) for ids in ([1], [1, 2])]
    await articles.started.wait()
    articles.hold.set()
    for outcome in await asyncio.gather(*waiters, return_exceptions=True):
        assert isinstance(outcome, RuntimeError)
    assert await views.views([1, 2], 0) == {1: "article 1 for 0", 2: "article 2 for 0"}  # asked again
    assert len(articles.calls) == 2


async def test_a_caller_that_goes_away_leaves_the_call_to_the_others_and_unknown_ids_are_not_kept() -> None:
    articles = Articles()
    articles.known = {1}
    views = SharedViews(articles, ttl=1.0, entries=10, clock=Clock())
    articles.hold = asyncio.Event()
    gone = asyncio.create_task(views.views([1, 9], 0))
    await articles.started.wait()
    staying = asyncio.create_task(views.views([1, 9], 0))
    await asyncio.sleep(0)
    gone.cancel()
    articles.hold.set()
    assert await staying == {1: "article 1 for 0"}  # 9 does not exist
    assert gone.cancelled()
    assert await views.views([1, 9], 0) == {1: "article 1 for 0"}
    assert articles.calls == [((1, 9), 0), ((9,), 0)]  # 1 was kept, 9 asked again


async def test_more_misses_than_a_batch_go_in_several_calls() -> None:
    articles = Articles()
    views = SharedViews(articles, ttl=1.0, entries=10, batch=2, clock=Clock())
    assert sorted(await views.views([1, 2, 3], 0)) == [1, 2, 3]
    assert articles.calls == [((1, 2), 0), ((3,), 0)]


async def test_an_event_evicts_one_articles_view_and_a_view_loaded_across_it_is_not_kept() -> None:
    articles = Articles()
    views = SharedViews(articles, ttl=30.0, entries=10, clock=Clock())
    await views.views([1, 2], 0)
    views.evict(1)  # article 1 was favorited
    await views.views([1, 2], 0)
    assert articles.calls == [((1, 2), 0), ((1,), 0)]
    articles.hold = asyncio.Event()
    articles.started.clear()
    loading = asyncio.create_task(views.views([3], 0))
    await articles.started.wait()  # it read article 3 as it was
    views.evict(3)  # then article 3 changed
    articles.hold.set()
    assert await loading == {3: "article 3 for 0"}  # its own caller gets what it read
    articles.hold = None
    await views.views([3], 0)
    assert articles.calls[-2:] == [((3,), 0), ((3,), 0)]  # not kept: asked again
    views.clear()  # a profile changed
    await views.views([1, 2, 3], 0)
    assert sorted(articles.calls[-1][0]) == [1, 2, 3]


async def test_views_loaded_just_after_a_profile_change_are_served_but_not_kept() -> None:
    articles, clock = Articles(), Clock()
    views = SharedViews(articles, ttl=30.0, entries=10, clock=clock)
    await views.views([1], 0)
    views.author_changed()  # the articles service may not have read the same event yet
    assert await views.views([1], 0) == {1: "article 1 for 0"}
    await views.views([1], 0)
    clock.now = 1.0  # the grace has passed: what is loaded now is kept
    await views.views([1], 0)
    await views.views([1], 0)
    assert len(articles.calls) == 4
