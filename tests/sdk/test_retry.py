"""Retries and deadlines, counted on a real in-process server: reads retry, writes never do."""

from __future__ import annotations

import random
import time

import grpc
import pytest

from conduit.articles.v1 import articles_pb2_grpc
from conduit.client import (
    AsyncConduit,
    Conduit,
    ConduitError,
    DeadlineExceeded,
    RateLimited,
    ResourceExhausted,
    RetryPolicy,
    Unavailable,
)
from conduit.client._retry import retry_delay
from tests.sdk.conftest import Serve
from tests.sdk.support import UNAVAILABLE, Failure, FakeArticles, ScriptedTags, error_info, retry_info

S = grpc.StatusCode
FAST = RetryPolicy(initial_backoff=0.01, max_backoff=0.05)
SLOW_DOWN = Failure(S.RESOURCE_EXHAUSTED, "slow down", (error_info("RATE_LIMITED"), retry_info(0.3)))


def _tags_server(serve: Serve, tags: ScriptedTags) -> str:
    return serve((articles_pb2_grpc.add_TagsServiceServicer_to_server, tags)).target


def _articles_server(serve: Serve, articles: FakeArticles) -> str:
    return serve((articles_pb2_grpc.add_ArticlesServiceServicer_to_server, articles)).target


def test_an_idempotent_read_retries_unavailable_until_it_succeeds(serve: Serve) -> None:
    tags = ScriptedTags(UNAVAILABLE, UNAVAILABLE)
    with Conduit.connect(_tags_server(serve, tags), tls=False) as conduit:
        assert conduit.tags.list() == ["grpc", "python"]
    assert tags.calls == 3


async def test_the_async_client_retries_reads_the_same_way(serve: Serve) -> None:
    tags = ScriptedTags(UNAVAILABLE, UNAVAILABLE)
    async with await AsyncConduit.connect(_tags_server(serve, tags), tls=False) as conduit:
        assert await conduit.tags.list() == ["grpc", "python"]
    assert tags.calls == 3


def test_a_rate_limited_read_waits_as_long_as_retry_info_says(serve: Serve) -> None:
    tags = ScriptedTags(SLOW_DOWN)
    with Conduit.connect(_tags_server(serve, tags), tls=False, retry=FAST) as conduit:
        assert conduit.tags.list() == ["grpc", "python"]
    assert tags.calls == 2
    assert tags.call_times[1] - tags.call_times[0] >= 0.29


async def test_the_async_client_honours_retry_info(serve: Serve) -> None:
    tags = ScriptedTags(SLOW_DOWN)
    async with await AsyncConduit.connect(_tags_server(serve, tags), tls=False, retry=FAST) as conduit:
        assert await conduit.tags.list() == ["grpc", "python"]
    assert tags.calls == 2
    assert tags.call_times[1] - tags.call_times[0] >= 0.29


def test_a_retry_info_beyond_the_budget_raises_at_once(serve: Serve) -> None:
    tags = ScriptedTags(Failure(S.RESOURCE_EXHAUSTED, "come back later",
                                (error_info("RATE_LIMITED"), retry_info(30))))
    with Conduit.connect(_tags_server(serve, tags), tls=False) as conduit:
        started = time.monotonic()
        with pytest.raises(RateLimited) as raised:
            conduit.with_options(deadline=2).tags.list()
        assert time.monotonic() - started < 1
    assert raised.value.retry_after == 30
    assert tags.calls == 1


def test_resource_exhausted_without_retry_info_is_not_retried(serve: Serve) -> None:
    tags = ScriptedTags(Failure(S.RESOURCE_EXHAUSTED, "message too large"))
    with Conduit.connect(_tags_server(serve, tags), tls=False) as conduit, pytest.raises(ResourceExhausted):
        conduit.tags.list()
    assert tags.calls == 1


def test_other_errors_are_not_retried(serve: Serve) -> None:
    tags = ScriptedTags(Failure(S.INTERNAL, "boom"))
    with Conduit.connect(_tags_server(serve, tags), tls=False) as conduit, pytest.raises(ConduitError):
        conduit.tags.list()
    assert tags.calls == 1


def test_retries_stop_after_max_attempts(serve: Serve) -> None:
    tags = ScriptedTags(*[UNAVAILABLE] * 10)
    policy = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.01)
    with Conduit.connect(_tags_server(serve, tags), tls=False, retry=policy) as conduit, \
            pytest.raises(Unavailable):
        conduit.tags.list()
    assert tags.calls == 3


