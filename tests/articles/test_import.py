"""Bulk import through the client-streaming RPC: per-item validation and results, batching, bounded memory."""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf import timestamp_pb2
from sqlalchemy import text

from conduit.articles.v1 import articles_pb2
from tests.articles.conftest import Mesh

Metadata = tuple[tuple[str, str], ...]


def _raw(n: int, author: str, *, title: str | None = None, body: str | None = None,
         description: str | None = None, tags: Sequence[str] | None = None,
         created_at: timestamp_pb2.Timestamp | None = None) -> articles_pb2.ImportArticlesRequest:
    article = articles_pb2.RawArticle(
        title=f"Imported article {n}" if title is None else title,
        body=f"Body of article {n}. " + "lorem ipsum dolor " * 20 if body is None else body,
        description=f"About {n}" if description is None else description,
        tag_list=["imported", f"t{n % 7}"] if tags is None else tags, author=author, created_at=created_at)
    return articles_pb2.ImportArticlesRequest(article=article)


async def _stream(requests: Iterable[articles_pb2.ImportArticlesRequest]
                  ) -> AsyncIterator[articles_pb2.ImportArticlesRequest]:
    for request in requests:
        yield request


async def _import(mesh: Mesh, requests: Iterable[articles_pb2.ImportArticlesRequest], auth: Metadata
                  ) -> articles_pb2.ImportArticlesResponse:
    return await mesh.articles.ImportArticles(_stream(requests), metadata=auth)


def _bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


async def test_items_are_normalised_and_bad_items_are_reported_alone(mesh: Mesh) -> None:
    admin, writer = await mesh.moderator("admin"), await mesh.person("writer")
    await mesh.create(writer, "Clash")
    created_at = timestamp_pb2.Timestamp()
    created_at.FromDatetime(datetime(2020, 5, 17, 12, 0, tzinfo=UTC))
    requests = [
        _raw(0, writer.username, title="Clash"),  # slug taken by an existing article
        _raw(1, writer.username, title="", body="no title"),  # invalid: blank title
        _raw(2, writer.username, title="Twin"),
        _raw(3, writer.username, title="Twin"),  # same title in the same batch
        _raw(4, "nobody-by-that-name"),  # unknown author
        _raw(5, writer.username, title="Normalised", description="", tags=[" Python", "python", "GRPC", ""],
             body="First paragraph of the body.\n\nSecond paragraph. " + "word " * 450,
             created_at=created_at),
        articles_pb2.ImportArticlesRequest(),  # no article at all
        _raw(7, writer.username, title="   ", body="blank title after trimming"),
    ]
    response = await _import(mesh, requests, admin.auth)
    assert (response.created_count, response.rejected_count) == (4, 4)
    reasons = {item.index: item.reason for item in response.rejected}
    assert [item.index for item in response.rejected] == [1, 4, 6, 7]  # stream order
    assert all(item.outcome == articles_pb2.IMPORT_OUTCOME_REJECTED for item in response.rejected)
    assert reasons[1] == "title: can't be blank"
    assert reasons[4] == "author: unknown user 'nobody-by-that-name'"
    assert "title: can't be blank" in reasons[6]
    assert "body" in reasons[6]
    assert "author" in reasons[6]
    assert reasons[7] == "title: can't be blank"

    listed = await mesh.articles.ListArticles(articles_pb2.ListArticlesRequest(author=writer.username,
                                                                               limit=10))
    slugs = {article.slug for article in listed.articles}
    assert listed.articles_count == 5
    assert "twin" in slugs
    assert len([s for s in slugs if s.startswith("twin-")]) == 1
    assert len([s for s in slugs if s.startswith("clash-")]) == 1
    normalised = (await mesh.articles.GetArticle(articles_pb2.GetArticleRequest(slug="normalised"))).article
    assert list(normalised.tag_list) == ["grpc", "python"]
    assert normalised.description == "First paragraph of the body."
    assert normalised.created_at.ToDatetime(UTC) == datetime(2020, 5, 17, 12, 0, tzinfo=UTC)
    assert normalised.author.username == writer.username
    async with mesh.app.database.read() as session:
        row = (await session.execute(text(
            "SELECT excerpt, reading_time_minutes FROM articles WHERE slug = 'normalised'"))).one()
        events = await session.scalar(text(
            "SELECT count(*) FROM outbox WHERE event_type = 'article_created'"))
    assert row.excerpt.startswith("First paragraph of the body. Second paragraph. word word")
    assert row.excerpt.endswith("…")
    assert row.reading_time_minutes == 3  # 457 words at 200 a minute
    assert events == 5  # one per created article, plus the article created directly


