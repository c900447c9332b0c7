"""Batched calls to the users service's UserDirectoryService.

Every call carries the caller's remaining deadline (capped by the settings'
internal call timeout), and, being idempotent reads, is retried on UNAVAILABLE
with a short backoff while the deadline allows.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import grpc
from google.protobuf.message import Message

from conduit.users.v1 import users_pb2, users_pb2_grpc
from conduit_server.runtime.errors import Unavailable

log = logging.getLogger("conduit.articles.users")

T = TypeVar("T")
# The contract's limit on ids and usernames per call.
MAX_BATCH = 1000
RETRY_ATTEMPTS = 3
_RETRY_BASE_SECONDS = 0.05
# Below this there is no point in starting a call: it would fail with DEADLINE_EXCEEDED.
_MIN_TIMEOUT_SECONDS = 0.01


def _chunks(items: list[T], size: int) -> Iterable[list[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class UsersClient:
    """Profiles, username resolution and followees from the users service.

    `calls` counts calls per method (retries included) for metrics and tests.
    """

    def __init__(self, channel: grpc.aio.Channel, *, timeout_cap_seconds: float) -> None:
        self._directory = users_pb2_grpc.UserDirectoryServiceStub(channel)
        self._timeout_cap = timeout_cap_seconds
        self.calls: Counter[str] = Counter()

    @property
    def batch_get_profiles_calls(self) -> int:
        return self.calls["BatchGetProfiles"]

    async def profiles(self, user_ids: Iterable[int], viewer_id: int, deadline: float) -> dict[int, users_pb2.Profile]:
        """Profiles by id with `following` as seen by `viewer_id`; one call per 1,000 distinct ids."""
        ids = sorted(set(user_ids))
        found: dict[int, users_pb2.Profile] = {}
        for chunk in _chunks(ids, MAX_BATCH):
            request = users_pb2.BatchGetProfilesRequest(user_ids=chunk, viewer_id=viewer_id)
            response = await self._call(self._directory.BatchGetProfiles, request, deadline)
            found.update(response.profiles)
        return found

    async def resolve(self, usernames: Iterable[str], deadline: float) -> dict[str, int]:
        """User ids by username; unknown usernames are absent."""
        names = sorted(set(usernames))
        resolved: dict[str, int] = {}
        for chunk in _chunks(names, MAX_BATCH):
            request = users_pb2.ResolveUsernamesRequest(usernames=chunk)
            response = await self._call(self._directory.ResolveUsernames, request, deadline)
            resolved.update(response.user_ids)
        return resolved

    async def followee_ids(self, user_id: int, deadline: float) -> list[int]:
        """Every user id that `user_id` follows."""
        request = users_pb2.ListFolloweeIdsRequest(user_id=user_id)
        response = await self._call(self._directory.ListFolloweeIds, request, deadline)
        return list(response.followee_ids)

    async def _call(self, method: Callable[..., Awaitable[T]], request: Message, deadline: float) -> T:
        name = type(request).__name__.removesuffix("Request")
        for attempt in range(RETRY_ATTEMPTS):
            timeout = min(deadline - time.monotonic(), self._timeout_cap)
            if timeout < _MIN_TIMEOUT_SECONDS:
                raise Unavailable("no time left to reach the users service", reason="USERS_DEADLINE")
            self.calls[name] += 1
            try:
                return await method(request, timeout=timeout)
            except grpc.aio.AioRpcError as error:
                code = error.code()
                if code == grpc.StatusCode.UNAVAILABLE and attempt + 1 < RETRY_ATTEMPTS:
                    backoff = _RETRY_BASE_SECONDS * 2 ** attempt * (0.5 + random.random())  # noqa: S311 - jitter
                    log.warning("users %s unavailable, retrying in %.2fs", name, backoff)
                    await asyncio.sleep(min(backoff, max(deadline - time.monotonic(), 0)))
                    continue
                if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise Unavailable("the users service is unavailable",
                                      reason="USERS_UNAVAILABLE") from None
                raise
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
