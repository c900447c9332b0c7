"""RealWorld profiles and follows, and the events they write to the outbox."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from sqlalchemy import text

from conduit.users.v1 import events_pb2, users_pb2
from conduit_server.runtime import outbox
from tests.fixtures.users import UsersServer, unique_name

from .support import fails, reason, violations


async def events_about(users_server: UsersServer, user_id: int) -> list[events_pb2.UserEvent]:
    """Every outbox event mentioning `user_id`, in commit order."""
    async with users_server.app.database.read() as session:
        rows = await session.execute(text("SELECT payload FROM outbox ORDER BY id"))
        events = [events_pb2.UserEvent.FromString(bytes(row.payload)) for row in rows]
    about: list[events_pb2.UserEvent] = []
    for event in events:
        payload = getattr(event, event.WhichOneof("payload") or "")
        ids = {getattr(payload, name, None) for name in ("user_id", "follower_id", "followee_id")}
        if user_id in ids:
            about.append(event)
    return about


async def test_profile_of_a_user_for_anonymous_and_signed_in_callers(users_server: UsersServer) -> None:
    celeb = unique_name("celeb")
    await users_server.register(celeb)
    _, fan = await users_server.register(unique_name("fan"))
    request = users_pb2.GetProfileRequest(username=celeb.upper())  # names match case-insensitively
    anonymous = await users_server.profiles.GetProfile(request)
    assert (anonymous.profile.username, anonymous.profile.following) == (celeb, False)
    await users_server.profiles.FollowProfile(users_pb2.FollowProfileRequest(username=celeb),
                                              metadata=users_server.auth(fan))
    signed_in = await users_server.profiles.GetProfile(request, metadata=users_server.auth(fan))
    assert signed_in.profile.following is True
    assert (await users_server.profiles.GetProfile(request)).profile.following is False


async def test_follow_and_unfollow_are_idempotent(users_server: UsersServer) -> None:
    celeb = unique_name("celeb")
    await users_server.register(celeb)
    _, fan = await users_server.register(unique_name("fan"))
    follow = users_pb2.FollowProfileRequest(username=celeb)
    for _ in range(2):
        answer = await users_server.profiles.FollowProfile(follow, metadata=users_server.auth(fan))
        assert (answer.profile.username, answer.profile.following) == (celeb, True)
    unfollow = users_pb2.UnfollowProfileRequest(username=celeb)
    for _ in range(2):
        gone = await users_server.profiles.UnfollowProfile(unfollow, metadata=users_server.auth(fan))
        assert gone.profile.following is False
    profile = await users_server.profiles.GetProfile(users_pb2.GetProfileRequest(username=celeb),
                                                     metadata=users_server.auth(fan))
    assert profile.profile.following is False


async def test_following_yourself_is_rejected(users_server: UsersServer) -> None:
    name = unique_name()
    _, token = await users_server.register(name)
    error = await fails(users_server.profiles.FollowProfile(users_pb2.FollowProfileRequest(username=name),
                                                            metadata=users_server.auth(token)),
                        grpc.StatusCode.INVALID_ARGUMENT)
    assert violations(error) == [("username", "cannot follow yourself")]
    assert reason(error) == "SELF_FOLLOW"


async def test_unknown_profile_is_not_found_and_follow_needs_a_token(users_server: UsersServer) -> None:
    _, token = await users_server.register(unique_name())
    missing = unique_name("missing")
    await fails(users_server.profiles.GetProfile(users_pb2.GetProfileRequest(username=missing)),
                grpc.StatusCode.NOT_FOUND)
    await fails(users_server.profiles.FollowProfile(users_pb2.FollowProfileRequest(username=missing),
                                                    metadata=users_server.auth(token)),
                grpc.StatusCode.NOT_FOUND)
    await fails(users_server.profiles.FollowProfile(users_pb2.FollowProfileRequest(username=missing)),
                grpc.StatusCode.UNAUTHENTICATED)


async def test_user_and_follow_changes_are_written_to_the_outbox_and_relayed(users_server: UsersServer
                                                                            ) -> None:
    celeb = unique_name("celeb")
    celeb_id, celeb_token = await users_server.register(celeb)
    fan_id, fan = await users_server.register(unique_name("fan"))
    await users_server.profiles.FollowProfile(users_pb2.FollowProfileRequest(username=celeb),
                                              metadata=users_server.auth(fan))
    await users_server.profiles.FollowProfile(users_pb2.FollowProfileRequest(username=celeb),
                                              metadata=users_server.auth(fan))  # no change, no event
    await users_server.profiles.UnfollowProfile(users_pb2.UnfollowProfileRequest(username=celeb),
                                                metadata=users_server.auth(fan))
    await users_server.users.UpdateCurrentUser(users_pb2.UpdateCurrentUserRequest(
        user=users_pb2.UpdateUser(bio="new bio")), metadata=users_server.auth(celeb_token))
    events = await events_about(users_server, celeb_id)
    assert [event.WhichOneof("payload") for event in events] == [
        "user_created", "follow_changed", "follow_changed", "user_updated"]
    assert events[0].user_created.username == celeb
    assert [(e.follow_changed.follower_id, e.follow_changed.following) for e in events[1:3]] == [
        (fan_id, True), (fan_id, False)]
    assert all(event.event_id and event.occurred_at.seconds for event in events)
    # The app's relay publishes them to the users stream.
    wanted = {event.event_id for event in events}
    published: set[str] = set()

    async def all_published() -> bool:
        entries: Any = await users_server.app.redis.xrange(outbox.stream_name("users"))
        published.update(fields[b"event_id"].decode() for _, fields in entries)
        return wanted <= published

    async with asyncio.timeout(30):
        while not await all_published():  # noqa: ASYNC110 - the relay is another task
            await asyncio.sleep(0.05)
