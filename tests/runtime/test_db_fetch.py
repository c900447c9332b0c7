"""`Database.fetch`, the driver-level path of hot reads (docs/decisions/0052), on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text

from conduit_server.runtime.db import Database
from conduit_server.runtime.interceptors import lost_dependency

pytestmark = pytest.mark.asyncio(loop_scope="function")

_ROWS = text("SELECT n, CAST(:word AS text) || n AS label, :word = :word AS same "
             "FROM generate_series(1, CAST(:count AS int)) AS n ORDER BY n")
_PID = text("SELECT pg_backend_pid() AS pid, CAST(:marker AS int) AS marker")


@pytest.fixture
async def database(postgres_url: str) -> AsyncIterator[Database]:
    db = Database(postgres_url, "public", pool_size=1, max_overflow=0)
    yield db
    await db.close()


async def test_named_parameters_bind_by_name_even_when_repeated(database: Database) -> None:
    rows = await database.fetch(_ROWS, {"count": 3, "word": "w"})

    assert [(row["n"], row["label"], row["same"]) for row in rows] == [(1, "w1", True), (2, "w2", True),
                                                                       (3, "w3", True)]
    assert [tuple(row) for row in await database.fetch(_ROWS, {"word": "x", "count": 1})] == [(1, "x1", True)]


async def test_a_missing_parameter_is_a_key_error_before_any_round_trip(database: Database) -> None:
    with pytest.raises(KeyError, match="count"):
        await database.fetch(_ROWS, {"word": "w"})


async def test_a_connection_the_server_dropped_leaves_the_pool(database: Database) -> None:
    first = (await database.fetch(_PID, {"marker": 1}))[0]["pid"]
    assert (await database.fetch(_PID, {"marker": 2}))[0]["pid"] == first  # one pooled connection, reused
    killer = await asyncpg.connect(database.engine.url.render_as_string(hide_password=False).replace(
        "postgresql+asyncpg", "postgresql"))
    try:
        assert await killer.fetchval("SELECT pg_terminate_backend($1)", first)
    finally:
        await killer.close()

    # Whether the driver has read the server's goodbye yet or not, the call fails as a lost dependency...
    with pytest.raises(ConnectionError, match="PostgreSQL connection was lost") as lost:
        await database.fetch(_PID, {"marker": 3})
    assert lost_dependency(lost.value)

    # ...and the dead connection was dropped: the next call opens a new one and succeeds.
    again = (await database.fetch(_PID, {"marker": 4}))[0]
    assert again["pid"] != first
    assert again["marker"] == 4


async def test_an_error_in_the_statement_keeps_the_connection(database: Database) -> None:
    first = (await database.fetch(_PID, {"marker": 1}))[0]["pid"]
    with pytest.raises(asyncpg.DataError):
        await database.fetch(_PID, {"marker": "not a number"})
    with pytest.raises(asyncpg.exceptions.DivisionByZeroError):
        await database.fetch(text("SELECT 1 / CAST(:zero AS int)"), {"zero": 0})

    assert (await database.fetch(_PID, {"marker": 2}))[0]["pid"] == first
