"""Slugs and text normalisation: pure functions, no I/O."""

from __future__ import annotations

import pytest

from conduit_server.articles.domain import normalise, slugs


@pytest.mark.parametrize(("title", "slug"), [
    ("How to train your dragon", "how-to-train-your-dragon"),
    ("  Crème Brûlée: a Déjà-vu!  ", "creme-brulee-a-deja-vu"),
    ("gRPC & Envoy -- 2026 edition", "grpc-envoy-2026-edition"),
    ("Ünïcödé ÄÖÜ ß", "unicode-aou"),
    ("日本語のタイトル", slugs.FALLBACK_BASE),
    ("!!!", slugs.FALLBACK_BASE),
])
def test_slug_is_lower_case_ascii_words_joined_by_hyphens(title: str, slug: str) -> None:
    assert slugs.slugify(title) == slug


def test_long_titles_are_cut_at_a_word_boundary() -> None:
    slug = slugs.slugify("word " * 100)
    assert len(slug) <= slugs.MAX_BASE_LENGTH
    assert slug.endswith("word")
    assert len(slugs.with_suffix(slug)) <= 300  # the column's length


def test_suffixed_slugs_differ_and_keep_the_base() -> None:
    made = {slugs.with_suffix("title") for _ in range(1000)}
    assert len(made) == 1000
    assert all(s.startswith("title-") and len(s) == len("title-") + slugs.SUFFIX_LENGTH for s in made)


def test_candidates_start_with_the_plain_slug_except_reserved_routes() -> None:
    first, *rest = slugs.candidates("Hello World", 4)
    assert first == "hello-world"
    assert len(rest) == 3
    assert all(s.startswith("hello-world-") for s in rest)
    assert all(s != "feed" for s in slugs.candidates("Feed", 3))  # GET /api/articles/feed is the feed


def test_tags_are_trimmed_lower_cased_deduplicated_and_sorted() -> None:
    assert normalise.normalise_tags([" Python ", "gRPC", "python", "", "  ", "Two  Words", "grpc"]) == [
        "grpc", "python", "two words"]


def test_excerpt_is_plain_text_cut_at_a_word() -> None:
    body = "# Title\n\nSome **bold** and [a link](http://x.y) text.\n\n```\ncode()\n```\n" + "word " * 200
    excerpt = normalise.excerpt(body)
    assert excerpt.startswith("Title Some bold and a link text.")
    assert "code()" not in excerpt
    assert "**" not in excerpt
    assert "http" not in excerpt
    assert len(excerpt) <= normalise.EXCERPT_LENGTH
    assert excerpt.endswith("…")
    assert normalise.excerpt("Short body.") == "Short body."


def test_description_comes_from_the_first_paragraph() -> None:
    assert normalise.description_from_body("First *para*.\n\nSecond para.") == "First para."
    assert len(normalise.description_from_body("long " * 500)) <= normalise.DESCRIPTION_LENGTH


@pytest.mark.parametrize(("words", "minutes"), [(0, 1), (1, 1), (200, 1), (201, 2), (1000, 5)])
def test_reading_time_rounds_up_to_whole_minutes(words: int, minutes: int) -> None:
    assert normalise.reading_time_minutes("word " * words) == minutes
