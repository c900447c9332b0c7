"""The batched users client against the real users service: deadlines, retries, results."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
import pytest_asyncio

from conduit_server.articles.api import CallerFactory
from conduit_server.runtime.errors import Unavailable
from conduit_server.runtime.interceptors import INTERNAL_TOKEN_KEY
from conduit_server.users.client.calls import RETRY_ATTEMPTS, UsersClient
from tests.fixtures.users import INTERNAL_TOKEN, UsersServer, unique_name


class DeadlineRecorder(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    """Records the timeout of every call and adds the mesh's internal token, as internal channels do."""

    def __init__(self) -> None:
        self.timeouts: list[float | None] = []

    async def intercept_unary_unary(self, continuation: Callable[..., Awaitable[Any]],
                                    client_call_details: grpc.aio.ClientCallDetails, request: Any) -> Any:
        self.timeouts.append(client_call_details.timeout)
        call = client_call_details
        metadata = grpc.aio.Metadata(*(call.metadata or ()), (INTERNAL_TOKEN_KEY, INTERNAL_TOKEN))
        details = grpc.aio.ClientCallDetails(call.method, call.timeout, metadata, call.credentials,
                                             call.wait_for_ready)
        return await continuation(details, request)


@pytest_asyncio.fixture(loop_scope="session")
async def recorded(users_server: UsersServer) -> AsyncIterator[tuple[grpc.aio.Channel, DeadlineRecorder]]:
    recorder = DeadlineRecorder()
    interceptors: list[Any] = [recorder]
    channel = grpc.aio.insecure_channel(users_server.address, interceptors=interceptors)
    yield channel, recorder
    await channel.close(None)


async def test_profiles_and_usernames_come_back_in_one_call_each(
        users_server: UsersServer, recorded: tuple[grpc.aio.Channel, DeadlineRecorder]) -> None:
    channel, _ = recorded
    names = [unique_name("dir") for _ in range(3)]
    ids = [(await users_server.register(name))[0] for name in names]
    client = UsersClient(channel, timeout_cap_seconds=5)
    deadline = time.monotonic() + 5
    assert await client.resolve([*names, "no-such-user"], deadline) == dict(zip(names, ids, strict=True))
    profiles = await client.profiles([*ids, ids[0], 999_999_999], 0, deadline)
    assert {user_id: p.username for user_id, p in profiles.items()} == dict(zip(ids, names, strict=True))
    assert client.calls == {"ResolveUsernames": 1, "BatchGetProfiles": 1}


async def test_the_callers_deadline_travels_capped_by_the_settings(
        users_server: UsersServer, recorded: tuple[grpc.aio.Channel, DeadlineRecorder]) -> None:
    channel, recorder = recorded
    client = UsersClient(channel, timeout_cap_seconds=2.0)
    await client.profiles([1], 0, time.monotonic() + 0.8)  # a caller with 0.8 s left
    await client.profiles([1], 0, time.monotonic() + 60)  # a patient caller: the cap applies
    short, capped = recorder.timeouts
    assert short is not None
    assert capped is not None
    assert 0.5 < short <= 0.8
    assert 1.5 < capped <= 2.0


async def test_no_time_left_means_no_call() -> None:
    client = UsersClient(grpc.aio.insecure_channel("127.0.0.1:1"), timeout_cap_seconds=5)
    with pytest.raises(Unavailable):
        await client.profiles([1], 0, time.monotonic() - 1)
    assert client.batch_get_profiles_calls == 0


async def test_unavailable_is_retried_then_reported_as_unavailable() -> None:
    client = UsersClient(grpc.aio.insecure_channel("127.0.0.1:1"), timeout_cap_seconds=1)
    with pytest.raises(Unavailable) as caught:
        await client.profiles([1], 0, time.monotonic() + 5)
    assert caught.value.reason == "USERS_UNAVAILABLE"
    assert client.batch_get_profiles_calls == RETRY_ATTEMPTS


class _Context:
    def __init__(self, remaining: float | None) -> None:
        self._remaining = remaining

    def time_remaining(self) -> float | None:
        return self._remaining


def test_the_caller_gets_the_client_deadline_or_the_default() -> None:
    make = CallerFactory(timeout_cap_seconds=5.0)
    now = time.monotonic()
    assert make(_Context(1.5)).deadline == pytest.approx(now + 1.5, abs=0.1)
    assert make(_Context(None)).deadline == pytest.approx(now + 5.0, abs=0.1)
    assert math.isinf(make(_Context(None), streaming=True).deadline)
    anonymous = make(_Context(None))
    assert (anonymous.user_id, anonymous.viewer_id, anonymous.is_service) == (None, 0, False)
