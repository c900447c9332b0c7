"""Browser sessions: RealWorld's tokens last `browser_session_ttl_seconds` and stay revocable.

RealWorld frontends never refresh: register and login (and every user response, which they
store) carry a browser-session token; SDK sessions keep short tokens with refresh. A password
change, signing out of all sessions and a role revocation void the user's older tokens at once,
even where a verification is cached (docs/decisions/0012-browser-sessions.md).
"""

from __future__ import annotations

import grpc
import jwt

from conduit.users.v1 import users_pb2
from tests.fixtures.users import PASSWORD, UsersServer, email_for, unique_name

from .support import fails, reason

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


def _claims(token: str) -> dict[str, object]:
    claims: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return claims


def _lifetime(token: str) -> int:
    claims = _claims(token)
    expires_at, issued_at = claims["exp"], claims["iat"]
    assert isinstance(expires_at, int)
    assert isinstance(issued_at, int)
    return expires_at - issued_at


async def _login(users_server: UsersServer, name: str, password: str = PASSWORD) -> str:
    response = await users_server.users.Login(users_pb2.LoginRequest(
        user=users_pb2.LoginUser(email=email_for(name), password=password)))
    return response.user.token


async def _current(users_server: UsersServer, token: str) -> users_pb2.GetCurrentUserResponse:
    return await users_server.users.GetCurrentUser(users_pb2.GetCurrentUserRequest(),
                                                   metadata=users_server.auth(token))


async def test_register_and_login_tokens_last_a_browser_session(users_server: UsersServer) -> None:
    name = unique_name()
    created = await users_server.users.CreateUser(users_pb2.CreateUserRequest(
        user=users_pb2.NewUser(username=name, email=email_for(name), password=PASSWORD)))
    login_token = await _login(users_server, name)

    browser_ttl = users_server.app.settings.browser_session_ttl_seconds
    assert browser_ttl == 7 * 86400  # the default
    assert _lifetime(created.user.token) == browser_ttl
    assert _lifetime(login_token) == browser_ttl
    assert _lifetime((await _current(users_server, login_token)).user.token) == browser_ttl


async def test_sdk_sessions_keep_short_tokens_with_refresh(users_server: UsersServer) -> None:
    name = unique_name()
    await users_server.register(name)

    session = await users_server.auth_service.CreateSession(users_pb2.CreateSessionRequest(
        user=users_pb2.LoginUser(email=email_for(name), password=PASSWORD)))

    assert _lifetime(session.session.access_token) == users_server.app.settings.access_token_ttl_seconds
    assert session.session.refresh_token


async def test_a_password_change_voids_older_tokens_but_not_the_new_one(users_server: UsersServer) -> None:
    name = unique_name()
    await users_server.register(name)
    old = await _login(users_server, name)
    await _current(users_server, old)  # verified once: now in the verifier's cache

    changed = await users_server.users.UpdateCurrentUser(users_pb2.UpdateCurrentUserRequest(
        user=users_pb2.UpdateUser(password="a whole new password")), metadata=users_server.auth(old))

    error = await fails(_current(users_server, old), UNAUTHENTICATED)
    assert reason(error) == "TOKEN_REVOKED"
    assert (await _current(users_server, changed.user.token)).user.username == name
    assert (await _current(users_server, await _login(users_server, name, "a whole new password"))).user.username


async def test_signing_out_of_all_sessions_voids_every_token_and_refresh_token(users_server: UsersServer) -> None:
    name = unique_name()
    await users_server.register(name)
    browser = await _login(users_server, name)
    sdk = await users_server.auth_service.CreateSession(users_pb2.CreateSessionRequest(
        user=users_pb2.LoginUser(email=email_for(name), password=PASSWORD)))

    await users_server.auth_service.RevokeAllSessions(users_pb2.RevokeAllSessionsRequest(),
                                                      metadata=users_server.auth(browser))

    assert reason(await fails(_current(users_server, browser), UNAUTHENTICATED)) == "TOKEN_REVOKED"
    assert reason(await fails(_current(users_server, sdk.session.access_token), UNAUTHENTICATED)) == "TOKEN_REVOKED"
    refreshed = users_server.auth_service.RefreshSession(users_pb2.RefreshSessionRequest(
        refresh_token=sdk.session.refresh_token))
    assert reason(await fails(refreshed, UNAUTHENTICATED)) == "REFRESH_TOKEN_REVOKED"
    assert await _current(users_server, await _login(users_server, name))  # signing in again works


async def test_a_revoked_role_voids_the_tokens_that_carry_it(users_server: UsersServer) -> None:
    name = unique_name("moderator")
    await users_server.register(name)
    await users_server.app.roles.grant(name, "moderator")
    with_role = await _login(users_server, name)
    assert "moderator" in _claims(with_role)["roles"]  # type: ignore[operator]

    await users_server.app.roles.revoke(name, "moderator")

    assert reason(await fails(_current(users_server, with_role), UNAUTHENTICATED)) == "TOKEN_REVOKED"
    assert "moderator" not in _claims(await _login(users_server, name))["roles"]  # type: ignore[operator]
