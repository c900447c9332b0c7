"""Write rate limits per signed-in user (decision 0029): articles, comments, favorites and follows
share one budget per user and service; the next write is RESOURCE_EXHAUSTED with a RetryInfo and
a `retry-after` trailer (Envoy's REST surface: 429 + Retry-After, tests/gateway). Real Redis."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Awaitable, Callable

import grpc
import pytest
import redis.asyncio as aioredis

from conduit.articles.v1 import articles_pb2
from conduit.users.v1 import users_pb2
from conduit_server.runtime.errors import RateLimited
from conduit_server.runtime.ratelimit import Limit, RateLimiter, WriteLimit
from tests.articles.conftest import Mesh, Person
from tests.support import details, trailers


async def _refused(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    return caught.value


def _writes(mesh: Mesh, person: Person, slug: str) -> list[Callable[[], Awaitable[object]]]:
    """One of each article-service write a user makes."""
    return [
        lambda: mesh.create(person, f"Limited {uuid.uuid4().hex[:8]}"),
        lambda: mesh.articles.FavoriteArticle(articles_pb2.FavoriteArticleRequest(slug=slug),
                                              metadata=person.auth),
        lambda: mesh.comments.CreateComment(articles_pb2.CreateCommentRequest(
            slug=slug, comment=articles_pb2.NewComment(body="hi")), metadata=person.auth),
        lambda: mesh.articles.UnfavoriteArticle(articles_pb2.UnfavoriteArticleRequest(slug=slug),
                                                metadata=person.auth),
    ]


async def test_a_user_over_the_write_budget_is_refused_with_a_retry_delay_and_others_still_write(
        mesh: Mesh, monkeypatch: pytest.MonkeyPatch) -> None:
    alice, bob, carol = await mesh.person("alice"), await mesh.person("bob"), await mesh.person("carol")
    slug = (await mesh.create(alice, "Target")).slug
    monkeypatch.setattr(mesh.app.writes, "limit", Limit("writes-user", 4, 60))
    for write in _writes(mesh, bob, slug):  # creates, favorites, comments, unfavorites: one budget
        await write()
    error = await _refused(_writes(mesh, bob, slug)[2]())
    delay = details(error)["RetryInfo"].retry_delay
    assert 0 < delay.seconds + delay.nanos / 1e9 <= 60
    assert 1 <= int(trailers(error)["retry-after"]) <= 60
    assert details(error)["ErrorInfo"].reason == "RATE_LIMITED"
    await _refused(_writes(mesh, bob, slug)[0]())  # every kind of write waits
    # Another user's budget is untouched; reads are never limited.
    for write in _writes(mesh, carol, slug):
        await write()
    await mesh.articles.GetArticle(articles_pb2.GetArticleRequest(slug=slug), metadata=bob.auth)


async def test_follows_and_profile_updates_are_limited_per_user(mesh: Mesh, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    alice, bob = await mesh.person("alice"), await mesh.person("bob")
    monkeypatch.setattr(mesh.users.app.writes, "limit", Limit("writes-user", 2, 60))
    follow = users_pb2.FollowProfileRequest(username=alice.username)
    await mesh.profiles.FollowProfile(follow, metadata=bob.auth)
    await mesh.profiles.UnfollowProfile(users_pb2.UnfollowProfileRequest(username=alice.username),
                                        metadata=bob.auth)
    error = await _refused(mesh.profiles.FollowProfile(follow, metadata=bob.auth))
    assert "RetryInfo" in details(error)
    await mesh.profiles.FollowProfile(users_pb2.FollowProfileRequest(username=bob.username), metadata=alice.auth)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_writes_go_through_when_redis_is_down_fail_open() -> None:
    """Nothing listens where this client points: the limiter lets every write through (and logs),
    so a Redis outage never stops writes (decision 0029)."""
    down = aioredis.Redis(host="127.0.0.1", port=_closed_port(), socket_connect_timeout=0.5)
    try:
        writes = WriteLimit(RateLimiter(down, prefix="test:down"), Limit("writes-user", 1, 60))
        for _ in range(3):
            await writes.check(42)
    finally:
        await down.aclose()


async def test_the_budget_refills_as_the_window_slides(mesh: Mesh) -> None:
    """An injected clock moves time: no sleep."""
    now = [1_000.0]
    writes = WriteLimit(RateLimiter(mesh.app.redis, prefix=f"test:{uuid.uuid4().hex}", clock=lambda: now[0]),
                        Limit("writes-user", 2, 10))
    await writes.check(7)
    now[0] += 4
    await writes.check(7)
    with pytest.raises(RateLimited) as refused:
        await writes.check(7)
    assert refused.value.retry_after_seconds == pytest.approx(6, abs=0.01)
    now[0] += 6  # the first write left the window
    await writes.check(7)
    with pytest.raises(RateLimited):
        await writes.check(7)
    await writes.check(8)  # per user
