"""The PostgreSQL backend runs at most `concurrency` searches at once; the others wait in arrival
order (docs/decisions/0053). On a real PostgreSQL: the database is the real one, only counted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest_asyncio
from sqlalchemy import TextClause

from conduit_server.runtime.db import Database
from conduit_server.search.app import SCHEMA
from conduit_server.search.domain.documents import Document
from conduit_server.search.domain.query import SearchQuery
from conduit_server.search.repository.postgres import PostgresBackend, default_concurrency
from tests.search.conftest import postgres_backend

START = datetime(2026, 12, 5, tzinfo=UTC)


class CountedDatabase(Database):
    """The real database; each statement through `fetch` is recorded as it starts and ends."""

    def __init__(self, url: str, schema: str) -> None:
        super().__init__(url, schema)
        self.running = 0
        self.most_running = 0
        self.started: list[str] = []

    async def fetch(self, statement: TextClause, parameters: Mapping[str, Any]) -> list[asyncpg.Record]:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        self.started.append(str(parameters.get("q", "")))
        try:
            return await super().fetch(statement, parameters)
        finally:
            self.running -= 1


@pytest_asyncio.fixture(loop_scope="session")
async def backend(postgres_url: str) -> AsyncIterator[PostgresBackend]:
    counted = await postgres_backend(postgres_url, concurrency=2)
    await counted.database.close()
    counted.database = CountedDatabase(postgres_url, SCHEMA)
    await counted.apply([Document(n, 1, f"a{n}", f"Harbour {n}", "", "boats", ("coast",), 1,
                                  START + timedelta(seconds=n)) for n in range(1, 9)])
    yield counted
    await counted.close()


async def test_at_most_concurrency_searches_run_and_the_rest_start_in_arrival_order(
        backend: PostgresBackend) -> None:
    database = backend.database
    assert isinstance(database, CountedDatabase)
    words = [f"harbour {n}" for n in range(1, 9)]

    pages = await asyncio.gather(*(backend.search(SearchQuery(word), fuzzy=False) for word in words))

    assert [page.hits[0].article_id for page in pages] == list(range(1, 9))  # each its own answer
    assert database.most_running == 2
    assert database.started == words


async def test_a_misspelt_search_keeps_its_one_turn_for_all_its_statements(backend: PostgresBackend) -> None:
    database = backend.database
    assert isinstance(database, CountedDatabase)
    database.most_running = 0

    pages = await asyncio.gather(*(backend.search(SearchQuery(f"harbuor {n}"), fuzzy=True) for n in range(1, 6)))

    assert all(page.total > 0 for page in pages)  # corrected to "harbour"
    assert database.most_running == 2


def test_by_default_as_many_as_the_cpus_this_process_may_use() -> None:
    assert PostgresBackend(Database("postgresql://localhost/none", SCHEMA)).concurrency == default_concurrency() >= 1
