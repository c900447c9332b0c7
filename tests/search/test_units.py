"""The search domain's pure rules: query cleaning, snippet escaping, batch compaction by version."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Connection

from conduit.articles.v1 import events_pb2
from conduit_server.runtime.errors import InvalidArgument
from conduit_server.search.domain.documents import MARK_CLOSE, MARK_OPEN, Change, Document, Tombstone, latest
from conduit_server.search.domain.query import marked_html, parse_query
from conduit_server.search.events import changed_article_ids
from conduit_server.search.repository import models
from tests.search.conftest import postgres_backend

NOW = datetime(2026, 12, 3, tzinfo=UTC)


def document(article_id: int, version: int, title: str = "t") -> Document:
    return Document(article_id, version, f"s{article_id}", title, "d", "b", (), 1, NOW)


def test_marks_become_mark_elements_and_everything_else_is_escaped() -> None:
    text = f'<img src=x onerror="1"> {MARK_OPEN}dragon{MARK_CLOSE} & co'
    assert marked_html(text) == '&lt;img src=x onerror=&quot;1&quot;&gt; <mark>dragon</mark> &amp; co'


@given(st.text())
def test_no_text_ever_yields_markup_other_than_balanced_marks(text: str) -> None:
    html = marked_html(text)
    assert html.count("<mark>") == html.count("</mark>")
    assert "<" not in html.replace("<mark>", "").replace("</mark>", "")


def test_queries_lose_control_characters_and_an_empty_one_is_invalid() -> None:
    assert parse_query("dra\x00gon\tfire\x07  ").text == "dragon fire"  # NUL dropped, others are spaces
    with pytest.raises(InvalidArgument):
        parse_query("\x00 \x01")


def test_a_batch_keeps_the_newest_change_per_article_whatever_the_order() -> None:
    changes: list[Change] = [document(1, 5, "new"), document(1, 3, "old"), Tombstone(2, 9), document(2, 4)]
    assert latest(changes) == [document(1, 5, "new"), Tombstone(2, 9)]


async def test_the_migrations_create_exactly_the_tables_of_the_models(postgres_url: str) -> None:
    backend = await postgres_backend(postgres_url)

    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={
            "include_name": lambda name, kind, _: not (kind == "table" and name == "alembic_version")})
        return list(compare_metadata(context, models.Base.metadata))

    try:
        async with backend.database.engine.connect() as connection:
            assert await connection.run_sync(differences) == []
    finally:
        await backend.close()


def test_the_articles_events_that_change_an_anonymous_view_name_their_article() -> None:
    def entry(kind: str, event: events_pb2.ArticleEvent) -> tuple[bytes, dict[bytes, bytes]]:
        return b"1-0", {b"type": kind.encode(), b"payload": event.SerializeToString()}

    entries = [
        entry("article_updated", events_pb2.ArticleEvent(
            article_updated=events_pb2.ArticleUpdated(article=events_pb2.ArticleRecord(id=1)))),
        entry("article_deleted", events_pb2.ArticleEvent(article_deleted=events_pb2.ArticleDeleted(article_id=2))),
        entry("favorite_changed", events_pb2.ArticleEvent(
            favorite_changed=events_pb2.FavoriteChanged(article_id=3, favorited=True))),
        entry("article_created", events_pb2.ArticleEvent(
            article_created=events_pb2.ArticleCreated(article=events_pb2.ArticleRecord(id=4)))),
        entry("comment_added", events_pb2.ArticleEvent()),
    ]
    assert changed_article_ids(entries) == {1, 2, 3}
    assert changed_article_ids([*entries, (b"2-0", {b"type": b"favorite_changed", b"payload": b"\xff"})]) is None
