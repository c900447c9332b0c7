"""gRPC servicer of conduit.search.v1: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from conduit.articles.v1 import articles_pb2
from conduit.search.v1 import search_pb2, search_pb2_grpc
from conduit_server.runtime import auth
from conduit_server.search.domain.ports import IndexStatus
from conduit_server.search.domain.query import Hit
from conduit_server.search.domain.reindex import Progress, ProgressCallback
from conduit_server.search.domain.search import Searcher

Reindex = Callable[[ProgressCallback], Coroutine[Any, Any, int]]
Status = Callable[[], Coroutine[Any, Any, IndexStatus]]


def _hit(hit: Hit) -> search_pb2.SearchHit:
    found, article = hit.found, hit.article
    assert isinstance(article, articles_pb2.ArticleSummary)
    message = search_pb2.SearchHit(slug=article.slug, title=article.title, description=article.description,
                                   tag_list=article.tag_list, author=article.author.username,
                                   snippet=hit.snippet_html, score=found.score, article=article,
                                   title_highlight=hit.title_html)
    message.created_at.CopyFrom(article.created_at)
    return message


def _progress(progress: Progress) -> search_pb2.WatchReindexArticlesResponse:
    return search_pb2.WatchReindexArticlesResponse(indexed_count=progress.indexed, total_count=progress.total,
                                                   phase=progress.phase, done=progress.done)


class SearchApi(search_pb2_grpc.SearchServiceServicer):
    def __init__(self, searcher: Searcher, reindex: Reindex, status: Status) -> None:
        self._searcher = searcher
        self._reindex = reindex
        self._status = status

    async def SearchArticles(self, request: search_pb2.SearchArticlesRequest, context: Any
                             ) -> search_pb2.SearchArticlesResponse:
        principal = auth.current_principal()
        viewer_id = principal.user_id or 0 if principal is not None else 0
        page = await self._searcher.search(request.query or request.q, tag=request.tag, author=request.author,
                                           limit=request.limit, offset=request.offset, viewer_id=viewer_id)
        # A hit whose article was deleted a moment ago (the index not there yet) is left out.
        return search_pb2.SearchArticlesResponse(
            hits=[_hit(hit) for hit in page.hits if hit.article is not None], hits_count=page.total,
            tag_facets=[search_pb2.TagFacet(tag=tag, count=count) for tag, count in page.facets],
            corrected=page.corrected)

    async def ReindexArticles(self, request: search_pb2.ReindexArticlesRequest, context: Any
                              ) -> search_pb2.ReindexArticlesResponse:
        async def ignore(_: Progress) -> None:
            return None

        return search_pb2.ReindexArticlesResponse(indexed_count=await self._reindex(ignore))

    async def GetIndexStatus(self, request: search_pb2.GetIndexStatusRequest, context: Any
                             ) -> search_pb2.GetIndexStatusResponse:
        status = await self._status()
        return search_pb2.GetIndexStatusResponse(
            backend=status.stats.backend, documents_count=status.stats.documents,
            tombstones_count=status.stats.tombstones, newest_sequence=status.stats.newest_version,
            indexing_lag_seconds=status.lag_seconds, documents_indexed=status.documents_indexed)

    async def WatchReindexArticles(self, request: search_pb2.WatchReindexArticlesRequest, context: Any
                                   ) -> AsyncIterator[search_pb2.WatchReindexArticlesResponse]:
        updates: asyncio.Queue[Progress | None] = asyncio.Queue()
        task = asyncio.create_task(self._reindex(updates.put))
        task.add_done_callback(lambda _: updates.put_nowait(None))
        try:
            while (progress := await updates.get()) is not None:
                yield _progress(progress)
            task.result()  # a failed reindex ends the stream with its error
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
