"""A search request end to end: filters resolved, the backend asked (with typo tolerance as a
fallback), snippets escaped, and the articles fetched as the caller sees them in one batched call."""

from __future__ import annotations

from conduit_server.search.domain.ports import ArticleSource, Directory, SearchBackend
from conduit_server.search.domain.query import Hit, SearchPage, parse_query


class Searcher:
    def __init__(self, backend: SearchBackend, articles: ArticleSource, directory: Directory) -> None:
        self._backend = backend
        self._articles = articles
        self._directory = directory

    async def search(self, text: str, *, tag: str = "", author: str = "", limit: int = 0, offset: int = 0,
                     viewer_id: int = 0) -> SearchPage:
        author_id: int | None = None
        if author.strip():
            author_id = await self._directory.user_id(author.strip())
            if author_id is None:
                parse_query(text)  # a bad query is still a 422, whoever the author
                return SearchPage([], 0)  # an unknown author matches nothing: not an error
        query = parse_query(text, tag=tag, author_id=author_id, limit=limit, offset=offset)
        page = await self._backend.search(query, fuzzy=False)
        corrected = False
        if page.total == 0:
            # Nothing for the words as typed: try the closest spellings (`dargons` finds `dragons`).
            page = await self._backend.search(query, fuzzy=True)
            corrected = page.total > 0
        views = await self._articles.views([hit.article_id for hit in page.hits], viewer_id) if page.hits else {}
        hits = [Hit(found, found.title_html, found.snippet_html, views.get(found.article_id)) for found in page.hits]
        return SearchPage(hits, page.total, page.facets, corrected, page.total_exact)

