"""The search domain's pure rules: query cleaning, snippet escaping, batch compaction by version."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conduit_server.runtime.errors import InvalidArgument
from conduit_server.search.domain.documents import MARK_CLOSE, MARK_OPEN, Change, Document, Tombstone, latest
from conduit_server.search.domain.query import marked_html, parse_query

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
