"""What a fresh PostgreSQL index needs to be fast without waiting for autovacuum (docs/decisions/0051):
current planner statistics, which the backend keeps itself, and GIN indexes without a pending list."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from conduit_server.search.domain.documents import Document
from conduit_server.search.repository.postgres import PostgresBackend
from tests.search.conftest import postgres_backend

START = datetime(2026, 12, 5, tzinfo=UTC)


def documents(first: int, count: int) -> list[Document]:
    return [Document(n, 1, f"s{n}", f"Harbour {n}", "", "boats and nets", ("coast",), 1, START)
            for n in range(first, first + count)]


async def analyses(backend: PostgresBackend) -> dict[str, int]:
    async with backend.database.read() as session:
        rows = await session.execute(text(
            "SELECT relname, analyze_count FROM pg_stat_user_tables WHERE schemaname = 'search' "
            "AND relname IN ('documents', 'words')"))
        return {row.relname: int(row.analyze_count) for row in rows}


async def test_written_rows_beyond_the_threshold_analyze_documents_and_words(postgres_url: str) -> None:
    backend = await postgres_backend(postgres_url, analyze_min_rows=10)
    try:
        before = await analyses(backend)
        await backend.apply(documents(1, 6))
        assert await analyses(backend) == before  # 6 rows written: under the threshold
        await backend.apply(documents(7, 6))
        after = await analyses(backend)
        assert after == {name: count + 1 for name, count in before.items()}
        async with backend.database.read() as session:
            estimated = await session.scalar(text("SELECT reltuples FROM pg_class WHERE oid = "
                                                  "CAST('documents' AS regclass)"))
        assert estimated == 12  # the planner now knows the table's size
        # The next analysis waits for 20 % of those documents, or the minimum (10 rows here).
        await backend.apply(documents(13, 9))
        assert await analyses(backend) == after
    finally:
        await backend.close()


async def test_a_swap_analyzes_the_documents_it_makes_live(postgres_url: str) -> None:
    backend = await postgres_backend(postgres_url)  # the default minimum: writes alone never analyze here
    try:
        target = await backend.begin_rebuild()
        await backend.apply(documents(1, 5), target)
        before = await analyses(backend)
        await backend.swap(target)
        assert await analyses(backend) == {name: count + 1 for name, count in before.items()}
    finally:
        await backend.close()


async def test_no_gin_index_keeps_a_pending_list(postgres_url: str) -> None:
    """A pending list (GIN's default `fastupdate`) is scanned by every search until a vacuum empties it:
    on 10,000 fresh documents a selective search cost ~9 ms instead of ~4 (docs/decisions/0051)."""
    backend = await postgres_backend(postgres_url)
    try:
        async with backend.database.read() as session:
            rows = await session.execute(text(
                "SELECT c.relname, coalesce(c.reloptions, '{}') AS options FROM pg_index AS i "
                "JOIN pg_class AS c ON c.oid = i.indexrelid JOIN pg_am AS am ON am.oid = c.relam "
                "JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE n.nspname = 'search' AND am.amname = 'gin'"))
            options = {row.relname: list(row.options) for row in rows}
        assert options == {name: ["fastupdate=off"] for name in
                           ("ix_documents_document", "ix_documents_head", "ix_documents_tags", "ix_words_trigrams")}
    finally:
        await backend.close()
