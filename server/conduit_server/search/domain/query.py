"""Search requests and answers, and the snippets' escaping."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from conduit_server.runtime.errors import FieldViolation, InvalidArgument
from conduit_server.search.domain.documents import MARK_CLOSE, MARK_OPEN, clean_text

DEFAULT_LIMIT = 20
FACET_SIZE = 10
SNIPPET_CHARS = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class SearchQuery:
    """A validated query: `text` holds at least one visible character."""

    text: str
    tag: str = ""
    author_id: int | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0


def parse_query(text: str, *, tag: str = "", author_id: int | None = None, limit: int = 0,
                offset: int = 0) -> SearchQuery:
    """Control characters (NUL included) become spaces; nothing left to search for is a 422."""
    cleaned = " ".join(_CONTROL.sub(" ", clean_text(text)).split())
    if not cleaned:
        raise InvalidArgument([FieldViolation("query", "must contain something to search for")])
    return SearchQuery(cleaned, " ".join(_CONTROL.sub(" ", clean_text(tag)).split()).lower(), author_id,
                       limit or DEFAULT_LIMIT, offset)


@dataclass(frozen=True)
class BackendHit:
    """A match as a backend finds it; highlighted text marks words with MARK_OPEN/MARK_CLOSE."""

    article_id: int
    score: float
    slug: str
    title: str
    description: str
    tags: tuple[str, ...]
    author_id: int
    created_at: datetime
    title_marked: str
    snippet_marked: str

    # Escaped once per hit, however many callers a shared answer (decision 0048) goes to.
    @cached_property
    def title_html(self) -> str:
        return marked_html(self.title_marked)

    @cached_property
    def snippet_html(self) -> str:
        return marked_html(self.snippet_marked, limit=SNIPPET_CHARS)


@dataclass(frozen=True)
class BackendPage:
    hits: list[BackendHit]
    total: int
    facets: list[tuple[str, int]]
    # False when the backend stopped counting at its window: `total` is then a lower bound and the
    # facets count the matches it looked at (docs/decisions/0022).
    total_exact: bool = True


@dataclass(frozen=True)
class Hit:
    """A hit as the caller gets it: highlights are safe HTML (`<mark>` and escaped text only)."""

    found: BackendHit
    title_html: str
    snippet_html: str
    # The article as the caller sees it, from the articles service; None when it vanished meanwhile.
    article: Any = None


@dataclass(frozen=True)
class SearchPage:
    hits: list[Hit]
    total: int
    facets: list[tuple[str, int]] = field(default_factory=list)
    corrected: bool = False
    total_exact: bool = True


def marked_html(text: str, *, limit: int = 0) -> str:
    """Escape everything, then turn the backend's marks into `<mark>` (balanced, never nested)."""
    if limit and len(text) > limit:
        text = text[:limit].rstrip() + "…"
    out: list[str] = []
    open_mark = False
    for piece in re.split(f"([{MARK_OPEN}{MARK_CLOSE}])", text):
        if piece == MARK_OPEN:
            if not open_mark:
                out.append("<mark>")
                open_mark = True
        elif piece == MARK_CLOSE:
            if open_mark:
                out.append("</mark>")
                open_mark = False
        else:
            out.append(html.escape(piece, quote=True))
    if open_mark:
        out.append("</mark>")
    return "".join(out)
