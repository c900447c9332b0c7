"""What realtime needs from the users service: author profiles and followees.

`Directory` is the seam: the app uses `UsersDirectory` (the real UserDirectoryService
over the internal channel); tests hand in the same class pointed at an in-test users
service. Calls are idempotent reads, retried on UNAVAILABLE with a short backoff.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Protocol, TypeVar

import grpc
from google.protobuf.message import Message

from conduit.users.v1 import users_pb2, users_pb2_grpc
from conduit_server.runtime.errors import Unavailable
from conduit_server.runtime.expiring import ExpiringCache

log = logging.getLogger("conduit.realtime.users")

T = TypeVar("T")
MAX_BATCH = 1000  # the contract's limit on ids per BatchGetProfiles
_ATTEMPTS = 3
_BACKOFF_SECONDS = 0.05


class Directory(Protocol):
    """Viewer-independent profiles (`following` false) and a user's followees."""

    async def profiles(self, user_ids: Iterable[int]) -> Mapping[int, users_pb2.Profile]: ...

    async def followee_ids(self, user_id: int) -> list[int]: ...


class UsersDirectory:
    """UserDirectoryService over a channel that carries the internal token."""

    def __init__(self, channel: grpc.aio.Channel, *, timeout_seconds: float) -> None:
        self._stub = users_pb2_grpc.UserDirectoryServiceStub(channel)
        self._timeout = timeout_seconds
        self.calls = {"BatchGetProfiles": 0, "ListFolloweeIds": 0}

    async def profiles(self, user_ids: Iterable[int]) -> Mapping[int, users_pb2.Profile]:
        ids = sorted(set(user_ids))
        found: dict[int, users_pb2.Profile] = {}
        for start in range(0, len(ids), MAX_BATCH):
            request = users_pb2.BatchGetProfilesRequest(user_ids=ids[start:start + MAX_BATCH], viewer_id=0)
            response = await self._call("BatchGetProfiles", self._stub.BatchGetProfiles, request)
            found.update(response.profiles)
        return found

    async def followee_ids(self, user_id: int) -> list[int]:
        request = users_pb2.ListFolloweeIdsRequest(user_id=user_id)
        response = await self._call("ListFolloweeIds", self._stub.ListFolloweeIds, request)
        return list(response.followee_ids)

    async def _call(self, name: str, method: Callable[..., Awaitable[T]], request: Message) -> T:
        for attempt in range(_ATTEMPTS):
            self.calls[name] += 1
            try:
                return await method(request, timeout=self._timeout)
            except grpc.aio.AioRpcError as error:
                retryable = error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
                if not retryable:
                    raise
                if attempt + 1 == _ATTEMPTS:
                    raise Unavailable("the users service is unavailable",
                                      reason="USERS_UNAVAILABLE") from None
                backoff = _BACKOFF_SECONDS * 2 ** attempt * (0.5 + random.random())  # noqa: S311 - jitter
                log.warning("users %s unavailable, retrying in %.2fs", name, backoff)
                await asyncio.sleep(backoff)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


class ProfileCache:
    """Author profiles by user id for `ttl_seconds`, at most `max_entries` (runtime/expiring.py).

    Fetches every miss of a batch with ONE directory call. Profiles change rarely and the
    users stream's `user_updated` events evict them at once; the TTL bounds staleness when
    that stream is not available. A fetch in flight across an eviction is not kept.
    """

    def __init__(self, directory: Directory, *, ttl_seconds: float = 60.0, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._directory = directory
        self._entries: ExpiringCache[users_pb2.Profile] = ExpiringCache(
            ttl_seconds=ttl_seconds, max_entries=max_entries, clock=clock, name="realtime.profiles")

    @property
    def hits(self) -> int:
        return self._entries.hits

    @property
    def misses(self) -> int:
        return self._entries.misses

    async def get_many(self, user_ids: Iterable[int]) -> dict[int, users_pb2.Profile]:
        """Profiles of `user_ids`; users the directory does not know are absent."""
        found, missing = self._entries.get_many(set(user_ids))
        if missing:
            generation = self._entries.generation()
            fetched = await self._directory.profiles(missing)
            self._entries.store(fetched, generation)
            found.update(fetched)
        return found

    def evict(self, user_id: int) -> None:
        self._entries.evict(user_id)
