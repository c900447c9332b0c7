"""Normalisation of article text: tags, excerpts, descriptions, reading time. Pure functions."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

EXCERPT_LENGTH = 280
DESCRIPTION_LENGTH = 200
WORDS_PER_MINUTE = 200
MAX_TAG_LENGTH = 64

_FENCE = re.compile(r"```.*?```|~~~.*?~~~", re.DOTALL)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_HTML = re.compile(r"<[^>]+>")
_LINE_MARKS = re.compile(r"^\s{0,3}(?:#{1,6}\s+|>\s?|[-*+]\s+|\d+[.)]\s+)", re.MULTILINE)
_INLINE_MARKS = re.compile(r"[*_`~]+")
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"\w+")


def normalise_tags(tags: Iterable[str]) -> list[str]:
    """Trimmed, lower-cased, without empties and duplicates, in alphabetical order (what every
    article response shows: RealWorld clients compare `tagList` as sent back sorted)."""
    names = {_SPACES.sub(" ", tag.strip().lower())[:MAX_TAG_LENGTH].rstrip() for tag in tags}
    return sorted(name for name in names if name)


def plain_text(markdown: str) -> str:
    """A rough plain-text rendering of Markdown: enough for excerpts and word counts."""
    text = _FENCE.sub(" ", markdown)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _HTML.sub(" ", text)
    text = _LINE_MARKS.sub("", text)
    text = _INLINE_MARKS.sub("", text)
    return _SPACES.sub(" ", text).strip()


def shorten(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters at a word boundary, with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    boundary = cut.rfind(" ")
    if boundary > limit // 2:
        cut = cut[:boundary]
    return cut.rstrip(" ,.;:-") + "…"


def excerpt(body: str, limit: int = EXCERPT_LENGTH) -> str:
    """The opening of the body as plain text."""
    return shorten(plain_text(body), limit)


def description_from_body(body: str) -> str:
    """A one-line summary for an article given without one: its first paragraph, shortened."""
    for paragraph in re.split(r"\n\s*\n", _FENCE.sub(" ", body)):
        text = plain_text(paragraph)
        if text:
            return shorten(text, DESCRIPTION_LENGTH)
    return shorten(plain_text(body), DESCRIPTION_LENGTH)


def reading_time_minutes(body: str) -> int:
    """Whole minutes to read the body at WORDS_PER_MINUTE; at least one."""
    words = len(_WORD.findall(plain_text(body)))
    return max(1, math.ceil(words / WORDS_PER_MINUTE))
