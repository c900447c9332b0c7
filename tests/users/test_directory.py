"""The internal directory: batch profile look-ups, usernames to ids, followees; cached in Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import grpc
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.users.v1 import users_pb2
from conduit_server.users.domain.accounts import Directory
from conduit_server.users.repository import UserRepository
from conduit_server.users.repository.models import User
from tests.fixtures.users import UsersServer, unique_name

from .support import fails


class QueryCounter:
    """Counts the SQL statements the users service sends while active."""

    def __init__(self, users_server: UsersServer) -> None:
        self.engine = users_server.app.database.engine.sync_engine
        self.statements: list[str] = []

    def _count(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(statement)

    def __enter__(self) -> QueryCounter:
        event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._count)

    @property
    def user_queries(self) -> list[str]:
        return [s for s in self.statements if "outbox" not in s and "signing_keys" not in s]


async def people(users_server: UsersServer, count: int) -> list[tuple[str, int, str]]:
    result = []
    for _ in range(count):
        name = unique_name("p")
        user_id, token = await users_server.register(name)
        result.append((name, user_id, token))
    return result


async def test_batch_profiles_answer_a_page_in_one_call_with_following_for_the_viewer(
        users_server: UsersServer) -> None:
    (_, viewer_id, token), *authors = await people(users_server, 4)
    await users_server.profiles.FollowProfile(users_pb2.FollowProfileRequest(username=authors[0][0]),
                                              metadata=users_server.auth(token))
    ids = [author_id for _, author_id, _ in authors] + [authors[0][1], 999_999_999]
    request = users_pb2.BatchGetProfilesRequest(user_ids=ids, viewer_id=viewer_id)
    with QueryCounter(users_server) as counter:
        answer = await users_server.directory.BatchGetProfiles(request, metadata=users_server.internal())
    assert len(counter.user_queries) <= 2  # profiles in one query, following flags in one more
    assert set(answer.profiles) == {author_id for _, author_id, _ in authors}  # unknown id absent
    assert [answer.profiles[a[1]].following for a in authors] == [True, False, False]
    assert answer.profiles[authors[1][1]].username == authors[1][0]
    anonymous = await users_server.directory.BatchGetProfiles(
        users_pb2.BatchGetProfilesRequest(user_ids=ids), metadata=users_server.internal())
    assert not any(profile.following for profile in anonymous.profiles.values())


async def test_profiles_are_cached_and_the_cache_follows_updates(users_server: UsersServer) -> None:
    ((name, user_id, token),) = await people(users_server, 1)
    request = users_pb2.BatchGetProfilesRequest(user_ids=[user_id])
    await users_server.directory.BatchGetProfiles(request, metadata=users_server.internal())
    with QueryCounter(users_server) as counter:
        cached = await users_server.directory.BatchGetProfiles(request, metadata=users_server.internal())
    assert counter.user_queries == []
    assert cached.profiles[user_id].username == name
    await users_server.users.UpdateCurrentUser(users_pb2.UpdateCurrentUserRequest(
        user=users_pb2.UpdateUser(bio="fresh bio", image="https://example.test/a.png")),
        metadata=users_server.auth(token))
    fresh = await users_server.directory.BatchGetProfiles(request, metadata=users_server.internal())
    assert (fresh.profiles[user_id].bio, fresh.profiles[user_id].image) == (
        "fresh bio", "https://example.test/a.png")


async def test_followee_ids_are_cached_and_invalidated_by_follows(users_server: UsersServer) -> None:
    (_, fan_id, fan), (first, first_id, _), (second, second_id, _) = await people(users_server, 3)
    request = users_pb2.ListFolloweeIdsRequest(user_id=fan_id)

    async def followees() -> list[int]:
        answer = await users_server.directory.ListFolloweeIds(request, metadata=users_server.internal())
        return list(answer.followee_ids)

    assert await followees() == []
    for name in (first, second):
        await users_server.profiles.FollowProfile(users_pb2.FollowProfileRequest(username=name),
                                                  metadata=users_server.auth(fan))
    assert await followees() == sorted([first_id, second_id])
    with QueryCounter(users_server) as counter:
        assert await followees() == sorted([first_id, second_id])
    assert counter.user_queries == []
    await users_server.profiles.UnfollowProfile(users_pb2.UnfollowProfileRequest(username=first),
                                                metadata=users_server.auth(fan))
    assert await followees() == [second_id]
    # The warm followee list also answers BatchGetProfiles' following flags.
    answer = await users_server.directory.BatchGetProfiles(users_pb2.BatchGetProfilesRequest(
        user_ids=[first_id, second_id], viewer_id=fan_id), metadata=users_server.internal())
    assert (answer.profiles[first_id].following, answer.profiles[second_id].following) == (False, True)


async def test_usernames_resolve_case_insensitively_and_unknown_ones_are_absent(
        users_server: UsersServer) -> None:
    ((name, user_id, _),) = await people(users_server, 1)
    missing = unique_name("missing")
    answer = await users_server.directory.ResolveUsernames(users_pb2.ResolveUsernamesRequest(
        usernames=[name.upper(), missing]), metadata=users_server.internal())
    assert dict(answer.user_ids) == {name.upper(): user_id}


@pytest.mark.parametrize("call", ["BatchGetProfiles", "ResolveUsernames", "ListFolloweeIds"])
async def test_directory_is_for_services_of_the_mesh_only(users_server: UsersServer, call: str) -> None:
    _, token = await users_server.register(unique_name())
    requests = {"BatchGetProfiles": users_pb2.BatchGetProfilesRequest(user_ids=[1]),
                "ResolveUsernames": users_pb2.ResolveUsernamesRequest(usernames=["a"]),
                "ListFolloweeIds": users_pb2.ListFolloweeIdsRequest(user_id=1)}
    method = getattr(users_server.directory, call)
    await fails(method(requests[call], metadata=users_server.auth(token)), grpc.StatusCode.PERMISSION_DENIED)


class PausedAfterReading(UserRepository):
    """The real repository, except that reading profiles pauses until released (a slow reader)."""

    def __init__(self) -> None:
        self.read = asyncio.Event()
        self.release = asyncio.Event()

    async def profiles(self, session: AsyncSession, user_ids: Iterable[int]) -> list[User]:
        rows = await super().profiles(session, user_ids)
        self.read.set()
        await self.release.wait()
        return rows


async def test_a_refill_racing_a_profile_edit_is_never_served_after_the_edit_returned(
        users_server: UsersServer) -> None:
    _, user_id, token = (await people(users_server, 1))[0]
    app = users_server.app
    slow = PausedAfterReading()
    reader = Directory(app.database, slow, app.cache)
    # A reader misses, reads the old row, and stalls before it fills the directory...
    refill = asyncio.create_task(reader.profiles([user_id], None))
    await asyncio.wait_for(slow.read.wait(), 10)
    # ...while the owner edits the profile: committed, directory invalidated, answered.
    await users_server.users.UpdateCurrentUser(users_pb2.UpdateCurrentUserRequest(
        user=users_pb2.UpdateUser(bio="after the edit")), metadata=users_server.auth(token))
    slow.release.set()
    assert (await asyncio.wait_for(refill, 10))[user_id].bio == ""  # it read before the edit: fine
    # The late fill landed under the version it looked up, which the edit retired: never served.
    assert (await app.cache.lookup([user_id], None)).profiles == {}
    answer = await users_server.directory.BatchGetProfiles(
        users_pb2.BatchGetProfilesRequest(user_ids=[user_id]), metadata=users_server.internal())
    assert answer.profiles[user_id].bio == "after the edit"
    assert (await app.cache.lookup([user_id], None)).profiles[user_id]["bio"] == "after the edit"
