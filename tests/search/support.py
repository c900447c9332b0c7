"""Helpers of the search tests: bounded waiting on async conditions, the database as the oracle."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from conduit_server.articles.app import ArticlesApp
from conduit_server.search.domain.documents import Document
from conduit_server.search.domain.ports import SearchBackend

Content = tuple[str, str, str, str, tuple[str, ...], int]


async def until(check: Callable[[], Awaitable[bool]], *, seconds: float = 10.0, poll: float = 0.05) -> None:
    """Wait until `await check()` holds (progress made by another task or process), at most `seconds`."""
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110 - the condition belongs to another task or process
            await asyncio.sleep(poll)


def content(document: Document) -> Content:
    return (document.slug, document.title, document.description, document.body, document.tags,
            document.author_id)


async def database_articles(articles: ArticlesApp) -> dict[int, Content]:
    """Every article in the articles database (the oracle the index is compared with)."""
    found: dict[int, Content] = {}
    async for batch in articles.exports.snapshot():
        for a in batch.articles:
            found[a.id] = (a.slug, a.title, a.description, a.body, tuple(a.tags), a.author_id)
    return found


async def indexed(backend: SearchBackend) -> dict[int, Content]:
    return {article_id: content(document) for article_id, document in (await backend.documents()).items()}


async def index_matches_database(backend: SearchBackend, articles: ArticlesApp) -> bool:
    return await indexed(backend) == await database_articles(articles)