async def test_import_is_for_admins_and_service_accounts_with_the_scope(mesh: Mesh) -> None:
    writer = await mesh.person("writer")
    request = [_raw(0, writer.username)]
    with pytest.raises(grpc.aio.AioRpcError) as user:
        await _import(mesh, request, writer.auth)
    assert user.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as moderator:
        await _import(mesh, request, (await mesh.moderator()).auth)
    assert moderator.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as unscoped:
        await _import(mesh, request, _bearer(await mesh.service_token(["articles.read"])))
    assert unscoped.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await _import(mesh, request, ())
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
    response = await _import(mesh, request, _bearer(await mesh.service_token(["articles.import"])))
    assert (response.created_count, response.rejected_count) == (1, 0)


async def _measured_import(mesh: Mesh, count: int, authors: list[str], auth: Metadata
                           ) -> tuple[articles_pb2.ImportArticlesResponse, int]:
    """Import `count` items (every 100th invalid); the peak of traced memory above the start."""

    def requests() -> Iterable[articles_pb2.ImportArticlesRequest]:
        for n in range(count):
            if n % 100 == 99:
                yield _raw(n, authors[n % len(authors)], title="")
            else:
                yield _raw(n, authors[n % len(authors)])

    gc.collect()
    tracemalloc.reset_peak()
    start, _ = tracemalloc.get_traced_memory()
    response = await _import(mesh, requests(), auth)
    _, peak = tracemalloc.get_traced_memory()
    return response, peak - start


async def test_10000_items_with_1_percent_invalid_store_all_valid_ones_in_flat_memory(mesh: Mesh) -> None:
    authors = [(await mesh.person("bulk")).username for _ in range(10)]
    auth = _bearer(await mesh.service_token(["articles.import"]))
    await _import(mesh, [_raw(n, authors[0]) for n in range(600)], auth)  # warm-up: caches, pools, statements
    started = time.monotonic()
    tracemalloc.start()
    try:
        small, small_peak = await _measured_import(mesh, 2_000, authors, auth)
        large, large_peak = await _measured_import(mesh, 10_000, authors, auth)
    finally:
        tracemalloc.stop()
    print(f"import: 12,000 items in {time.monotonic() - started:.1f}s; peak {small_peak / 1e6:.1f} MB "
          f"for 2,000, {large_peak / 1e6:.1f} MB for 10,000")
    assert (large.created_count, large.rejected_count) == (9_900, 100)
    assert [item.index for item in large.rejected] == list(range(99, 10_000, 100))
    assert all(item.reason == "title: can't be blank" for item in large.rejected)
    assert (small.created_count, small.rejected_count) == (1_980, 20)
    async with mesh.app.database.read() as session:
        stored = await session.scalar(text("SELECT count(*) FROM articles"))
        events = await session.scalar(text(
            "SELECT count(DISTINCT event_id) FROM outbox WHERE event_type = 'article_created'"))
    assert stored == 600 + 1_980 + 9_900
    assert events == stored  # one ArticleCreated per stored article
    # Five times the items, about the same peak: memory follows the batch, not the stream.
    assert large_peak < small_peak * 1.5 + 2_000_000