def test_retries_stop_before_the_deadline(serve: Serve) -> None:
    tags = ScriptedTags(*[UNAVAILABLE] * 100)
    policy = RetryPolicy(max_attempts=100, initial_backoff=0.1, max_backoff=0.1, jitter=0)
    with Conduit.connect(_tags_server(serve, tags), tls=False, retry=policy) as conduit:
        started = time.monotonic()
        with pytest.raises(Unavailable) as raised:
            conduit.with_options(deadline=0.55).tags.list()
        assert time.monotonic() - started < 0.7
    assert "would pass the operation budget" in " ".join(raised.value.__notes__)
    assert 3 <= tags.calls <= 6


def test_a_per_call_timeout_is_the_deadline_the_server_sees(serve: Serve) -> None:
    tags = ScriptedTags(delay=1.0)
    with Conduit.connect(_tags_server(serve, tags), tls=False) as conduit:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded) as raised:
            conduit.with_options(retries=0).tags.list(timeout=0.2)
        assert time.monotonic() - started < 0.8
    assert (raised.value.budget, raised.value.limit, raised.value.attempts) == ("attempt", 0.2, 1)
    remaining = tags.deadlines[0]
    assert remaining is not None
    assert remaining <= 0.21  # the wire rounds grpc-timeout up a little


def test_every_call_carries_the_clients_default_deadline(serve: Serve) -> None:
    tags = ScriptedTags()
    with Conduit.connect(_tags_server(serve, tags), tls=False, timeout=4) as conduit:
        conduit.tags.list()
        conduit.tags.list(timeout=30)
    first, second = tags.deadlines
    assert first is not None
    assert second is not None
    assert first == pytest.approx(4, rel=0.05)  # grpc-timeout carries ~3 significant digits
    assert second == pytest.approx(30, rel=0.05)


async def test_the_async_client_applies_the_deadline(serve: Serve) -> None:
    tags = ScriptedTags(delay=1.0)
    async with await AsyncConduit.connect(_tags_server(serve, tags), tls=False, timeout=0.2) as conduit:
        with pytest.raises(DeadlineExceeded) as raised:
            await conduit.with_options(retries=0).tags.list()
    assert raised.value.budget == "attempt"


def test_a_read_whose_attempts_time_out_retries_until_the_operation_budget_is_spent(serve: Serve) -> None:
    tags = ScriptedTags(delay=5.0)
    with Conduit.connect(_tags_server(serve, tags), tls=False, retry=FAST) as conduit, \
            pytest.raises(DeadlineExceeded) as raised:
        conduit.with_options(timeout=0.2, deadline=0.7).tags.list()
    error = raised.value
    assert error.budget == "operation"
    assert error.limit == 0.7
    assert error.spent is not None
    assert error.spent >= 0.7
    assert error.attempts >= 3
    assert "operation budget of 0.7s ran out in ListTags" in str(error)


def test_backoff_grows_exponentially_up_to_the_cap_with_bounded_jitter() -> None:
    policy = RetryPolicy(initial_backoff=0.1, max_backoff=1.0, multiplier=2, jitter=0.5)
    rng = random.Random(7)  # noqa: S311 - a seeded sequence, not a secret
    for retry, base in enumerate([0.1, 0.2, 0.4, 0.8, 1.0, 1.0]):
        for _ in range(50):
            assert base / 2 <= policy.backoff(retry, rng) <= base
    assert RetryPolicy(jitter=0).backoff(2) == pytest.approx(0.4)


def test_retry_delay_decides_which_errors_retry() -> None:
    policy = RetryPolicy(max_attempts=3, jitter=0)
    unavailable = Unavailable("down")
    assert retry_delay(unavailable, retry=0, policy=policy, remaining=10) == pytest.approx(0.1)
    assert retry_delay(unavailable, retry=2, policy=policy, remaining=10) is None  # attempts spent
    assert retry_delay(unavailable, retry=0, policy=policy, remaining=0.05) is None  # past the deadline
    assert retry_delay(RateLimited("x", retry_after=2), retry=0, policy=policy, remaining=10) == 2
    assert retry_delay(RateLimited("x", retry_after=20), retry=0, policy=policy, remaining=10) is None
    assert retry_delay(ResourceExhausted("x"), retry=0, policy=policy, remaining=10) is None
    assert retry_delay(DeadlineExceeded("x"), retry=0, policy=policy, remaining=10) is None


@pytest.mark.parametrize("kwargs", [{"max_attempts": 0}, {"jitter": 2}, {"multiplier": 0.5},
                                    {"initial_backoff": 2, "max_backoff": 1}])
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
