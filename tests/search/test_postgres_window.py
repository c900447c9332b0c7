"""The PostgreSQL backend's bounded query path (docs/decisions/0022): with more matches than its
window, a title match still ranks first, the total says it is a lower bound and counts exactly the
results the pages reach, each once; below the window everything is exact; every search is planned
with its own words."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest_asyncio
from sqlalchemy import text

from conduit_server.runtime.db import Database
from conduit_server.search.app import SCHEMA
from conduit_server.search.domain.documents import Document
from conduit_server.search.domain.query import SearchQuery
from conduit_server.search.repository.postgres import PostgresBackend
from tests.search.conftest import postgres_backend

START = datetime(2026, 12, 3, tzinfo=UTC)
WINDOW = 4


def article(article_id: int, title: str, body: str, tags: tuple[str, ...] = ("misc",)) -> Document:
    return Document(article_id, 1, f"a{article_id}", title, "", body, tags, 1, START + timedelta(seconds=article_id))


@pytest_asyncio.fixture(loop_scope="session")
async def backend(postgres_url: str) -> AsyncIterator[PostgresBackend]:
    windowed = await postgres_backend(postgres_url, window=WINDOW)
    # Twelve body-only matches written first (they fill the GIN bitmap's first pages), the title match last.
    await windowed.apply([article(n, f"Walk {n}", "a lighthouse on the way", ("coast",)) for n in range(1, 13)])
    await windowed.apply([article(99, "The lighthouse", "waves and rocks", ("coast", "light"))])
    yield windowed
    await windowed.close()


async def test_a_title_match_ranks_first_however_many_bodies_match(backend: PostgresBackend) -> None:
    page = await backend.search(SearchQuery("lighthouse", limit=3), fuzzy=False)
    assert len(page.hits) == 3
    assert page.hits[0].article_id == 99


async def test_beyond_the_window_the_total_counts_what_the_pages_reach_and_says_so(
        backend: PostgresBackend) -> None:
    first = await backend.search(SearchQuery("lighthouse", limit=3), fuzzy=False)
    assert not first.total_exact
    assert WINDOW < first.total < 13  # the window's matches and the title match, not all thirteen
    assert sum(count for tag, count in first.facets if tag == "coast") == first.total
    seen: list[int] = []
    for offset in range(0, 15, 3):
        page = await backend.search(SearchQuery("lighthouse", limit=3, offset=offset), fuzzy=False)
        assert page.total == first.total
        seen += [hit.article_id for hit in page.hits]
    assert len(seen) == len(set(seen)) == first.total
    assert 99 in seen


async def test_within_the_window_totals_and_facets_are_exact(backend: PostgresBackend) -> None:
    page = await backend.search(SearchQuery("rocks"), fuzzy=False)
    assert (page.total, page.total_exact) == (1, True)
    assert page.facets == [("coast", 1), ("light", 1)]
    filtered = await backend.search(SearchQuery("lighthouse", tag="light"), fuzzy=False)
    assert ([hit.article_id for hit in filtered.hits], filtered.total, filtered.total_exact) == ([99], 1, True)


async def test_every_connection_plans_each_search_with_its_own_words(postgres_url: str,
                                                                    backend: PostgresBackend) -> None:
    fresh = PostgresBackend(Database(postgres_url, SCHEMA))  # its connections' first use: a read
    try:
        for _ in range(3):
            async with fresh.database.read() as session:
                assert (await session.execute(text("SHOW plan_cache_mode"))).scalar() == "force_custom_plan"
        async with fresh.database.transaction() as session:
            assert (await session.execute(text("SHOW plan_cache_mode"))).scalar() == "force_custom_plan"
    finally:
        await fresh.close()
