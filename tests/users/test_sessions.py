"""Refresh tokens: opaque, hashed at rest, rotated on use; reuse revokes the family; logout revokes."""

from __future__ import annotations

import asyncio

import grpc
from sqlalchemy import text

from conduit.users.v1 import users_pb2
from conduit_server.users.domain.refresh import hash_refresh_token
from tests.fixtures.users import PASSWORD, UsersServer, email_for, unique_name

from .support import fails, reason


async def sign_in(users_server: UsersServer, name: str) -> users_pb2.CreateSessionResponse:
    await users_server.register(name)
    return await users_server.auth_service.CreateSession(users_pb2.CreateSessionRequest(
        user=users_pb2.LoginUser(email=email_for(name), password=PASSWORD)))


async def refresh(users_server: UsersServer, token: str) -> users_pb2.RefreshSessionResponse:
    request = users_pb2.RefreshSessionRequest(refresh_token=token)
    return await users_server.auth_service.RefreshSession(request)


async def test_session_gives_an_access_token_and_a_refresh_token_stored_only_as_a_hash(
        users_server: UsersServer) -> None:
    name = unique_name()
    created = await sign_in(users_server, name)
    assert created.user.username == name
    session = created.session
    assert session.refresh_token.startswith("crt_")
    assert 0 < session.expires_in_seconds <= users_server.app.settings.access_token_ttl_seconds
    assert session.refresh_expires_in_seconds > session.expires_in_seconds
    assert (await users_server.app.verifier.verify(session.access_token)).username == name
    async with users_server.app.database.read() as db:
        stored = (await db.execute(text("SELECT token_hash FROM refresh_tokens"))).scalars().all()
    assert hash_refresh_token(session.refresh_token) in stored
    assert session.refresh_token not in stored


async def test_refresh_rotates_the_pair_and_spends_the_old_token(users_server: UsersServer) -> None:
    name = unique_name()
    first = (await sign_in(users_server, name)).session
    second = (await refresh(users_server, first.refresh_token)).session
    assert second.refresh_token != first.refresh_token
    assert (await users_server.app.verifier.verify(second.access_token)).username == name
    third = (await refresh(users_server, second.refresh_token)).session
    assert third.refresh_token not in {first.refresh_token, second.refresh_token}


async def test_reusing_a_spent_refresh_token_revokes_the_whole_family(users_server: UsersServer) -> None:
    name = unique_name()
    stolen = (await sign_in(users_server, name)).session.refresh_token
    newest = (await refresh(users_server, stolen)).session.refresh_token  # the legitimate client moves on
    error = await fails(refresh(users_server, stolen), grpc.StatusCode.UNAUTHENTICATED)  # the thief
    assert reason(error) == "REFRESH_TOKEN_REUSED"
    error = await fails(refresh(users_server, newest), grpc.StatusCode.UNAUTHENTICATED)
    assert reason(error) == "REFRESH_TOKEN_REVOKED"
    # Other sessions of the same user are separate families and keep working.
    other = await users_server.auth_service.CreateSession(users_pb2.CreateSessionRequest(
        user=users_pb2.LoginUser(email=email_for(name), password=PASSWORD)))
    await refresh(users_server, other.session.refresh_token)


async def test_concurrent_use_of_one_refresh_token_yields_one_pair_at_most(users_server: UsersServer) -> None:
    token = (await sign_in(users_server, unique_name())).session.refresh_token
    results = await asyncio.gather(*(refresh(users_server, token) for _ in range(5)), return_exceptions=True)
    winners = [r for r in results if isinstance(r, users_pb2.RefreshSessionResponse)]
    losers = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(winners) == 1
    assert [loser.code() for loser in losers] == [grpc.StatusCode.UNAUTHENTICATED] * 4
    # The race is treated as reuse: the winner's new token is revoked with its family.
    await fails(refresh(users_server, winners[0].session.refresh_token), grpc.StatusCode.UNAUTHENTICATED)


async def test_revoke_logs_out_and_unknown_tokens_are_not_an_error(users_server: UsersServer) -> None:
    session = (await sign_in(users_server, unique_name())).session
    await users_server.auth_service.RevokeSession(users_pb2.RevokeSessionRequest(
        refresh_token=session.refresh_token))
    error = await fails(refresh(users_server, session.refresh_token), grpc.StatusCode.UNAUTHENTICATED)
    assert reason(error) == "REFRESH_TOKEN_REVOKED"
    await users_server.auth_service.RevokeSession(users_pb2.RevokeSessionRequest(refresh_token="crt_nope"))
    error = await fails(refresh(users_server, "crt_unknown"), grpc.StatusCode.UNAUTHENTICATED)
    assert reason(error) == "REFRESH_TOKEN_INVALID"
    await fails(refresh(users_server, "not-even-shaped-right"), grpc.StatusCode.UNAUTHENTICATED)


async def test_expired_refresh_token_is_rejected(users_server: UsersServer) -> None:
    session = (await sign_in(users_server, unique_name())).session
    async with users_server.app.database.transaction() as db:
        await db.execute(text("UPDATE refresh_tokens SET expires_at = now() - interval '1 second' "
                              "WHERE token_hash = :hash"),
                         {"hash": hash_refresh_token(session.refresh_token)})
    error = await fails(refresh(users_server, session.refresh_token), grpc.StatusCode.UNAUTHENTICATED)
    assert reason(error) == "REFRESH_TOKEN_EXPIRED"


async def test_changing_the_password_ends_every_refresh_session(users_server: UsersServer) -> None:
    name = unique_name()
    created = await sign_in(users_server, name)
    await users_server.users.UpdateCurrentUser(users_pb2.UpdateCurrentUserRequest(
        user=users_pb2.UpdateUser(password="a whole new password")), metadata=users_server.auth(
        created.session.access_token))
    await fails(refresh(users_server, created.session.refresh_token), grpc.StatusCode.UNAUTHENTICATED)


async def test_refreshed_access_token_carries_roles_granted_meanwhile(users_server: UsersServer) -> None:
    name = unique_name()
    session = (await sign_in(users_server, name)).session
    await users_server.app.roles.grant(name, "moderator")
    renewed = (await refresh(users_server, session.refresh_token)).session
    principal = await users_server.app.verifier.verify(renewed.access_token)
    assert principal.roles == frozenset({"user", "moderator"})
