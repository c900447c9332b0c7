"""The indexer's guarantees on every backend: replays and reordering are harmless, a crash mid-batch
loses nothing, and a full reindex under continuous writes ends equal to the database."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from conduit.articles.v1 import articles_pb2
from conduit_server.articles.app import EVENTS_STREAM
from conduit_server.runtime.consumers import GroupEntry
from conduit_server.search.domain.documents import Change, Document
from conduit_server.search.domain.ports import SearchBackend
from conduit_server.search.domain.query import SearchQuery
from conduit_server.search.domain.reindex import Progress
from conduit_server.search.events import Indexer, changes_of
from tests.articles.conftest import Mesh, Person, stream_entries
from tests.search.conftest import Search
from tests.search.support import database_articles, index_matches_database, indexed, until


async def write_history(mesh: Mesh, author: Person, count: int = 12) -> None:
    """Creates, updates (new titles, so new slugs) and deletes, as real events through the outbox."""
    slugs = [(await mesh.create(author, f"History {n} {uuid.uuid4().hex[:6]}", body=f"Body {n}")).slug
             for n in range(count)]
    for slug in slugs[::3]:
        await mesh.articles.UpdateArticle(articles_pb2.UpdateArticleRequest(
            slug=slug, article=articles_pb2.UpdateArticle(title=f"Renamed {slug}", body="Rewritten")),
            metadata=author.auth)
    for slug in slugs[1::3]:  # never a renamed one
        await mesh.articles.DeleteArticle(articles_pb2.DeleteArticleRequest(slug=slug), metadata=author.auth)


async def published(mesh: Mesh) -> list[GroupEntry]:
    """Every event of the stream, once the relay has published the whole outbox."""
    await until(lambda: _relayed(mesh))
    return list(await stream_entries(mesh.app.redis, EVENTS_STREAM))


async def _relayed(mesh: Mesh) -> bool:
    return await mesh.app.relay.pending() == 0


async def test_replaying_every_event_twice_or_out_of_order_leaves_the_index_equal_to_the_database(
        backend: SearchBackend, mesh: Mesh) -> None:
    await write_history(mesh, await mesh.person("historian"))
    entries = await published(mesh)
    assert len(entries) > 12

    for entry in entries + entries:  # in order, twice
        await backend.apply(changes_of([entry]))
    assert await index_matches_database(backend, mesh.app)

    shuffled = list(reversed(entries)) + random.Random(16).sample(entries, len(entries))  # noqa: S311 - a fixed shuffle
    for entry in shuffled:  # newest first, then at random: older events must not win
        await backend.apply(changes_of([entry]))
    assert await indexed(backend) == await database_articles(mesh.app)


class StallingBackend:
    """The real backend, except that the first batch it is given stalls after writing half of it:
    the moment a crash mid-batch is simulated."""

    def __init__(self, backend: SearchBackend) -> None:
        self._backend = backend
        self.stalled = asyncio.Event()

    async def apply(self, changes: Sequence[Change], target: str | None = None) -> int:
        if self.stalled.is_set():
            return await self._backend.apply(changes, target)
        await self._backend.apply(changes[: len(changes) // 2], target)
        self.stalled.set()
        await asyncio.Event().wait()  # never acknowledged: the consumer is killed here
        raise AssertionError("unreachable")


async def test_an_indexer_killed_mid_batch_leaves_nothing_missing_once_another_takes_over(
        backend: SearchBackend, mesh: Mesh) -> None:
    await write_history(mesh, await mesh.person("crasher"))
    await published(mesh)
    group = f"crash-{uuid.uuid4().hex[:8]}"
    stalling = StallingBackend(backend)
    doomed = Indexer(mesh.app.redis, EVENTS_STREAM, stalling,  # type: ignore[arg-type]  # apply is all it uses
                     group=group, consumer="doomed", count=1000)
    doomed.start()
    await asyncio.wait_for(stalling.stalled.wait(), 10)
    doomed.kill()
    await backend.refresh()
    assert await indexed(backend) != await database_articles(mesh.app)  # half a batch: really mid-batch

    survivor = Indexer(mesh.app.redis, EVENTS_STREAM, backend, group=group, consumer="survivor",
                       claim_idle_ms=100)
    survivor.start()
    try:
        await backend.refresh()
        await until(lambda: _caught_up(backend, mesh))
        assert await mesh.app.redis.xpending(EVENTS_STREAM, group) == {
            "pending": 0, "min": None, "max": None, "consumers": []}
    finally:
        await survivor.stop()


async def _settled(search: Search) -> bool:
    """Every write relayed, every event of the stream delivered to the indexer's group and acknowledged.

    Comparing the index with the database before that can pass by accident: an article created and
    deleted at the end of the writes is in neither until its create event arrives, then in the index
    alone until its delete does."""
    if not await _relayed(search.mesh):
        return False
    redis = search.mesh.app.redis
    newest = await redis.xrevrange(EVENTS_STREAM, "+", "-", count=1)
    group = next(g for g in await redis.xinfo_groups(EVENTS_STREAM) if g["name"] == search.app.indexer.group.encode())
    return group["pending"] == 0 and (not newest or group["last-delivered-id"] == newest[0][0])


async def _caught_up(backend: SearchBackend, mesh: Mesh) -> bool:
    await backend.refresh()
    return await index_matches_database(backend, mesh.app)


async def test_a_reindex_under_continuous_writes_ends_with_the_index_equal_to_the_database(search: Search) -> None:
    mesh = search.mesh
    author = await mesh.person("busy")
    for n in range(60):
        await mesh.create(author, f"Before {n}", body="Seed")
    stop = asyncio.Event()

    async def keep_writing() -> int:
        written = 0
        while not stop.is_set():
            article = await mesh.create(author, f"During {written} {uuid.uuid4().hex[:6]}", body="Live")
            if written % 3 == 0:
                await mesh.articles.UpdateArticle(articles_pb2.UpdateArticleRequest(
                    slug=article.slug, article=articles_pb2.UpdateArticle(body="Changed under reindex")),
                    metadata=author.auth)
            if written % 5 == 0:
                await mesh.articles.DeleteArticle(articles_pb2.DeleteArticleRequest(slug=article.slug),
                                                  metadata=author.auth)
            written += 1
        return written

    phases: list[str] = []

    async def record(progress: Progress) -> None:
        phases.append(progress.phase)

    writer = asyncio.create_task(keep_writing())
    try:
        indexed_count = await search.app.reindex(record)
    finally:
        stop.set()
        written = await writer
    assert written > 0
    assert indexed_count >= 60
    assert phases[-1] == "done"
    assert {"snapshot", "catch-up", "swap"} <= set(phases)
    await until(lambda: _settled(search), seconds=30)
    assert await index_matches_database(search.app.backend, mesh.app)
    status = await search.app.status()
    assert status.stats.documents == len(await database_articles(mesh.app))


async def test_a_live_write_is_searchable_when_it_returns_and_a_rebuilds_writes_only_after_the_swap(
        backend: SearchBackend) -> None:
    """No refresh called: what a search finds right after a write is what the shared answers (decision
    0048), forgotten by that write, are refilled with."""
    def lantern(article_id: int, title: str) -> Document:
        return Document(article_id, 1, f"lantern-{article_id}", title, "", "paper and light", ("craft",), 1,
                        datetime(2026, 12, 5, tzinfo=UTC))

    async def found() -> list[int]:
        return sorted(hit.article_id for hit in (await backend.search(SearchQuery("lanterns"), fuzzy=False)).hits)

    await backend.apply([lantern(1, "Lanterns at dusk")])
    assert await found() == [1]
    target = await backend.begin_rebuild()
    await backend.apply([lantern(1, "Lanterns at dusk"), lantern(2, "Lanterns at dawn")], target)
    assert await found() == [1]
    await backend.swap(target)
    assert await found() == [1, 2]
