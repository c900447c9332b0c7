"""Idempotency keys on the real articles service (Redis, PostgreSQL): a repeat returns the first result.

The SDK's fault kit sits between the client and the service as a proxy (`FakeServer(upstream=...)`):
`Fault.lose_answer()` lets the first CreateArticle through, then drops its answer as a lost connection
would; the SDK retries with the same `idempotency-key`, and the service answers with the stored result.
"""

from __future__ import annotations

import hashlib
import uuid

import grpc
import pytest

from conduit.articles.v1 import articles_pb2
from conduit.client import AsyncConduit, RetryPolicy
from conduit.client.testing import FakeServer, Fault
from conduit_server.runtime.idempotency import IDEMPOTENCY_KEY_HEADER, IdempotencyStore
from conduit_server.runtime.tokens import user_subject
from tests.articles.conftest import Mesh, Person

FAST = RetryPolicy(initial_backoff=0.01, max_backoff=0.05)


def _new(title: str) -> articles_pb2.CreateArticleRequest:
    return articles_pb2.CreateArticleRequest(article=articles_pb2.NewArticle(
        title=title, description="d", body="b"))


async def _count_by(mesh: Mesh, author: Person) -> int:
    response = await mesh.articles.ListArticles(articles_pb2.ListArticlesRequest(author=author.username))
    return response.articles_count


async def test_a_create_retried_after_a_lost_answer_creates_one_article(mesh: Mesh) -> None:
    author = await mesh.person("idem")
    target = f"127.0.0.1:{mesh.app.port}"  # type: ignore[attr-defined]
    with FakeServer(upstream=target) as proxy:
        proxy.script("CreateArticle", Fault.lose_answer())
        async with await AsyncConduit.connect(proxy.target, tls=False, token=author.token, retry=FAST) as conduit:
            with conduit.with_raw_response() as raw:
                article = await conduit.articles.create(title="Written once", description="d", body="b")
        first, second = proxy.calls("CreateArticle")
    assert first.idempotency_key
    assert first.idempotency_key == second.idempotency_key  # the server saw two attempts, one key
    assert await _count_by(mesh, author) == 1
    assert article.slug.startswith("written-once")
    assert raw.last.attempts == 2
    assert ("idempotent-replayed", "true") in raw.last.initial_metadata  # the stored answer


async def test_a_key_reused_with_another_request_is_refused(mesh: Mesh) -> None:
    author = await mesh.person("idem")
    key = ((IDEMPOTENCY_KEY_HEADER, uuid.uuid4().hex),)
    await mesh.articles.CreateArticle(_new("First use"), metadata=(*author.auth, *key))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await mesh.articles.CreateArticle(_new("Another request"), metadata=(*author.auth, *key))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "different request" in (raised.value.details() or "")
    assert await _count_by(mesh, author) == 1


async def test_keys_are_per_caller(mesh: Mesh) -> None:
    one, two = await mesh.person("idem"), await mesh.person("idem")
    key = ((IDEMPOTENCY_KEY_HEADER, "shared-key"),)
    await mesh.articles.CreateArticle(_new("Same title"), metadata=(*one.auth, *key))
    await mesh.articles.CreateArticle(_new("Same title"), metadata=(*two.auth, *key))
    assert (await _count_by(mesh, one), await _count_by(mesh, two)) == (1, 1)


async def test_a_final_error_is_kept_and_a_delete_repeat_gets_the_first_answer(mesh: Mesh) -> None:
    author = await mesh.person("idem")
    created = await mesh.create(author, "Deleted once")
    key = ((IDEMPOTENCY_KEY_HEADER, uuid.uuid4().hex),)
    request = articles_pb2.DeleteArticleRequest(slug=created.slug)
    await mesh.articles.DeleteArticle(request, metadata=(*author.auth, *key))
    await mesh.articles.DeleteArticle(request, metadata=(*author.auth, *key))  # not NOT_FOUND: the first answer
    with pytest.raises(grpc.aio.AioRpcError) as raised:  # without the key, the method runs again
        await mesh.articles.DeleteArticle(request, metadata=author.auth)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    missing = articles_pb2.DeleteArticleRequest(slug="no-such-article")
    other_key = ((IDEMPOTENCY_KEY_HEADER, uuid.uuid4().hex),)
    for _ in range(2):  # NOT_FOUND is final: stored and answered again
        with pytest.raises(grpc.aio.AioRpcError) as again:
            await mesh.articles.DeleteArticle(missing, metadata=(*author.auth, *other_key))
        assert again.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_repeat_while_the_first_attempt_runs_is_aborted_and_retried_later(mesh: Mesh) -> None:
    author = await mesh.person("idem")
    key = uuid.uuid4().hex
    store = IdempotencyStore(mesh.app.redis, window_seconds=60, pending_seconds=60)
    # What the first attempt's claim leaves in Redis while its handler runs.
    redis_key = store.redis_key(user_subject(author.user_id), "/conduit.articles.v1.ArticlesService/CreateArticle",
                                key)
    request = _new("Pending")
    assert await store.claim(redis_key, hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()) \
        is None
    metadata = (*author.auth, (IDEMPOTENCY_KEY_HEADER, key))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await mesh.articles.CreateArticle(request, metadata=metadata)
    assert raised.value.code() == grpc.StatusCode.ABORTED
    assert await _count_by(mesh, author) == 0
    await store.release(redis_key)  # the first attempt failed transiently: the key is free again
    await mesh.articles.CreateArticle(request, metadata=metadata)
    assert await _count_by(mesh, author) == 1
